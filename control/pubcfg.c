/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The published configuration and its publisher (see
 * include/backstop/pubcfg.h for the design: RCU pointer swap, per-worker
 * message pins, reclamation by the control thread).
 *
 * liburcu's QSBR flavour: workers are registered readers that announce a
 * quiescent state once per poll loop, so synchronize_rcu() returns once
 * every worker has finished the loop iteration it was in when the new
 * pointer was stored.  The control thread is not a reader (it never
 * registers): it is the only writer and the only one that frees.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu-qsbr.h>

#include "backstop/counters.h"
#include "backstop/pubcfg.h"
#include "backstop/verdict.h"

struct bs_pub {
	struct bs_pubcfg *cur;       /* RCU-protected */
	uint64_t gen;                /* generation of cur (any thread reads) */
	unsigned int n_workers;
	struct bs_pubcfg *retired;   /* control thread only */
	unsigned int n_retired;
	struct bs_counters *cnt[BS_PUB_WORKERS_MAX]; /* workers' blocks */
};

static void
policy_free(void *p)
{
	bs_verdict_policy_free(p);
}

struct bs_pubcfg *
bs_pubcfg_build(const struct bs_config *cfg, const char *rules_path,
	unsigned int n_workers, char *err, size_t errlen)
{
	if (n_workers == 0 || n_workers > BS_PUB_WORKERS_MAX) {
		snprintf(err, errlen, "%u workers: 1..%u supported", n_workers,
			BS_PUB_WORKERS_MAX);
		return NULL;
	}
	/* Cache-line aligned: the pins are per-worker lines. */
	struct bs_pubcfg *pc = aligned_alloc(64,
		(sizeof(*pc) + 63) & ~(size_t)63);
	if (pc == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(pc, 0, sizeof(*pc));
	pc->n_workers = n_workers;
	if (bs_config_copy(&pc->cfg, cfg) < 0) {
		free(pc);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* The verdict policy (protected domains, keys, relays) is checked
	 * and compiled with the rest: a reload that cannot build it fails
	 * as a whole and the running generation stays. */
	pc->policy_free = policy_free;
	pc->policy = bs_verdict_policy_build(&pc->cfg, err, errlen);
	if (pc->policy == NULL) {
		bs_pubcfg_free(pc);
		return NULL;
	}
	for (unsigned int w = 0; w < n_workers; w++) {
		pc->verdict[w] = bs_verdict_ctx_create(pc->policy, NULL);
		if (pc->verdict[w] == NULL) {
			snprintf(err, errlen, "out of memory for the verdict "
				"context of worker %u", w);
			bs_pubcfg_free(pc);
			return NULL;
		}
	}
	if (!cfg->detect_enabled)
		return pc;
	if (rules_path == NULL || strlen(rules_path) >= sizeof(pc->rules_path)) {
		snprintf(err, errlen, "rule file path missing or too long");
		bs_pubcfg_free(pc);
		return NULL;
	}
	snprintf(pc->rules_path, sizeof(pc->rules_path), "%s", rules_path);
	uint64_t t0 = bs_mono_ns();
	pc->rules = bs_ruleset_load(rules_path, err, errlen);
	if (pc->rules == NULL) {
		bs_pubcfg_free(pc);
		return NULL;
	}
	/* Every worker's scratch before publication: a worker never
	 * allocates to start using a new set. */
	for (unsigned int w = 0; w < n_workers; w++) {
		pc->detect[w] = bs_detect_ctx_create(pc->rules);
		if (pc->detect[w] == NULL) {
			snprintf(err, errlen, "%s: out of memory for the "
				"Hyperscan scratch of worker %u", rules_path, w);
			bs_pubcfg_free(pc);
			return NULL;
		}
	}
	pc->compile_ns = bs_mono_ns() - t0;
	return pc;
}

void
bs_pubcfg_free(struct bs_pubcfg *pc)
{
	if (pc == NULL)
		return;
	for (unsigned int w = 0; w < BS_PUB_WORKERS_MAX; w++) {
		bs_detect_ctx_free(pc->detect[w]);
		bs_verdict_ctx_free(pc->verdict[w]);
	}
	bs_ruleset_free(pc->rules);
	if (pc->policy != NULL && pc->policy_free != NULL)
		pc->policy_free(pc->policy);
	bs_config_free(&pc->cfg);
	free(pc);
}

uint64_t
bs_pubcfg_pinned(const struct bs_pubcfg *pc)
{
	uint64_t n = 0;
	for (unsigned int w = 0; w < pc->n_workers; w++)
		n += __atomic_load_n(&pc->pin[w].n, __ATOMIC_ACQUIRE);
	return n;
}

struct bs_pub *
bs_pub_create(unsigned int n_workers)
{
	if (n_workers == 0 || n_workers > BS_PUB_WORKERS_MAX)
		return NULL;
	struct bs_pub *pub = calloc(1, sizeof(*pub));
	if (pub != NULL)
		pub->n_workers = n_workers;
	return pub;
}

void
bs_pub_free(struct bs_pub *pub)
{
	if (pub == NULL)
		return;
	bs_pubcfg_free(pub->cur);
	for (struct bs_pubcfg *r = pub->retired, *nx; r != NULL; r = nx) {
		nx = r->next_retired;
		bs_pubcfg_free(r);
	}
	free(pub);
}

uint64_t
bs_pub_publish(struct bs_pub *pub, struct bs_pubcfg *pc)
{
	uint64_t gen = pub->gen + 1;
	pc->gen = gen;
	for (unsigned int w = 0; w < pc->n_workers && w < pub->n_workers; w++) {
		if (pc->detect[w] != NULL)
			bs_detect_ctx_set_counters(pc->detect[w], pub->cnt[w]);
		bs_verdict_ctx_set_counters(pc->verdict[w], pub->cnt[w]);
	}
	/* The store is a release: a worker that reads the pointer sees a
	 * fully built object (rcu_dereference on its side). */
	struct bs_pubcfg *old = rcu_xchg_pointer(&pub->cur, pc);
	__atomic_store_n(&pub->gen, gen, __ATOMIC_RELEASE);
	if (old == NULL)
		return gen;
	/* After the grace period no worker holds an unpinned reference to
	 * old, and none can pin it again: only its messages keep it. */
	synchronize_rcu();
	old->next_retired = pub->retired;
	pub->retired = old;
	pub->n_retired++;
	bs_pub_reclaim(pub);
	return gen;
}

unsigned int
bs_pub_reclaim(struct bs_pub *pub)
{
	struct bs_pubcfg **pp = &pub->retired;
	while (*pp != NULL) {
		struct bs_pubcfg *r = *pp;
		if (bs_pubcfg_pinned(r) == 0) {
			*pp = r->next_retired;
			pub->n_retired--;
			bs_pubcfg_free(r);
		} else {
			pp = &r->next_retired;
		}
	}
	return pub->n_retired;
}

void
bs_pub_set_counters(struct bs_pub *pub, unsigned int w,
	struct bs_counters *cnt)
{
	if (w >= pub->n_workers)
		return;
	pub->cnt[w] = cnt;
	if (pub->cur != NULL && pub->cur->detect[w] != NULL)
		bs_detect_ctx_set_counters(pub->cur->detect[w], cnt);
	if (pub->cur != NULL)
		bs_verdict_ctx_set_counters(pub->cur->verdict[w], cnt);
}

unsigned int
bs_pub_retired(const struct bs_pub *pub)
{
	return pub->n_retired;
}

struct bs_pubcfg *
bs_pub_current(const struct bs_pub *pub)
{
	return rcu_dereference(pub->cur);
}

uint64_t
bs_pub_generation(const struct bs_pub *pub)
{
	return __atomic_load_n(&pub->gen, __ATOMIC_ACQUIRE);
}
