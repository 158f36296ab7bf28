/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the parts of a notification mean: the facts of the top-level header
 * that make a message a bounce candidate, the fields of a
 * message/delivery-status part (RFC 3464), the Feedback-Type of an ARF
 * report (RFC 5965), and the headers of the embedded original message,
 * wherever it sits: a message/rfc822 part, a text/rfc822-headers part, or
 * quoted in the plain text after a marker line (qmail, Exim, Sendmail and
 * most older systems do that).  The verdict needs the original's
 * Message-ID, Received chain and DKIM-Signature to tell a real bounce of
 * the domain's own mail from backscatter.
 *
 * Everything is copied into fixed-size fields; longer values are cut and
 * the cut is recorded, so a hostile message can make a field useless but
 * never make us read or write out of bounds.
 */
#include <errno.h>
#include <iconv.h>
#include <string.h>
#include <strings.h>

#include "backstop/mime.h"
#include "mime_priv.h"


static inline bool
is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Copy v[0..n) into dst (NUL-terminated), white space runs squeezed to one
 * space (unfolding leaves the fold's tabs behind), ends trimmed.  Returns
 * the length; records a cut.
 */
static size_t
copy_field(struct bs_mime *m, char *dst, size_t cap, const uint8_t *v, size_t n)
{
	size_t o = 0, i = 0;
	bool sp = false;

	/* Whole words at a time while they fit (a byte loop here was 5% of
	 * classification); the byte loop below finishes a value that is
	 * cut. */
	while (i < n) {
		size_t j;

		while (i < n && is_ws(v[i]))
			i++;
		if (i >= n)
			break;
		for (j = i; j < n && (v[j] > ' ' || !is_ws(v[j])); j++)
			;
		if (o + (o > 0) + (j - i) >= cap) {
			sp = o > 0;
			break;
		}
		if (o > 0)
			dst[o++] = ' ';
		memcpy(dst + o, v + i, j - i);
		o += j - i;
		i = j;
	}
	for (; i < n; i++) {
		if (is_ws(v[i])) {
			sp = o > 0;
			continue;
		}
		if (o + (sp ? 2 : 1) >= cap) {
			m->info->anomalies |= BS_MIME_A_FIELD_TRUNC;
			break;
		}
		if (sp)
			dst[o++] = ' ';
		sp = false;
		dst[o++] = (char)v[i];
	}
	dst[o] = '\0';
	return o;
}

/* Name equals (case-insensitive, exact length); inline so that the
 * literal's length is known. */
static inline __attribute__((always_inline)) bool
name_is(const uint8_t *name, size_t nl, const char *s)
{
	return strlen(s) == nl && bs_mime_prefix_ci(name, nl, s);
}

/* ---- charsets --------------------------------------------------------- */

/* Charsets that are UTF-8 already, or ASCII (a subset). */
static bool
charset_is_utf8(const char *cs, size_t n)
{
	static const char *const same[] = {"utf-8", "utf8", "us-ascii", "ascii",
	        "ansi_x3.4-1968", "uft-8"};

	if (n == 0)
		return true;
	for (unsigned int k = 0; k < sizeof(same) / sizeof(same[0]); k++)
		if (strlen(same[k]) == n &&
		        bs_mime_prefix_ci((const uint8_t *)cs, n, same[k]))
			return true;
	return false;
}

/*
 * Converters: one per-thread cache, used per conversion; a parser never
 * holds one.
 *
 * iconv_open() of a charset whose gconv module nobody holds loads the
 * module again (dlopen, mmap, page faults): closing after each part made
 * that half the cost of classification, hence the cache.  But a converter
 * held by a message for the length of a text part is a resource of the
 * message: it must be released on every path (abort, stop, reuse of the
 * spare message; one lost per aborted message grew the process by tens of
 * MB per second), and each holds glibc's gconv buffers, about 33 KB, more
 * than the message's own state: 4096 messages stalled inside Latin-1 parts
 * would pin 135 MB per worker.  So a struct bs_mime keeps only the name
 * of its part's charset, and each line is converted with the calling
 * thread's converter for that name (a lookup in CS_CACHE names, the
 * converter reset to its initial shift state at each line start: the
 * stateful charsets mail uses, ISO-2022-x and UTF-7, return to ASCII
 * before a line ends).  A piece of a line over LINE_MAX continues the
 * previous piece's shift state if no other message used that converter in
 * between (it restarts otherwise: only a line over 1000 bytes in a
 * stateful charset can tell).  The least recently used converter is
 * closed to make room for a new charset, so a thread holds at most
 * CS_CACHE descriptors whatever the input.
 */
#define CS_CACHE BS_MIME_CHARSET_CACHE

struct cs_entry {
	char name[BS_MIME_CHARSET_MAX]; /* "" = free */
	iconv_t cd;
	bool ascii_same; /* ASCII text converts to itself (no shift states) */
	uint64_t used;     /* th->clock at the last conversion */
	const void *user;  /* parser of the last conversion */
};

struct cs_thread {
	struct cs_entry e[CS_CACHE];
	uint64_t clock;  /* conversions so far */
	uint64_t opened; /* iconv_open() calls that succeeded */
};

static __thread struct cs_thread cs_th;

void
bs_mime_charset_stats(struct bs_mime_charset_stats *st)
{
	uint32_t cached = 0;

	for (unsigned int k = 0; k < CS_CACHE; k++)
		cached += cs_th.e[k].name[0] != '\0';
	st->cached = cached;
	st->opened = cs_th.opened;
}

void
bs_mime_charset_flush(void)
{
	for (unsigned int k = 0; k < CS_CACHE; k++) {
		struct cs_entry *e = &cs_th.e[k];

		if (e->name[0] == '\0')
			continue;
		iconv_close(e->cd);
		e->name[0] = '\0';
	}
}

/*
 * Normalise charset cs[0..n) into name (lower case, aliases resolved).
 * Returns false for UTF-8 and ASCII (nothing to convert) and for names too
 * long to be a charset.
 */
bool
bs_mime_charset_name(char name[BS_MIME_CHARSET_MAX], const char *cs, size_t n)
{
	if (n == 0 || n >= BS_MIME_CHARSET_MAX || charset_is_utf8(cs, n))
		return false;
	for (size_t i = 0; i < n; i++)
		name[i] = (char)bs_mime_lc((uint8_t)cs[i]);
	name[n] = '\0';
	/* "unicode-1-1-utf-7" (Exchange) is UTF-7. */
	if (strstr(name, "utf-7"))
		strcpy(name, "utf-7");
	return true;
}

/*
 * Does ASCII text convert to itself with cd?  True for the stateless
 * charsets mail mostly uses (ISO-8859-x, windows-125x, KOI8, EUC, GB2312,
 * Big5, ...), whose bytes under 0x80 are ASCII; false for those with
 * shift states or escapes spelled in ASCII (ISO-2022-x, UTF-7, HZ) and
 * for wide ones.  Such lines then skip iconv (it cost ~40 instructions a
 * byte to copy ASCII through).  The names decide first; then every byte
 * 0x01-0x7f must come back unchanged.
 */
static bool
ascii_same(const char *name, iconv_t cd)
{
	static const char *const stateful[] = {"2022", "utf-7", "utf7", "hz",
	        "utf-16", "utf16", "utf-32", "utf32", "ucs", "unicode"};
	uint8_t in[127], out[4 * 127];
	char *ip = (char *)in, *op = (char *)out;
	size_t il = sizeof(in), ol = sizeof(out);
	bool same;

	for (unsigned int k = 0; k < sizeof(stateful) / sizeof(stateful[0]); k++)
		if (strstr(name, stateful[k]))
			return false;
	for (unsigned int k = 0; k < sizeof(in); k++)
		in[k] = (uint8_t)(k + 1);
	iconv(cd, NULL, NULL, NULL, NULL);
	same = iconv(cd, &ip, &il, &op, &ol) != (size_t)-1 && il == 0 &&
	       sizeof(out) - ol == sizeof(in) && memcmp(out, in, sizeof(in)) == 0;
	iconv(cd, NULL, NULL, NULL, NULL);
	return same;
}

/*
 * The thread's converter for name (normalised), opened if need be; NULL if
 * iconv does not know the charset.  *opens counts a descriptor opened.
 */
static struct cs_entry *
charset_get(const char *name, uint32_t *opens)
{
	struct cs_thread *th = &cs_th;
	struct cs_entry *victim = &th->e[0];
	iconv_t cd;

	for (unsigned int k = 0; k < CS_CACHE; k++) {
		struct cs_entry *e = &th->e[k];

		if (e->name[0] != '\0' && strcmp(e->name, name) == 0)
			return e;
		if (victim->name[0] != '\0' &&
		        (e->name[0] == '\0' || e->used < victim->used))
			victim = e;
	}
	cd = iconv_open("UTF-8", name);
	if (cd == (iconv_t)-1)
		return NULL;
	th->opened++;
	if (opens)
		++*opens;
	if (victim->name[0] != '\0')
		iconv_close(victim->cd);
	memcpy(victim->name, name, strlen(name) + 1);
	victim->cd = cd;
	victim->user = NULL;
	victim->used = th->clock;
	victim->ascii_same = ascii_same(name, cd);
	return victim;
}

bool
bs_mime_charset_known(const char *name, uint32_t *opens, bool *ascii)
{
	struct cs_entry *e = charset_get(name, opens);

	if (ascii)
		*ascii = e != NULL && e->ascii_same;
	return e != NULL;
}

/*
 * Convert in[0..n) to UTF-8 into out (cap bytes).  Undecodable bytes become
 * '?'; a sequence cut at the end of in is dropped (lines end in ASCII in
 * every charset mail uses).  Returns the output length.
 */
static size_t
charset_conv(iconv_t cd, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	char *ip = (char *)(uintptr_t)in, *op = (char *)out;
	size_t il = n, ol = cap;

	while (il > 0 && ol > 0) {
		if (iconv(cd, &ip, &il, &op, &ol) != (size_t)-1)
			break;
		if (errno == EILSEQ) {
			*op++ = '?';
			ol--;
			ip++;
			il--;
		} else {
			break; /* EINVAL (cut sequence) or E2BIG */
		}
	}
	return cap - ol;
}

size_t
bs_mime_charset_conv(const char *name, const void *user, uint64_t *user_seq,
        bool fresh, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
        uint32_t *opens)
{
	struct cs_entry *e = charset_get(name, opens);
	struct cs_thread *th = &cs_th;

	if (e == NULL)
		return SIZE_MAX;
	/* Continue the shift state only where this parser left it. */
	if (fresh || user == NULL || e->user != user || e->used != *user_seq)
		iconv(e->cd, NULL, NULL, NULL, NULL);
	e->user = user;
	e->used = ++th->clock;
	*user_seq = e->used;
	return charset_conv(e->cd, in, n, out, cap);
}

/* ---- RFC 2047 --------------------------------------------------------- */


/*
 * Try to decode one encoded word at src[i]: "=?charset?B|Q?text?=".
 * Returns the index after it, or 0 if it is not one.
 */
static size_t
word_2047(char *dst, size_t dstlen, size_t *o, const char *src, size_t n,
        size_t i)
{
	size_t j = i + 2, cs, e, t;

	if (i + 2 > n || src[i] != '=' || src[i + 1] != '?')
		return 0;
	for (cs = j; j < n && src[j] != '?' && !is_ws((uint8_t)src[j]); j++)
		;
	if (j >= n || j == cs || j + 2 >= n || src[j + 2] != '?')
		return 0;
	e = (size_t)bs_mime_lc((uint8_t)src[j + 1]);
	if (e != 'b' && e != 'q')
		return 0;
	t = j + 3;
	for (j = t; j + 1 < n && !(src[j] == '?' && src[j + 1] == '='); j++)
		if (is_ws((uint8_t)src[j]))
			return 0;
	if (j + 1 >= n)
		return 0;
	{
		uint8_t raw[BS_MIME_HDR_MAX], conv[BS_MIME_HDR_MAX * 2];
		size_t rn = 0, len = j - t;
		const uint8_t *res = raw;
		size_t resn;
		char csname[BS_MIME_CHARSET_MAX];

		if (dst == NULL)
			return j + 2; /* only asked whether a word is here */
		if (e == 'b') {
			uint32_t acc = 0;
			uint8_t na = 0;
			bool bad = false;

			if (len > (sizeof(raw) / 3) * 4)
				len = (sizeof(raw) / 3) * 4;
			rn = bs_mime_b64(&acc, &na, (const uint8_t *)src + t,
			        len, raw, &bad);
		} else {
			for (size_t k = t; k < j && rn < sizeof(raw); k++) {
				int h, l;

				if (src[k] == '_') {
					raw[rn++] = ' ';
				} else if (src[k] == '=' && k + 2 < j &&
				           (h = bs_mime_hexval((uint8_t)src[k + 1])) >=
				                   0 &&
				           (l = bs_mime_hexval((uint8_t)src[k + 2])) >=
				                   0) {
					raw[rn++] = (uint8_t)(h << 4 | l);
					k += 2;
				} else {
					raw[rn++] = (uint8_t)src[k];
				}
			}
		}
		resn = rn;
		/* RFC 2231 adds "*language" after the charset. */
		size_t csn = 0;

		while (i + 2 + csn < n && src[i + 2 + csn] != '?' &&
		        src[i + 2 + csn] != '*')
			csn++;
		if (bs_mime_charset_name(csname, src + i + 2, csn)) {
			uint64_t seq = 0;
			size_t k = bs_mime_charset_conv(csname, NULL, &seq,
			        true, raw, rn, conv, sizeof(conv), NULL);

			if (k != SIZE_MAX) {
				resn = k;
				res = conv;
			}
		}
		for (size_t q = 0; q < resn && *o + 1 < dstlen; q++)
			dst[(*o)++] = (char)res[q];
	}
	return j + 2;
}

size_t
bs_mime_decode_2047(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t i = 0, o = 0;
	bool after_word = false;

	if (dstlen == 0)
		return 0;
	while (i < n && o + 1 < dstlen) {
		size_t e = word_2047(dst, dstlen, &o, src, n, i);

		if (e) {
			i = e;
			after_word = true;
			continue;
		}
		/* White space between two encoded words is dropped. */
		if (after_word && is_ws((uint8_t)src[i])) {
			size_t j = i;

			while (j < n && is_ws((uint8_t)src[j]))
				j++;
			if (j < n && word_2047(NULL, 0, NULL, src, n, j) == 0) {
				/* Not followed by a word: keep the space. */
			} else if (j < n) {
				i = j;
				continue;
			}
		}
		after_word = false;
		dst[o++] = src[i++];
	}
	dst[o] = '\0';
	return o;
}

/* ---- top-level facts -------------------------------------------------- */

static void
from_facts(struct bs_mime *m, const uint8_t *v, size_t n)
{
	static const char *const daemon[] = {
	        "mailer-daemon",
	        "mailer_daemon",
	        "mailerdaemon",
	        "postmaster",
	        "post_master",
	        "mail-daemon",
	        "mail delivery",
	        "maildelivery",
	        /* MDaemon sends its reports from MDaemon@<domain>. */
	        "mdaemon@",
	};
	static const char *const noreply[] = {
	        "no-reply@",
	        "noreply@",
	        "no_reply@",
	        "do-not-reply@",
	        "donotreply@",
	};
	size_t i = 0;

	copy_field(m, m->info->from, sizeof(m->info->from), v, n);
	for (unsigned int k = 0; k < sizeof(daemon) / sizeof(daemon[0]); k++)
		if (bs_mime_contains_ci(v, n, daemon[k]))
			m->info->auto_flags |= BS_AUTO_DAEMON_FROM;
	for (unsigned int k = 0; k < sizeof(noreply) / sizeof(noreply[0]); k++)
		if (bs_mime_contains_ci(v, n, noreply[k]))
			m->info->auto_flags |= BS_AUTO_NOTIFY_SENDER;
	while (i < n && is_ws(v[i]))
		i++;
	if (n - i >= 2 && v[i] == '<' && v[i + 1] == '>')
		m->info->auto_flags |= BS_AUTO_NULL_FROM;
	/* '"Some System" <>': an empty address after a display name. */
	for (size_t j = n; j > 0; j--) {
		if (v[j - 1] != '<')
			continue;
		size_t k = j;

		while (k < n && is_ws(v[k]))
			k++;
		if (k < n && v[k] == '>')
			m->info->auto_flags |= BS_AUTO_NULL_FROM;
		break;
	}
}

/*
 * Subjects that automatic senders put on their replies and reports.  They
 * only open the gate (the message gets scanned); the class still comes
 * from the rules and the structure.
 */
static void
subject_facts(struct bs_mime *m)
{
	static const char *const auto_subjects[] = {
	        "auto reply",
	        "automatic reply",
	        "autoreply",
	        "auto-reply",
	        "auto response",
	        "automatic response",
	        "out of office",
	        "out of the office",
	        "abwesenheitsnotiz",
	        "r\xc3\xa9ponse automatique",
	        "respuesta autom\xc3\xa1tica",
	        "risposta automatica",
	        "resposta autom\xc3\xa1tica",
	        "automatisch antwoord",
	        "complaint about message from",
	        "abuse report",
	};
	const uint8_t *s = (const uint8_t *)m->info->subject;
	size_t n = strlen(m->info->subject);

	for (unsigned int k = 0;
	        k < sizeof(auto_subjects) / sizeof(auto_subjects[0]); k++)
		if (bs_mime_contains_ci(s, n, auto_subjects[k]))
			m->info->auto_flags |= BS_AUTO_SUBJECT;
}

/*
 * Copy an identifier field (Message-ID, In-Reply-To) whole or not at all:
 * the value with folding white space squeezed, or "" when it does not fit
 * (counted as a cut field).  Only the first instance counts.
 */
static void
copy_id(struct bs_mime *m, char *dst, size_t cap, const uint8_t *v, size_t n)
{
	if (dst[0] != '\0')
		return;
	uint32_t before = m->info->anomalies;
	m->info->anomalies &= ~(uint32_t)BS_MIME_A_FIELD_TRUNC;
	copy_field(m, dst, cap, v, n);
	bool cut = (m->info->anomalies & BS_MIME_A_FIELD_TRUNC) != 0;
	m->info->anomalies |= before;
	if (cut)
		dst[0] = '\0';
}

/*
 * References: the tail that fits, starting at a '<' (whole ids only), as
 * the newest ids are the last.  Folding white space becomes one space.
 */
static void
copy_refs(struct bs_mime *m, char *dst, size_t cap, const uint8_t *v, size_t n)
{
	size_t start = 0, len = 0;
	bool sp = false;

	if (dst[0] != '\0')
		return;
	/* Squeezed length from each '<' to the end, found right to left:
	 * walk once, remembering the squeezed length so far. */
	for (size_t i = 0; i < n; i++) {
		if (is_ws(v[i])) {
			sp = len > 0;
			continue;
		}
		len += sp ? 2 : 1;
		sp = false;
	}
	if (len + 1 > cap) {
		/* Drop whole ids from the front until the rest fits. */
		size_t i = 0, drop = 0;
		sp = false;
		m->info->anomalies |= BS_MIME_A_FIELD_TRUNC;
		for (; i < n; i++) {
			if (is_ws(v[i])) {
				sp = drop > 0;
				continue;
			}
			if (v[i] == '<' && drop > 0 && len - drop + 1 <= cap) {
				break;
			}
			drop += sp ? 2 : 1;
			sp = false;
		}
		if (i >= n) {
			dst[0] = '\0';
			return;
		}
		start = i;
	}
	size_t o = 0;
	sp = false;
	for (size_t i = start; i < n; i++) {
		if (is_ws(v[i])) {
			sp = o > 0;
			continue;
		}
		if (o + (sp ? 2 : 1) >= cap)
			break;
		if (sp)
			dst[o++] = ' ';
		sp = false;
		dst[o++] = (char)v[i];
	}
	/* A header longer than BS_MIME_HDR_MAX reaches us cut: no partial
	 * id at the end either. */
	while (o > 0 && dst[o - 1] != '>')
		o--;
	dst[o] = '\0';
}

static void
top_header(struct bs_mime *m, uint8_t *h, size_t n, const uint8_t *name,
        size_t nl, const uint8_t *v, size_t vl)
{
	struct bs_mime_info *in = m->info;
	uint32_t tgt = BS_TGT_HEADER;

	if (name_is(name, nl, "subject")) {
		/* Scan the decoded subject: rules are written in UTF-8. */
		uint8_t buf[BS_FIELD_MAX + 16];
		size_t k;

		char tmp[BS_MIME_HDR_MAX];

		/* Unfold first (folds leave tabs), then decode words. */
		copy_field(m, tmp, sizeof(tmp), v, vl);
		bs_mime_decode_2047(
		        in->subject, sizeof(in->subject), tmp, strlen(tmp));
		subject_facts(m);
		memcpy(buf, "Subject: ", 9);
		k = strlen(in->subject);
		memcpy(buf + 9, in->subject, k);
		bs_mime_emit(
		        m, BS_TGT_HEADER | BS_TGT_SUBJECT, buf, 9 + k, true);
		return;
	}
	if (name_is(name, nl, "from")) {
		from_facts(m, v, vl);
		tgt |= BS_TGT_FROM;
	} else if (name_is(name, nl, "auto-submitted")) {
		if (!bs_mime_prefix_ci(v, vl, "no"))
			in->auto_flags |= BS_AUTO_SUBMITTED;
		if (bs_mime_prefix_ci(v, vl, "auto-replied"))
			in->auto_flags |= BS_AUTO_REPLIED;
	} else if (name_is(name, nl, "precedence")) {
		if (bs_mime_prefix_ci(v, vl, "bulk") ||
		        bs_mime_prefix_ci(v, vl, "junk") ||
		        bs_mime_prefix_ci(v, vl, "list") ||
		        bs_mime_prefix_ci(v, vl, "auto_reply"))
			in->auto_flags |= BS_AUTO_PRECEDENCE;
	} else if (name_is(name, nl, "return-path")) {
		size_t i = 0;

		while (i < vl && is_ws(v[i]))
			i++;
		/* Sendmail delivers a null sender as <MAILER-DAEMON> (or
		 * <MAILER-DAEMON@its.host>): the same mark. */
		if ((vl - i >= 2 && v[i] == '<' && v[i + 1] == '>') ||
		        (vl - i >= 15 &&
		                bs_mime_prefix_ci(v + i, vl - i, "<mailer-daemon") &&
		                (v[i + 14] == '>' || v[i + 14] == '@')))
			in->auto_flags |= BS_AUTO_NULL_RP;
	} else if (name_is(name, nl, "x-autoreply") ||
	           name_is(name, nl, "x-autorespond") ||
	           name_is(name, nl, "x-autoresponder") ||
	           name_is(name, nl, "x-auto-reply")) {
		in->auto_flags |= BS_AUTO_AUTOREPLY_HDR;
	} else if (name_is(name, nl, "x-autogenerated")) {
		/* CommuniGate Pro names the rule action that made the
		 * message: Reply is an auto-reply; Forward, Mirror and
		 * Redirect pass someone else's message on. */
		if (bs_mime_prefix_ci(v, vl, "reply"))
			in->auto_flags |= BS_AUTO_AUTOREPLY_HDR;
	} else if (name_is(name, nl, "x-apple-action")) {
		/* iCloud vacation replies carry no Auto-Submitted. */
		if (bs_mime_prefix_ci(v, vl, "vacation"))
			in->auto_flags |= BS_AUTO_AUTOREPLY_HDR;
	} else if (name_is(name, nl, "x-failed-recipients")) {
		in->auto_flags |= BS_AUTO_FAILED_RCPT;
	} else if (name_is(name, nl, "x-amz-sns-message-id")) {
		/* Amazon SNS delivers SES bounce notices from no-reply. */
		in->auto_flags |= BS_AUTO_NOTIFY_SENDER;
	} else if (name_is(name, nl, "content-type")) {
		if (bs_mime_prefix_ci(v, vl, "multipart/report"))
			in->auto_flags |= BS_AUTO_REPORT_CT;
	} else if (name_is(name, nl, "message-id")) {
		copy_id(m, in->message_id, sizeof(in->message_id), v, vl);
	} else if (name_is(name, nl, "in-reply-to")) {
		copy_id(m, in->in_reply_to, sizeof(in->in_reply_to), v, vl);
	} else if (name_is(name, nl, "references")) {
		copy_refs(m, in->references, sizeof(in->references), v, vl);
	}
	bs_mime_emit(m, tgt, h, n, true);
}

/* ---- the embedded original ---------------------------------------- */

/* Copy the token at s[i..] (until space or a stop char) into dst. */
static size_t
take_token(char *dst, size_t cap, const char *s, size_t n, size_t i,
        const char *stop)
{
	size_t o = 0;

	while (i < n && s[i] != ' ' && !strchr(stop, s[i])) {
		if (o + 1 < cap)
			dst[o++] = s[i];
		i++;
	}
	dst[o] = '\0';
	return i;
}

static bool
ip_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/* The first "[address]" in s[i..end): v4 or v6 literal. */
static void
take_ip(char *dst, size_t cap, const char *s, size_t i, size_t end)
{
	for (; i < end; i++) {
		if (s[i] != '[')
			continue;
		size_t j = i + 1, o = 0;

		if (end - j > 5 && bs_mime_prefix_ci((const uint8_t *)s + j,
		                           end - j, "ipv6:"))
			j += 5;
		while (j < end && ip_char(s[j]) && o + 1 < cap)
			dst[o++] = s[j++];
		dst[o] = '\0';
		if (j < end && s[j] == ']' && o > 0)
			return;
		dst[0] = '\0';
	}
}

/* qmail writes the address without brackets: "(192.0.2.1)". */
static void
take_paren_ipv4(char *dst, size_t cap, const char *s, size_t i, size_t end)
{
	for (; i < end; i++) {
		size_t j = i + 1, dots = 0;

		if (s[i] != '(')
			continue;
		while (j < end && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.'))
			dots += s[j++] == '.';
		if (j < end && s[j] == ')' && dots == 3 && j - i - 1 < cap &&
		        j - i - 1 >= 7) {
			memcpy(dst, s + i + 1, j - i - 1);
			dst[j - i - 1] = '\0';
			return;
		}
	}
}

/* Case-insensitive search for word w at a word start in s[0..n). */
static size_t
find_word(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);

	for (size_t i = 0; i + k <= n; i++)
		if ((i == 0 || s[i - 1] == ' ' || s[i - 1] == ')') &&
		        bs_mime_prefix_ci((const uint8_t *)s + i, n - i, w))
			return i;
	return n;
}

/*
 * Received: from helo (rdns [ip]) by host ...; date.  Formats vary (Exim
 * writes "([ip]:port)", Sendmail "(rdns [ip])", Postfix "(rdns[ip])"), so
 * we look for the landmarks rather than parse the grammar.
 */
static void
parse_received(struct bs_received *r)
{
	const char *s = r->raw;
	size_t n = strlen(s);
	size_t by = find_word(s, n, "by ");
	size_t end = by;

	if (bs_mime_prefix_ci((const uint8_t *)s, n, "from ")) {
		size_t i = take_token(
		        r->from_host, sizeof(r->from_host), s, end, 5, "(;");

		while (i < end && s[i] == ' ')
			i++;
		if (i < end && s[i] == '(') {
			take_token(r->from_rdns, sizeof(r->from_rdns), s, end,
			        i + 1, "[)");
			/* "(helo=x)" (Exim), "(HELO x)" (qmail): not a name
			 * the receiver looked up. */
			if (strchr(r->from_rdns, '=') != NULL ||
			        strcasecmp(r->from_rdns, "helo") == 0 ||
			        strcasecmp(r->from_rdns, "ehlo") == 0)
				r->from_rdns[0] = '\0';
		}
		take_ip(r->from_ip, sizeof(r->from_ip), s, 5, end);
		if (r->from_ip[0] == '\0')
			take_paren_ipv4(
			        r->from_ip, sizeof(r->from_ip), s, 5, end);
	}
	if (by < n)
		take_token(r->by_host, sizeof(r->by_host), s, n, by + 3, "(;");
}

static void
orig_header(struct bs_mime *m, const uint8_t *name, size_t nl, const uint8_t *v,
        size_t vl)
{
	struct bs_original *o = &m->info->orig;

	o->present = true;
	if (name_is(name, nl, "message-id")) {
		if (!o->message_id[0])
			copy_field(
			        m, o->message_id, sizeof(o->message_id), v, vl);
	} else if (name_is(name, nl, "from")) {
		if (!o->from[0])
			copy_field(m, o->from, sizeof(o->from), v, vl);
	} else if (name_is(name, nl, "return-path")) {
		if (!o->return_path[0])
			copy_field(m, o->return_path, sizeof(o->return_path), v,
			        vl);
	} else if (name_is(name, nl, "to")) {
		if (!o->to[0])
			copy_field(m, o->to, sizeof(o->to), v, vl);
	} else if (name_is(name, nl, "date")) {
		if (!o->date[0])
			copy_field(m, o->date, sizeof(o->date), v, vl);
	} else if (name_is(name, nl, "subject")) {
		if (!o->subject[0]) {
			char tmp[BS_FIELD_MAX];

			copy_field(m, tmp, sizeof(tmp), v, vl);
			bs_mime_decode_2047(o->subject, sizeof(o->subject), tmp,
			        strlen(tmp));
		}
	} else if (name_is(name, nl, "received")) {
		if (o->n_received_seen < UINT16_MAX)
			o->n_received_seen++;
		if (o->n_received < BS_RECEIVED_MAX) {
			struct bs_received *r = &o->received[o->n_received++];

			/* Not cleared with the info (bs_mime_init()). */
			memset(r, 0, sizeof(*r));
			copy_field(m, r->raw, sizeof(r->raw), v, vl);
			parse_received(r);
		}
	} else if (name_is(name, nl, "dkim-signature")) {
		if (o->n_dkim < BS_DKIM_MAX) {
			/* Raw, folds (CRLF + white space) included: a verifier
			 * using "simple" header canonicalization needs the
			 * bytes as signed. */
			char *d = o->dkim[o->n_dkim++];
			size_t k = vl < BS_DKIM_RAW_MAX - 1
			                   ? vl
			                   : BS_DKIM_RAW_MAX - 1;

			if (k < vl)
				m->info->anomalies |= BS_MIME_A_FIELD_TRUNC;
			memcpy(d, v, k);
			d[k] = '\0';
		}
	}
}

/* ---- DSN and ARF fields --------------------------------------------- */

static void
dsn_header(struct bs_mime *m, const uint8_t *name, size_t nl, const uint8_t *v,
        size_t vl)
{
	struct bs_dsn *d = &m->info->dsn;

	if (name_is(name, nl, "reporting-mta")) {
		if (!d->reporting_mta[0])
			copy_field(m, d->reporting_mta,
			        sizeof(d->reporting_mta), v, vl);
		return;
	}
	if (name_is(name, nl, "final-recipient")) {
		if (d->n_rcpt < UINT16_MAX)
			d->n_rcpt++;
		m->dsn_in_rcpt = true;
		if (!m->dsn_rcpt_done && !d->final_recipient[0])
			copy_field(m, d->final_recipient,
			        sizeof(d->final_recipient), v, vl);
		return;
	}
	/* Per-recipient fields: those of the first recipient are kept. */
	if (m->dsn_rcpt_done)
		return;
	if (name_is(name, nl, "original-recipient")) {
		if (!d->original_recipient[0])
			copy_field(m, d->original_recipient,
			        sizeof(d->original_recipient), v, vl);
	} else if (name_is(name, nl, "action")) {
		if (!d->action[0])
			copy_field(m, d->action, sizeof(d->action), v, vl);
	} else if (name_is(name, nl, "status")) {
		if (!d->status[0])
			copy_field(m, d->status, sizeof(d->status), v, vl);
	} else if (name_is(name, nl, "diagnostic-code")) {
		if (!d->diagnostic_code[0])
			copy_field(m, d->diagnostic_code,
			        sizeof(d->diagnostic_code), v, vl);
	}
}

static void
arf_header(struct bs_mime *m, const uint8_t *name, size_t nl, const uint8_t *v,
        size_t vl)
{
	if (name_is(name, nl, "feedback-type") && !m->info->feedback_type[0])
		copy_field(m, m->info->feedback_type,
		        sizeof(m->info->feedback_type), v, vl);
}

/* A complete (unfolded) header field h[0..n) of the current block. */
void
bs_mime_header(struct bs_mime *m, uint8_t *h, size_t n)
{
	size_t nl = 0, i;

	while (nl < n && h[nl] != ':')
		nl++;
	if (nl == n)
		return; /* not a field: ignored */
	i = nl + 1;
	while (nl > 0 && (h[nl - 1] == ' ' || h[nl - 1] == '\t'))
		nl--;
	if (nl == 0)
		return;
	while (i < n && is_ws(h[i]))
		i++;
	size_t vl = n - i;

	while (vl > 0 && is_ws(h[i + vl - 1]))
		vl--;

	switch (m->hb) {
	case BS_MIME_HB_ENTITY: {
		bool top = m->depth == 0 && !m->top_done;

		if (name_is(h, nl, "content-type"))
			bs_mime_content_type(m, (const char *)h + i, vl, top);
		else if (name_is(h, nl, "content-transfer-encoding"))
			bs_mime_cte(m, (const char *)h + i, vl);
		if (top)
			top_header(m, h, n, h, nl, h + i, vl);
		break;
	}
	case BS_MIME_HB_ORIG:
		orig_header(m, h, nl, h + i, vl);
		break;
	case BS_MIME_HB_DSN:
		dsn_header(m, h, nl, h + i, vl);
		break;
	case BS_MIME_HB_ARF:
		arf_header(m, h, nl, h + i, vl);
		break;
	}
}

/* ---- body handlers ------------------------------------------------ */

/* "Name:" with a plausible field name at the start of the line. */
static bool
looks_like_header(const uint8_t *p, size_t n)
{
	size_t i = 0;

	if (n == 0 ||
	        !((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')))
		return false;
	while (i < n && i < 40 &&
	        ((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
	                (p[i] >= '0' && p[i] <= '9') || p[i] == '-' ||
	                p[i] == '_'))
		i++;
	return i < n && p[i] == ':';
}

/*
 * Lines after which older systems quote the original inline (qmail,
 * Exim, Sendmail, Domino, Exchange 2003, ...), lower case.
 */
static const char *const inline_markers[] = {
        "copy of the message",
        "copy of your message",
        "copy of the original message",
        "original message follows",
        "original message headers",
        "original message -----",
        "original message details",
        "message headers follow",
        "message header follows",
        "header of the original message",
        "headers of the original message",
        "returned message",
        "unsent message",
        "undelivered message",
        "copy of the message header",
        "ursprungliche nachricht",
        "message original",
};

static bool
inline_marker(const uint8_t *p, size_t n)
{
	/* A German hoster's "automatic bounce notification" ends its text
	 * with this short line before the copy. */
	if (n < 24 && bs_mime_contains_ci(p, n, "bounced e-mail:"))
		return true;
	/* Every other marker names the message (or Nachricht): one search
	 * rules out nearly all lines. */
	if (!bs_mime_contains2_ci(p, n, "message", 7, "nachricht", 9))
		return false;
	for (unsigned int k = 0;
	        k < sizeof(inline_markers) / sizeof(inline_markers[0]); k++)
		if (bs_mime_contains_ci(p, n, inline_markers[k]))
			return true;
	return false;
}

/*
 * One line (or LINE_MAX piece: sol/eol) of the original's header block,
 * as carried, into orig.hdr_raw (contract 3).  Lines end in CRLF whatever
 * the part used.  At the cap the block is cut back to the start of the
 * field that did not fit, so it holds whole fields only (a verifier can
 * still check a signature over fields before the cut).
 */
static void
orig_raw(struct bs_mime *m, const uint8_t *p, size_t n, bool sol, bool eol)
{
	struct bs_original *o = &m->info->orig;
	size_t need = n + (eol ? 2 : 0);

	if (o->hdr_raw_cut)
		return;
	/* An mbox "From " separator before the first field is no field. */
	if (sol && o->hdr_raw_len == 0 && n >= 5 && memcmp(p, "From ", 5) == 0)
		return;
	if (sol && !(n > 0 && (p[0] == ' ' || p[0] == '\t')))
		m->raw_field = o->hdr_raw_len;
	if (need > BS_ORIG_HDR_RAW_MAX - o->hdr_raw_len) {
		o->hdr_raw_len = m->raw_field;
		o->hdr_raw_cut = true;
		m->info->anomalies |= BS_MIME_A_ORIG_HDR_CUT;
		return;
	}
	memcpy(o->hdr_raw + o->hdr_raw_len, p, n);
	o->hdr_raw_len += (uint32_t)n;
	if (eol) {
		o->hdr_raw[o->hdr_raw_len++] = '\r';
		o->hdr_raw[o->hdr_raw_len++] = '\n';
	}
}

static void
orig_begin(struct bs_mime *m, uint8_t source)
{
	bs_mime_hdr_flush(m);
	/* The first original found wins; one that had no field gives way to
	 * the next (its block was empty). */
	m->info->orig.hdr_raw_len = 0;
	m->info->orig.hdr_raw_cut = false;
	m->raw_field = 0;
	m->hb = BS_MIME_HB_ORIG;
	m->orig_hdr = true;
	m->ctx = BS_MIME_CTX_ORIG;
	m->info->orig.source = source;
}

static void
orig_hdr_end(struct bs_mime *m)
{
	bs_mime_hdr_flush(m);
	m->orig_hdr = false;
	m->hb = BS_MIME_HB_ENTITY;
}

static bool
blank(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_ws(p[i]))
			return false;
	return true;
}

static bool
is_ascii(const uint8_t *p, size_t n)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= p[i];
	return (acc & 0x8080808080808080ull) == 0;
}

static void
text_line(struct bs_mime *m, uint8_t *p, size_t n, bool sol, bool eol)
{
	/* UTF-8 can take 3 bytes for one of a legacy charset; +1 for '\n'. */
	uint8_t conv[BS_MIME_LINE_MAX * 3 + 4];
	bool whole = sol && eol;
	/* The line as carried, for the original's raw header block. */
	const uint8_t *rp = p;
	size_t rn = n;

	/* ASCII in a charset that keeps it as it is needs no iconv. */
	if (m->cs[0] != '\0' && !(m->cs_ascii && is_ascii(p, n))) {
		size_t k = bs_mime_charset_conv(m->cs, m, &m->cs_seq, sol, p, n,
		        conv, sizeof(conv) - 1, &m->cs_opens);

		if (k != SIZE_MAX) {
			n = k;
			p = conv;
		}
	}

	if (m->orig_hdr) {
		/* Inline original: its header ends at a blank line or at
		 * the first line that is no field. */
		if (whole && blank(p, n)) {
			orig_hdr_end(m);
		} else if (sol && !(n > 0 && (p[0] == ' ' || p[0] == '\t')) &&
		           !looks_like_header(p, n)) {
			orig_hdr_end(m);
		} else {
			orig_raw(m, rp, rn, sol, eol);
			bs_mime_hdr_line(m, p, n, sol);
		}
		bs_mime_emit(m, BS_TGT_ORIGINAL, p, n, eol);
		return;
	}
	if (m->ctx == BS_MIME_CTX_ORIG) {
		bs_mime_emit(m, BS_TGT_ORIGINAL, p, n, eol);
		return;
	}
	if (whole && !m->info->orig.present) {
		if (m->inline_armed) {
			if (looks_like_header(p, n)) {
				m->inline_armed = 0;
				orig_begin(m, BS_ORIG_INLINE);
				orig_raw(m, rp, rn, true, eol);
				bs_mime_hdr_line(m, p, n, true);
				bs_mime_emit(m, BS_TGT_ORIGINAL, p, n, eol);
				return;
			}
			/* Blank lines and an mbox "From " separator may come
			 * between the marker and the header. */
			if (!blank(p, n) && !(n >= 5 && memcmp(p, "From ", 5) == 0))
				m->inline_armed = 0;
		} else if (bs_mime_prefix_ci(p, n, "return-path:") ||
		           bs_mime_prefix_ci(p, n, "received: from ")) {
			orig_begin(m, BS_ORIG_INLINE);
			orig_raw(m, rp, rn, true, eol);
			bs_mime_hdr_line(m, p, n, true);
			bs_mime_emit(m, BS_TGT_ORIGINAL, p, n, eol);
			return;
		}
		if (!m->inline_armed && inline_marker(p, n))
			m->inline_armed = 1;
	}
	bs_mime_emit(m, BS_TGT_BODY, p, n, eol);
}

static void
fields_line(struct bs_mime *m, uint8_t *p, size_t n, bool sol, bool eol,
        uint32_t tgt)
{
	if (sol && eol && blank(p, n)) {
		bs_mime_hdr_flush(m);
		if (m->dsn_in_rcpt)
			m->dsn_rcpt_done = true;
	} else {
		bs_mime_hdr_line(m, p, n, sol);
	}
	bs_mime_emit(m, tgt, p, n, eol);
}

void
bs_mime_handle(struct bs_mime *m, uint8_t *p, size_t n, bool sol, bool eol)
{
	switch (m->handler) {
	case BS_MIME_H_TEXT:
	case BS_MIME_H_MDN:
		text_line(m, p, n, sol, eol);
		break;
	case BS_MIME_H_DSN:
		fields_line(m, p, n, sol, eol, BS_TGT_DSN);
		break;
	case BS_MIME_H_ARF:
		fields_line(m, p, n, sol, eol, BS_TGT_ARF);
		break;
	case BS_MIME_H_RFC822:
	case BS_MIME_H_HEADERS:
		if (m->orig_hdr) {
			if (sol && eol && blank(p, n)) {
				orig_hdr_end(m);
			} else {
				orig_raw(m, p, n, sol, eol);
				bs_mime_hdr_line(m, p, n, sol);
			}
		}
		bs_mime_emit(m, BS_TGT_ORIGINAL, p, n, eol);
		break;
	default:
		break;
	}
}

bool
bs_mime_handler_wants(const struct bs_mime *m)
{
	switch (m->handler) {
	case BS_MIME_H_TEXT:
	case BS_MIME_H_MDN:
		if (m->orig_hdr)
			return true;
		if (m->ctx == BS_MIME_CTX_ORIG)
			return (m->scan_mask & BS_TGT_ORIGINAL) != 0;
		return !m->info->orig.present ||
		       (m->scan_mask & BS_TGT_BODY) != 0;
	case BS_MIME_H_DSN:
	case BS_MIME_H_ARF:
		return true;
	case BS_MIME_H_RFC822:
	case BS_MIME_H_HEADERS:
		return m->orig_hdr || (m->scan_mask & BS_TGT_ORIGINAL) != 0;
	default:
		return false;
	}
}

void
bs_mime_handler_begin(struct bs_mime *m)
{
	m->inline_armed = 0;
	switch (m->handler) {
	case BS_MIME_H_DSN:
		m->info->dsn.present = true;
		m->hb = BS_MIME_HB_DSN;
		m->dsn_in_rcpt = false;
		m->dsn_rcpt_done = m->info->dsn.final_recipient[0] != '\0';
		break;
	case BS_MIME_H_ARF:
		m->info->arf_present = true;
		m->hb = BS_MIME_HB_ARF;
		break;
	case BS_MIME_H_MDN:
		m->info->mdn_present = true;
		break;
	case BS_MIME_H_TEXT:
		/* Converted line by line (see the converter cache); a
		 * charset iconv does not know passes unconverted. */
		if (!bs_mime_charset_name(m->cs, m->p_charset,
		            strlen(m->p_charset)) ||
		        !bs_mime_charset_known(m->cs, &m->cs_opens, &m->cs_ascii))
			m->cs[0] = '\0';
		m->cs_seq = 0;
		break;
	case BS_MIME_H_RFC822:
	case BS_MIME_H_HEADERS:
		m->ctx = BS_MIME_CTX_ORIG;
		/* The first original found wins. */
		if (!m->info->orig.present)
			orig_begin(m, m->handler == BS_MIME_H_RFC822
			                      ? BS_ORIG_RFC822
			                      : BS_ORIG_HEADERS);
		break;
	default:
		break;
	}
}

void
bs_mime_handler_end(struct bs_mime *m)
{
	bs_mime_hdr_flush(m);
	m->orig_hdr = false;
	m->hb = BS_MIME_HB_ENTITY;
	m->inline_armed = 0;
	bs_mime_abort(m);
}
