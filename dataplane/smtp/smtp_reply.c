/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The server direction: reply lines ("250-..." continued, "250 ..."
 * final), the extensions of an EHLO reply, and what each final reply
 * means for the command it answers (accepted recipients, 354 for DATA,
 * 220 for STARTTLS, 334 for AUTH, the message's final code).
 *
 * Replies answer commands in order (RFC 5321 4.3, RFC 2920 3.1), so the
 * first complete reply is the greeting and each later one pops the
 * oldest pending command.  Every state change happens here, on the reply,
 * against the transaction the server has then (f->active), as Postfix's
 * smtpd makes it:
 *
 *   EHLO/HELO 2xx   HELO name and extensions set, transaction reset
 *   MAIL 2xx        the transaction starts (a nested MAIL is refused)
 *   RCPT 2xx        the recipient is accepted
 *   DATA 354        the message starts; DATA refused keeps MAIL, RCPT
 *   end of data     the transaction ends, whatever the code
 *   BDAT 2xx        chunk accepted; LAST ends the transaction
 *   BDAT 4xx/5xx    the chunk was read and dropped: the transaction ends
 *   BDAT 521        the server hangs up (Postfix: malformed BDAT, or
 *                   CHUNKING disabled): nothing after it is read
 *   RSET 2xx        transaction reset ("RSET x" gets 501: no change)
 *
 * A reply that cannot answer its command is a desynchronisation (our view
 * of the session and the server's differ): a 3xx but 354 to DATA and 334
 * to AUTH, a 2xx to DATA, 354 with no recipient accepted, a nested MAIL
 * or a RCPT outside a transaction accepted, a BDAT reply before its chunk
 * ended, "500/502" to a BDAT we read a chunk for or a 2xx to one we did
 * not, a reply with no command waiting (but 421).  The flow is then
 * passed uninspected (fail-open) and counted.
 */
#include <string.h>
#include <strings.h>

#include "smtp_int.h"

static const struct {
	const char *kw;
	uint32_t bit;
} ehlo_kw[] = {
	{ "PIPELINING", BS_SMTP_EXT_PIPELINING },
	{ "CHUNKING", BS_SMTP_EXT_CHUNKING },
	{ "STARTTLS", BS_SMTP_EXT_STARTTLS },
	{ "SIZE", BS_SMTP_EXT_SIZE },
	{ "8BITMIME", BS_SMTP_EXT_8BITMIME },
	{ "SMTPUTF8", BS_SMTP_EXT_SMTPUTF8 },
	{ "AUTH", BS_SMTP_EXT_AUTH },
	{ "DSN", BS_SMTP_EXT_DSN },
};

/* Keyword of an EHLO reply line (text after "250-"/"250 "). */
static uint32_t
ehlo_ext(const uint8_t *p, size_t n)
{
	size_t k = 0;

	while (k < n && p[k] != ' ' && p[k] != '=')
		k++;
	for (size_t i = 0; i < sizeof(ehlo_kw) / sizeof(ehlo_kw[0]); i++)
		if (strlen(ehlo_kw[i].kw) == k &&
			strncasecmp((const char *)p, ehlo_kw[i].kw, k) == 0)
			return ehlo_kw[i].bit;
	return 0;
}

static int
is_2xx(uint16_t code)
{
	return code >= 200 && code < 300;
}

static void
desync(struct bs_smtp_flow *f)
{
	bs_smtp_uninspect(f, BS_WHY_REPLY);
}

/* EHLO/HELO: the name and extensions count once accepted. */
static void
reply_hello(struct bs_smtp_flow *f, uint8_t cmd, uint16_t code)
{
	if (!is_2xx(code))
		return; /* 501 (no argument), 554 (restriction): no change */
	/* The pending name becomes the session's. */
	bs_smtp_helo_set(f, &f->helo, &f->helo_len, NULL, 0);
	f->helo = f->helo_pending;
	f->helo_len = f->helo_pending_len;
	f->helo_pending = NULL;
	f->helo_pending_len = 0;
	f->ext = cmd == BS_SMTP_CMD_EHLO ? f->ext_pending : 0;
	f->hello = cmd == BS_SMTP_CMD_EHLO ? BS_HELLO_EHLO : BS_HELLO_HELO;
	if (f->active != NULL)
		bs_smtp_txn_end(f, f->active, 0);
}

static void
reply_mail(struct bs_smtp_flow *f, const struct bs_smtp_pend *e,
	uint16_t code)
{
	struct bs_smtp_txn *t = bs_smtp_txn_find(f, e->txn);
	struct bs_smtp_txn *a = f->active;

	if (e->flags & BS_PF_NESTED) {
		if (is_2xx(code))
			desync(f); /* a nested MAIL cannot be accepted */
		return;
	}
	if (t == NULL)
		return;
	t->rec.mail_reply = code;
	if (is_2xx(code)) {
		if (a != NULL) {
			desync(f);
			return;
		}
		t->state = BS_TS_ACTIVE;
		f->active = t;
		return;
	}
	if (a != NULL) {
		/*
		 * Refused as nested: what the client sent after it belongs
		 * to the transaction the server has.  Recipients can move;
		 * a message already streaming into t cannot.
		 */
		if (t->msg_begun) {
			desync(f);
			return;
		}
		bs_smtp_txn_merge(f, t, a);
		if (!f->inspected)
			return;
	}
	bs_smtp_txn_end(f, t, code);
}

static void
reply_rcpt(struct bs_smtp_flow *f, const struct bs_smtp_pend *e,
	uint16_t code)
{
	struct bs_smtp_txn *t = bs_smtp_txn_find(f, e->txn);

	if (t == NULL || t != f->active) {
		/* The server has no transaction for it (refused MAIL,
		 * RSET, no MAIL): it can only refuse. */
		if (is_2xx(code))
			desync(f);
		return;
	}
	if (e->rcpt < t->rec.nrcpt)
		t->rec.rcpt[e->rcpt].reply = code;
	if (is_2xx(code) && t->rcpt_ok < UINT32_MAX)
		t->rcpt_ok++;
}

static void
reply_data(struct bs_smtp_flow *f, uint16_t code)
{
	struct bs_smtp_txn *a = f->active;

	if (code == 354) {
		if (a == NULL || a->rcpt_ok == 0 || a->rec.complete) {
			desync(f);
			return;
		}
		f->cmode = BS_CM_DATA;
		f->dstate = BS_DS_BOL;
		f->data_linelen = 0;
		f->data_bare_lf = 0;
		f->data_txn = a;
		f->cur = a;
		bs_smtp_txn_message_begin(f, a);
	} else if (is_2xx(code)) {
		desync(f);
		return;
	} else {
		/* Refused (503 no RCPT, 554 no valid recipients, 501
		 * syntax): MAIL and RCPT stay, as in Postfix. */
		f->cmode = BS_CM_CMD;
	}
	bs_smtp_replay_hold(f);
}

static void
reply_bdat(struct bs_smtp_flow *f, const struct bs_smtp_pend *e,
	uint16_t code)
{
	struct bs_smtp_txn *t = bs_smtp_txn_find(f, e->txn);

	if (code == 521) {
		/* Postfix hangs up: nothing after this is read. */
		f->cmode = BS_CM_IGNORE;
		f->data_txn = NULL;
		if (t != NULL)
			bs_smtp_txn_end(f, t, code);
		return;
	}
	if (!(e->flags & BS_PF_CHUNK)) {
		/* We read what followed as commands. */
		if (is_2xx(code))
			desync(f);
		return;
	}
	if (code == 500 || code == 502) {
		/* Unknown to the server: it read the chunk as commands. */
		desync(f);
		return;
	}
	if (t == NULL || t != f->active) {
		if (is_2xx(code))
			desync(f);
		return;
	}
	/* A failed chunk was read and dropped; the server drops the
	 * message (RFC 3030 2, Postfix discards up to LAST and resets). */
	if ((e->flags & BS_PF_LAST) || !is_2xx(code))
		bs_smtp_txn_end(f, t, code);
}

static void
reply_done(struct bs_smtp_flow *f, uint16_t code)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	struct bs_smtp_pend e;
	struct bs_smtp_txn *t;

	BS_CNT_INC(ctx->cnt, smtp_replies);
	if (f->cmode == BS_CM_DATA) {
		/*
		 * The server answered while we still read message text: it
		 * ended DATA where we did not (bare LF end-of-data, early
		 * error).  Its view and ours differ; stop inspecting.
		 */
		bs_smtp_uninspect(f, BS_WHY_DESYNC);
		return;
	}
	if (!f->greeted) {
		f->greeted = 1;
		if (ctx->ev.on_reply != NULL)
			ctx->ev.on_reply(ctx->arg, f, code,
				BS_SMTP_CMD_GREETING);
		return;
	}
	if (f->pend_n == 0) {
		BS_CNT_INC(ctx->cnt, smtp_reply_unsolicited);
		/* 421 may come at any time (the server is going away);
		 * any other reply answers a command we did not see. */
		if (code != 421)
			desync(f);
		return;
	}
	e = f->pend[f->pend_head];
	if (e.cmd == BS_SMTP_CMD_AUTH && code == 334) {
		/* A challenge: the client's next line is a SASL response. */
		f->cmode = BS_CM_SASL;
		bs_smtp_replay_hold(f);
		return;
	}
	if (e.cmd == BS_SMTP_CMD_BDAT && (e.flags & BS_PF_CHUNK) &&
		f->cmode == BS_CM_BDAT && f->pend_n == 1) {
		/* The BDAT whose chunk we are still reading: the server
		 * counted fewer bytes than we do. */
		desync(f);
		return;
	}
	bs_smtp_pend_pop(f);
	if (ctx->ev.on_reply != NULL)
		ctx->ev.on_reply(ctx->arg, f, code, e.cmd);
	if (code >= 300 && code < 400 &&
		!(e.cmd == BS_SMTP_CMD_DATA && code == 354)) {
		/* Only DATA (354) and AUTH (334) continue a command. */
		desync(f);
		return;
	}
	switch (e.cmd) {
	case BS_SMTP_CMD_EHLO:
	case BS_SMTP_CMD_HELO:
		reply_hello(f, e.cmd, code);
		break;
	case BS_SMTP_CMD_MAIL:
		reply_mail(f, &e, code);
		break;
	case BS_SMTP_CMD_RCPT:
		reply_rcpt(f, &e, code);
		break;
	case BS_SMTP_CMD_DATA:
		reply_data(f, code);
		break;
	case BS_SMTP_CMD_DOT:
		t = bs_smtp_txn_find(f, e.txn);
		if (t != NULL)
			bs_smtp_txn_end(f, t, code);
		break;
	case BS_SMTP_CMD_BDAT:
		reply_bdat(f, &e, code);
		break;
	case BS_SMTP_CMD_RSET:
		if (is_2xx(code) && f->active != NULL)
			bs_smtp_txn_end(f, f->active, 0);
		break;
	case BS_SMTP_CMD_STARTTLS:
		if (code == 220) {
			bs_smtp_uninspect(f, BS_WHY_STARTTLS);
			return;
		}
		if (is_2xx(code)) {
			desync(f);
			return;
		}
		f->cmode = BS_CM_CMD;
		bs_smtp_replay_hold(f);
		break;
	case BS_SMTP_CMD_AUTH:
		f->cmode = BS_CM_CMD;
		bs_smtp_replay_hold(f);
		break;
	default:
		break;
	}
}

void
bs_smtp_reply_line(struct bs_smtp_flow *f, const uint8_t *p, size_t n,
	void *pkt)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	uint16_t code;
	int final;

	(void)pkt;
	if (n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
		p[2] < '0' || p[2] > '9') {
		/* Not a reply line: ignore it, as clients do. */
		BS_CNT_INC(ctx->cnt, smtp_reply_malformed);
		return;
	}
	code = (uint16_t)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
	final = n == 3 || p[3] != '-';
	if (f->reply_lines == 0)
		f->ext_pending = 0;
	if (f->reply_lines < UINT16_MAX)
		f->reply_lines++;
	if (f->reply_lines > ctx->p.smtp_reply_lines_max) {
		if (!f->reply_over)
			BS_CNT_INC(ctx->cnt, smtp_reply_lines_over);
		f->reply_over = 1;
	} else if (f->reply_lines > 1 && f->greeted && f->pend_n > 0 &&
		f->pend[f->pend_head].cmd == BS_SMTP_CMD_EHLO && n > 4) {
		/* Lines after the first name the extensions. */
		f->ext_pending |= (uint8_t)ehlo_ext(p + 4, n - 4);
	}
	if (!final)
		return;
	f->reply_lines = 0;
	f->reply_over = 0;
	reply_done(f, code);
}
