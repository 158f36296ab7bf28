/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Benchmark of the ledger and storm detection (suite perf; not run by
 * scripts/test.sh).  Prints, as medians of several runs of batch
 * medians:
 *   - bs_ledger_lookup() ns: hit and miss, one thread alone, and the same
 *     with a writer thread inserting and evicting as fast as it can
 *     (side by side, alternating, so the machine's noise hits both);
 *   - bs_ledger_record() ns on the worker (normalise, hash, ring);
 *   - bs_storm_note() and bs_storm_active() ns (no storm; in a storm);
 *   - memory: what the ledger allocated, and the resident growth.
 *
 *   bench_ledger [ENTRIES [RUNS]]     (default 1048576 entries, 5 runs)
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <urcu-qsbr.h>

#include "backstop/ledger.h"
#include "backstop/storm.h"

#define BATCH 1024
#define BATCHES 300
#define NIDS 65536
#define V0 1700000000ull

/* The thread's CPU time: on a shared machine, time spent preempted is
 * not the code's (cache and SMT sharing still are). */
static uint64_t
ns_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static int
id(char *b, size_t n, const char *tag, uint64_t i)
{
	return snprintf(b, n, "<%016llx.%s.%llu@mail.Example.COM>",
		(unsigned long long)(i * 0x9e3779b97f4a7c15ull), tag,
		(unsigned long long)i);
}

static struct bs_ledger *L;
static char (*present)[64], (*absent)[64];
static int plen[NIDS], alen[NIDS];
static volatile int writer_stop;
static uint64_t writer_inserts;
static double writer_rate; /* new ids per second of wall time */

static uint64_t
wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The writer at full speed: every step inserts 256 new ids (each evicts
 * the oldest: the table is full) and renews 256 of the looked-up set, so
 * that set stays among the newest and keeps hitting.
 */
static void *
writer(void *arg)
{
	(void)arg;
	rcu_register_thread();
	struct bs_ledger_part *p = bs_ledger_part(L, 1);
	char b[64];
	static uint64_t i = 1ull << 40;
	uint64_t i0 = i, j = 0, t0 = wall_ns();
	while (!writer_stop) {
		for (int k = 0; k < 256; k++) {
			int n = id(b, sizeof(b), "new", i++);
			bs_ledger_record(p, b, (size_t)n, V0 + 10);
			j = (j + 1) % NIDS;
			bs_ledger_record(p, present[j], (size_t)plen[j],
				V0 + 10);
		}
		bs_ledger_tick(L, V0 + 10);
		rcu_quiescent_state();
	}
	writer_inserts = i - i0;
	writer_rate = (double)writer_inserts * 1e9 / (double)(wall_ns() - t0);
	rcu_unregister_thread();
	return NULL;
}

/* Median ns per lookup over BATCHES batches of BATCH lookups. */
static double
lookups(char (*ids)[64], const int *len, enum bs_ledger_answer want,
	uint64_t *seed)
{
	static double per[BATCHES];
	unsigned int bad = 0;
	for (int b = 0; b < BATCHES; b++) {
		uint32_t idx[BATCH];
		for (int k = 0; k < BATCH; k++) {
			*seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
			idx[k] = (uint32_t)(*seed >> 33) % NIDS;
		}
		uint64_t t = ns_now();
		for (int k = 0; k < BATCH; k++)
			bad += bs_ledger_lookup(L, ids[idx[k]],
				(size_t)len[idx[k]], V0 + 10) != want;
		per[b] = (double)(ns_now() - t) / BATCH;
		rcu_quiescent_state();
	}
	if (bad != 0)
		fprintf(stderr, "bench: %u wrong answers\n", bad);
	return median(per, BATCHES);
}

int
main(int argc, char **argv)
{
	uint32_t entries = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 0) :
				      1048576;
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	if (runs < 1 || runs > 50)
		runs = 5;
	char err[256];
	long rss0 = rss_kib();
	struct bs_ledger_params p;
	bs_ledger_params_default(&p);
	p.max_entries = entries;
	p.ttl_s = 86400;
	p.n_parts = 2;
	p.ring_size = 1 << 16;
	L = bs_ledger_create(&p, V0, err, sizeof(err));
	if (L == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rcu_register_thread();
	char b[64];
	struct bs_ledger_part *w0 = bs_ledger_part(L, 0);
	for (uint64_t i = 0; i < entries; i++) {
		int n = id(b, sizeof(b), "old", i);
		while (bs_ledger_record(w0, b, (size_t)n, V0) == -ENOSPC)
			bs_ledger_tick(L, V0);
	}
	bs_ledger_tick(L, V0);
	present = malloc(sizeof(*present) * NIDS);
	absent = malloc(sizeof(*absent) * NIDS);
	for (int k = 0; k < NIDS; k++) {
		plen[k] = id(present[k], sizeof(present[k]), "look", (uint64_t)k);
		alen[k] = id(absent[k], sizeof(absent[k]), "never", (uint64_t)k);
	}
	/* The worker side: record the looked-up set (ids prepared). */
	double rec[50];
	for (int r = 0; r < runs; r++) {
		uint64_t t = ns_now();
		for (int k = 0; k < NIDS; k++)
			if (bs_ledger_record(w0, present[k], (size_t)plen[k],
					V0 + 1) != 0)
				abort();
		rec[r] = (double)(ns_now() - t) / NIDS;
		bs_ledger_tick(L, V0 + 1);
	}
	long rss1 = rss_kib();
	struct bs_ledger_stats st;
	bs_ledger_stats(L, V0, &st);
	printf("ledger: %u entries, %llu bytes allocated (%.1f per entry), "
	       "resident +%ld KiB (%.1f B per entry)\n", entries,
		(unsigned long long)st.bytes, (double)st.bytes / entries,
		rss1 - rss0, (double)(rss1 - rss0) * 1024 / entries);
	printf("record (worker: normalise, SipHash, ring): %.1f ns\n",
		median(rec, runs));

	uint64_t seed = 42;
	double ha[50], ma[50], hw[50], mw[50];
	for (int r = 0; r < runs; r++) {
		ha[r] = lookups(present, plen, BS_LEDGER_HIT, &seed);
		ma[r] = lookups(absent, alen, BS_LEDGER_WARMING, &seed);
		writer_stop = 0;
		pthread_t t;
		pthread_create(&t, NULL, writer, NULL);
		usleep(2000);
		hw[r] = lookups(present, plen, BS_LEDGER_HIT, &seed);
		mw[r] = lookups(absent, alen, BS_LEDGER_WARMING, &seed);
		writer_stop = 1;
		rcu_thread_offline();
		pthread_join(t, NULL);
		rcu_thread_online();
		printf("run %d: alone hit %.1f miss %.1f ns | writer running: "
		       "hit %.1f miss %.1f ns (it inserted and evicted %llu, "
		       "%.0f/s)\n", r, ha[r], ma[r], hw[r], mw[r],
			(unsigned long long)writer_inserts, writer_rate);
	}
	printf("lookup, median of %d runs: alone hit %.1f ns, miss %.1f ns; "
	       "writer running: hit %.1f ns, miss %.1f ns\n", runs,
		median(ha, runs), median(ma, runs), median(hw, runs),
		median(mw, runs));
	rcu_unregister_thread();
	bs_ledger_destroy(L);

	/* What of that is the table: normalise and hash alone, and a
	 * table small enough to stay in cache. */
	uint8_t key[crypto_shorthash_KEYBYTES] = { 1 };
	double hh[50], sm[50];
	for (int r = 0; r < runs; r++) {
		char norm[BS_MSGID_MAX];
		unsigned char h[8];
		uint64_t acc = 0, t = ns_now();
		for (int k = 0; k < NIDS; k++) {
			int n = bs_msgid_normalise(present[k], (size_t)plen[k],
				norm, sizeof(norm));
			crypto_shorthash(h, (unsigned char *)norm, (size_t)n, key);
			acc += h[0];
		}
		hh[r] = (double)(ns_now() - t) / NIDS;
		if (acc == 1)
			printf(" ");
	}
	p.max_entries = 4096;
	L = bs_ledger_create(&p, V0, err, sizeof(err));
	rcu_register_thread();
	for (int k = 0; k < 4096; k++)
		bs_ledger_record(bs_ledger_part(L, 0), present[k],
			(size_t)plen[k], V0);
	bs_ledger_tick(L, V0);
	for (int r = 0; r < runs; r++) {
		uint64_t t = ns_now();
		unsigned int bad = 0;
		for (int rep = 0; rep < 16; rep++)
			for (int k = 0; k < 4096; k++)
				bad += bs_ledger_lookup(L, present[k],
					(size_t)plen[k], V0 + 10) != BS_LEDGER_HIT;
		sm[r] = (double)(ns_now() - t) / (16 * 4096);
		if (bad)
			fprintf(stderr, "bench: %u wrong\n", bad);
		rcu_quiescent_state();
	}
	printf("of which: normalise + SipHash %.1f ns; a lookup in a 4096-entry "
	       "(cache-resident) ledger %.1f ns\n", median(hh, runs),
		median(sm, runs));
	rcu_unregister_thread();
	bs_ledger_destroy(L);

	/* Storm: note and active. */
	struct bs_storm_params sp;
	bs_storm_params_default(&sp);
	struct bs_storm *s = bs_storm_create(&sp, err, sizeof(err));
	rcu_register_thread();
	struct bs_storm_part *spt = bs_storm_part(s, 0);
	static char addr[NIDS][48], saddr[NIDS][48];
	static int al[NIDS], sl[NIDS];
	for (int k = 0; k < NIDS; k++) {
		al[k] = snprintf(addr[k], sizeof(addr[k]),
			"user%d@D%d.Example.COM", k, k % 4096);
		sl[k] = snprintf(saddr[k], sizeof(saddr[k]),
			"user%d@Storm.Example", k);
	}
	uint64_t now_ms = V0 * 1000;
	bs_storm_tick(s, now_ms);
	double note_ns[50], idle_ns[50], storm_ns[50];
	for (int r = 0; r < runs; r++) {
		uint64_t t = ns_now();
		for (int k = r * 1024; k < (r + 1) * 1024; k++)
			bs_storm_note(spt, addr[k], (size_t)al[k]);
		note_ns[r] = (double)(ns_now() - t) / 1024;
		bs_storm_tick(s, now_ms += 1000);
		unsigned int on = 0;
		t = ns_now();
		for (int k = 0; k < NIDS; k++)
			on += bs_storm_active(s, addr[k], (size_t)al[k], now_ms);
		idle_ns[r] = (double)(ns_now() - t) / NIDS;
		if (on != 0)
			fprintf(stderr, "bench: %u false storms\n", on);
	}
	/* A domain storm: every question hashes and probes twice. */
	for (int k = 0; k < 2000; k++)
		bs_storm_note(spt, saddr[k], (size_t)sl[k]);
	bs_storm_tick(s, now_ms += 1000);
	bs_storm_note(spt, saddr[0], (size_t)sl[0]);
	bs_storm_tick(s, now_ms += 1000);
	for (int r = 0; r < runs; r++) {
		unsigned int on = 0;
		uint64_t t = ns_now();
		for (int k = 0; k < NIDS; k++)
			on += bs_storm_active(s, saddr[k], (size_t)sl[k],
				now_ms);
		storm_ns[r] = (double)(ns_now() - t) / NIDS;
		if (on != NIDS)
			fprintf(stderr, "bench: domain storm not seen (%u)\n",
				on);
	}
	struct bs_storm_stats ss;
	bs_storm_stats(s, &ss);
	printf("storm: note %.1f ns; active %.1f ns (no storm), %.1f ns (in "
	       "a storm); %llu bytes per worker, %llu in all (1 worker)\n",
		median(note_ns, runs), median(idle_ns, runs),
		median(storm_ns, runs), (unsigned long long)ss.bytes_part,
		(unsigned long long)ss.bytes_total);
	rcu_unregister_thread();
	bs_storm_destroy(s);
	free(present);
	free(absent);
	return 0;
}
