/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The server direction: reply lines ("250-..." continued, "250 ..."
 * final), the extensions of an EHLO reply, and what each final reply
 * means for the command it answers (accepted recipients, 354 for DATA,
 * 220 for STARTTLS, 334 for AUTH, the message's final code).
 *
 * Replies answer commands in order (RFC 5321 4.3, RFC 2920 3.1), so the
 * first complete reply is the greeting and each later one pops the
 * oldest pending command.
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
		return;
	}
	e = f->pend[f->pend_head];
	if (e.cmd == BS_SMTP_CMD_AUTH && code == 334) {
		/* A challenge: the client's next line is a SASL response. */
		f->cmode = BS_CM_SASL;
		bs_smtp_replay_hold(f);
		return;
	}
	f->pend_head = (f->pend_head + 1) % f->pend_cap;
	f->pend_n--;
	if (ctx->ev.on_reply != NULL)
		ctx->ev.on_reply(ctx->arg, f, code, e.cmd);
	t = bs_smtp_txn_find(f, e.txn);
	switch (e.cmd) {
	case BS_SMTP_CMD_EHLO:
	case BS_SMTP_CMD_HELO:
		if (is_2xx(code)) {
			memcpy(f->helo, f->helo_pending, f->helo_pending_len);
			f->helo[f->helo_pending_len] = '\0';
			f->helo_len = f->helo_pending_len;
			f->ext = e.cmd == BS_SMTP_CMD_EHLO ? f->ext_pending : 0;
		}
		break;
	case BS_SMTP_CMD_MAIL:
		if (t != NULL) {
			t->rec.mail_reply = code;
			if (!is_2xx(code))
				bs_smtp_txn_end(f, t, code);
		}
		break;
	case BS_SMTP_CMD_RCPT:
		if (t != NULL && e.rcpt < t->rec.nrcpt)
			t->rec.rcpt[e.rcpt].reply = code;
		break;
	case BS_SMTP_CMD_DATA:
		if (code == 354) {
			f->cmode = BS_CM_DATA;
			f->dstate = BS_DS_BOL;
			f->data_linelen = 0;
			f->data_bare_lf = 0;
			f->data_txn = t;
			bs_smtp_txn_envelope(f, t);
		} else {
			f->cmode = BS_CM_CMD;
			if (t != NULL)
				bs_smtp_txn_end(f, t, code);
		}
		bs_smtp_replay_hold(f);
		break;
	case BS_SMTP_CMD_DOT:
		if (t != NULL)
			bs_smtp_txn_end(f, t, code);
		break;
	case BS_SMTP_CMD_BDAT:
		if (t != NULL) {
			bs_smtp_txn_envelope(f, t);
			if (e.last || !is_2xx(code)) {
				/*
				 * After a failed chunk the server drops the
				 * message (RFC 3030 2): it ends here.
				 */
				if (!e.last && f->data_txn == t)
					f->data_txn = NULL;
				bs_smtp_txn_end(f, t, code);
			}
		}
		break;
	case BS_SMTP_CMD_STARTTLS:
		if (code == 220) {
			bs_smtp_uninspect(f, BS_WHY_STARTTLS);
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
	if (f->reply_lines < UINT32_MAX)
		f->reply_lines++;
	if (f->reply_lines > ctx->p.smtp_reply_lines_max) {
		if (!f->reply_over)
			BS_CNT_INC(ctx->cnt, smtp_reply_lines_over);
		f->reply_over = 1;
	} else if (f->reply_lines > 1 && f->greeted && f->pend_n > 0 &&
		f->pend[f->pend_head].cmd == BS_SMTP_CMD_EHLO && n > 4) {
		/* Lines after the first name the extensions. */
		f->ext_pending |= ehlo_ext(p + 4, n - 4);
	}
	if (!final)
		return;
	f->reply_lines = 0;
	f->reply_over = 0;
	reply_done(f, code);
}
