/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ledger under concurrency: producer threads record through their
 * own rings (as workers do), the writer (this thread) drains, inserts,
 * renews and expires, and reader threads (registered QSBR readers that
 * announce quiescent states, as workers do) look up all the while.
 *
 * Virtual time moves 100 s per round; the TTL is 1000 s, so a batch of
 * new ids lives 11 rounds, and every round renews a stable set and
 * expires a batch: entries are deleted and their memory recycled through
 * grace periods while readers walk the table.  The readers assert:
 *   - no lost insert: a stable id, or an id of a batch the writer has
 *     inserted and cannot have expired yet, is always a hit;
 *   - no false hit: ids never recorded, ids of batches not recorded yet,
 *     and ids older than the TTL are never hits.
 * At the end the counters must add up exactly (every record inserted or
 * renewed once, nothing evicted).  Run from the gcc build and, in suite
 * `ledger`, from the ASan/UBSan build (scripts/test.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include <urcu-qsbr.h>

#include "backstop/ledger.h"
#include "ledger_int.h"

#define PRODUCERS 2
#define READERS 2
#define ROUNDS 300
#define BATCH 400
#define STABLE 1000
#define TTL 1000
#define STEP 100
#define LIVE_ROUNDS (TTL / STEP) /* a batch survives rounds b..b+10 */
#define V0 1700000000ull

static struct bs_ledger *L;
static uint64_t round_go = 0;      /* producers may record this round */
static uint64_t round_started = 0; /* the writer steps at this round's time */
static uint64_t round_done = 0;    /* every record of this round inserted */
static uint64_t produced[PRODUCERS];
static int finished;
static uint64_t retries;

struct rstats {
	uint64_t must_hit, must_miss, skipped, lookups;
	char failure[256];
};

static uint64_t
ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void
st(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static uint64_t
vnow(uint64_t r)
{
	return V0 + r * STEP;
}

static int
churn_id(char *b, size_t n, uint64_t batch, unsigned int i)
{
	return snprintf(b, n, "<c.%llu.%u.%x@Out.Example.NET>",
		(unsigned long long)batch, i, i * 2654435761u);
}

static int
stable_id(char *b, size_t n, unsigned int i)
{
	return snprintf(b, n, "<stable-%u@example.net>", i);
}

static void *
producer(void *arg)
{
	unsigned int me = (unsigned int)(uintptr_t)arg;
	struct bs_ledger_part *part = bs_ledger_part(L, me);
	char id[96];
	for (uint64_t r = 1; r <= ROUNDS; r++) {
		while (ld(&round_go) < r)
			sched_yield();
		for (unsigned int i = me; i < BATCH + STABLE; i += PRODUCERS) {
			int n = i < BATCH ? churn_id(id, sizeof(id), r, i) :
					   stable_id(id, sizeof(id), i - BATCH);
			/* A full ring loses the record (counted); a worker
			 * would go on, the test wants every one in. */
			while (bs_ledger_record(part, id, (size_t)n, vnow(r)) ==
					-ENOSPC) {
				__atomic_fetch_add(&retries, 1, __ATOMIC_RELAXED);
				sched_yield();
			}
		}
		st(&produced[me], r);
	}
	return NULL;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *
reader(void *arg)
{
	struct rstats *rs = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uintptr_t)arg;
	char id[96];
	rcu_register_thread();
	while (!__atomic_load_n(&finished, __ATOMIC_ACQUIRE)) {
		uint64_t d = ld(&round_done);
		if (d == 0) {
			rcu_quiescent_state();
			continue;
		}
		uint64_t now = vnow(d);
		int n;
		enum bs_ledger_answer a;
		switch (rnd(&seed) % 5) {
		case 0: /* stable: always there once round 1 is done */
			n = stable_id(id, sizeof(id),
				(unsigned int)(rnd(&seed) % STABLE));
			a = bs_ledger_lookup(L, id, (size_t)n, now);
			rs->must_hit++;
			if (a != BS_LEDGER_HIT)
				snprintf(rs->failure, sizeof(rs->failure),
					"lost stable %s at round %llu: %d", id,
					(unsigned long long)d, a);
			break;
		case 1: { /* a live batch: inserted, not expirable yet */
			uint64_t lo = d > LIVE_ROUNDS - 1 ? d - (LIVE_ROUNDS - 1) : 1;
			uint64_t b = lo + rnd(&seed) % (d - lo + 1);
			n = churn_id(id, sizeof(id), b,
				(unsigned int)(rnd(&seed) % BATCH));
			a = bs_ledger_lookup(L, id, (size_t)n, now);
			if (ld(&round_started) > b + LIVE_ROUNDS) {
				rs->skipped++; /* the writer may expire it now */
				break;
			}
			rs->must_hit++;
			if (a != BS_LEDGER_HIT)
				snprintf(rs->failure, sizeof(rs->failure),
					"lost %s (batch %llu, round %llu): %d",
					id, (unsigned long long)b,
					(unsigned long long)d, a);
			break;
		}
		case 2: { /* a batch not recorded yet */
			uint64_t b = ld(&round_go) + 1 + rnd(&seed) % 3;
			n = churn_id(id, sizeof(id), b,
				(unsigned int)(rnd(&seed) % BATCH));
			a = bs_ledger_lookup(L, id, (size_t)n, now);
			if (ld(&round_go) >= b) {
				rs->skipped++;
				break;
			}
			rs->must_miss++;
			if (a == BS_LEDGER_HIT)
				snprintf(rs->failure, sizeof(rs->failure),
					"false hit on future %s", id);
			break;
		}
		case 3: { /* older than the TTL at `now` */
			if (d <= LIVE_ROUNDS + 1) {
				rs->skipped++;
				break;
			}
			uint64_t b = 1 + rnd(&seed) % (d - LIVE_ROUNDS - 1);
			n = churn_id(id, sizeof(id), b,
				(unsigned int)(rnd(&seed) % BATCH));
			a = bs_ledger_lookup(L, id, (size_t)n, now);
			rs->must_miss++;
			if (a == BS_LEDGER_HIT)
				snprintf(rs->failure, sizeof(rs->failure),
					"hit past the TTL: %s at round %llu", id,
					(unsigned long long)d);
			break;
		}
		default: /* never recorded */
			n = snprintf(id, sizeof(id), "<absent.%llx@out.example.net>",
				(unsigned long long)rnd(&seed));
			a = bs_ledger_lookup(L, id, (size_t)n, now);
			rs->must_miss++;
			if (a == BS_LEDGER_HIT)
				snprintf(rs->failure, sizeof(rs->failure),
					"false hit on %s", id);
			break;
		}
		rs->lookups++;
		if (rs->failure[0] != '\0')
			break;
		/* As a worker does once per poll loop. */
		if ((rs->lookups & 15) == 0)
			rcu_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

static void
test_concurrent(void **state)
{
	(void)state;
	char err[256];
	struct bs_ledger_params p;
	bs_ledger_params_default(&p);
	p.max_entries = 8192;
	p.ttl_s = TTL;
	p.n_parts = PRODUCERS;
	p.ring_size = 512; /* smaller than a round: rings fill and drain */
	L = bs_ledger_create(&p, V0, err, sizeof(err));
	assert_non_null(L);
	rcu_register_thread();

	pthread_t pt[PRODUCERS], rt[READERS];
	struct rstats rs[READERS];
	memset(rs, 0, sizeof(rs));
	for (unsigned int i = 0; i < PRODUCERS; i++)
		pthread_create(&pt[i], NULL, producer, (void *)(uintptr_t)i);
	for (unsigned int i = 0; i < READERS; i++)
		pthread_create(&rt[i], NULL, reader, &rs[i]);

	for (uint64_t r = 1; r <= ROUNDS; r++) {
		st(&round_started, r);
		st(&round_go, r);
		for (;;) {
			bool all = true;
			for (unsigned int i = 0; i < PRODUCERS; i++)
				all &= ld(&produced[i]) >= r;
			bs_ledger_tick(L, vnow(r));
			rcu_quiescent_state();
			if (all)
				break;
		}
		st(&round_done, r);
		bool failed = false;
		for (unsigned int i = 0; i < READERS; i++)
			failed |= rs[i].failure[0] != '\0';
		if (failed)
			break;
	}
	__atomic_store_n(&finished, 1, __ATOMIC_RELEASE);
	rcu_thread_offline();
	for (unsigned int i = 0; i < READERS; i++)
		pthread_join(rt[i], NULL);
	rcu_thread_online();
	for (unsigned int i = 0; i < READERS; i++)
		if (rs[i].failure[0] != '\0')
			fail_msg("reader %u: %s", i, rs[i].failure);
	for (unsigned int i = 0; i < PRODUCERS; i++)
		pthread_join(pt[i], NULL);

	uint64_t hit = 0, miss = 0, skip = 0;
	for (unsigned int i = 0; i < READERS; i++) {
		hit += rs[i].must_hit;
		miss += rs[i].must_miss;
		skip += rs[i].skipped;
	}
	printf("readers: %llu lookups that had to hit, %llu that had to miss, "
	       "%llu indeterminate; producer retries on a full ring %llu\n",
		(unsigned long long)hit, (unsigned long long)miss,
		(unsigned long long)skip, (unsigned long long)retries);
	assert_true(hit > 10000 && miss > 10000);

	struct bs_ledger_stats s;
	bs_ledger_stats(L, vnow(ROUNDS), &s);
	assert_int_equal(s.recorded, (uint64_t)ROUNDS * (BATCH + STABLE));
	assert_int_equal(s.ring_dropped, retries);
	assert_int_equal(s.inserts, STABLE + (uint64_t)ROUNDS * BATCH);
	assert_int_equal(s.refreshes, (uint64_t)STABLE * (ROUNDS - 1));
	assert_int_equal(s.evictions, 0);
	assert_int_equal(s.expirations,
		(uint64_t)(ROUNDS - LIVE_ROUNDS - 1) * BATCH);
	assert_int_equal(s.entries, STABLE + (uint64_t)(LIVE_ROUNDS + 1) * BATCH);

	/* And single-threaded, the final state is exactly right. */
	char id[96];
	for (uint64_t b = 1; b <= ROUNDS; b++)
		for (unsigned int i = 0; i < BATCH; i += 37) {
			int n = churn_id(id, sizeof(id), b, i);
			enum bs_ledger_answer a = bs_ledger_lookup(L, id,
				(size_t)n, vnow(ROUNDS));
			if ((a == BS_LEDGER_HIT) != (b + LIVE_ROUNDS >= ROUNDS))
				fail_msg("batch %llu: %d", (unsigned long long)b,
					a);
		}
	rcu_unregister_thread();
	bs_ledger_destroy(L);
}

/*
 * The grace period, deterministically: a reader that found an entry and
 * has not passed a quiescent state still holds it, so the writer step
 * that expires it must not finish (and the entry must not be reused)
 * until the reader quiesces.
 */
static int holding, release_reader, step_done;
static const struct ledger_ent *held;

static void *
holder(void *arg)
{
	(void)arg;
	rcu_register_thread();
	uint64_t key;
	char norm[64];
	int n = bs_msgid_normalise("<held@x>", 8, norm, sizeof(norm));
	key = bs_ledger_key(L, norm, (size_t)n);
	struct cds_lfht_iter it;
	rcu_read_lock();
	cds_lfht_first(L->ht, &it);
	held = ledger_ent_of(cds_lfht_iter_get_node(&it));
	if (held->key != key)
		held = NULL;
	__atomic_store_n(&holding, 1, __ATOMIC_RELEASE);
	/* Online, no quiescent state: a worker in the middle of a burst. */
	while (!__atomic_load_n(&release_reader, __ATOMIC_ACQUIRE))
		sched_yield();
	rcu_read_unlock();
	rcu_quiescent_state();
	rcu_unregister_thread();
	return NULL;
}

static void *
stepper(void *arg)
{
	(void)arg;
	rcu_register_thread();
	bs_ledger_tick(L, V0 + 1000); /* expires <held@x> */
	__atomic_store_n(&step_done, 1, __ATOMIC_RELEASE);
	rcu_unregister_thread();
	return NULL;
}

static void
test_grace_period(void **state)
{
	(void)state;
	char err[256];
	struct bs_ledger_params p;
	bs_ledger_params_default(&p);
	p.max_entries = 16;
	p.ttl_s = 10;
	L = bs_ledger_create(&p, V0, err, sizeof(err));
	assert_non_null(L);
	rcu_register_thread();
	assert_int_equal(bs_ledger_record(bs_ledger_part(L, 0), "<held@x>", 8,
		V0), 0);
	bs_ledger_tick(L, V0);
	rcu_thread_offline();

	pthread_t h, w;
	pthread_create(&h, NULL, holder, NULL);
	while (!__atomic_load_n(&holding, __ATOMIC_ACQUIRE))
		sched_yield();
	assert_non_null(held);
	pthread_create(&w, NULL, stepper, NULL);
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	/* Deleted from the table, but the step waits for the reader. */
	assert_int_equal(__atomic_load_n(&step_done, __ATOMIC_ACQUIRE), 0);
	__atomic_store_n(&release_reader, 1, __ATOMIC_RELEASE);
	pthread_join(w, NULL);
	pthread_join(h, NULL);
	assert_int_equal(step_done, 1);
	rcu_thread_online();
	struct bs_ledger_stats s;
	bs_ledger_stats(L, V0 + 1000, &s);
	assert_int_equal(s.expirations, 1);
	assert_int_equal(s.entries, 0);
	rcu_unregister_thread();
	bs_ledger_destroy(L);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grace_period),
		cmocka_unit_test(test_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
