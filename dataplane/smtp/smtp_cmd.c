/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The client direction: command lines, DATA content with end-of-data
 * detection and dot-unstuffing, BDAT chunks, SASL lines after AUTH.
 *
 * Commands change no state here: each is queued with what it asks for,
 * and smtp_reply.c applies it on the server's reply, as the server does
 * (Postfix's smtpd: a refused RSET, EHLO, MAIL or DATA changes nothing).
 * Only what decides how the next client bytes read is settled here.
 *
 * How the client's next bytes read depends on a reply for three commands:
 * DATA (354 or not), AUTH (334 or not) and STARTTLS (220 or not).  A
 * well-behaved client waits for that reply; bytes that come earlier are
 * copied into a small bounded hold and replayed once the reply says how
 * the server read them (the server reads them the same way, in order).
 * A well-formed BDAT is followed by its chunk whatever the reply (RFC
 * 3030: the server reads and discards a refused chunk), so its bytes are
 * read as a chunk at once, even before any reply: Postfix reads the
 * chunk after HELO too (CHUNKING is only not announced), and hangs up
 * (521) when CHUNKING is disabled or the BDAT is malformed.  Only after
 * an EHLO reply without CHUNKING, or a malformed BDAT, are the next
 * bytes read as commands (what servers without CHUNKING do); the reply
 * then says whether the server agreed.
 *
 * End of data: only CRLF "." CRLF ends DATA (RFC 5321 4.1.1.4).  A bare
 * LF never ends a line inside DATA; lookalikes such as LF "." LF are
 * counted.  A server that honours them replies while we are still in
 * DATA, which we see as a desynchronisation and stop inspecting
 * (fail-open) rather than reading message text as commands.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "smtp_int.h"

static const uint8_t cr_byte = '\r';

/* Case-insensitive prefix test on a byte buffer. */
static int
has_prefix(const uint8_t *p, size_t n, const char *pre)
{
	size_t k = strlen(pre);

	return n >= k && strncasecmp((const char *)p, pre, k) == 0;
}

/*
 * Is the verb exactly word (followed by end or a blank)?  Postfix splits
 * a command into words at spaces and tabs alike.
 */
static int
verb_is(const uint8_t *p, size_t n, const char *word)
{
	size_t k = strlen(word);

	return has_prefix(p, n, word) &&
		(n == k || p[k] == ' ' || p[k] == '\t');
}

static size_t
skip_sp(const uint8_t *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i;
}

/*
 * Parse a reverse or forward path starting at p[i]: "<addr>" (quoted
 * local parts and a source route "@a,@b:" allowed, the route dropped as
 * RFC 5321 4.1.1.3 asks) or a bare address as lenient servers accept.
 * Copies at most cap - 1 bytes and a NUL into out; returns the index
 * after the path.
 */
static size_t
parse_path(const uint8_t *p, size_t n, size_t i, char *out, uint16_t *outlen,
	size_t cap)
{
	size_t o = 0;
	int quoted = 0;

	i = skip_sp(p, n, i);
	if (i < n && p[i] == '<') {
		size_t j;

		i++;
		/* Source route: up to the first ':' outside quotes. */
		if (i < n && p[i] == '@') {
			for (j = i; j < n && p[j] != ':' && p[j] != '>'; j++)
				;
			if (j < n && p[j] == ':')
				i = j + 1;
		}
		for (; i < n; i++) {
			uint8_t c = p[i];

			if (!quoted && c == '>') {
				i++;
				break;
			}
			if (c == '"')
				quoted = !quoted;
			else if (quoted && c == '\\' && i + 1 < n) {
				if (o + 1 < cap)
					out[o++] = (char)c;
				c = p[++i];
			}
			if (o + 1 < cap)
				out[o++] = (char)c;
		}
	} else {
		for (; i < n && p[i] != ' '; i++)
			if (o + 1 < cap)
				out[o++] = (char)p[i];
	}
	out[o] = '\0';
	*outlen = (uint16_t)o;
	return i;
}

/*
 * "MAIL FROM:" and "RCPT TO:" as Postfix reads them: the verb, any run
 * of blanks, the keyword with its colon.  Returns the index after the
 * colon, or 0 if the line is not of that form.  Matching leniently is
 * the safe side: the server's reply says whether the command counted.
 */
static size_t
verb_arg(const uint8_t *p, size_t n, const char *verb, const char *kw)
{
	size_t i;

	if (!verb_is(p, n, verb))
		return 0;
	i = skip_sp(p, n, strlen(verb));
	if (!has_prefix(p + i, n - i, kw))
		return 0;
	return i + strlen(kw);
}

static void
cmd_ehlo(struct bs_smtp_flow *f, const uint8_t *p, size_t n, int ehlo)
{
	size_t i = skip_sp(p, n, 4), e = n, k;

	while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	k = e - i < BS_SMTP_HELO_MAX - 1 ? e - i : BS_SMTP_HELO_MAX - 1;
	bs_smtp_helo_set(f, &f->helo_pending, &f->helo_pending_len, p + i, k);
	if (!f->inspected)
		return; /* over the session budget or out of memory */
	/* Accepted, it resets the transaction (RFC 5321 4.1.4); refused
	 * (no argument, a HELO restriction) it changes nothing. */
	bs_smtp_pend_push(f, ehlo ? BS_SMTP_CMD_EHLO : BS_SMTP_CMD_HELO, 0,
		UINT32_MAX, BS_PF_RESET);
}

/*
 * MAIL starts a transaction if the server accepts it.  If the server
 * surely has one already (MAIL accepted, its message not sent, nothing
 * pending that could end it) this MAIL is nested and will be refused
 * (503): it gets no transaction.  Otherwise it gets one at once, since a
 * pipelined BDAT chunk may follow before any reply; the reply to MAIL
 * says whether it counted (smtp_reply.c).
 */
static void
cmd_mail(struct bs_smtp_flow *f, const uint8_t *p, size_t n, size_t arg)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	struct bs_smtp_txn *t, *a = f->active;
	size_t i, e, k;

	if (a != NULL && !a->rec.complete && f->pend_resets == 0) {
		bs_smtp_pend_push(f, BS_SMTP_CMD_MAIL, 0, UINT32_MAX,
			BS_PF_NESTED);
		return;
	}
	t = bs_smtp_txn_new(f);
	if (t == NULL)
		return;
	i = parse_path(p, n, arg, t->rec.mail_from, &t->rec.mail_from_len,
		sizeof(t->rec.mail_from));
	i = skip_sp(p, n, i);
	e = n;
	while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
		e--;
	k = e - i < BS_SMTP_PARAMS_MAX - 1 ? e - i : BS_SMTP_PARAMS_MAX - 1;
	memcpy(t->rec.mail_params, p + i, k);
	t->rec.mail_params[k] = '\0';
	t->rec.mail_params_len = (uint16_t)k;
	f->cur = t;
	/* Begin first: a failing push ends t, and every end has a begin. */
	if (ctx->ev.on_txn_begin != NULL)
		ctx->ev.on_txn_begin(ctx->arg, f, &t->rec);
	bs_smtp_pend_push(f, BS_SMTP_CMD_MAIL, t->rec.seq, UINT32_MAX, 0);
}

/* The recipient goes where the client's commands put it; its reply
 * decides (smtp_reply.c). */
static void
cmd_rcpt(struct bs_smtp_flow *f, const uint8_t *p, size_t n, size_t arg)
{
	struct bs_smtp_txn *t = f->cur;
	uint32_t idx = UINT32_MAX;

	if (t != NULL) {
		char addr[BS_SMTP_ADDR_MAX];
		uint16_t len;

		parse_path(p, n, arg, addr, &len, sizeof(addr));
		if (bs_smtp_txn_rcpt_add(f, t, addr, len, &idx) < 0)
			return; /* uninspected: t is gone */
	}
	bs_smtp_pend_push(f, BS_SMTP_CMD_RCPT, t != NULL ? t->rec.seq : 0, idx,
		0);
}

/*
 * BDAT size [LAST]; returns 0 if well-formed, as Postfix checks it: a
 * run of digits that fits a signed 64-bit size, then nothing or LAST
 * (any case), blanks between.
 */
static int
parse_bdat(const uint8_t *p, size_t n, uint64_t *size, int *last)
{
	size_t i = skip_sp(p, n, 4);
	uint64_t v = 0;
	size_t digits = 0;

	while (i < n && p[i] >= '0' && p[i] <= '9') {
		if (v > ((uint64_t)INT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
		i++;
		digits++;
	}
	if (digits == 0 || (i < n && p[i] != ' ' && p[i] != '\t'))
		return -1; /* "BDAT 5LAST" is one word, not a number */
	i = skip_sp(p, n, i);
	*last = 0;
	if (i < n) {
		if (n - i >= 4 && strncasecmp((const char *)p + i, "LAST", 4) == 0
			&& skip_sp(p, n, i + 4) == n)
			*last = 1;
		else
			return -1;
	}
	*size = v;
	return 0;
}

static void bdat_chunk_done(struct bs_smtp_flow *f, void *pkt);

static void
cmd_bdat(struct bs_smtp_flow *f, const uint8_t *p, size_t n, void *pkt)
{
	struct bs_smtp_txn *t = f->cur;
	uint64_t size;
	int last;

	if (parse_bdat(p, n, &size, &last) ||
		(f->hello == BS_HELLO_EHLO && !(f->ext & BS_SMTP_EXT_CHUNKING))) {
		/*
		 * Malformed, or after an EHLO reply without CHUNKING: a
		 * server reads what follows as commands (Exim, and any
		 * server without CHUNKING) or hangs up (Postfix: 521).  So
		 * do we; a reply that says it read a chunk is a desync.
		 */
		BS_CNT_INC(f->ctx->cnt, smtp_bdat_unannounced);
		bs_smtp_pend_push(f, BS_SMTP_CMD_BDAT, 0, UINT32_MAX, 0);
		return;
	}
	BS_CNT_INC(f->ctx->cnt, smtp_bdat);
	/* A refused chunk ends the transaction: a reset. */
	if (bs_smtp_pend_push(f, BS_SMTP_CMD_BDAT, t ? t->rec.seq : 0,
		    UINT32_MAX, (uint8_t)(BS_PF_CHUNK | BS_PF_RESET |
			    (last ? BS_PF_LAST : 0))))
		return;
	if (t != NULL) {
		t->rec.bdat = 1;
		/* The message starts with this chunk's first byte, whatever
		 * the replies to MAIL and RCPT will say. */
		bs_smtp_txn_message_begin(f, t);
	}
	f->data_txn = t;
	f->bdat_left = size;
	f->bdat_last = (uint8_t)last;
	f->cmode = BS_CM_BDAT;
	if (size == 0)
		bdat_chunk_done(f, pkt);
}

void
bs_smtp_cmd_line(struct bs_smtp_flow *f, const uint8_t *p, size_t n,
	void *pkt)
{
	struct bs_counters *cnt = f->ctx->cnt;
	uint8_t cmd;
	size_t arg;

	if (f->cmode == BS_CM_SASL) {
		/* A SASL response: not a command, never parsed. */
		f->cmode = BS_CM_WAIT;
		return;
	}
	BS_CNT_INC(cnt, smtp_commands);
	/* Postfix skips blanks around the words of a command. */
	while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (verb_is(p, n, "EHLO")) {
		cmd_ehlo(f, p, n, 1);
		return;
	}
	if (verb_is(p, n, "HELO")) {
		cmd_ehlo(f, p, n, 0);
		return;
	}
	if ((arg = verb_arg(p, n, "MAIL", "FROM:")) != 0) {
		cmd_mail(f, p, n, arg);
		return;
	}
	if ((arg = verb_arg(p, n, "RCPT", "TO:")) != 0) {
		cmd_rcpt(f, p, n, arg);
		return;
	}
	if (verb_is(p, n, "BDAT")) {
		cmd_bdat(f, p, n, pkt);
		return;
	}
	/* With or without (invalid) arguments: the reply decides. */
	if (verb_is(p, n, "DATA")) {
		if (bs_smtp_pend_push(f, BS_SMTP_CMD_DATA,
			    f->cur ? f->cur->rec.seq : 0, UINT32_MAX, 0) == 0)
			f->cmode = BS_CM_WAIT;
		return;
	}
	if (verb_is(p, n, "RSET")) {
		/* "RSET x" is refused (501) and resets nothing: its 250
		 * decides (smtp_reply.c). */
		bs_smtp_pend_push(f, BS_SMTP_CMD_RSET, 0, UINT32_MAX,
			BS_PF_RESET);
		return;
	} else if (verb_is(p, n, "NOOP")) {
		cmd = BS_SMTP_CMD_NOOP;
	} else if (verb_is(p, n, "QUIT")) {
		if (bs_smtp_pend_push(f, BS_SMTP_CMD_QUIT, 0, UINT32_MAX, 0) ==
			0)
			f->cmode = BS_CM_IGNORE;
		return;
	} else if (verb_is(p, n, "STARTTLS")) {
		if (bs_smtp_pend_push(f, BS_SMTP_CMD_STARTTLS, 0, UINT32_MAX,
			    0) == 0)
			f->cmode = BS_CM_WAIT;
		return;
	} else if (verb_is(p, n, "AUTH")) {
		BS_CNT_INC(cnt, smtp_auth);
		if (bs_smtp_pend_push(f, BS_SMTP_CMD_AUTH, 0, UINT32_MAX, 0) ==
			0)
			f->cmode = BS_CM_WAIT;
		return;
	} else {
		if (!verb_is(p, n, "VRFY") && !verb_is(p, n, "EXPN") &&
			!verb_is(p, n, "HELP"))
			BS_CNT_INC(cnt, smtp_unknown_commands);
		cmd = BS_SMTP_CMD_OTHER;
	}
	bs_smtp_pend_push(f, cmd, 0, UINT32_MAX, 0);
}

static void
bdat_chunk_done(struct bs_smtp_flow *f, void *pkt)
{
	f->cmode = BS_CM_CMD;
	if (f->bdat_last)
		bs_smtp_txn_end_message(f, pkt);
	f->data_txn = NULL;
}

/* Raw BDAT bytes; returns bytes consumed. */
static size_t
bdat_feed(struct bs_smtp_flow *f, const uint8_t *p, size_t n, void *pkt)
{
	size_t k = n < f->bdat_left ? n : (size_t)f->bdat_left;

	bs_smtp_txn_content(f, p, (uint32_t)k);
	f->bdat_left -= k;
	if (f->bdat_left == 0)
		bdat_chunk_done(f, pkt);
	return k;
}

/* A CRLF ended a DATA line of data_linelen bytes (its CR included). */
static inline void
data_eol(struct bs_smtp_flow *f)
{
	/* text_line_max counts the CRLF (RFC 5321 4.5.3.1.6). */
	if (f->data_linelen + 1 > f->ctx->p.smtp_text_line_max)
		BS_CNT_INC(f->ctx->cnt, smtp_data_line_long);
	f->data_linelen = 0;
	f->dstate = BS_DS_BOL;
}

static inline void
data_linelen_add(struct bs_smtp_flow *f, size_t k)
{
	uint64_t v = (uint64_t)f->data_linelen + k;

	f->data_linelen = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Bit i set where p[i] == '\n', for the len (<= 16) bytes at p. */
static inline uint32_t
lf_mask(const uint8_t *p, size_t len)
{
	uint32_t m = 0;

#if defined(__SSE2__)
	if (len == 16)
		return (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(
			_mm_loadu_si128((const __m128i *)p),
			_mm_set1_epi8('\n')));
#endif
	for (size_t k = 0; k < len; k++)
		m |= (uint32_t)(p[k] == '\n') << k;
	return m;
}

/*
 * The common case of DATA content, whole runs of it at once: lines ended
 * by CRLF, none starting with '.', none longer than text_line_max.  From
 * p[i] in state BOL (p[i] not '.'), MID or CR with no bare LF pending,
 * every LF is found 16 bytes at a time and its line is taken when the
 * byte before the LF is CR and the line fits; the scan stops before the
 * first line that is anything else (a bare LF, a long line: the per-line
 * code below reads it, and counts it) and at a line that starts with '.'
 * (the per-byte states below unstuff it or end the data).  It changes
 * only the line state, as data_eol() for the lines it takes and as the
 * memchr() branch for the rest of the buffer when no LF is left; the
 * content stays where it is and is emitted by the caller in the same
 * runs as before.  Returns the new i: i itself when the first line is
 * not a common one.
 */
static size_t
data_scan(struct bs_smtp_flow *f, const uint8_t *p, size_t i, size_t n)
{
	uint64_t max = f->ctx->p.smtp_text_line_max;
	uint64_t carry = f->data_linelen; /* bytes of line ls before ls */
	size_t ls = i;                    /* start of the line in p */
	size_t end = n;                   /* where the scan stops */
	int prev_cr = f->dstate == BS_DS_CR; /* the byte before p[i] */

	for (size_t b = i; b < n && end == n;) {
		size_t base = b, len = n - b < 16 ? n - b : 16;
		uint32_t mask = lf_mask(p + b, len);

		b += len;
		while (mask != 0) {
			size_t k = base + (size_t)__builtin_ctz(mask);

			mask &= mask - 1;
			/* k == ls > i: an empty line after an LF, not CR */
			if (!(k > i ? p[k - 1] == '\r' : prev_cr) ||
				carry + (k - ls) + 1 > max) {
				end = ls;
				break;
			}
			carry = 0;
			ls = k + 1;
			if (ls < n && p[ls] == '.') {
				end = ls;
				break;
			}
		}
	}
	if (ls > i) {
		/* As data_eol() for the lines taken (all fit). */
		f->data_linelen = 0;
		f->dstate = BS_DS_BOL;
	}
	if (end == n && ls < n) {
		/* No LF left: the rest starts (or goes on with) a line. */
		data_linelen_add(f, n - ls);
		f->dstate = p[n - 1] == '\r' ? BS_DS_CR : BS_DS_MID;
	}
	return end;
}

/* One content byte c (not a held-back one) in state MID/CR/BOL. */
static inline void
data_byte(struct bs_smtp_flow *f, uint8_t c)
{
	if (f->data_bare_lf && c == '.')
		BS_CNT_INC(f->ctx->cnt, smtp_data_ambiguous_end);
	f->data_bare_lf = 0;
	if (c == '\n') {
		if (f->dstate == BS_DS_CR) {
			data_eol(f);
			return;
		}
		BS_CNT_INC(f->ctx->cnt, smtp_bare_lf);
		f->data_bare_lf = 1;
		f->dstate = BS_DS_MID;
	} else {
		f->dstate = c == '\r' ? BS_DS_CR : BS_DS_MID;
	}
	data_linelen_add(f, 1);
}

/*
 * DATA content.  Emits unstuffed runs straight from p; the held-back
 * '.' at a line start is dropped (unstuffing) and a held-back CR after
 * it is emitted from a constant.  Inside a line the next LF is found
 * with memchr(), so the per-byte work is only at line starts; runs of
 * common lines are taken whole by data_scan() first.  Returns
 * bytes consumed: all of them, or up to and including the LF of the
 * terminating ".CRLF".
 */
static size_t
data_feed(struct bs_smtp_flow *f, const uint8_t *p, size_t n, void *pkt)
{
	struct bs_counters *cnt = f->ctx->cnt;
	size_t i = 0, start = 0;

	while (i < n) {
		uint8_t c;

		if (!f->data_bare_lf && (f->dstate == BS_DS_MID ||
			f->dstate == BS_DS_CR ||
			(f->dstate == BS_DS_BOL && p[i] != '.'))) {
			size_t j = data_scan(f, p, i, n);

			if (j != i) {
				i = j;
				continue;
			}
		}
		if ((f->dstate == BS_DS_MID || f->dstate == BS_DS_CR) &&
			!f->data_bare_lf) {
			const uint8_t *lf = memchr(p + i, '\n', n - i);
			size_t k;
			int cr;

			if (lf == NULL) {
				data_linelen_add(f, n - i);
				f->dstate = p[n - 1] == '\r' ? BS_DS_CR
							      : BS_DS_MID;
				i = n;
				break;
			}
			k = (size_t)(lf - p);
			cr = k > i ? p[k - 1] == '\r' : f->dstate == BS_DS_CR;
			data_linelen_add(f, k - i);
			if (cr) {
				data_eol(f);
			} else {
				BS_CNT_INC(cnt, smtp_bare_lf);
				f->data_bare_lf = 1;
				f->dstate = BS_DS_MID;
				data_linelen_add(f, 1);
			}
			i = k + 1;
			continue;
		}
		c = p[i];
		switch (f->dstate) {
		case BS_DS_BOL:
			if (c == '.') {
				if (i > start)
					bs_smtp_txn_content(f, p + start,
						(uint32_t)(i - start));
				f->dstate = BS_DS_DOT;
				start = ++i;
				continue;
			}
			break;
		case BS_DS_DOT:
			if (c == '\r') {
				f->dstate = BS_DS_DOTCR;
				start = ++i;
				continue;
			}
			if (c == '\n')
				BS_CNT_INC(cnt, smtp_data_ambiguous_end);
			/* ".x": the dot is removed, x starts the content. */
			start = i;
			f->dstate = BS_DS_MID;
			break;
		case BS_DS_DOTCR:
			if (c == '\n') {
				/* CRLF.CRLF: end of data (nothing unsent). */
				uint32_t id = f->data_txn ? f->data_txn->rec.seq
							  : 0;

				f->cmode = BS_CM_CMD;
				f->dstate = BS_DS_BOL;
				bs_smtp_txn_end_message(f, pkt);
				bs_smtp_pend_push(f, BS_SMTP_CMD_DOT, id,
					UINT32_MAX, 0);
				return i + 1;
			}
			/* ".\rx": the dot is removed, the CR is content. */
			bs_smtp_txn_content(f, &cr_byte, 1);
			data_linelen_add(f, 1);
			start = i;
			f->dstate = BS_DS_CR;
			break;
		default:
			break;
		}
		data_byte(f, c);
		i++;
	}
	/* Held-back bytes moved start past themselves. */
	if (n > start)
		bs_smtp_txn_content(f, p + start, (uint32_t)(n - start));
	return n;
}

/* Client bytes while a reply decides how they read: copy, bounded. */
static void
hold_append(struct bs_smtp_flow *f, const uint8_t *p, size_t n)
{
	uint32_t cap = f->ctx->p.smtp_wait_hold_bytes;
	uint8_t *nb;

	if (n > cap || f->hold_len + n > cap) {
		bs_smtp_uninspect(f, BS_WHY_WAIT);
		return;
	}
	if (bs_smtp_mem_charge(f, n) < 0)
		return;
	nb = realloc(f->hold, f->hold_len + n);
	if (nb == NULL) {
		bs_smtp_mem_uncharge(f, n);
		bs_smtp_uninspect(f, BS_WHY_NOMEM);
		return;
	}
	memcpy(nb + f->hold_len, p, n);
	f->hold = nb;
	f->hold_len += (uint32_t)n;
	BS_CNT_ADD(f->ctx->cnt, smtp_wait_held, n);
}

void
bs_smtp_client_input(struct bs_smtp_flow *f, const uint8_t *p, size_t n,
	void *pkt)
{
	while (n > 0 && f->inspected) {
		size_t k;

		switch (f->cmode) {
		case BS_CM_CMD:
		case BS_CM_SASL:
			k = bs_smtp_line_feed(f, 0, p, n, pkt);
			break;
		case BS_CM_WAIT:
			hold_append(f, p, n);
			return;
		case BS_CM_DATA:
			k = data_feed(f, p, n, pkt);
			break;
		case BS_CM_BDAT:
			k = bdat_feed(f, p, n, pkt);
			break;
		default:
			return; /* after QUIT: nothing the server reads */
		}
		p += k;
		n -= k;
	}
}

void
bs_smtp_replay_hold(struct bs_smtp_flow *f)
{
	uint8_t *buf = f->hold;
	uint32_t n = f->hold_len;

	if (buf == NULL)
		return;
	/* Detach first: replaying may hold again into a new buffer. */
	f->hold = NULL;
	f->hold_len = 0;
	/* Those bytes' packets were forwarded already: no handle. */
	bs_smtp_client_input(f, buf, n, NULL);
	free(buf);
	bs_smtp_mem_uncharge(f, n);
}
