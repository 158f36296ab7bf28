/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Storm detection: a backscatter attack is a storm, one protected address
 * or domain suddenly receiving hundreds of bounces.  While a recipient or
 * its domain is in a storm, the verdict turns `unknown` into `backscatter`
 * (reason `storm`); evidence still wins (a valid tag or a ledger hit is
 * legit in a storm too).
 *
 * Rates come from count-min sketches (Cormode and Muthukrishnan, 2005),
 * one for addresses and one for domains, because they are linear: each
 * worker counts into its own pair with plain stores, and the slow path
 * sums the workers' pairs exactly.
 *
 *   worker w: bs_storm_note() -> sketch[epoch & 1] of w (d increments
 *             per key, no lock, no atomic RMW)
 *   slow path, every tick (control/storm_sum.c): flip the epoch, wait a
 *             QSBR grace period (no worker still writes the old half),
 *             add the old half into the current time slot and the
 *             window's sum, zero it; retire the slot that leaves the
 *             window; judge the tracked keys (start/end, logged and
 *             counted); publish a read-only snapshot (RCU pointer swap)
 *   worker:   bs_storm_active() reads the snapshot: the tracked keys in a
 *             storm (exact, by 64-bit keyed hash)
 *
 * A sketch cannot list its keys, so the keys to judge come from the
 * workers: a note whose key the snapshot does not track yet but whose
 * estimate has reached half the threshold queues a candidate (hash and
 * name, for the log) to the slow path through the worker's SPSC ring.
 *
 * Bounds (docs/LEDGER.md, "Storm"): memory is fixed at creation; an
 * estimate is never below the true count and exceeds it by more than
 * e/width x (bounces in the window) with probability at most e^-depth.
 * Keys are hashed with a random secret so collisions cannot be aimed.
 *
 * Contract 4: the verdict calls bs_storm_active() through its ops table.
 */
#ifndef BACKSTOP_STORM_H
#define BACKSTOP_STORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bs_counters;
struct bs_storm;
struct bs_storm_part;

/* Longest address hashed (RFC 5321 4.5.3.1.3: a path is at most 256). */
#define BS_STORM_ADDR_MAX 256
/* Bytes of an address kept for the start/end log lines. */
#define BS_STORM_NAME_MAX 96

struct bs_storm_params {
	uint32_t window_s;         /* rates are bounces per window */
	uint32_t slots;            /* the window moves in steps of window/slots */
	uint32_t rcpt_threshold;   /* bounces to one address that start a storm */
	uint32_t domain_threshold; /* bounces to one domain that start a storm */
	uint32_t rcpt_width;       /* counters per sketch row (2^n) */
	uint32_t domain_width;
	uint32_t depth;            /* sketch rows */
	uint32_t max_tracked;      /* keys judged at once (storms and near ones) */
	uint32_t n_parts;          /* workers that note */
	uint32_t tick_ms;          /* slow path's period */
	uint32_t ring_size;        /* candidates each worker may queue (2^n) */
	/* As in bs_ledger_params (storm start and end are LOG_NOTICE). */
	void (*log)(void *arg, int level, const char *msg);
	void *log_arg;
};

#define BS_STORM_DEF_WINDOW_S 300u
#define BS_STORM_DEF_SLOTS 10u
#define BS_STORM_DEF_RCPT_THRESHOLD 100u
#define BS_STORM_DEF_DOMAIN_THRESHOLD 1000u
#define BS_STORM_DEF_RCPT_WIDTH 4096u
#define BS_STORM_DEF_DOMAIN_WIDTH 256u
#define BS_STORM_DEF_DEPTH 4u
#define BS_STORM_DEF_MAX_TRACKED 256u
#define BS_STORM_DEF_TICK_MS 1000u
#define BS_STORM_DEF_RING_SIZE 64u

/* Fill *p with the defaults above (n_parts 1). */
void bs_storm_params_default(struct bs_storm_params *p);

/*
 * Create the detector: every sketch, slot and snapshot is allocated here
 * and never again.  Returns NULL with a message in err on bad parameters
 * (widths not powers of two, thresholds 0, slots > window...) or no
 * memory.  Start-up.
 */
struct bs_storm *bs_storm_create(const struct bs_storm_params *p,
	char *err, size_t errlen);
/* Free everything (stop the thread first).  NULL is fine. */
void bs_storm_destroy(struct bs_storm *s);

struct bs_storm_part *bs_storm_part(struct bs_storm *s, unsigned int idx);

/*
 * Worker: count one bounce (a message classed as a bounce, auto-reply or
 * challenge) to rcpt, a protected recipient.  Call it once per recipient,
 * before the verdict, with the address after BATV/SRS decoding if known
 * (a tag differs per message and would spread the count).  The address
 * is compared in lower case, without <>; its domain is the part after the
 * last '@'.  Never blocks, allocates or enters the kernel.  Only the
 * owner of p calls it.
 */
void bs_storm_note(struct bs_storm_part *p, const char *rcpt, size_t len);

/*
 * Is rcpt, or its domain, in a storm?  Reads the last published snapshot;
 * false when there is none or it is older than the staleness bound (the
 * slow path stopped: fail open).  now_ms is wall-clock milliseconds from
 * the same clock as the ticks.  Lock-free; a registered liburcu-qsbr
 * thread.  s == NULL answers false.
 */
bool bs_storm_active(const struct bs_storm *s, const char *rcpt, size_t len,
	uint64_t now_ms);

/*
 * Estimated bounces in the window to rcpt and to its domain, from the
 * last published snapshot (never below the true counts).  For tests,
 * tools and the control socket.  Same thread rules as bs_storm_active().
 */
void bs_storm_estimate(const struct bs_storm *s, const char *rcpt,
	size_t len, uint32_t *rcpt_count, uint32_t *domain_count);

/*
 * One slow-path step at wall-clock now_ms: collect, slide, judge,
 * publish.  For callers that run it themselves instead of the thread;
 * never both.  Calls synchronize_rcu(): the caller must not be an online
 * QSBR reader holding a read-side section (a registered thread is fine:
 * liburcu takes it offline for the wait).
 */
void bs_storm_tick(struct bs_storm *s, uint64_t now_ms);

/* Run bs_storm_tick() every tick_ms on a thread of its own (control). */
int bs_storm_start(struct bs_storm *s);
void bs_storm_stop(struct bs_storm *s);

struct bs_storm_stats {
	uint64_t notes;              /* summed over parts */
	uint64_t candidates_dropped; /* candidate ring full */
	uint64_t started, ended;
	uint64_t active;             /* storms now */
	uint64_t tracked;            /* keys judged now */
	uint64_t track_full;         /* candidates refused: max_tracked */
	uint64_t ticks;
	uint64_t bytes_part;         /* memory per worker part */
	uint64_t bytes_total;
};

void bs_storm_stats(const struct bs_storm *s, struct bs_storm_stats *st);
/* Add the storm rows (counters_ledger.h) into a summed counter block. */
void bs_storm_counters(const struct bs_storm *s, struct bs_counters *c);

#endif /* BACKSTOP_STORM_H */
