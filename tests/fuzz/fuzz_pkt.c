/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the packet parser (and the fast path's first look,
 * which must agree with it) and the flow table on arbitrary frames.  Each input is split into frames (2-byte length prefixes); every
 * parsed TCP frame goes through key building, lookup/create, timeout
 * changes and aging, so table invariants are exercised under ASan/UBSan.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/flow.h"
#include "backstop/pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bs_flow_table *t;
	static uint64_t now;
	if (t == NULL) {
		const uint64_t tmo[BS_FLOW_TMO__MAX] = { 50, 10, 10 };
		t = bs_flow_table_create(64, tmo, NULL, NULL, 1);
		if (t == NULL)
			abort();
	}
	while (size >= 2) {
		size_t n = (size_t)(data[0] | (data[1] << 8)) % 2048;
		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		/* Exact-size copy: ASan sees any read past the frame. */
		uint8_t *f = malloc(n ? n : 1);
		if (f == NULL)
			abort();
		memcpy(f, data, n);
		struct bs_pkt p;
		/* Odd lengths: the whole frame is contiguous; even ones: only
		 * a first segment of n/2 bytes is (a chained mbuf). */
		size_t hl = (n & 1) ? n : n / 2;
		uint8_t *seg = malloc(hl ? hl : 1); /* exact: ASan sees past hl */
		if (seg == NULL)
			abort();
		memcpy(seg, f, hl);
		int r = bs_pkt_parse_seg(seg, hl, n, &p);
		/* The fast path's first look agrees whenever it answers. */
		uint8_t l3 = 0;
		uint16_t sp = 0, dp = 0;
		int k = bs_pkt_peek(seg, hl, n, &l3, &sp, &dp);
		if (k != BS_PKT_PEEK_FULL && (k != r || l3 != p.l3 ||
				p.vlan_count != 0 || p.has_ip_opts ||
				((r == BS_PKT_TCP || r == BS_PKT_UDP) &&
				 (sp != p.sport || dp != p.dport))))
			abort();
		free(seg);
		if (r == BS_PKT_TCP) {
			if ((size_t)p.payload_off + p.payload_len > n)
				abort(); /* payload must lie in the frame */
			struct bs_flow_key k;
			bool created;
			bs_flow_key_from_pkt(&p, 0, &k);
			struct bs_flow *fl = bs_flow_lookup(t, &k, now,
				p.tcp_flags & 1, &created);
			if (fl != NULL && (p.tcp_flags & BS_TCP_RST))
				bs_flow_remove(t, fl);
			else if (fl != NULL && (p.tcp_flags & BS_TCP_SYN))
				bs_flow_set_tmo(t, fl, BS_FLOW_TMO_LONG);
			if (bs_flow_count(t) > bs_flow_capacity(t))
				abort();
		}
		free(f);
		now += n & 7;
		bs_flow_expire(t, now, 4);
		data += n;
		size -= n;
	}
	return 0;
}
