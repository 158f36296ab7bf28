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

const double bs_verdict_latency_le[BS_VERDICT_LATENCY_N] = {
#define BS_VLAT_LE_(X, name, le) le,
	BS_VERDICT_LATENCY_BUCKETS(BS_VLAT_LE_, )
#undef BS_VLAT_LE_
};

/* The bounds in nanoseconds, for bs_verdict_latency_note(). */
static const uint64_t verdict_latency_ns[BS_VERDICT_LATENCY_N] = {
#define BS_VLAT_NS_(X, name, le) (uint64_t)((le) * 1e9 + 0.5),
	BS_VERDICT_LATENCY_BUCKETS(BS_VLAT_NS_, )
#undef BS_VLAT_NS_
};
_Static_assert(BS_CNT_verdict_latency_over ==
	BS_CNT_verdict_latency_le_2us + BS_VERDICT_LATENCY_N,
	"the latency buckets' rows are consecutive, then the overflow row");

void
bs_verdict_latency_note(struct bs_counters *c, uint64_t ns)
{
	unsigned int b = 0;

	while (b < BS_VERDICT_LATENCY_N && ns > verdict_latency_ns[b])
		b++;
	c->v[BS_CNT_verdict_latency_le_2us + b]++;
	c->v[BS_CNT_verdict_latency_count]++;
	c->v[BS_CNT_verdict_latency_sum_ns] += ns;
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
