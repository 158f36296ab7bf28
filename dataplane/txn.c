/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transaction stage (see include/backstop/txn.h).
 *
 * Per flow, a short list of struct bs_txn_det (its head is the SMTP flow's user
 * pointer), one per message being scanned or awaiting its record: with
 * PIPELINING and CHUNKING the next message may begin before the previous
 * one's final reply, so two can be alive at once.  An entry exists only
 * from the message's first byte (on_message_begin) to its transaction's
 * end: most flows never pay for one, and detect.inflight_max bounds how
 * many messages a worker scans at once (fail-open: beyond it, messages
 * pass unscanned and are counted).
 *
 * Detection starts on on_message_begin, so it sees every message from
 * its first byte whatever the command: DATA (on the 354) or BDAT (at the
 * first chunk, before any reply when the client pipelines).
 *
 * At the end of the message, while it still pins its set, the message is
 * judged with that set's policy and this worker's verdict context of it
 * (inbound mail: the server inside, or on no known side), or, outbound
 * (the server outside) from a protected domain, marked to be learned:
 * its top-level Message-ID goes to the ledger when the remote server
 * accepts the message (2xx to the end of data), never before (a message
 * the remote refused cannot be bounced by it).
 *
 * Everything here runs on the worker that owns the flow, inside
 * bs_smtp_flow_input() or bs_txn_flow_free().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/ledger.h"
#include "backstop/storm.h"
#include "backstop/txn.h"

/* Room for the detection object appended to a record's JSON line. */
#define BS_DETECT_JSON_MAX (64u << 10)
/* The verdict's members: every reason name, the domain (at most 64). */
#define BS_TXN_VERDICT_JSON_MAX 1024

struct bs_txn_det {
	struct bs_txn_det *next;
	struct bs_msg *msg;   /* message being scanned, or NULL */
	struct bs_pubcfg *pc; /* the rule set msg pinned (while msg) */
	uint64_t gen;         /* generation it was scanned on */
	uint32_t seq;         /* its transaction */
	bool done;            /* res holds the result */
	bool judged;          /* vr holds its verdict */
	bool learn;           /* outbound from a protected domain: learn its
	                       * Message-ID when the remote accepts it */
	bool learned;         /* recorded in the ledger */
	uint8_t taken;        /* enum bs_txn_taken */
	uint8_t why;          /* enum bs_txn_failopen, when passed */
	struct bs_verdict_result vr;
	struct bs_detect_result res; /* last: copies stop at its used part */
};

/* Where the flow's list lives (the flow being freed has it detached). */
static struct bs_txn_det **
det_head(struct bs_txn_stage *w, struct bs_smtp_flow *f)
{
	if (w->closing_flow == f)
		return &w->closing;
	return NULL;
}

static struct bs_txn_det *
det_find(struct bs_txn_stage *w, struct bs_smtp_flow *f, uint32_t seq,
	struct bs_txn_det ***link)
{
	struct bs_txn_det **h = det_head(w, f), *d, *head;
	struct bs_txn_det **pp;

	head = h != NULL ? *h : bs_smtp_flow_user(f);
	pp = NULL;
	for (d = head; d != NULL; pp = &d->next, d = d->next)
		if (d->seq == seq)
			break;
	if (link != NULL)
		*link = pp;
	return d;
}

/* Unlink and free d (prev: the link to it, NULL if d is the head). */
static void
det_free(struct bs_txn_stage *w, struct bs_smtp_flow *f, struct bs_txn_det *d,
	struct bs_txn_det **prev)
{
	struct bs_txn_det **h = det_head(w, f);

	if (prev != NULL)
		*prev = d->next;
	else if (h != NULL)
		*h = d->next;
	else
		bs_smtp_flow_set_user(f, d->next);
	bs_blkpool_put(&w->det_pool, d);
	w->det_live--;
}

/* The message is done with its set: the control thread may free an old
 * one once no message pins it. */
static void
det_unpin(struct bs_txn_stage *w, struct bs_txn_det *d)
{
	bs_pubcfg_unpin(d->pc, w->worker);
	d->pc = NULL;
	w->detect_inflight--;
}

static void
det_abort_msg(struct bs_txn_stage *w, struct bs_txn_det *d)
{
	if (d->msg == NULL)
		return;
	bs_msg_abort(d->msg);
	d->msg = NULL;
	det_unpin(w, d);
}

/* The envelope sender's domain is protected (outbound learning). */
static bool
sender_protected(const struct bs_verdict_policy *pol,
	const struct bs_smtp_record *rec)
{
	const char *at = memrchr(rec->mail_from, '@', rec->mail_from_len);
	if (at == NULL)
		return false;
	size_t dl = rec->mail_from_len - (size_t)(at + 1 - rec->mail_from);
	return dl > 0 && bs_verdict_policy_protects(pol, at + 1, dl);
}

/*
 * The message is complete and d->res holds what detection found; d still
 * pins its set.  Inbound (server inside, or no side known): judge it.
 * Outbound: mark it for learning; never judge mail the protected side
 * sends.
 */
static const uint16_t failopen_counter[] = {
	[BS_FO_UNHELD] = BS_CNT_action_failopen_unheld,
	[BS_FO_DETECT] = BS_CNT_action_failopen_detect,
	[BS_FO_PIPELINED] = BS_CNT_action_failopen_pipelined,
	[BS_FO_SHARED] = BS_CNT_action_failopen_shared,
	[BS_FO_STATE] = BS_CNT_action_failopen_state,
	[BS_FO_NOMBUF] = BS_CNT_action_failopen_nombuf,
};

static void
pass_open(struct bs_txn_stage *w, struct bs_txn_det *d,
	enum bs_txn_failopen why)
{
	d->taken = BS_TAKEN_PASSED;
	d->why = why;
	w->cnt->v[failopen_counter[why]]++;
}

/*
 * d's verdict says refuse.  Ask the worker to refuse the segment being
 * processed when that is safe; otherwise pass the message, counted.
 * Returns true when the message does not pass (refusal requested or
 * joined).
 */
static bool
want_refusal(struct bs_txn_stage *w, struct bs_smtp_flow *f,
	struct bs_txn_det *d, const struct bs_smtp_record *rec, void *pkt)
{
	struct bs_txn_decision *dec = &w->dec;

	if (w->cfg->mode == BS_MODE_MONITOR) {
		d->taken = BS_TAKEN_MONITOR;
		BS_CNT_INC(w->cnt, action_monitor);
		return false;
	}
	if (dec->refuse) {
		/* A second message to refuse ended in the same segment:
		 * refusing the segment refuses both. */
		d->taken = BS_TAKEN_PENDING;
		return true;
	}
	/* Its bytes came from the wait hold: the packets that carried
	 * them were forwarded before the reply that released them. */
	if (pkt == NULL) {
		pass_open(w, d, BS_FO_UNHELD);
		return false;
	}
	/* A parse or scan failure: the verdict may rest on a part. */
	if (d->res.fail != 0) {
		pass_open(w, d, BS_FO_DETECT);
		return false;
	}
	/* The replies the refusal writes would answer a message that
	 * passes: one that ended earlier in this segment, or one of
	 * another transaction whose reply is still due (pipelined BDAT). */
	if (dec->n_pass > 0) {
		pass_open(w, d, BS_FO_SHARED);
		return false;
	}
	if (bs_smtp_flow_pending_other(f, rec->seq) > 0) {
		pass_open(w, d, BS_FO_PIPELINED);
		return false;
	}
	uint32_t owed = bs_smtp_flow_pending(f) + (rec->bdat ? 0u : 1u);
	dec->refuse = 1;
	dec->n_replies = (uint8_t)(owed > 255 ? 255 : owed);
	dec->seq = rec->seq;
	dec->vr = d->vr;
	d->taken = BS_TAKEN_PENDING;
	return true;
}

static void
judge(struct bs_txn_stage *w, struct bs_txn_det *d,
	const struct bs_smtp_record *rec)
{
	struct bs_pubcfg *pc = d->pc;
	const struct bs_verdict_policy *pol = pc->policy;

	if (rec->ep.server_inside == BS_SIDE_OUTSIDE) {
		d->learn = w->ledger_part != NULL && pol != NULL &&
			d->res.mime.message_id[0] != '\0' &&
			sender_protected(pol, rec);
		return;
	}
	struct bs_verdict_ctx *vc = pc->verdict[w->worker];
	if (vc == NULL)
		return;
	bs_verdict_eom(vc, &w->env, rec, &d->res, bs_txn_wall_ms(w) / 1000,
		&d->vr);
	d->judged = true;
}

/* The message's first byte comes next: start scanning it. */
static void
on_message_begin(void *arg, struct bs_smtp_flow *f,
	const struct bs_smtp_record *rec)
{
	struct bs_txn_stage *w = arg;
	struct bs_txn_det *d;

	if (w->pub == NULL)
		return;
	/* The set current now is the message's for its whole life. */
	struct bs_pubcfg *pc = bs_pub_current(w->pub);
	if (pc->detect[w->worker] == NULL)
		return; /* detection off in this generation */
	if (det_find(w, f, rec->seq, NULL) != NULL)
		return; /* cannot happen: one begin per message */
	if (w->detect_inflight >= pc->cfg.detect_inflight_max) {
		BS_CNT_INC(w->cnt, detect_inflight_cap);
		return;
	}
	d = bs_blkpool_get(&w->det_pool);
	if (d == NULL) {
		BS_CNT_INC(w->cnt, detect_msg_nomem);
		return;
	}
	d->done = false;
	d->judged = false;
	d->learn = false;
	d->learned = false;
	d->taken = BS_TAKEN_NONE;
	d->why = BS_FO_NONE;
	d->seq = rec->seq;
	d->msg = bs_msg_begin(pc->detect[w->worker], rec->mail_from, NULL, 0);
	if (d->msg == NULL) {
		bs_blkpool_put(&w->det_pool, d);
		BS_CNT_INC(w->cnt, detect_msg_nomem);
		return;
	}
	bs_pubcfg_pin(pc, w->worker);
	d->pc = pc;
	d->gen = pc->gen;
	w->detect_inflight++;
	w->det_live++;
	d->next = bs_smtp_flow_user(f);
	bs_smtp_flow_set_user(f, d);
}

static void
on_data(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec,
	const uint8_t *data, uint32_t len)
{
	struct bs_txn_det *d = det_find(arg, f, rec->seq, NULL);

	if (d != NULL && d->msg != NULL)
		bs_msg_feed(d->msg, data, len);
}

static void
on_end_of_message(void *arg, struct bs_smtp_flow *f,
	const struct bs_smtp_record *rec, void *pkt)
{
	struct bs_txn_stage *w = arg;
	struct bs_txn_det *d = det_find(w, f, rec->seq, NULL);
	bool passes = true;

	w->dec.n_eom++;
	if (d == NULL || d->msg == NULL) {
		/* Not scanned (detection off, no rule set, the inflight cap,
		 * no memory): no verdict, the message passes. */
		if (rec->ep.server_inside != BS_SIDE_OUTSIDE)
			BS_CNT_INC(w->cnt, action_unjudged);
		goto out;
	}
	uint64_t t0 = bs_mono_ns();
	bs_msg_end(d->msg, &d->res);
	d->msg = NULL;
	d->done = true;
	if (bs_class_is_bounce((enum bs_class)d->res.cls))
		BS_CNT_INC(w->cnt, txn_bounces);
	judge(w, d, rec);
	if (d->judged)
		BS_LAT_NOTE(w->cnt, verdict_latency, bs_mono_ns() - t0);
	det_unpin(w, d);
	/* The segment that completes the message (pkt) is held until here:
	 * the worker forwards it only when this call returns. */
	if (d->judged && d->vr.action == BS_ACTION_REFUSE)
		passes = !want_refusal(w, f, d, rec, pkt);
out:
	if (passes && w->dec.refuse) {
		/* A message that passes ended in the segment to refuse, after
		 * the refused one: refusing the segment would cut it (the
		 * client would get a 421 for a message it sent whole).  The
		 * segment passes, and the messages that wanted it refused
		 * with it (counted, the records say so). */
		w->dec.refuse = 0;
		bs_txn_decided(w, f, BS_TAKEN_PASSED, BS_FO_SHARED);
	}
	if (passes)
		w->dec.n_pass++;
}

const char *
bs_txn_taken_name(enum bs_txn_taken t)
{
	static const char *const n[] = {
		[BS_TAKEN_NONE] = "none", [BS_TAKEN_PENDING] = "pending",
		[BS_TAKEN_REFUSED] = "refused", [BS_TAKEN_MONITOR] = "monitor",
		[BS_TAKEN_RESET] = "reset", [BS_TAKEN_PASSED] = "passed",
	};
	return (unsigned int)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

const char *
bs_txn_failopen_name(enum bs_txn_failopen why)
{
	static const char *const n[] = {
		[BS_FO_NONE] = "none", [BS_FO_UNHELD] = "unheld",
		[BS_FO_DETECT] = "detect", [BS_FO_PIPELINED] = "pipelined",
		[BS_FO_SHARED] = "shared", [BS_FO_STATE] = "state",
		[BS_FO_NOMBUF] = "nombuf",
	};
	return (unsigned int)why < sizeof(n) / sizeof(n[0]) ? n[why] : "?";
}

void
bs_txn_decided(struct bs_txn_stage *w, struct bs_smtp_flow *f,
	enum bs_txn_taken taken, enum bs_txn_failopen why)
{
	for (struct bs_txn_det *d = bs_smtp_flow_user(f); d != NULL;
			d = d->next) {
		if (d->taken != BS_TAKEN_PENDING)
			continue;
		if (taken == BS_TAKEN_PASSED)
			pass_open(w, d, why);
		else
			d->taken = (uint8_t)taken;
	}
}

/*
 * Append ,"class":...,"detect":{...} before the closing brace of the
 * record's JSON line at w->json (n bytes, ending "}\n").  Returns the new
 * length, or n unchanged when it would not fit.
 */
static size_t
append_detect(struct bs_txn_stage *w, size_t n, const struct bs_txn_det *d)
{
	const struct bs_detect_result *r = &d->res;
	uint64_t gen = d->gen;
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
	/* The verdict's members (bounded: fixed names, a domain of the
	 * configuration) and whether the ledger learned the message. */
	if (d->judged && w->json_len - o > BS_TXN_VERDICT_JSON_MAX + 4) {
		w->json[o++] = ',';
		o += bs_verdict_result_json(&d->vr, w->json + o,
			w->json_len - o);
	}
	if (d->learned && w->json_len - o > 20) {
		memcpy(w->json + o, ",\"learned\":true", 15);
		o += 15;
	}
	if (d->taken != BS_TAKEN_NONE && w->json_len - o > 64) {
		int k2 = snprintf(w->json + o, w->json_len - o,
			",\"taken\":\"%s\"",
			bs_txn_taken_name((enum bs_txn_taken)d->taken));
		o += k2 > 0 ? (size_t)k2 : 0;
		if (d->taken == BS_TAKEN_PASSED) {
			k2 = snprintf(w->json + o, w->json_len - o,
				",\"failopen\":\"%s\"",
				bs_txn_failopen_name(
					(enum bs_txn_failopen)d->why));
			o += k2 > 0 ? (size_t)k2 : 0;
		}
	}
	if (o + 3 > w->json_len) {
		w->json[n - 2] = '}';
		w->json[n - 1] = '\n';
		w->json[n] = '\0';
		return n;
	}
	w->json[o++] = '}';
	w->json[o++] = '\n';
	w->json[o] = '\0';
	return o;
}

/* Write the record of a transaction that carried a message. */
static void
log_record(struct bs_txn_stage *w, const struct bs_smtp_record *rec,
	const struct bs_txn_det *d)
{
	int n = bs_smtp_record_json(rec, w->json, w->json_len);
	if (n < 0) {
		BS_CNT_INC(w->cnt, event_log_dropped);
		return;
	}
	size_t len = d != NULL && d->done ? append_detect(w, (size_t)n, d)
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
	struct bs_txn_det **prev;
	struct bs_txn_det *d = det_find(w, f, rec->seq, &prev);

	if (d != NULL)
		det_abort_msg(w, d); /* message never completed */
	/* Outbound mail the remote accepted: its id may come back quoted
	 * in a bounce or an auto-reply. */
	if (d != NULL && d->learn && rec->reply >= 200 && rec->reply < 300) {
		const char *id = d->res.mime.message_id;
		d->learned = bs_ledger_record(w->ledger_part, id, strlen(id),
			bs_txn_wall_ms(w) / 1000) == 0;
	}
	/* The log records transactions that carried a message; MAIL/RCPT
	 * exchanges that ended without one (RSET, rejections) do not. */
	if (w->events != NULL && rec->complete)
		log_record(w, rec, d);
	/* The detection state lives only as long as its transaction, so a
	 * connection kept open between messages holds none. */
	if (d != NULL)
		det_free(w, f, d, prev);
}

/* The verdict's environment (verdict.h): the shared ledger and storm
 * detector, read at this worker's wall clock. */
static enum bs_ledger_answer
env_ledger(void *arg, const char *id, size_t n)
{
	struct bs_txn_stage *w = arg;
	return bs_ledger_lookup(w->ledger, id, n, bs_txn_wall_ms(w) / 1000);
}

static bool
env_storm(void *arg, const char *rcpt, size_t n)
{
	struct bs_txn_stage *w = arg;
	return bs_storm_active(w->storm, rcpt, n, bs_txn_wall_ms(w));
}

static void
env_bounce(void *arg, const char *rcpt, size_t n)
{
	struct bs_txn_stage *w = arg;
	bs_storm_note(w->storm_part, rcpt, n);
}

void
bs_txn_set_shared(struct bs_txn_stage *w, struct bs_ledger *ledger,
	struct bs_storm *storm)
{
	w->ledger = ledger;
	w->ledger_part = ledger ? bs_ledger_part(ledger, w->worker) : NULL;
	w->storm = storm;
	w->storm_part = storm ? bs_storm_part(storm, w->worker) : NULL;
	/* No ledger, no storm: the verdict sees no environment for them
	 * (no reasons), as backstop-classify does. */
	w->env = (struct bs_verdict_env){
		.ledger = ledger ? env_ledger : NULL,
		.storm = storm ? env_storm : NULL,
		.bounce = storm ? env_bounce : NULL,
		.arg = w,
	};
}

static const struct bs_smtp_events stage_events = {
	.on_message_begin = on_message_begin,
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
	/* Detection entries come and go with each message: reused. */
	bs_blkpool_init(&w->det_pool, sizeof(struct bs_txn_det), 256);
	bs_smtp_params_from_config(&sp, cfg);
	sp.clock_offset_ms = clock_offset_ms;
	w->clock_offset_ms = clock_offset_ms;
	w->smtp = bs_smtp_ctx_create(&sp, &stage_events, w, w->cnt);
	if (w->smtp == NULL)
		return -ENOMEM;
	w->pub = pub;
	w->worker = worker;
	bs_txn_set_shared(w, NULL, NULL);
	if (want_events) {
		w->json_len = BS_SMTP_JSON_MAX(cfg->smtp_rcpt_max) +
			BS_DETECT_JSON_MAX + BS_TXN_VERDICT_JSON_MAX + 64;
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
	bs_blkpool_drain(&w->det_pool);
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
	struct bs_txn_det *d;

	if (sf == NULL)
		return;
	/* Ending the SMTP flow ends its open transactions (their records
	 * use the detection state) inside the free: the list is detached
	 * into the stage while it runs, then whatever is left goes. */
	w->closing = bs_smtp_flow_user(sf);
	w->closing_flow = sf;
	bs_smtp_flow_set_user(sf, NULL);
	bs_smtp_flow_free(w->smtp, sf, w->now_ms);
	while ((d = w->closing) != NULL) {
		det_abort_msg(w, d);
		w->closing = d->next;
		bs_blkpool_put(&w->det_pool, d);
		w->det_live--;
	}
	w->closing_flow = NULL;
}
