/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Detection: candidate gating, the Hyperscan stream of one message, and
 * the classification that combines rule matches with the structure the
 * MIME parser found.
 *
 * One stream per message, one target per scan call.  The MIME parser
 * hands over text one line at a time together with where it sits (header,
 * subject, body, dsn, original, ...).  Each line is one hs_scan_stream()
 * call, so when a match is reported we know the target of the line it
 * ended in, and keep it only if the rule applies there.  The alternative,
 * one stream per target, would multiply stream state (and the cost of
 * opening and closing) by the number of targets for no gain: the rule
 * pack's targets mostly overlap in the header and body.  Text of a target
 * that no rule names (e.g. the original's body) is not even decoded.
 *
 * A match spanning two lines is kept (rules use \s+ between words so that
 * wrapped sentences still match); it is attributed to the line it ends in.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

#include "backstop/counters.h"
#include "backstop/detect.h"
#include "rules_priv.h"

/* The raw header block ends the result too (copies stop at its length). */
static_assert(offsetof(struct bs_detect_result, mime) +
                        sizeof(struct bs_mime_info) + 8 >
                sizeof(struct bs_detect_result),
        "mime must be the last member of struct bs_detect_result");

struct bs_detect_ctx {
	const struct bs_ruleset *rs;
	hs_scratch_t *scratch;
	struct bs_counters *cnt;
	/*
	 * One message and one stream kept for reuse: a worker handles one
	 * message after another, and malloc + hs_open_stream per message
	 * cost a quarter of the classification time in the benchmark.
	 */
	struct bs_msg *spare;
	hs_stream_t *spare_stream;
	/* What this context holds (bs_detect_ctx_live()); leak checks. */
	struct bs_detect_live live;
};

/*
 * Consecutive lines of the same target are scanned in one hs_scan_stream()
 * call: a call costs about as much as scanning a hundred bytes, and lines
 * average 60.  A batch never mixes targets, so a match still falls in the
 * target it was found in.
 */
#define BS_DETECT_BATCH_MAX 2048

struct bs_msg {
	struct bs_detect_ctx *ctx;
	hs_stream_t *stream;
	bool null_sender; /* envelope MAIL FROM:<> */
	bool decided;     /* candidate decision taken */
	bool candidate;
	bool scanning;    /* stream open and healthy */
	bool skip;        /* not a candidate: ignore the rest */
	uint32_t cur_tgt; /* target of the line being scanned */
	uint32_t fail;
	uint64_t bytes, scanned;
	struct bs_mime mime;
	struct bs_mime_info info;
	uint32_t batch_tgt; /* target of the batched lines */
	size_t batch_len;   /* lines of one target, scanned together */
	uint8_t batch[BS_DETECT_BATCH_MAX];
	size_t hold_len; /* held header lines: [tgt][len16][bytes] */
	uint8_t hold[BS_DETECT_HOLD_MAX];
	uint64_t matched[]; /* one bit per rule */
};

/* Top-level facts that make a message a bounce candidate. */
#define GATE_FLAGS                                                             \
	(BS_AUTO_SUBMITTED | BS_AUTO_PRECEDENCE | BS_AUTO_REPORT_CT |          \
	        BS_AUTO_DAEMON_FROM | BS_AUTO_NULL_FROM | BS_AUTO_NULL_RP |    \
	        BS_AUTO_AUTOREPLY_HDR | BS_AUTO_FAILED_RCPT |                  \
	        BS_AUTO_NOTIFY_SENDER | BS_AUTO_SUBJECT)

#define CNT_INC(m, name)                                                       \
	do {                                                                   \
		if ((m)->ctx->cnt)                                             \
			BS_CNT_INC((m)->ctx->cnt, name);                       \
	} while (0)
#define CNT_ADD(m, name, n)                                                    \
	do {                                                                   \
		if ((m)->ctx->cnt)                                             \
			BS_CNT_ADD((m)->ctx->cnt, name, (n));                  \
	} while (0)

struct bs_detect_ctx *
bs_detect_ctx_create(const struct bs_ruleset *rs)
{
	struct bs_detect_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->rs = rs;
	if (rs->db && hs_alloc_scratch(rs->db, &ctx->scratch) != HS_SUCCESS) {
		free(ctx);
		return NULL;
	}
	return ctx;
}

void
bs_detect_ctx_set_counters(struct bs_detect_ctx *ctx, struct bs_counters *cnt)
{
	ctx->cnt = cnt;
}

void
bs_detect_ctx_free(struct bs_detect_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->spare_stream)
		hs_close_stream(ctx->spare_stream, ctx->scratch, NULL, NULL);
	free(ctx->spare);
	/* Open messages would now point to freed memory: a caller bug. */
	assert(ctx->live.msgs == 0);
	hs_free_scratch(ctx->scratch);
	free(ctx);
}

void
bs_detect_ctx_live(const struct bs_detect_ctx *ctx, struct bs_detect_live *out)
{
	*out = ctx->live;
}

size_t
bs_msg_size(const struct bs_detect_ctx *ctx)
{
	return sizeof(struct bs_msg) + ((ctx->rs->n + 63) / 64) * 8;
}

static int
on_match(unsigned int id, unsigned long long from, unsigned long long to,
        unsigned int flags, void *arg)
{
	struct bs_msg *msg = arg;
	const struct bs_rule *r = &msg->ctx->rs->rules[id];

	(void)from;
	(void)to;
	(void)flags;
	if (r->targets & msg->cur_tgt)
		msg->matched[id / 64] |= 1ull << (id % 64);
	return 0;
}

static void
scan_now(struct bs_msg *msg, uint32_t tgt, const uint8_t *p, size_t n)
{
	if (!msg->scanning || n == 0)
		return;
	msg->cur_tgt = tgt;
	msg->scanned += n;
	if (hs_scan_stream(msg->stream, (const char *)p, (unsigned int)n, 0,
	            msg->ctx->scratch, on_match, msg) != HS_SUCCESS) {
		msg->fail |= BS_DF_HS;
		msg->scanning = false;
	}
}

static void
batch_flush(struct bs_msg *msg)
{
	scan_now(msg, msg->batch_tgt, msg->batch, msg->batch_len);
	msg->batch_len = 0;
}

static void
scan(struct bs_msg *msg, uint32_t tgt, const uint8_t *p, size_t n)
{
	if (!msg->scanning)
		return;
	if (msg->batch_len > 0 &&
	        (tgt != msg->batch_tgt ||
	                msg->batch_len + n > sizeof(msg->batch)))
		batch_flush(msg);
	if (n > sizeof(msg->batch)) {
		scan_now(msg, tgt, p, n);
		return;
	}
	memcpy(msg->batch + msg->batch_len, p, n);
	msg->batch_len += n;
	msg->batch_tgt = tgt;
}

/* Take the candidate decision; a candidate gets its stream and the held
 * header lines. */
static void
decide(struct bs_msg *msg, bool candidate)
{
	const struct bs_ruleset *rs = msg->ctx->rs;

	msg->decided = true;
	msg->candidate = candidate;
	if (!candidate) {
		msg->skip = true;
		bs_mime_stop(&msg->mime);
		return;
	}
	CNT_INC(msg, detect_candidates);
	if (!rs->db) {
		msg->fail |= BS_DF_NO_RULES;
	} else if (msg->ctx->spare_stream) {
		msg->stream = msg->ctx->spare_stream;
		msg->ctx->spare_stream = NULL;
		msg->scanning = true;
	} else if (hs_open_stream(rs->db, 0, &msg->stream) != HS_SUCCESS) {
		msg->stream = NULL;
		msg->fail |= BS_DF_NOMEM;
		CNT_INC(msg, detect_fail_nomem);
	} else {
		msg->ctx->live.streams_alloc++;
		msg->scanning = true;
	}
	if (msg->stream) {
		msg->ctx->live.streams++;
		CNT_INC(msg, detect_streams_live);
	}
	for (size_t i = 0; i + 3 <= msg->hold_len;) {
		uint32_t tgt = msg->hold[i];
		size_t n = (size_t)msg->hold[i + 1] << 8 | msg->hold[i + 2];

		scan(msg, tgt, msg->hold + i + 3, n);
		i += 3 + n;
	}
	msg->hold_len = 0;
}

static void
on_text(void *arg, uint32_t tgt, const uint8_t *p, size_t n)
{
	struct bs_msg *msg = arg;

	if (!msg->decided) {
		if ((msg->info.auto_flags & GATE_FLAGS) == 0) {
			/* Hold the line until the header is complete. */
			if (n > 0xffff ||
			        msg->hold_len + 3 + n > sizeof(msg->hold)) {
				if (!(msg->fail & BS_DF_HOLD_FULL))
					CNT_INC(msg, detect_hold_full);
				msg->fail |= BS_DF_HOLD_FULL;
				return;
			}
			msg->hold[msg->hold_len] = (uint8_t)tgt;
			msg->hold[msg->hold_len + 1] = (uint8_t)(n >> 8);
			msg->hold[msg->hold_len + 2] = (uint8_t)n;
			memcpy(msg->hold + msg->hold_len + 3, p, n);
			msg->hold_len += 3 + n;
			return;
		}
		decide(msg, true);
	}
	scan(msg, tgt, p, n);
}

static void
on_header_done(void *arg)
{
	struct bs_msg *msg = arg;

	if (!msg->decided)
		decide(msg, msg->null_sender ||
		                    (msg->info.auto_flags & GATE_FLAGS) != 0);
}

struct bs_msg *
bs_msg_begin(struct bs_detect_ctx *ctx, const char *mail_from,
        const char *const *rcpts, unsigned int n_rcpts)
{
	struct bs_msg *msg = ctx->spare;

	ctx->spare = NULL;
	if (!msg) {
		msg = malloc(bs_msg_size(ctx));
		if (msg)
			ctx->live.msgs_alloc++;
	}
	(void)rcpts;
	(void)n_rcpts;
	if (!msg)
		return NULL;
	ctx->live.msgs++;
	/* The big buffers are left uninitialised: lengths guard them. */
	memset(msg, 0, offsetof(struct bs_msg, batch));
	msg->hold_len = 0;
	memset(msg->matched, 0, ((ctx->rs->n + 63) / 64) * 8);
	msg->ctx = ctx;
	msg->null_sender = mail_from && mail_from[0] == '\0';
	bs_mime_init(&msg->mime, &msg->info, on_text, on_header_done, msg,
	        ctx->rs->targets);
	CNT_INC(msg, detect_msgs);
	CNT_INC(msg, detect_msgs_live);
	if (msg->null_sender)
		decide(msg, true);
	return msg;
}

int
bs_msg_feed(struct bs_msg *msg, const uint8_t *buf, size_t len)
{
	msg->bytes += len;
	if (msg->skip)
		return 0;
	bs_mime_feed(&msg->mime, buf, len);
	return (msg->fail & (BS_DF_HS | BS_DF_NOMEM)) ? -EIO : 0;
}

static uint8_t
classify(struct bs_msg *msg, struct bs_detect_result *out)
{
	const struct bs_mime_info *in = &msg->info;
	const struct bs_ruleset *rs = msg->ctx->rs;
	uint32_t ev = 0, af = in->auto_flags;
	bool weak_dsn = false;

	if (msg->null_sender)
		ev |= BS_EV_NULL_SENDER;
	if (af & (BS_AUTO_NULL_RP | BS_AUTO_NULL_FROM))
		ev |= BS_EV_NULL_RP;
	if (af & BS_AUTO_DAEMON_FROM)
		ev |= BS_EV_DAEMON_FROM;
	if (af & BS_AUTO_SUBMITTED)
		ev |= BS_EV_AUTO_SUBMITTED;
	if (af & BS_AUTO_FAILED_RCPT)
		ev |= BS_EV_FAILED_RCPT;
	if (af & (BS_AUTO_AUTOREPLY_HDR | BS_AUTO_REPLIED))
		ev |= BS_EV_AUTOREPLY_HDR;
	if (in->dsn.present || strcmp(in->report_type, "delivery-status") == 0)
		ev |= BS_EV_REPORT_DSN;
	if (in->arf_present || strcmp(in->report_type, "feedback-report") == 0)
		ev |= BS_EV_REPORT_ARF;
	if (in->mdn_present ||
	        strcmp(in->report_type, "disposition-notification") == 0)
		ev |= BS_EV_REPORT_MDN;
	if (in->orig.present)
		ev |= BS_EV_ORIGINAL;

	for (unsigned int i = 0; i < rs->n; i++) {
		const struct bs_rule *r = &rs->rules[i];

		if (!(msg->matched[i / 64] & (1ull << (i % 64))))
			continue;
		out->n_rules++;
		if (out->n_rule_ids < BS_DETECT_RULES_MAX)
			out->rule_ids[out->n_rule_ids++] = r->id;
		switch (r->cls) {
		case BS_CLASS_DSN:
			if (r->weak)
				weak_dsn = true;
			else
				ev |= BS_EV_RULE_DSN;
			break;
		case BS_CLASS_AUTOREPLY:
			ev |= BS_EV_RULE_AUTOREPLY;
			break;
		case BS_CLASS_FEEDBACK:
			ev |= BS_EV_RULE_FEEDBACK;
			break;
		case BS_CLASS_CHALLENGE:
			ev |= BS_EV_RULE_CHALLENGE;
			break;
		default:
			break;
		}
	}
	if (weak_dsn && !(ev & BS_EV_RULE_DSN))
		ev |= BS_EV_RULE_DSN_WEAK;
	out->evidence = ev;

	if (!msg->candidate)
		return BS_CLASS_NONE;
	/* Structure first: a report part says what it is. */
	if (ev & BS_EV_REPORT_ARF)
		return BS_CLASS_FEEDBACK;
	if (ev & (BS_EV_REPORT_DSN | BS_EV_RULE_DSN))
		return BS_CLASS_DSN;
	/*
	 * A generic wording counts only beside a bounce's other marks, and
	 * not when the message calls itself an automatic reply (RFC 3834
	 * "auto-replied") and nothing stronger says bounce: a mailbox-full
	 * notice from a delivery agent's vacation-like responder is not an
	 * MTA's non-delivery report, and when in doubt we must not call a
	 * message a bounce (the verdict may reject it).
	 */
	if ((ev & BS_EV_RULE_DSN_WEAK) && !(af & BS_AUTO_REPLIED) &&
	        (ev & (BS_EV_NULL_SENDER | BS_EV_NULL_RP | BS_EV_DAEMON_FROM |
	                      BS_EV_FAILED_RCPT | BS_EV_ORIGINAL)))
		return BS_CLASS_DSN;
	if (ev & BS_EV_RULE_FEEDBACK)
		return BS_CLASS_FEEDBACK;
	if (ev & BS_EV_RULE_CHALLENGE)
		return BS_CLASS_CHALLENGE;
	if (ev &
	        (BS_EV_RULE_AUTOREPLY | BS_EV_AUTOREPLY_HDR | BS_EV_REPORT_MDN))
		return BS_CLASS_AUTOREPLY;
	return BS_CLASS_NONE;
}

/* End of data on the stream (end-anchored matches), keep it for reuse. */
static void
stream_done(struct bs_msg *msg, bool report)
{
	struct bs_detect_ctx *ctx = msg->ctx;
	hs_stream_t *s = msg->stream;

	msg->stream = NULL;
	ctx->live.streams--;
	if (ctx->cnt)
		ctx->cnt->v[BS_CNT_detect_streams_live]--;
	if (hs_reset_stream(s, 0, ctx->scratch,
	            report && msg->scanning ? on_match : NULL,
	            msg) != HS_SUCCESS) {
		msg->fail |= BS_DF_HS;
		hs_close_stream(s, ctx->scratch, NULL, NULL);
		ctx->live.streams_alloc--;
		return;
	}
	if (!ctx->spare_stream) {
		ctx->spare_stream = s;
	} else {
		hs_close_stream(s, ctx->scratch, NULL, NULL);
		ctx->live.streams_alloc--;
	}
}

/*
 * The message is done (ended or aborted), whatever state its parser
 * stopped in: keep or free the memory.  The parser holds nothing of its
 * own (charset converters belong to the thread), so an aborted message
 * leaves nothing behind; bs_mime_abort() is called all the same, so that
 * this stays true if the parser ever holds something.
 */
static void
msg_release(struct bs_msg *msg)
{
	struct bs_detect_ctx *ctx = msg->ctx;

	bs_mime_abort(&msg->mime);
	CNT_ADD(msg, detect_charset_opens, msg->mime.cs_opens);
	ctx->live.msgs--;
	if (ctx->cnt)
		ctx->cnt->v[BS_CNT_detect_msgs_live]--;
	if (!ctx->spare) {
		ctx->spare = msg;
	} else {
		free(msg);
		ctx->live.msgs_alloc--;
	}
}

int
bs_msg_end(struct bs_msg *msg, struct bs_detect_result *out)
{
	/* The result is written, not cleared: its raw header block (16 KiB)
	 * is copied only as far as it is used. */
	memset(out, 0, offsetof(struct bs_detect_result, mime));
	if (!msg->skip)
		bs_mime_end(&msg->mime);
	if (!msg->decided)
		on_header_done(msg);
	if (msg->stream) {
		batch_flush(msg);
		msg->cur_tgt = BS_TGT_BODY;
		stream_done(msg, true);
	}
	if (msg->fail & BS_DF_HS)
		CNT_INC(msg, detect_fail_hs);
	out->cls = classify(msg, out);
	out->candidate = msg->candidate;
	out->fail = msg->fail;
	out->bytes = msg->bytes;
	out->bytes_scanned = msg->scanned;
	memcpy(&out->mime, &msg->info, bs_mime_info_used(&msg->info));
	if (msg->ctx->cnt) {
		struct bs_counters *c = msg->ctx->cnt;

		BS_CNT_ADD(c, detect_bytes, msg->bytes);
		BS_CNT_ADD(c, detect_scanned_bytes, msg->scanned);
		if (msg->info.anomalies)
			BS_CNT_INC(c, detect_mime_anomaly);
		if (msg->info.orig.hdr_raw_cut)
			BS_CNT_INC(c, detect_orig_hdr_cut);
		switch (out->cls) {
		case BS_CLASS_DSN:
			BS_CNT_INC(c, detect_class_dsn);
			break;
		case BS_CLASS_AUTOREPLY:
			BS_CNT_INC(c, detect_class_autoreply);
			break;
		case BS_CLASS_FEEDBACK:
			BS_CNT_INC(c, detect_class_feedback);
			break;
		case BS_CLASS_CHALLENGE:
			BS_CNT_INC(c, detect_class_challenge);
			break;
		default:
			BS_CNT_INC(c, detect_class_none);
			break;
		}
	}
	msg_release(msg);
	return 0;
}

void
bs_msg_abort(struct bs_msg *msg)
{
	if (!msg)
		return;
	if (msg->stream)
		stream_done(msg, false);
	msg_release(msg);
}
