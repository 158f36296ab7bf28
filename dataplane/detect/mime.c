/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming MIME structure: line assembly, header unfolding, multipart
 * boundaries, transfer decoding, and the dispatch of each part's lines to
 * the handler of its content type.  What the handlers extract (top-level
 * facts, DSN fields, the embedded original) lives in dsn.c; this file only
 * knows the shape of a message.
 *
 * The parser works on lines because everything MIME cares about is line
 * based (header fields, boundaries, DSN fields).  Input arrives in chunks of
 * any size; bytes are copied into one line buffer (LINE_MAX) and a line
 * longer than that is handed on in pieces, flagged so that a piece that does
 * not start a line is never taken for a boundary or a header name.  Chunk
 * sizes therefore never change what the handlers see: the same message gives
 * the same result however TCP cut it.
 */
#include <assert.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "backstop/mime.h"
#include "mime_priv.h"

/* The raw header block ends the info, so that copies can stop at its
 * length (bs_mime_info_copy()). */
static_assert(offsetof(struct bs_mime_info, orig) +
                        sizeof(struct bs_original) ==
                sizeof(struct bs_mime_info),
        "orig must be the last member of struct bs_mime_info");
static_assert(offsetof(struct bs_original, hdr_raw) + BS_ORIG_HDR_RAW_MAX +
                        8 >
                sizeof(struct bs_original),
        "hdr_raw must be the last member of struct bs_original");
/* What bs_mime_init() clears and the copy takes whole ends where the
 * Received entries begin; what follows them is listed in the copy. */
static_assert(offsetof(struct bs_original, received) <
                        offsetof(struct bs_original, n_dkim) &&
                offsetof(struct bs_original, n_dkim) <
                        offsetof(struct bs_original, hdr_raw_len),
        "struct bs_original: received, then n_dkim, dkim, hdr_raw_len");

void
bs_mime_info_copy(struct bs_mime_info *dst, const struct bs_mime_info *src)
{
	const struct bs_original *so = &src->orig;
	struct bs_original *d = &dst->orig;

	memcpy(dst, src, offsetof(struct bs_mime_info, orig.received));
	memcpy(d->received, so->received,
	        so->n_received * sizeof(struct bs_received));
	d->n_dkim = so->n_dkim;
	for (unsigned int k = 0; k < so->n_dkim; k++)
		memcpy(d->dkim[k], so->dkim[k], strlen(so->dkim[k]) + 1);
	d->hdr_raw_len = so->hdr_raw_len;
	d->hdr_raw_cut = so->hdr_raw_cut;
	memcpy(d->hdr_raw, so->hdr_raw, so->hdr_raw_len);
}

bool
bs_mime_info_same(const struct bs_mime_info *a, const struct bs_mime_info *b)
{
	const struct bs_original *x = &a->orig, *y = &b->orig;

	if (memcmp(a, b, offsetof(struct bs_mime_info, orig.received)) != 0 ||
	        memcmp(x->received, y->received,
	                x->n_received * sizeof(struct bs_received)) != 0 ||
	        x->n_dkim != y->n_dkim || x->hdr_raw_len != y->hdr_raw_len ||
	        x->hdr_raw_cut != y->hdr_raw_cut ||
	        memcmp(x->hdr_raw, y->hdr_raw, x->hdr_raw_len) != 0)
		return false;
	for (unsigned int k = 0; k < x->n_dkim; k++)
		if (strcmp(x->dkim[k], y->dkim[k]) != 0)
			return false;
	return true;
}

/* Parser states. */
enum { ST_HDR, ST_BODY };

/* Content-Transfer-Encoding of a part. */
enum { ENC_NONE, ENC_B64, ENC_QP };


/* p[j..] begins with a (ka bytes) or, when b is not NULL, b (kb). */
static inline bool
at_ci(const uint8_t *p, size_t n, size_t j, const char *a, size_t ka,
        const char *b, size_t kb)
{
	return (j + ka <= n && bs_mime_eq_ci(p + j, a, ka)) ||
	       (b != NULL && j + kb <= n && bs_mime_eq_ci(p + j, b, kb));
}

/*
 * Needles are lower case, at least 2 bytes; b may be NULL (one needle).
 * This runs on every text line (the inline marker check) and on every
 * top-level From and Subject, so candidates for the first two bytes are
 * found 16 bytes at a time: a byte loop here was a seventh of
 * classification.  OR-ing 0x20 lower-cases letters (and maps a few other
 * bytes onto others), so it only filters; each candidate is checked
 * exactly.  Inline in its two callers, so the one-needle search does not
 * pay for the second.
 */
static inline bool
contains_ci(const uint8_t *p, size_t n, const char *a, size_t ka,
        const char *b, size_t kb)
{
	size_t k = b != NULL && kb < ka ? kb : ka, i = 0;

	if (n < k)
		return false;
	/* Candidate starts are 0 .. n - k. */
	size_t last = n - k;
#ifdef __SSE2__
	const __m128i b20 = _mm_set1_epi8(0x20);
	const __m128i a0 = _mm_set1_epi8((char)((uint8_t)a[0] | 0x20));
	const __m128i a1 = _mm_set1_epi8((char)((uint8_t)a[1] | 0x20));
	const __m128i c0 = b ? _mm_set1_epi8((char)((uint8_t)b[0] | 0x20)) : a0;
	const __m128i c1 = b ? _mm_set1_epi8((char)((uint8_t)b[1] | 0x20)) : a1;

	/* Loads p[i .. i+16] (17 bytes): i + 16 < n, i.e. i + 17 <= n. */
	for (; i + 17 <= n && i <= last; i += 16) {
		__m128i x0 = _mm_or_si128(
		        _mm_loadu_si128((const __m128i *)(p + i)), b20);
		__m128i x1 = _mm_or_si128(
		        _mm_loadu_si128((const __m128i *)(p + i + 1)), b20);
		__m128i hit = _mm_and_si128(
		        _mm_cmpeq_epi8(x0, a0), _mm_cmpeq_epi8(x1, a1));

		if (b != NULL)
			hit = _mm_or_si128(hit,
			        _mm_and_si128(_mm_cmpeq_epi8(x0, c0),
			                _mm_cmpeq_epi8(x1, c1)));
		unsigned int mask = (unsigned int)_mm_movemask_epi8(hit);

		while (mask) {
			size_t j = i + (size_t)__builtin_ctz(mask);

			if (j <= last && at_ci(p, n, j, a, ka, b, kb))
				return true;
			mask &= mask - 1;
		}
	}
#endif
	for (; i <= last; i++)
		if (at_ci(p, n, i, a, ka, b, kb))
			return true;
	return false;
}

bool
bs_mime_contains_ci_n(const uint8_t *p, size_t n, const char *needle, size_t k)
{
	if (k == 0)
		return true;
	if (k == 1) {
		for (size_t i = 0; i < n; i++)
			if (bs_mime_lc(p[i]) == (uint8_t)needle[0])
				return true;
		return false;
	}
	return contains_ci(p, n, needle, k, NULL, 0);
}

/* p[0..n) contains a or b (lower case, ka and kb >= 2 bytes), in one pass:
 * the inline-marker check asks this of every text line. */
bool
bs_mime_contains2_ci(const uint8_t *p, size_t n, const char *a, size_t ka,
        const char *b, size_t kb)
{
	return contains_ci(p, n, a, ka, b, kb);
}

void
bs_mime_emit(struct bs_mime *m, uint32_t target, uint8_t *p, size_t n, bool eol)
{
	if (m->scan == NULL || (target & m->scan_mask) == 0)
		return;
	/* Every line buffer has one spare byte for this '\n'. */
	if (eol)
		p[n++] = '\n';
	if (n > 0)
		m->scan(m->arg, target, p, n);
}

/* ---- header unfolding ------------------------------------------------ */

void
bs_mime_hdr_flush(struct bs_mime *m)
{
	if (m->hdr_len == 0)
		return;
	if (m->hdr_trunc)
		m->info->anomalies |= BS_MIME_A_HDR_TRUNC;
	bs_mime_header(m, m->hdr, m->hdr_len);
	m->hdr_len = 0;
	m->hdr_trunc = false;
}

static void
hdr_append(struct bs_mime *m, const uint8_t *p, size_t n)
{
	size_t room = BS_MIME_HDR_MAX - m->hdr_len;

	if (n > room) {
		n = room;
		m->hdr_trunc = true;
	}
	memcpy(m->hdr + m->hdr_len, p, n);
	m->hdr_len += n;
}

/*
 * One line (or piece) of a header block.  A line starting with white space
 * continues the previous field (RFC 5322 2.2.3: unfolding removes only the
 * CRLF); a piece that does not start a line continues it too.
 */
/*
 * "Name:" at the start of a line: a field name is printable ASCII without
 * space or colon (RFC 5322 2.2); a few generators put a space before the
 * colon.
 */
bool
bs_mime_is_field_start(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n && p[i] > ' ' && p[i] < 127 && p[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < n && p[i] == ' ')
		i++;
	return i < n && p[i] == ':';
}

void
bs_mime_hdr_line(struct bs_mime *m, const uint8_t *p, size_t n, bool sol)
{
	/*
	 * A line that is neither folded (leading white space) nor a field
	 * start is taken as a continuation: some generators fold without
	 * indenting ("Content-Type: multipart/mixed;\nboundary=...").
	 */
	if (sol && !(n > 0 && (p[0] == ' ' || p[0] == '\t')) &&
	        (m->hdr_len == 0 || bs_mime_is_field_start(p, n)))
		bs_mime_hdr_flush(m);
	else if (sol && m->hdr_len > 0 && n > 0 && p[0] != ' ' && p[0] != '\t')
		hdr_append(m, (const uint8_t *)" ", 1);
	else if (sol && m->hdr_len > 0 && m->hb == BS_MIME_HB_ORIG)
		/* The original's folds are kept, so that its DKIM-Signature
		 * can be handed on byte for byte; other fields are unfolded
		 * when copied. */
		hdr_append(m, (const uint8_t *)"\r\n", 2);
	hdr_append(m, p, n);
}

/* ---- content types ---------------------------------------------------- */

/* Copy a lower-cased token from v (until ';', space) into dst. */
static size_t
token_lc(char *dst, size_t dstlen, const char *v, size_t n)
{
	size_t i = 0, o = 0;

	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	for (; i < n && v[i] != ';' && v[i] != ' ' && v[i] != '\t' &&
	        v[i] != '(';
	        i++)
		if (o + 1 < dstlen)
			dst[o++] = (char)bs_mime_lc((uint8_t)v[i]);
	dst[o] = '\0';
	return i;
}

/*
 * Find parameter name (lower case, e.g. "boundary") in a Content-Type
 * value; copy its value (quotes removed) into dst.  Returns the length, or
 * -1 if absent or longer than dstlen - 1.
 */
int
bs_mime_param(
        const char *v, size_t n, const char *name, char *dst, size_t dstlen)
{
	size_t k = strlen(name);
	size_t i = 0;

	while (i < n) {
		/* Skip to the next ';' outside quotes. */
		bool q = false;

		while (i < n && (q || v[i] != ';')) {
			if (v[i] == '"')
				q = !q;
			else if (v[i] == '\\' && q && i + 1 < n)
				i++;
			i++;
		}
		if (i >= n)
			break;
		i++;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (n - i <= k ||
		        !bs_mime_prefix_ci((const uint8_t *)v + i, n - i, name))
			continue;
		size_t j = i + k;

		while (j < n && (v[j] == ' ' || v[j] == '\t'))
			j++;
		if (j >= n || v[j] != '=')
			continue;
		j++;
		while (j < n && (v[j] == ' ' || v[j] == '\t'))
			j++;
		size_t o = 0;

		if (j < n && v[j] == '"') {
			j++;
			while (j < n && v[j] != '"') {
				if (v[j] == '\\' && j + 1 < n)
					j++;
				if (o + 1 >= dstlen)
					return -1;
				dst[o++] = v[j++];
			}
		} else {
			while (j < n && v[j] != ';' && v[j] != ' ' &&
			        v[j] != '\t') {
				if (o + 1 >= dstlen)
					return -1;
				dst[o++] = v[j++];
			}
		}
		dst[o] = '\0';
		return (int)o;
	}
	return -1;
}

/* A part's Content-Type: choose its handler, remember a boundary. */
void
bs_mime_content_type(struct bs_mime *m, const char *v, size_t n, bool top)
{
	char ct[BS_MIME_TOKEN_MAX];

	token_lc(ct, sizeof(ct), v, n);
	if (top && m->ctx == BS_MIME_CTX_TOP && m->depth == 0)
		memcpy(m->info->content_type, ct, strlen(ct) + 1);
	m->p_blen = 0;
	if (bs_mime_param(v, n, "charset", m->p_charset, sizeof(m->p_charset)) <
	        0)
		m->p_charset[0] = '\0';
	for (char *c = m->p_charset; *c; c++)
		*c = (char)bs_mime_lc((uint8_t)*c);
	if (strncmp(ct, "multipart/", 10) == 0) {
		int bl = bs_mime_param(
		        v, n, "boundary", m->p_boundary, sizeof(m->p_boundary));

		if (bl <= 0) {
			m->info->anomalies |= BS_MIME_A_BOUNDARY;
			m->p_handler = BS_MIME_H_SKIP;
		} else {
			m->p_blen = (uint8_t)bl;
			m->p_handler = BS_MIME_H_MULTI;
		}
		if (strcmp(ct, "multipart/report") == 0 &&
		        m->info->report_type[0] == '\0') {
			char rt[BS_MIME_TOKEN_MAX];

			if (bs_mime_param(v, n, "report-type", rt, sizeof(rt)) >
			        0) {
				size_t i;

				for (i = 0; rt[i]; i++)
					rt[i] = (char)bs_mime_lc((uint8_t)rt[i]);
				memcpy(m->info->report_type, rt, i + 1);
			}
		}
	} else if (strcmp(ct, "message/delivery-status") == 0 ||
	           strcmp(ct, "message/global-delivery-status") == 0) {
		m->p_handler = BS_MIME_H_DSN;
	} else if (strcmp(ct, "message/feedback-report") == 0) {
		m->p_handler = BS_MIME_H_ARF;
	} else if (strcmp(ct, "message/disposition-notification") == 0 ||
	           strcmp(ct, "message/global-disposition-notification") == 0) {
		m->p_handler = BS_MIME_H_MDN;
	} else if (strcmp(ct, "message/rfc822") == 0 ||
	           strcmp(ct, "message/global") == 0) {
		m->p_handler = BS_MIME_H_RFC822;
	} else if (strcmp(ct, "text/rfc822-headers") == 0 ||
	           strcmp(ct, "text/rfc822-header") == 0 ||
	           strcmp(ct, "message/rfc822-headers") == 0 ||
	           strcmp(ct, "message/global-headers") == 0) {
		m->p_handler = BS_MIME_H_HEADERS;
	} else if (strncmp(ct, "text/", 5) == 0 || ct[0] == '\0') {
		m->p_handler = BS_MIME_H_TEXT;
	} else {
		/* Images, archives, message/partial: nothing to learn. */
		m->p_handler = BS_MIME_H_SKIP;
	}
}

void
bs_mime_cte(struct bs_mime *m, const char *v, size_t n)
{
	char t[32];

	token_lc(t, sizeof(t), v, n);
	if (strcmp(t, "base64") == 0)
		m->p_enc = ENC_B64;
	else if (strcmp(t, "quoted-printable") == 0)
		m->p_enc = ENC_QP;
	else
		m->p_enc = ENC_NONE;
}

/* ---- parts ------------------------------------------------------------ */

/* Defaults of a new entity: RFC 2045 5.2, text/plain, 7bit. */
static void
part_reset(struct bs_mime *m)
{
	m->p_handler = BS_MIME_H_TEXT;
	m->p_enc = ENC_NONE;
	m->p_blen = 0;
	m->p_charset[0] = '\0';
	m->hb = BS_MIME_HB_ENTITY;
}

static void
dline_flush(struct bs_mime *m)
{
	if (m->dline_len > 0 || m->dline_cont) {
		bs_mime_handle(m, m->dline, m->dline_len, !m->dline_cont, true);
		m->dline_len = 0;
		m->dline_cont = false;
	}
}

/* The body of the current part ends (boundary or end of message). */
static void
part_end(struct bs_mime *m)
{
	dline_flush(m);
	bs_mime_handler_end(m);
	m->b64_n = 0;
	m->b64_acc = 0;
}

/* The header of the current entity is complete: set up its body. */
static void
body_begin(struct bs_mime *m)
{
	bs_mime_hdr_flush(m);
	if (m->depth == 0 && !m->top_done) {
		m->top_done = true;
		if (m->hdr_done)
			m->hdr_done(m->arg);
		if (m->stopped)
			return;
	}
	m->state = ST_BODY;
	m->handler = m->p_handler;
	m->enc = m->p_enc;
	m->b64_n = 0;
	m->b64_acc = 0;
	if (m->handler == BS_MIME_H_MULTI) {
		if (m->depth >= BS_MIME_DEPTH_MAX) {
			m->info->anomalies |= BS_MIME_A_DEPTH;
			m->handler = BS_MIME_H_SKIP;
		} else {
			struct bs_mime_part *pt = &m->part[m->depth++];

			memcpy(pt->boundary, m->p_boundary, m->p_blen);
			pt->blen = m->p_blen;
		}
		m->enc = ENC_NONE;
	}
	bs_mime_handler_begin(m);
}

/*
 * Is this line a delimiter of an open multipart?  Innermost first; a match
 * closes every deeper level (RFC 2046 5.1.2: an inner part ended without
 * its close delimiter is ended by the outer one).
 */
static bool
boundary_check(struct bs_mime *m, const uint8_t *p, size_t n)
{
	if (m->depth == 0 || n < 3 || p[0] != '-' || p[1] != '-')
		return false;
	for (int i = m->depth - 1; i >= 0; i--) {
		const struct bs_mime_part *pt = &m->part[i];

		if (n - 2 < pt->blen || memcmp(p + 2, pt->boundary, pt->blen))
			continue;
		/* Only white space may follow (RFC 2046 "transport padding").
		 */
		size_t j = 2 + pt->blen;
		bool close = false;

		if (n - j >= 2 && p[j] == '-' && p[j + 1] == '-') {
			close = true;
			j += 2;
		}
		while (j < n && (p[j] == ' ' || p[j] == '\t'))
			j++;
		if (j != n)
			continue;
		if (m->state == ST_BODY)
			part_end(m);
		else
			bs_mime_hdr_flush(m);
		m->ctx = BS_MIME_CTX_TOP;
		if (close) {
			m->depth = (uint8_t)i;
			/* Epilogue: ignored, until an outer delimiter. */
			m->state = ST_BODY;
			m->handler = BS_MIME_H_SKIP;
			m->enc = ENC_NONE;
		} else {
			m->depth = (uint8_t)(i + 1);
			m->state = ST_HDR;
			part_reset(m);
		}
		return true;
	}
	return false;
}

/* ---- transfer decoding ------------------------------------------------ */

static void
dline_push(struct bs_mime *m, const uint8_t *p, size_t n)
{
	while (n > 0) {
		/* As in bs_mime_feed(): cut a full line only when more of it
		 * follows. */
		if (m->dline_len == BS_MIME_LINE_MAX && p[0] != '\n') {
			m->info->anomalies |= BS_MIME_A_LINE_SPLIT;
			bs_mime_handle(m, m->dline, m->dline_len,
			        !m->dline_cont, false);
			m->dline_len = 0;
			m->dline_cont = true;
		}
		const uint8_t *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		size_t room = BS_MIME_LINE_MAX - m->dline_len;
		size_t c = k < room ? k : room;

		memcpy(m->dline + m->dline_len, p, c);
		m->dline_len += c;
		p += c;
		n -= c;
		if (nl && c == k) {
			size_t l = m->dline_len;

			if (l > 0 && m->dline[l - 1] == '\r')
				l--;
			bs_mime_handle(m, m->dline, l, !m->dline_cont, true);
			m->dline_len = 0;
			m->dline_cont = false;
			p++;
			n--;
		}
	}
}

static const int8_t b64_val[256] = {
        ['A'] = 1,
        ['B'] = 2,
        ['C'] = 3,
        ['D'] = 4,
        ['E'] = 5,
        ['F'] = 6,
        ['G'] = 7,
        ['H'] = 8,
        ['I'] = 9,
        ['J'] = 10,
        ['K'] = 11,
        ['L'] = 12,
        ['M'] = 13,
        ['N'] = 14,
        ['O'] = 15,
        ['P'] = 16,
        ['Q'] = 17,
        ['R'] = 18,
        ['S'] = 19,
        ['T'] = 20,
        ['U'] = 21,
        ['V'] = 22,
        ['W'] = 23,
        ['X'] = 24,
        ['Y'] = 25,
        ['Z'] = 26,
        ['a'] = 27,
        ['b'] = 28,
        ['c'] = 29,
        ['d'] = 30,
        ['e'] = 31,
        ['f'] = 32,
        ['g'] = 33,
        ['h'] = 34,
        ['i'] = 35,
        ['j'] = 36,
        ['k'] = 37,
        ['l'] = 38,
        ['m'] = 39,
        ['n'] = 40,
        ['o'] = 41,
        ['p'] = 42,
        ['q'] = 43,
        ['r'] = 44,
        ['s'] = 45,
        ['t'] = 46,
        ['u'] = 47,
        ['v'] = 48,
        ['w'] = 49,
        ['x'] = 50,
        ['y'] = 51,
        ['z'] = 52,
        ['0'] = 53,
        ['1'] = 54,
        ['2'] = 55,
        ['3'] = 56,
        ['4'] = 57,
        ['5'] = 58,
        ['6'] = 59,
        ['7'] = 60,
        ['8'] = 61,
        ['9'] = 62,
        ['+'] = 63,
        ['/'] = 64,
};

/* Decode base64 text; the quantum carries over lines and pieces. */
size_t
bs_mime_b64(uint32_t *acc, uint8_t *nacc, const uint8_t *p, size_t n,
        uint8_t *out, bool *bad)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int v = b64_val[p[i]];

		if (v == 0) {
			if (p[i] == '=') {
				/* Padding ends the quantum: emit what it holds.
				 */
				if (*nacc == 2)
					out[o++] = (uint8_t)(*acc >> 4);
				else if (*nacc == 3) {
					out[o++] = (uint8_t)(*acc >> 10);
					out[o++] = (uint8_t)(*acc >> 2);
				}
				*nacc = 0;
				*acc = 0;
			} else if (p[i] != ' ' && p[i] != '\t' &&
			           p[i] != '\r' && p[i] != '\n') {
				*bad = true;
			}
			continue;
		}
		*acc = (*acc << 6) | (uint32_t)(v - 1);
		if (++*nacc == 4) {
			out[o++] = (uint8_t)(*acc >> 16);
			out[o++] = (uint8_t)(*acc >> 8);
			out[o++] = (uint8_t)*acc;
			*nacc = 0;
			*acc = 0;
		}
	}
	return o;
}


/* Body bytes of the current part, one raw line or piece. */
static void
body_line(struct bs_mime *m, uint8_t *p, size_t n, bool sol, bool eol)
{
	uint8_t out[BS_MIME_LINE_MAX + 2];
	size_t o = 0;

	if (m->handler == BS_MIME_H_SKIP || m->handler == BS_MIME_H_MULTI)
		return;
	if (!bs_mime_handler_wants(m))
		return;
	switch (m->enc) {
	case ENC_B64: {
		bool bad = false;

		o = bs_mime_b64(&m->b64_acc, &m->b64_n, p, n, out, &bad);
		if (bad)
			m->info->anomalies |= BS_MIME_A_BAD_B64;
		dline_push(m, out, o);
		return;
	}
	case ENC_QP: {
		size_t i = 0, end = n;
		bool soft = false;

		if (eol) {
			while (end > 0 &&
			        (p[end - 1] == ' ' || p[end - 1] == '\t'))
				end--;
			if (end > 0 && p[end - 1] == '=') {
				soft = true;
				end--;
			}
		}
		while (i < end) {
			int h, l;
			/* Runs without '=' go as they are (a byte loop here
			 * was most of body_line()). */
			const uint8_t *eq = memchr(p + i, '=', end - i);
			size_t run = eq ? (size_t)(eq - (p + i)) : end - i;

			memcpy(out + o, p + i, run);
			o += run;
			i += run;
			if (i >= end)
				break;
			if (p[i] == '=' && i + 2 < end &&
			        (h = bs_mime_hexval(p[i + 1])) >= 0 &&
			        (l = bs_mime_hexval(p[i + 2])) >= 0) {
				out[o++] = (uint8_t)(h << 4 | l);
				i += 3;
			} else {
				out[o++] = p[i++];
			}
		}
		if (eol && !soft)
			out[o++] = '\n';
		dline_push(m, out, o);
		return;
	}
	default:
		bs_mime_handle(m, p, n, sol, eol);
		return;
	}
}

/* ---- line dispatch ---------------------------------------------------- */

static void
raw_line(struct bs_mime *m, uint8_t *p, size_t n, bool sol, bool eol)
{
	if (sol && eol && boundary_check(m, p, n))
		return;
	if (m->state == ST_HDR) {
		if (sol && eol && n == 0) {
			body_begin(m);
			return;
		}
		/* mbox "From " separator before a header: not a field. */
		if (sol && n >= 5 && memcmp(p, "From ", 5) == 0 &&
		        m->hdr_len == 0)
			return;
		bs_mime_hdr_line(m, p, n, sol);
		return;
	}
	body_line(m, p, n, sol, eol);
}

void
bs_mime_init(struct bs_mime *m, struct bs_mime_info *info, bs_mime_scan_fn scan,
        bs_mime_hdr_done_fn hdr_done, void *arg, uint32_t scan_mask)
{
	/* Cleared up to the Received entries only: the entries, the DKIM
	 * values and the raw header block are guarded by their counts and
	 * lengths (25 KiB less to write per message; an entry is cleared
	 * when taken, dsn.c). */
	memset(info, 0, offsetof(struct bs_mime_info, orig.received));
	info->orig.n_dkim = 0;
	info->orig.hdr_raw_len = 0;
	info->orig.hdr_raw_cut = false;
	/* Buffers need no clearing: lengths say what is valid. */
	m->info = info;
	m->scan = scan;
	m->hdr_done = hdr_done;
	m->arg = arg;
	m->scan_mask = scan_mask;
	m->state = ST_HDR;
	m->handler = BS_MIME_H_TEXT;
	m->enc = ENC_NONE;
	m->ctx = BS_MIME_CTX_TOP;
	m->depth = 0;
	m->line_cont = false;
	m->dline_cont = false;
	m->hdr_trunc = false;
	m->top_done = false;
	m->orig_hdr = false;
	m->inline_armed = 0;
	m->dsn_in_rcpt = false;
	m->dsn_rcpt_done = false;
	m->stopped = false;
	m->raw_field = 0;
	m->b64_acc = 0;
	m->b64_n = 0;
	m->line_len = 0;
	m->dline_len = 0;
	m->hdr_len = 0;
	m->cs[0] = '\0';
	m->cs_ascii = false;
	m->cs_seq = 0;
	m->cs_opens = 0;
	part_reset(m);
}

void
bs_mime_abort(struct bs_mime *m)
{
	/* Nothing is held (converters belong to the thread, see dsn.c):
	 * forget the part's charset so that nothing is converted after. */
	if (m)
		m->cs[0] = '\0';
}

/*
 * A full line buffer is handed on as a piece only once a byte other than
 * the line end follows: a line of exactly LINE_MAX bytes is then one line
 * whether its '\n' came in the same chunk or the next.  Deciding on the
 * bytes alone, never on where a chunk ended, is what keeps the result
 * independent of segmentation.
 */
static void
line_piece(struct bs_mime *m)
{
	size_t l = m->line_len;
	/* Keep a trailing CR back: it may be the first half of CRLF. */
	bool cr = m->line[l - 1] == '\r';

	if (cr)
		l--;
	m->info->anomalies |= BS_MIME_A_LINE_SPLIT;
	raw_line(m, m->line, l, !m->line_cont, false);
	m->line_cont = true;
	m->line_len = 0;
	if (cr)
		m->line[m->line_len++] = '\r';
}

void
bs_mime_feed(struct bs_mime *m, const uint8_t *buf, size_t len)
{
	while (len > 0 && !m->stopped) {
		if (m->line_len == BS_MIME_LINE_MAX && buf[0] != '\n') {
			line_piece(m);
			if (m->stopped)
				break;
		}
		const uint8_t *nl = memchr(buf, '\n', len);
		size_t k = nl ? (size_t)(nl - buf) : len;
		size_t room = BS_MIME_LINE_MAX - m->line_len;
		size_t c = k < room ? k : room;

		memcpy(m->line + m->line_len, buf, c);
		m->line_len += c;
		buf += c;
		len -= c;
		if (nl && c == k) {
			size_t l = m->line_len;

			if (l > 0 && m->line[l - 1] == '\r')
				l--;
			raw_line(m, m->line, l, !m->line_cont, true);
			m->line_len = 0;
			m->line_cont = false;
			buf++;
			len--;
		}
	}
}

void
bs_mime_stop(struct bs_mime *m)
{
	m->stopped = true;
	bs_mime_abort(m);
}

void
bs_mime_end(struct bs_mime *m)
{
	if (m->stopped) {
		bs_mime_abort(m);
		return;
	}
	if (m->line_len > 0 || m->line_cont) {
		size_t l = m->line_len;

		if (l > 0 && m->line[l - 1] == '\r')
			l--;
		raw_line(m, m->line, l, !m->line_cont, true);
		m->line_len = 0;
		m->line_cont = false;
	}
	if (m->state == ST_HDR) {
		if (!m->top_done)
			m->info->anomalies |= BS_MIME_A_NO_HEADER_END;
		body_begin(m);
	}
	part_end(m);
	bs_mime_abort(m);
	if (m->depth > 0)
		m->info->anomalies |= BS_MIME_A_UNTERMINATED;
}
