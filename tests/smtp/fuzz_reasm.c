/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for TCP reassembly alone.
 *
 * Input: a list of segments, each a 10-byte header (direction and TCP
 * flags, sequence offset, ack offset, window, urgent pointer, length)
 * followed by its payload, with small caps so every limit is reached.
 * Checks, besides ASan/UBSan: the held-byte accounting matches the
 * per-flow counts, stays within the caps and returns to zero, no
 * delivery happens after the flow is unreliable or reset, and a rewrite
 * span lies inside the segment (every other segment gets a fix buffer,
 * some too short, so both the rewrite and the drop paths run).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/pkt.h"
#include "backstop/reasm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	struct bs_reasm *r;
	uint64_t delivered[2];
	int bad;
};

static void
fz_deliver(void *arg, unsigned int dir, const uint8_t *p, uint32_t n,
	void *pkt)
{
	struct fz *z = arg;

	(void)pkt;
	if (dir > 1 || z->r->unreliable || z->r->reset)
		z->bad = 1;
	if (p != NULL) {
		/* Touch every byte so ASan sees the range. */
		volatile uint8_t x = 0;

		for (uint32_t i = 0; i < n; i++)
			x ^= p[i];
		(void)x;
		z->delivered[dir] += n;
	} else if (n != 0) {
		z->bad = 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bs_counters cnt;
	struct bs_reasm_ctx ctx = { .ooo_global_max = 3000,
		.ooo_flow_max = 1500, .ooo_segs_max = 40, .gap_timeout_ms = 50, .history = 64,
		.cnt = &cnt };
	struct bs_reasm r;
	struct fz z = { .r = &r };
	static uint8_t fix[256];
	uint32_t base[2] = { 0xffffff00u, 1000 };
	uint64_t now = 0;
	size_t i = 0;

	memset(&cnt, 0, sizeof(cnt));
	/* Half the inputs take history rings through a pool of one (which
	 * keeps nothing under ASan: blkpool.h). */
	if (size > 0 && (data[0] & 0x40))
		bs_blkpool_init(&ctx.hist_pool, ctx.history, 1);
	bs_reasm_init(&r);
	while (i + 10 <= size) {
		const uint8_t *h = data + i;
		struct bs_seg s;
		unsigned int d = h[0] & 1;
		uint32_t len = h[9];

		i += 10;
		if (len > size - i)
			len = (uint32_t)(size - i);
		memset(&s, 0, sizeof(s));
		s.to_server = d == 0;
		s.flags = h[0] >> 1 & 0x3f;
		s.seq = base[d] + (uint32_t)(int16_t)(h[1] | h[2] << 8);
		s.ack = base[!d] + (uint32_t)(int16_t)(h[3] | h[4] << 8);
		s.win = (uint16_t)(h[5] | h[6] << 8);
		s.urg = h[7];
		s.wscale = h[8] & 0x1f;
		s.data = data + i;
		s.len = len;
		s.pkt = (void *)(uintptr_t)i;
		now += h[8] >> 5;
		i += len;
		struct bs_seg_out out = { .fix = fix,
			.fix_cap = (h[0] & 0x80) ? sizeof(fix) : len / 2 };
		if (h[7] & 1)
			s.out = &out;
		enum bs_seg_verdict v = bs_reasm_input(&ctx, &r, &s, now,
			fz_deliver, &z);
		if (v == BS_SEG_REWRITE && (s.out == NULL ||
				!(out.flags & BS_SEGO_REWRITE) ||
				out.fix_lo >= out.fix_hi || out.fix_hi > len ||
				len > out.fix_cap)) {
			fprintf(stderr, "bad rewrite span\n");
			abort();
		}
		if (r.dir[0].hist_len > ctx.history ||
			r.dir[1].hist_len > ctx.history ||
			(r.dir[0].hist == NULL && r.dir[0].hist_len != 0) ||
			(r.dir[1].hist == NULL && r.dir[1].hist_len != 0) ||
			ctx.hist_pool.n > ctx.hist_pool.max) {
			fprintf(stderr, "history ring invariant broken\n");
			abort();
		}
		if (ctx.ooo_held != bs_reasm_held(&r) ||
			r.dir[0].ooo_bytes > ctx.ooo_flow_max ||
			r.dir[1].ooo_bytes > ctx.ooo_flow_max ||
			ctx.ooo_held > ctx.ooo_global_max || z.bad) {
			fprintf(stderr, "reasm invariant broken\n");
			abort();
		}
	}
	bs_reasm_release(&ctx, &r);
	bs_reasm_ctx_drain(&ctx);
	if (ctx.ooo_held != 0 || cnt.v[BS_CNT_reasm_ooo_held_bytes] != 0)
		abort();
	return 0;
}
