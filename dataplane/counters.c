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
