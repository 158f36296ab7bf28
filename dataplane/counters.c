/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The counter table (see include/backstop/counters.h) turned into data:
 * names, help texts and kinds for reports and exporters, and the sum over
 * per-worker blocks.
 */
#include "backstop/counters.h"

#include <inttypes.h>
#include <string.h>

const struct bs_counter_desc bs_counter_desc[BS_CNT__MAX] = {
#define BS_CNT_DESC_(name, help, kind) \
	[BS_CNT_##name] = { #name, help, BS_CNT_KIND_##kind },
	BS_COUNTERS(BS_CNT_DESC_)
#undef BS_CNT_DESC_
};

const unsigned char bs_counter_process[BS_CNT__MAX] = {
#define BS_CNT_PROCESS_(name, help, kind) [BS_CNT_##name] = 1,
	BS_COUNTERS_PROCESS(BS_CNT_PROCESS_)
#undef BS_CNT_PROCESS_
};

const double bs_latency_le[BS_LATENCY_N] = {
#define BS_LAT_LE_(X, pfx, what, name, le) le,
	BS_LATENCY_BUCKETS(BS_LAT_LE_, , , )
#undef BS_LAT_LE_
};

/* The bounds in nanoseconds, for bs_latency_note(). */
static const uint64_t latency_ns[BS_LATENCY_N] = {
#define BS_LAT_NS_(X, pfx, what, name, le) (uint64_t)((le) * 1e9 + 0.5),
	BS_LATENCY_BUCKETS(BS_LAT_NS_, , , )
#undef BS_LAT_NS_
};

/* Each histogram's rows are consecutive: buckets, over, count, sum. */
#define BS_LAT_ROWS_OK_(pfx)                                                 \
	_Static_assert(BS_CNT_##pfx##_over ==                                \
			BS_CNT_##pfx##_le_2us + BS_LATENCY_N &&              \
		BS_CNT_##pfx##_count == BS_CNT_##pfx##_over + 1 &&           \
		BS_CNT_##pfx##_sum_ns == BS_CNT_##pfx##_count + 1,           \
		#pfx ": rows out of order")
BS_LAT_ROWS_OK_(verdict_latency);
BS_LAT_ROWS_OK_(hold_latency);

void
bs_latency_note(struct bs_counters *c, unsigned int first, uint64_t ns)
{
	unsigned int b = 0;

	while (b < BS_LATENCY_N && ns > latency_ns[b])
		b++;
	c->v[first + b]++;                  /* b == N: the row beyond */
	c->v[first + BS_LATENCY_N + 1]++;   /* count */
	c->v[first + BS_LATENCY_N + 2] += ns;
}

void
bs_counters_sum(struct bs_counters *out,
	const struct bs_counters *const *blk, unsigned int n)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int w = 0; w < n; w++)
		for (unsigned int i = 0; i < BS_CNT__MAX; i++)
			out->v[i] += blk[w]->v[i];
}

void
bs_counters_print(FILE *f, const struct bs_counters *c)
{
	for (unsigned int i = 0; i < BS_CNT__MAX; i++)
		fprintf(f, "%s %" PRIu64 "\n", bs_counter_desc[i].name, c->v[i]);
}
