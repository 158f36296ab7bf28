/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The published configuration: everything a reload can change that the
 * workers read (the settings snapshot, the compiled rule set with one
 * detection context per worker, and a slot for the verdict policy),
 * bundled in one immutable, generation-numbered object and published to
 * the workers with one RCU pointer swap (liburcu, QSBR flavour).
 *
 * Why an object of its own rather than a pointer to the rule set: a
 * message's Hyperscan stream and its match bitmap live across many
 * quiescent states (a message spans many packets and poll loops), and
 * they are only meaningful against the database they were opened on.
 * QSBR alone guarantees that a *pointer* read between two quiescent
 * states stays valid until the next one; a message must keep its set for
 * its whole life.  So each message pins the object it started on (a
 * per-worker count, written only by that worker with plain stores: no
 * atomic read-modify-write on the fast path) and the control thread
 * frees a retired object only when (1) a grace period has passed since it
 * was replaced, so no worker can newly pin it, and (2) every worker's pin
 * count on it is zero, so no message uses it.  A message that started on
 * the old set finishes on it.
 *
 * Threads: bs_pub_current(), bs_pubcfg_pin() and bs_pubcfg_unpin() run
 * on workers (no lock, no system call, no allocation).  Everything else
 * runs on the control thread or at start-up; one thread at a time
 * publishes (the control thread).
 */
#ifndef BACKSTOP_PUBCFG_H
#define BACKSTOP_PUBCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backstop/config.h"
#include "backstop/detect.h"
#include "backstop/rules.h"

/* Most workers one publication serves (the program's BS_MAX_WORKERS). */
#define BS_PUB_WORKERS_MAX 64

/* Messages pinned by one worker; a cache line each so workers never
 * share a written line. */
struct bs_pub_pin {
	uint64_t n;
} __attribute__((aligned(64)));

struct bs_pubcfg {
	uint64_t gen;                   /* set by bs_pub_publish() */
	struct bs_config cfg;           /* settings snapshot (owned) */
	struct bs_ruleset *rules;       /* NULL: detection off (owned) */
	unsigned int n_workers;
	/* One context (Hyperscan scratch, spare message and stream) per
	 * worker, allocated before publication; NULL when rules is NULL. */
	struct bs_detect_ctx *detect[BS_PUB_WORKERS_MAX];
	/* The verdict policy (struct bs_verdict_policy, verdict.h), built
	 * from cfg with the rest and freed with it.  Messages read it
	 * through their pinned set, like the rules. */
	void *policy;
	void (*policy_free)(void *policy);
	/* One verdict context per worker for that policy (OpenSSL
	 * contexts, the DKIM budget), built before publication like the
	 * detection contexts: a message is judged with the policy of the
	 * set it pinned. */
	struct bs_verdict_ctx *verdict[BS_PUB_WORKERS_MAX];
	/* Build facts, for status and metrics. */
	uint64_t compile_ns;            /* rule compile and scratch time */
	char rules_path[BS_CFG_STR_MAX];
	/* Pinned messages per worker (see above). */
	struct bs_pub_pin pin[BS_PUB_WORKERS_MAX];
	/* Control thread only: the retired list. */
	struct bs_pubcfg *next_retired;
};

struct bs_pub;
struct bs_verdict_ctx;

/*
 * Build a configuration for n_workers workers from the settings *cfg
 * (copied; the caller keeps its own), its verdict policy, and, when
 * cfg->detect_enabled, the
 * rule file at rules_path (already resolved by the caller), compiling it
 * and allocating one Hyperscan scratch per worker.  Returns the object,
 * unpublished, or NULL with a one-line reason in err ("file:line: rule
 * ID: reason" for a rule error).  Slow (a rule compile takes ms to s):
 * control thread or start-up only.  The caller owns the result until it
 * publishes it.
 */
struct bs_pubcfg *bs_pubcfg_build(const struct bs_config *cfg,
	const char *rules_path, unsigned int n_workers, char *err,
	size_t errlen);

/* Free an object that was never published, or that no worker and no
 * message uses any more.  NULL is fine. */
void bs_pubcfg_free(struct bs_pubcfg *pc);

/* Messages pinned on pc now, over all workers (control thread). */
uint64_t bs_pubcfg_pinned(const struct bs_pubcfg *pc);

/* A publisher for n_workers workers, with nothing published yet.
 * Returns NULL on allocation failure. */
struct bs_pub *bs_pub_create(unsigned int n_workers);

/*
 * Free the publisher, the current object and every retired one.  Only
 * after the workers stopped and every message ended (flows freed).
 */
void bs_pub_free(struct bs_pub *pub);

/*
 * Publish pc (which the publisher now owns): it gets the next
 * generation, replaces the current object with one pointer swap, and the
 * call waits for a grace period (every registered worker passed a
 * quiescent state), after which every worker starts new messages on pc.
 * The old object joins the retired list.  Returns pc's generation.
 * Control thread or start-up only (before workers run it does not wait).
 */
uint64_t bs_pub_publish(struct bs_pub *pub, struct bs_pubcfg *pc);

/*
 * Free the retired objects that no message uses any more.  Returns how
 * many objects are still retired (waiting for their last message).
 * Control thread.
 */
unsigned int bs_pub_reclaim(struct bs_pub *pub);

/*
 * Detection of worker w counts into cnt (its counter block): the current
 * set's context now, and every set published later.  Start-up, before
 * the workers run.
 */
void bs_pub_set_counters(struct bs_pub *pub, unsigned int w,
	struct bs_counters *cnt);

/* Retired objects not yet freed (control thread). */
unsigned int bs_pub_retired(const struct bs_pub *pub);

/*
 * The current object, or NULL before the first publication (not const
 * only so that messages can pin it: everything else in it is read-only
 * once published).  On a
 * worker (a registered QSBR reader): valid until its next quiescent
 * state; pin it to keep it longer.  On the control thread: valid until
 * it publishes again.
 */
struct bs_pubcfg *bs_pub_current(const struct bs_pub *pub);

/* Generation of the current object (0: none yet).  Any thread. */
uint64_t bs_pub_generation(const struct bs_pub *pub);

/*
 * Pin pc for one message of worker w (w < pc->n_workers).  Call between
 * bs_pub_current() and the worker's next quiescent state.  Owner worker
 * only: a plain increment of its own counter.
 */
static inline void
bs_pubcfg_pin(struct bs_pubcfg *pc, unsigned int w)
{
	pc->pin[w].n = pc->pin[w].n + 1;
}

/*
 * Unpin: the message of worker w that pinned pc has ended, and this
 * worker will not touch pc for it again.  A release store (a plain store
 * on x86), so the control thread that reads zero sees every use of pc
 * before it.  Owner worker only.
 */
static inline void
bs_pubcfg_unpin(struct bs_pubcfg *pc, unsigned int w)
{
	__atomic_store_n(&pc->pin[w].n, pc->pin[w].n - 1, __ATOMIC_RELEASE);
}

#endif /* BACKSTOP_PUBCFG_H */
