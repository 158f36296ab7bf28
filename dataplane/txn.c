/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transaction stage (see include/backstop/txn.h).
 *
 * Per flow, a struct flow_det (the SMTP flow's user pointer) holds the
 * message being scanned and the last result until its transaction's
 * record is written.  It exists only while a message is in flight or
 * awaiting its record: most flows never pay for it, and
 * detect.inflight_max bounds how many a worker holds (fail-open: beyond
 * it, messages pass unscanned and are counted).
 *
 * Everything here runs on the worker that owns the flow, inside
 * bs_smtp_flow_input() or bs_txn_flow_free().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/txn.h"

/* Room for the detection object appended to a record's JSON line. */
#define BS_DETECT_JSON_MAX (64u << 10)

struct flow_det {
	struct bs_msg *msg;   /* message being scanned, or NULL */
	struct bs_pubcfg *pc; /* the rule set msg pinned (while msg) */
	uint64_t gen;         /* generation res was scanned on */
	uint32_t seq;         /* transaction msg or res belongs to */
	bool done;            /* res holds the result of transaction seq */
	struct bs_detect_result res;
};

static void
det_end_msg(struct bs_txn_stage *w, struct flow_det *fd, bool abort_it)
{
	if (fd->msg == NULL)
		return;
	if (abort_it) {
		bs_msg_abort(fd->msg);
	} else {
		bs_msg_end(fd->msg, &fd->res);
		fd->done = true;
	}
	fd->msg = NULL;
	/* The message is done with its set: the control thread may free
	 * an old one once no message pins it. */
	bs_pubcfg_unpin(fd->pc, w->worker);
	fd->pc = NULL;
	w->detect_inflight--;
}

/* Every RCPT has its reply: the message is about to flow. */
static void
on_envelope(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec)
{
	struct bs_txn_stage *w = arg;
	if (w->pub == NULL)
		return;
	struct flow_det *fd = bs_smtp_flow_user(f);
	if (fd != NULL)
		det_end_msg(w, fd, true); /* a previous one never finished */
	/* The set current now is the message's for its whole life. */
	struct bs_pubcfg *pc = bs_pub_current(w->pub);
	if (pc->detect[w->worker] == NULL)
		return; /* detection off in this generation */
	if (w->detect_inflight >= pc->cfg.detect_inflight_max) {
		BS_CNT_INC(w->cnt, detect_inflight_cap);
		return;
	}
	if (fd == NULL) {
		fd = malloc(sizeof(*fd));
		if (fd == NULL) {
			BS_CNT_INC(w->cnt, detect_msg_nomem);
			return;
		}
		bs_smtp_flow_set_user(f, fd);
	}
	fd->done = false;
	fd->seq = rec->seq;
	fd->msg = bs_msg_begin(pc->detect[w->worker], rec->mail_from, NULL, 0);
	if (fd->msg == NULL) {
		BS_CNT_INC(w->cnt, detect_msg_nomem);
		return;
	}
	bs_pubcfg_pin(pc, w->worker);
	fd->pc = pc;
	fd->gen = pc->gen;
	w->detect_inflight++;
}

static void
on_data(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec,
	const uint8_t *data, uint32_t len)
{
	struct flow_det *fd = bs_smtp_flow_user(f);
	(void)arg;
	if (fd != NULL && fd->msg != NULL && fd->seq == rec->seq)
		bs_msg_feed(fd->msg, data, len);
}

static void
on_end_of_message(void *arg, struct bs_smtp_flow *f,
	const struct bs_smtp_record *rec, void *pkt)
{
	struct bs_txn_stage *w = arg;
	struct flow_det *fd = bs_smtp_flow_user(f);
	(void)pkt; /* the verdict stage will hold this packet */
	if (fd == NULL || fd->msg == NULL || fd->seq != rec->seq)
		return;
	det_end_msg(w, fd, false);
	if (bs_class_is_bounce((enum bs_class)fd->res.cls))
		BS_CNT_INC(w->cnt, txn_bounces);
}

/*
 * Append ,"class":...,"detect":{...} before the closing brace of the
 * record's JSON line at w->json (n bytes, ending "}\n").  Returns the new
 * length, or n unchanged when it would not fit.
 */
static size_t
append_detect(struct bs_txn_stage *w, size_t n, const struct bs_detect_result *r,
	uint64_t gen)
{
	if (n < 2 || w->json[n - 2] != '}')
		return n;
	size_t o = n - 2;
	int k = snprintf(w->json + o, w->json_len - o,
		",\"gen\":%llu,\"class\":\"%s\",\"detect\":",
		(unsigned long long)gen, bs_class_name((enum bs_class)r->cls));
	if (k < 0 || (size_t)k >= w->json_len - o)
		return n;
	o += (size_t)k;
	size_t need = bs_detect_result_json(r, NULL, w->json + o,
		w->json_len - o);
	if (need + 3 > w->json_len - o) {
		/* Cut: restore the record as it was. */
		w->json[n - 2] = '}';
		w->json[n - 1] = '\n';
		w->json[n] = '\0';
		return n;
	}
	o += need;
	w->json[o++] = '}';
	w->json[o++] = '\n';
	w->json[o] = '\0';
	return o;
}

/* Write the record of a transaction that carried a message. */
static void
log_record(struct bs_txn_stage *w, const struct bs_smtp_record *rec,
	const struct bs_detect_result *res, uint64_t gen)
{
	int n = bs_smtp_record_json(rec, w->json, w->json_len);
	if (n < 0) {
		BS_CNT_INC(w->cnt, event_log_dropped);
		return;
	}
	size_t len = res != NULL ? append_detect(w, (size_t)n, res, gen)
				 : (size_t)n;
	if (bs_evring_put(w->events, w->json, len) < 0) {
		BS_CNT_INC(w->cnt, event_log_dropped);
		return;
	}
	BS_CNT_INC(w->cnt, event_log_records);
}

static void
on_txn_end(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec)
{
	struct bs_txn_stage *w = arg;
	struct flow_det *fd = bs_smtp_flow_user(f);
	bool mine = fd != NULL && fd->seq == rec->seq;

	if (mine && fd->msg != NULL)
		det_end_msg(w, fd, true); /* message never completed */
	/* The log records transactions that carried a message; MAIL/RCPT
	 * exchanges that ended without one (RSET, rejections) do not. */
	if (w->events != NULL && rec->complete)
		log_record(w, rec, mine && fd->done ? &fd->res : NULL,
			mine ? fd->gen : 0);
	/* The detection state lives only as long as its transaction, so a
	 * connection kept open between messages holds none. */
	if (mine && fd != w->closing) {
		free(fd);
		bs_smtp_flow_set_user(f, NULL);
	}
}

static const struct bs_smtp_events stage_events = {
	.on_envelope = on_envelope,
	.on_data = on_data,
	.on_end_of_message = on_end_of_message,
	.on_txn_end = on_txn_end,
};

int
bs_txn_init(struct bs_txn_stage *w, const struct bs_config *cfg,
	struct bs_pub *pub, unsigned int worker, struct bs_counters *cnt,
	bool want_events, int64_t clock_offset_ms)
{
	struct bs_smtp_params sp;

	memset(w, 0, sizeof(*w));
	w->cfg = cfg;
	w->cnt = cnt;
	bs_smtp_params_from_config(&sp, cfg);
	sp.clock_offset_ms = clock_offset_ms;
	w->smtp = bs_smtp_ctx_create(&sp, &stage_events, w, w->cnt);
	if (w->smtp == NULL)
		return -ENOMEM;
	w->pub = pub;
	w->worker = worker;
	if (want_events) {
		w->json_len = BS_SMTP_JSON_MAX(cfg->smtp_rcpt_max) +
			BS_DETECT_JSON_MAX;
		w->json = malloc(w->json_len);
		w->events = bs_evring_create(BS_TXN_EVRING_SIZE);
		if (w->json == NULL || w->events == NULL)
			return -ENOMEM;
	}
	return 0;
}

void
bs_txn_fini(struct bs_txn_stage *w)
{
	bs_smtp_ctx_free(w->smtp);
	w->smtp = NULL;
	bs_evring_free(w->events);
	w->events = NULL;
	free(w->json);
	w->json = NULL;
}

struct bs_smtp_flow *
bs_txn_flow_new(struct bs_txn_stage *w, const struct bs_smtp_endpoints *ep)
{
	return bs_smtp_flow_new(w->smtp, ep);
}

void
bs_txn_flow_free(struct bs_txn_stage *w, struct bs_smtp_flow *sf)
{
	if (sf == NULL)
		return;
	/* Ending the SMTP flow ends its open transactions (their records
	 * use the detection state), then the detection state goes. */
	struct flow_det *fd = bs_smtp_flow_user(sf);
	/* on_txn_end runs inside the free and must leave fd to us. */
	w->closing = fd;
	bs_smtp_flow_free(w->smtp, sf, w->now_ms);
	w->closing = NULL;
	if (fd != NULL) {
		det_end_msg(w, fd, true);
		free(fd);
	}
}
