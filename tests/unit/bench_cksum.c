/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Micro-benchmark (suite perf): the one's-complement sum of a 1,460-byte
 * TCP payload (and 64 and 536 bytes) by DPDK's rte_raw_cksum and by
 * bs_cksum_add, alternating rounds so both see the same machine load;
 * ns per buffer and the ratio, medians of the rounds.  Args: [rounds].
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_ip.h>

#include "backstop/cksum.h"

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define ITERS 200000
#define MAXR 64

int
main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 9;
	static uint8_t buf[1600];
	static const size_t lens[] = { 64, 536, 1460 };
	volatile uint32_t sink = 0;

	if (rounds < 1 || rounds > MAXR)
		rounds = 9;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		double told[MAXR], tnew[MAXR], ratio[MAXR];
		size_t n = lens[l];

		for (int r = 0; r < rounds; r++) {
			double t0 = now_ns();
			for (int i = 0; i < ITERS; i++) {
				/* the offset moves so nothing is hoisted */
				sink += rte_raw_cksum(buf + (i & 1), n);
			}
			double t1 = now_ns();
			for (int i = 0; i < ITERS; i++)
				sink += bs_cksum_fold(
					bs_cksum_add(0, buf + (i & 1), n));
			double t2 = now_ns();
			told[r] = (t1 - t0) / ITERS;
			tnew[r] = (t2 - t1) / ITERS;
			ratio[r] = tnew[r] / told[r];
		}
		qsort(told, (size_t)rounds, sizeof(double), cmp_d);
		qsort(tnew, (size_t)rounds, sizeof(double), cmp_d);
		qsort(ratio, (size_t)rounds, sizeof(double), cmp_d);
		printf("cksum_%zu_rte_raw_cksum_ns %.1f\n", n, told[rounds / 2]);
		printf("cksum_%zu_bs_cksum_ns %.1f\n", n, tnew[rounds / 2]);
		printf("cksum_%zu_ratio_new_vs_rte %.3f\n", n, ratio[rounds / 2]);
	}
	return sink == 1 ? 1 : 0;
}
