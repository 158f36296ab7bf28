/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the event ring: wrap-around, all-or-nothing puts when
 * full, and a producer thread racing the consumer: every line arrives
 * whole and in order, or its loss is reported to the producer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "backstop/evring.h"

static void
test_wrap_and_full(void **state)
{
	(void)state;
	struct bs_evring *r = bs_evring_create(100); /* rounds to 4096 */
	char line[1000];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	char *out = NULL;
	size_t outlen = 0;
	for (int round = 0; round < 10; round++) {
		int put = 0;
		while (bs_evring_put(r, line, sizeof(line)) == 0)
			put++;
		assert_int_equal(put, 4); /* 4 x 1000 fit in 4096, not 5 */
		FILE *f = open_memstream(&out, &outlen);
		assert_int_equal(bs_evring_drain(r, f), 4 * 1000);
		fclose(f);
		assert_int_equal(outlen, 4000);
		for (size_t i = 0; i < outlen; i++)
			assert_int_equal(out[i], (i % 1000 == 999) ? '\n' : 'x');
		free(out);
		out = NULL;
	}
	FILE *f = open_memstream(&out, &outlen);
	assert_int_equal(bs_evring_drain(r, f), 0);
	fclose(f);
	free(out);
	bs_evring_free(r);
}

#define LINES 200000
static struct bs_evring *ring;
static volatile int done;
static unsigned long lost;

static void *
producer(void *arg)
{
	(void)arg;
	char buf[64];
	for (unsigned long i = 0; i < LINES; i++) {
		int n = snprintf(buf, sizeof(buf), "%lu %0*lu\n", i,
			(int)(i % 37), i);
		if (bs_evring_put(ring, buf, (size_t)n) < 0)
			lost++;
	}
	done = 1;
	return NULL;
}

static void
test_concurrent(void **state)
{
	(void)state;
	ring = bs_evring_create(8192);
	pthread_t t;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	pthread_create(&t, NULL, producer, NULL);
	while (!done)
		bs_evring_drain(ring, f);
	pthread_join(t, NULL);
	bs_evring_drain(ring, f);
	fclose(f);
	/* Lines arrive whole, in increasing order; count matches. */
	unsigned long seen = 0, last = 0;
	char *save = NULL;
	for (char *l = strtok_r(out, "\n", &save); l != NULL;
			l = strtok_r(NULL, "\n", &save)) {
		unsigned long a, b;
		assert_int_equal(sscanf(l, "%lu %lu", &a, &b), 2);
		assert_int_equal(a, b);
		if (seen > 0)
			assert_true(a > last);
		last = a;
		seen++;
	}
	assert_int_equal(seen + lost, LINES);
	free(out);
	bs_evring_free(ring);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrap_and_full),
		cmocka_unit_test(test_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
