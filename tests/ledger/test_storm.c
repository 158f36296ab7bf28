/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Storm detection (storm.h): a burst of bounces to one address turns its
 * storm on within the window and off after it, with the start and end
 * logged and counted; the per-domain threshold; unrelated recipients
 * untouched beyond the sketch's documented error; a property test of the
 * estimates against an exact model of the sliding window; workers noting
 * concurrently with the slow path's thread lose no count; a stale
 * snapshot fails open; bad parameters are refused.
 *
 * Time is virtual (the test calls bs_storm_tick()) except with the thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <time.h>

#include <urcu-qsbr.h>

#include "backstop/counters.h"
#include "backstop/storm.h"

#define T0 1700000000000ull /* ms */

static char logbuf[8192];

static void
capture(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	size_t n = strlen(logbuf);
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static struct bs_storm *
mk(struct bs_storm_params *p)
{
	char err[256];
	p->log = capture;
	logbuf[0] = '\0';
	struct bs_storm *s = bs_storm_create(p, err, sizeof(err));
	if (s == NULL)
		fail_msg("create: %s", err);
	return s;
}

static void
note(struct bs_storm *s, unsigned int part, const char *rcpt)
{
	bs_storm_note(bs_storm_part(s, part), rcpt, strlen(rcpt));
}

static bool
active(const struct bs_storm *s, const char *rcpt, uint64_t now)
{
	return bs_storm_active(s, rcpt, strlen(rcpt), now);
}

static uint32_t
est_rcpt(const struct bs_storm *s, const char *rcpt)
{
	uint32_t r, d;
	bs_storm_estimate(s, rcpt, strlen(rcpt), &r, &d);
	return r;
}

static void
base(struct bs_storm_params *p)
{
	bs_storm_params_default(p);
	p->window_s = 60;
	p->slots = 6;
	p->rcpt_threshold = 100;
	p->domain_threshold = 100000;
	p->tick_ms = 1000;
}

static int
reg(void **state)
{
	(void)state;
	rcu_register_thread();
	return 0;
}

static int
unreg(void **state)
{
	(void)state;
	rcu_unregister_thread();
	return 0;
}

static void
test_burst_address(void **state)
{
	(void)state;
	struct bs_storm_params p;
	base(&p);
	p.n_parts = 2;
	struct bs_storm *s = mk(&p);
	assert_false(active(s, "victim@example.com", T0)); /* nothing yet */
	bs_storm_tick(s, T0);

	/* 150 bounces in 3 s, from two workers, a tick every second. */
	uint64_t t = T0, on_at = 0;
	for (int sec = 0; sec < 3; sec++) {
		for (int i = 0; i < 50; i++)
			note(s, (unsigned int)i & 1, i % 3 ? "Victim@Example.COM" :
				"<victim@example.com>");
		t += 1000;
		bs_storm_tick(s, t);
		if (on_at == 0 && active(s, "victim@example.com", t))
			on_at = t;
	}
	for (int k = 0; k < 2 && on_at == 0; k++) {
		/* Bounces keep coming in a storm; the candidate needed a
		 * published rate to be raised. */
		note(s, 0, "victim@example.com");
		t += 1000;
		bs_storm_tick(s, t);
		if (active(s, "victim@example.com", t))
			on_at = t;
	}
	assert_true(on_at != 0 && on_at <= T0 + 5000);
	assert_true(active(s, "VICTIM@example.com", t));
	assert_true(active(s, " <victim@EXAMPLE.com> ", t));
	/* Only the one address: neither its neighbours nor its domain. */
	assert_false(active(s, "bob@example.com", t));
	assert_false(active(s, "victim@example.org", t));
	assert_true(est_rcpt(s, "victim@example.com") >= 150);
	assert_int_equal(est_rcpt(s, "bob@example.com"), 0);
	assert_non_null(strstr(logbuf, "storm started: address "
					"\"victim@example.com\""));

	/* Quiet from now: on for the window, off after it. */
	uint64_t last = t, off_at = 0;
	while (t < last + 120000) {
		t += 1000;
		bs_storm_tick(s, t);
		bool a = active(s, "victim@example.com", t);
		if (!a && off_at == 0)
			off_at = t;
		if (a)
			assert_int_equal(off_at, 0); /* no flapping */
	}
	/* The last bounce was counted at `last`; it stays at least
	 * window_s and at most window_s + one slot (10 s) + a tick. */
	assert_true(off_at >= last + 60000);
	assert_true(off_at <= last + 60000 + 10000 + 1000);
	assert_non_null(strstr(logbuf, "storm ended: address "
					"\"victim@example.com\""));
	struct bs_storm_stats st;
	bs_storm_stats(s, &st);
	assert_int_equal(st.started, 1);
	assert_int_equal(st.ended, 1);
	assert_int_equal(st.active, 0);
	assert_int_equal(st.tracked, 0);
	assert_true(st.notes >= 150);
	struct bs_counters c;
	memset(&c, 0, sizeof(c));
	bs_storm_counters(s, &c);
	assert_int_equal(c.v[BS_CNT_storm_started], 1);
	assert_int_equal(c.v[BS_CNT_storm_notes], st.notes);
	bs_storm_destroy(s);
}

static void
test_domain(void **state)
{
	(void)state;
	struct bs_storm_params p;
	base(&p);
	p.domain_threshold = 200;
	struct bs_storm *s = mk(&p);
	uint64_t t = T0;
	bs_storm_tick(s, t);
	char a[64];
	for (int sec = 0; sec < 5; sec++) {
		for (int i = 0; i < 60; i++) {
			snprintf(a, sizeof(a), "user%d.%d@Example.NET", sec, i);
			note(s, 0, a);
		}
		t += 1000;
		bs_storm_tick(s, t);
	}
	/* Any address of the domain, even one never seen. */
	assert_true(active(s, "new.user@example.net", t));
	assert_true(active(s, "x@EXAMPLE.NET", t));
	assert_false(active(s, "a@example.org", t));
	assert_false(active(s, "no-domain", t));
	uint32_t r, d;
	bs_storm_estimate(s, "user0.0@example.net", 19, &r, &d);
	assert_true(d >= 300);
	assert_true(r >= 1 && r < 100);
	struct bs_storm_stats st;
	bs_storm_stats(s, &st);
	assert_int_equal(st.started, 1); /* the domain; no address storm */
	assert_non_null(strstr(logbuf, "storm started: domain "
					"\"example.net\""));
	bs_storm_destroy(s);
}

/*
 * One hot address and thousands of unrelated ones (one bounce each): no
 * unrelated address is in a storm, and the estimates exceed the truth by
 * more than e/width x N for no more than about e^-depth of them.
 */
static void
test_unrelated(void **state)
{
	(void)state;
	struct bs_storm_params p;
	base(&p);
	struct bs_storm *s = mk(&p);
	uint64_t t = T0;
	bs_storm_tick(s, t);
	enum { OTHERS = 3000, HOT = 500 };
	char a[64];
	for (int sec = 0; sec < 5; sec++) {
		for (int i = 0; i < HOT / 5; i++)
			note(s, 0, "hot@a.example");
		for (int i = sec; i < OTHERS; i += 5) {
			snprintf(a, sizeof(a), "person%d@d%d.example", i, i % 7);
			note(s, 0, a);
		}
		t += 1000;
		bs_storm_tick(s, t);
	}
	assert_true(active(s, "hot@a.example", t));
	double eps_n = exp(1.0) / p.rcpt_width * (OTHERS + HOT);
	unsigned int over = 0, on = 0;
	for (int i = 0; i < OTHERS; i++) {
		snprintf(a, sizeof(a), "person%d@d%d.example", i, i % 7);
		uint32_t e = est_rcpt(s, a);
		assert_true(e >= 1); /* never below the truth */
		if (e - 1 > eps_n)
			over++;
		on += active(s, a, t);
	}
	printf("unrelated: %u of %d over e/w*N = %.2f; %u in a storm\n", over,
		OTHERS, eps_n, on);
	assert_int_equal(on, 0);
	assert_true(over <= OTHERS * 0.05); /* e^-4 = 1.8% expected */
	bs_storm_destroy(s);
}

/* ---- property: estimates against an exact model of the window ---- */

static uint64_t
rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

#define PKEYS 400
#define PTICKS 200

static void
test_property_window(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct bs_storm_params p;
		base(&p);
		p.window_s = 20;
		p.slots = 4; /* 5 s slots */
		p.rcpt_width = 64; /* narrow: collisions happen */
		p.depth = 3;
		p.n_parts = 3;
		p.rcpt_threshold = 40;
		struct bs_storm *s = mk(&p);
		/* counts[tick][key]: notes collected at that tick. */
		static uint16_t counts[PTICKS][PKEYS];
		memset(counts, 0, sizeof(counts));
		uint64_t x = seed * 0x9e3779b97f4a7c15ull, viol = 0, checks = 0;
		uint64_t tick_ms[PTICKS];
		char a[32];
		for (int k = 0; k < PTICKS; k++) {
			/* Bursty: a few keys get many notes some ticks. */
			unsigned int n = (unsigned int)(rnd(&x) % 60);
			for (unsigned int i = 0; i < n; i++) {
				unsigned int key = (unsigned int)(rnd(&x) % 8 == 0 ?
					rnd(&x) % 4 : rnd(&x) % PKEYS);
				snprintf(a, sizeof(a), "k%u@p.example", key);
				note(s, (unsigned int)(rnd(&x) % 3), a);
				counts[k][key]++;
			}
			/* Irregular ticks, 300 ms .. 1.5 s apart. */
			tick_ms[k] = (k ? tick_ms[k - 1] : T0) + 300 +
				rnd(&x) % 1200;
			bs_storm_tick(s, tick_ms[k]);
			if (k % 10 != 9)
				continue;
			uint64_t now = tick_ms[k], total_ext = 0, total_in = 0;
			for (int j = 0; j <= k; j++)
				for (int q = 0; q < PKEYS; q++) {
					if (tick_ms[j] + 25000 >= now)
						total_ext += counts[j][q];
					if (tick_ms[j] + 20000 > now)
						total_in += counts[j][q];
				}
			/* One domain: its sketch has no collisions, so its
			 * count is exactly what the window holds, between
			 * window_s and window_s + one slot. */
			uint32_t r, d;
			bs_storm_estimate(s, "any@p.example", 13, &r, &d);
			if (d < total_in || d > total_ext)
				fail_msg("seed %llu tick %d: domain count %u "
					"outside [%llu, %llu]",
					(unsigned long long)seed, k, d,
					(unsigned long long)total_in,
					(unsigned long long)total_ext);
			for (int q = 0; q < PKEYS; q++) {
				uint64_t in = 0, ext = 0;
				for (int j = 0; j <= k; j++) {
					if (tick_ms[j] + 20000 > now)
						in += counts[j][q];
					if (tick_ms[j] + 25000 >= now)
						ext += counts[j][q];
				}
				snprintf(a, sizeof(a), "k%u@p.example", q);
				uint32_t e = est_rcpt(s, a);
				/* Hard: every count of the last window_s. */
				if (e < in)
					fail_msg("seed %llu tick %d key %d: estimate "
						"%u below the %llu notes of the "
						"window",
						(unsigned long long)seed, k, q, e,
						(unsigned long long)in);
				/* Soft: at most e/w x N above what the widest
				 * window holds, for all but ~e^-d of keys. */
				checks++;
				if (e > ext + exp(1.0) / 64 * (double)total_ext)
					viol++;
				/* An active key is at least at half its
				 * threshold (the end of the hysteresis). */
				if (active(s, a, now) && e * 2 < p.rcpt_threshold)
					fail_msg("active below threshold/2");
			}
		}
		struct bs_storm_stats st;
		bs_storm_stats(s, &st);
		assert_int_equal(st.started - st.ended, st.active);
		printf("seed %llu: %llu of %llu estimates beyond the bound; "
		       "%llu storms\n", (unsigned long long)seed,
			(unsigned long long)viol, (unsigned long long)checks,
			(unsigned long long)st.started);
		assert_true(viol <= checks / 8); /* e^-3 = 5% expected */
		assert_true(st.started > 0); /* the hot keys did storm */
		bs_storm_destroy(s);
	}
}

/* ---- concurrency: workers note while the slow path's thread runs ---- */

#define MT_NOTES 1000000
static struct bs_storm *MS;

static void *
noter(void *arg)
{
	unsigned int me = (unsigned int)(uintptr_t)arg;
	struct bs_storm_part *pt = bs_storm_part(MS, me);
	uint64_t x = 12345 + me;
	char a[48];
	rcu_register_thread();
	for (unsigned int i = 0; i < MT_NOTES; i++) {
		if (i & 1) {
			bs_storm_note(pt, "hot@mt.example", 14);
		} else {
			int n = snprintf(a, sizeof(a), "u%llu@mt.example",
				(unsigned long long)(rnd(&x) % 100000));
			bs_storm_note(pt, a, (size_t)n);
		}
		if ((i & 63) == 0)
			rcu_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
test_concurrent_notes(void **state)
{
	(void)state;
	struct bs_storm_params p;
	base(&p);
	p.window_s = 600;
	p.tick_ms = 2;
	p.n_parts = 2;
	p.rcpt_threshold = 1000;
	p.domain_threshold = 1000000;
	MS = mk(&p);
	assert_int_equal(bs_storm_start(MS), 0);
	rcu_thread_offline();
	pthread_t t[2];
	for (unsigned int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, noter, (void *)(uintptr_t)i);
	for (unsigned int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	bs_storm_stop(MS);
	rcu_thread_online();
	bs_storm_tick(MS, wall_ms()); /* collect what the last tick missed */
	struct bs_storm_stats st;
	bs_storm_stats(MS, &st);
	assert_int_equal(st.notes, 2 * MT_NOTES);
	assert_true(st.ticks > 2);
	/* No increment lost to the epoch flips: the hot address's count is
	 * at least every note it got, and not much more. */
	uint32_t r, d;
	bs_storm_estimate(MS, "hot@mt.example", 14, &r, &d);
	printf("hot: %u (true %u); domain %u (true %u); %llu ticks\n", r,
		MT_NOTES, d, 2 * MT_NOTES, (unsigned long long)st.ticks);
	assert_true(r >= MT_NOTES);
	assert_true(r <= MT_NOTES + exp(1.0) / p.rcpt_width * 2 * MT_NOTES);
	assert_int_equal(d, 2 * MT_NOTES); /* one domain: exact */
	assert_true(active(MS, "hot@mt.example", wall_ms()));
	bs_storm_destroy(MS);
}

/* The tick waits for a grace period before it reads the half the
 * workers just left: a registered worker that is online and has not
 * passed a quiescent state may still be writing it. */
static int busy, let_go, tick_done;

static void *
busy_worker(void *arg)
{
	(void)arg;
	rcu_register_thread();
	bs_storm_note(bs_storm_part(MS, 0), "w@g.example", 11);
	__atomic_store_n(&busy, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&let_go, __ATOMIC_ACQUIRE))
		; /* mid-burst: no quiescent state */
	rcu_quiescent_state();
	rcu_unregister_thread();
	return NULL;
}

static void *
ticker(void *arg)
{
	(void)arg;
	bs_storm_tick(MS, T0 + 1000);
	__atomic_store_n(&tick_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void
test_tick_waits_for_workers(void **state)
{
	(void)state;
	struct bs_storm_params p;
	base(&p);
	MS = mk(&p);
	bs_storm_tick(MS, T0);
	rcu_thread_offline();
	pthread_t w, t;
	pthread_create(&w, NULL, busy_worker, NULL);
	while (!__atomic_load_n(&busy, __ATOMIC_ACQUIRE))
		;
	pthread_create(&t, NULL, ticker, NULL);
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	assert_int_equal(__atomic_load_n(&tick_done, __ATOMIC_ACQUIRE), 0);
	__atomic_store_n(&let_go, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	pthread_join(w, NULL);
	rcu_thread_online();
	assert_int_equal(est_rcpt(MS, "w@g.example"), 1);
	bs_storm_destroy(MS);
}

static void
test_stale_and_params(void **state)
{
	(void)state;
	struct bs_storm_params p;
	base(&p);
	p.rcpt_threshold = 3;
	struct bs_storm *s = mk(&p);
	bs_storm_tick(s, T0);
	for (int i = 0; i < 5; i++)
		note(s, 0, "v@x.example");
	bs_storm_tick(s, T0 + 1000);
	note(s, 0, "v@x.example");
	bs_storm_tick(s, T0 + 2000);
	assert_true(active(s, "v@x.example", T0 + 2000));
	/* The slow path stopped publishing: fail open after 30 s. */
	assert_true(active(s, "v@x.example", T0 + 32000));
	assert_false(active(s, "v@x.example", T0 + 32001));
	assert_false(bs_storm_active(NULL, "v@x.example", 11, T0));
	bs_storm_destroy(s);

	char err[256];
	struct bs_storm_params q;
	base(&q);
	q.rcpt_width = 1000;
	assert_null(bs_storm_create(&q, err, sizeof(err)));
	assert_non_null(strstr(err, "powers of two"));
	base(&q);
	q.depth = 12; /* 12 x 12 bits > 128 */
	assert_null(bs_storm_create(&q, err, sizeof(err)));
	base(&q);
	q.window_s = 1;
	q.slots = 7;
	assert_null(bs_storm_create(&q, err, sizeof(err)));
	base(&q);
	q.rcpt_threshold = 0;
	assert_null(bs_storm_create(&q, err, sizeof(err)));
	base(&q);
	struct bs_storm *ok = bs_storm_create(&q, err, sizeof(err));
	assert_non_null(ok);
	struct bs_storm_stats st;
	bs_storm_stats(ok, &st);
	printf("storm memory: %llu bytes per worker, %llu in all (1 worker)\n",
		(unsigned long long)st.bytes_part,
		(unsigned long long)st.bytes_total);
	bs_storm_destroy(ok);
}

#define T(f) cmocka_unit_test_setup_teardown(f, reg, unreg)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_burst_address),
		T(test_domain),
		T(test_unrelated),
		T(test_property_window),
		T(test_concurrent_notes),
		T(test_tick_waits_for_workers),
		T(test_stale_and_params),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
