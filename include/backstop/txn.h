/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The transaction stage: what happens to an SMTP transaction once the
 * engine (smtp.h) reports it.  The message streams into NDR detection
 * (detect.h) from its first byte (on_message_begin: DATA's 354 or the
 * first BDAT chunk) as the engine unstuffs it.  At the end of the message
 * it is judged (verdict.h) with the policy of the set it pinned, when its
 * server is inside or on no known side (inbound mail); an outbound
 * message (server outside) whose envelope sender is in a protected
 * domain has its Message-ID recorded in the outbound ledger (ledger.h)
 * once the remote server accepted it.  When the transaction ends, its
 * record, what detection found and the verdict become one JSON line in an
 * event ring (evring.h).
 *
 * One stage per worker, used by that worker only.  No EAL: the worker,
 * tests and fuzzers drive the same code.  The stage owns the worker's
 * SMTP engine context, so flows are created and freed through it.
 */
#ifndef BACKSTOP_TXN_H
#define BACKSTOP_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backstop/blkpool.h"
#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/detect.h"
#include "backstop/evring.h"
#include "backstop/pubcfg.h"
#include "backstop/smtp.h"
#include "backstop/verdict.h"

/* Event ring per worker: ~4 MiB holds thousands of records between two
 * drains (the backstop program drains every 10 ms). */
#define BS_TXN_EVRING_SIZE (4u << 20)

struct bs_txn_det; /* a message's detection state (txn.c) */

/* What was done about a message its verdict said to refuse (the event
 * log's "taken"). */
enum bs_txn_taken {
	BS_TAKEN_NONE = 0, /* nothing to do: the verdict's action is deliver */
	BS_TAKEN_PENDING,  /* the worker was asked to refuse (bs_txn_decided) */
	BS_TAKEN_REFUSED,  /* RST toward the server, 550 toward the client */
	BS_TAKEN_MONITOR,  /* mode monitor: logged and counted only */
	BS_TAKEN_RESET,    /* mode tap: both sides reset */
	BS_TAKEN_PASSED,   /* fail-open: passed, failopen says why */
};

/* Why a refusal fell back to passing the message (fail-open). */
enum bs_txn_failopen {
	BS_FO_NONE = 0,
	BS_FO_UNHELD,    /* the end came from the wait hold: packets gone */
	BS_FO_DETECT,    /* detection failed on the message */
	BS_FO_PIPELINED, /* replies of another transaction still due */
	BS_FO_SHARED,    /* a passing message ended in the same segment */
	BS_FO_STATE,     /* no room for the refused connection's state */
	BS_FO_NOMBUF,    /* no mbuf for the packets to inject */
};

/*
 * What the ends of messages during one bs_smtp_flow_input() call ask of
 * the worker (bs_txn_stage.dec): the worker clears it before the call
 * (bs_txn_decision_reset()), reads it after, acts, and reports what it
 * did with bs_txn_decided().  The stage decides, the worker acts: the
 * stage stays EAL-free.
 */
struct bs_txn_decision {
	uint8_t refuse;     /* refuse the segment just processed */
	uint8_t n_replies;  /* replies the client is owed, up to and
	                     * including the end of the refused message */
	uint16_t n_eom;     /* messages that ended in this call */
	uint16_t n_pass;    /* of them, passing, before the refusal */
	uint32_t seq;       /* the transaction refused */
	struct bs_verdict_result vr; /* its verdict (the 550's text) */
};

struct bs_txn_stage {
	const struct bs_config *cfg;
	struct bs_counters *cnt;
	struct bs_smtp_ctx *smtp;     /* reassembly + SMTP engine */
	struct bs_pub *pub;           /* rule sets (NULL: detection off) */
	unsigned int worker;          /* this stage's slot in each set */
	uint32_t detect_inflight;     /* messages being scanned */
	struct bs_evring *events;     /* NULL: no event log */
	char *json;                   /* formatting buffer for records */
	size_t json_len;
	uint64_t now_ms;              /* the owner's clock, set per loop */
	int64_t clock_offset_ms;      /* wall clock = now_ms + this */
	/* Shared evidence (NULL: none): the outbound ledger and the storm
	 * detector, and this worker's part of each. */
	struct bs_ledger *ledger;
	struct bs_ledger_part *ledger_part;
	struct bs_storm *storm;
	struct bs_storm_part *storm_part;
	struct bs_verdict_env env;    /* the verdict's view of them */
	struct bs_txn_decision dec;   /* the current call's (see above) */
	uint32_t det_live;            /* detection entries allocated (0
	                               * once every flow is freed) */
	struct bs_txn_det *closing;   /* detection state of the flow being
	                               * freed (its records end inside) */
	struct bs_smtp_flow *closing_flow;
	struct bs_blkpool det_pool;   /* entries given back, reused */
};

/*
 * Set up *t: an SMTP engine context from cfg, an event ring when
 * want_events.  Detection uses the rule sets published by pub (NULL: no
 * detection), with the per-worker context of slot worker: each message
 * pins the set current at its envelope and finishes on it, so a reload
 * never changes the rules under a message (pubcfg.h).  cnt is the owner's
 * counter block.  clock_offset_ms turns the owner's clock into wall-clock
 * time in records.  Returns 0 or -ENOMEM (then call bs_txn_fini()).
 * Start-up.
 */
int bs_txn_init(struct bs_txn_stage *t, const struct bs_config *cfg,
	struct bs_pub *pub, unsigned int worker, struct bs_counters *cnt,
	bool want_events, int64_t clock_offset_ms);

/*
 * The shared evidence the verdict and outbound learning use: the ledger
 * (NULL: none; lookups and records go to its part of this worker) and
 * the storm detector (NULL: no storm mode).  Start-up, before the first
 * packet; both must outlive the stage's last message.
 */
void bs_txn_set_shared(struct bs_txn_stage *t, struct bs_ledger *ledger,
	struct bs_storm *storm);

/*
 * The owner's clock for this loop: now_ms (its monotonic clock, ms) and
 * the offset that turns it into wall-clock time (records, BATV day
 * stamps, the ledger's TTL, storm windows).  The owner refreshes the
 * offset from the real-time clock regularly, so the wall clock stays
 * right over months of TSC drift and NTP steps.  Owner only.
 */
static inline void
bs_txn_set_clock(struct bs_txn_stage *t, uint64_t now_ms, int64_t offset_ms)
{
	t->now_ms = now_ms;
	if (offset_ms != t->clock_offset_ms) {
		t->clock_offset_ms = offset_ms;
		bs_smtp_ctx_set_clock_offset(t->smtp, offset_ms);
	}
}

/* Wall-clock milliseconds of the stage's clock. */
static inline uint64_t
bs_txn_wall_ms(const struct bs_txn_stage *t)
{
	return t->now_ms + (uint64_t)t->clock_offset_ms;
}

/* Before each bs_smtp_flow_input() call of the owner. */
static inline void
bs_txn_decision_reset(struct bs_txn_stage *t)
{
	t->dec.refuse = 0;
	t->dec.n_eom = 0;
	t->dec.n_pass = 0;
}

/*
 * The worker's report on the refusal it was asked for in the last call
 * on f: taken (BS_TAKEN_REFUSED, _RESET or _PASSED) and, for PASSED, why
 * (counted here).  Every message of f waiting for it gets it.  Then, for
 * a refusal, the worker ends the flow's engine state (bs_txn_flow_free()):
 * the records say what was done.  Owner only.
 */
void bs_txn_decided(struct bs_txn_stage *t, struct bs_smtp_flow *f,
	enum bs_txn_taken taken, enum bs_txn_failopen why);

/* "refused", "monitor", ...; "unheld", "detect", ... (event log). */
const char *bs_txn_taken_name(enum bs_txn_taken t);
const char *bs_txn_failopen_name(enum bs_txn_failopen w);

/* Release what bs_txn_init() made; every flow must be freed before. */
void bs_txn_fini(struct bs_txn_stage *t);

/* Start following a flow (NULL: no memory; pass it untracked). */
struct bs_smtp_flow *bs_txn_flow_new(struct bs_txn_stage *t,
	const struct bs_smtp_endpoints *ep);

/*
 * End a flow: its open transactions end (their records are written), then
 * its detection state and engine state are freed.  NULL is a no-op.
 */
void bs_txn_flow_free(struct bs_txn_stage *t, struct bs_smtp_flow *f);

#endif /* BACKSTOP_TXN_H */
