/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one's-complement sum (backstop/cksum.h) over a span of a packet
 * that may run across chained mbufs: what rte_raw_cksum_mbuf computes,
 * with the faster sum, and with a piece that starts at an odd offset of
 * the span folded to 16 bits before its bytes are swapped (DPDK 22.11
 * truncates the unfolded 32-bit sum there, losing its carries).  A header
 * so that the unit test drives this very walk over hand-built mbuf
 * chains without EAL.  Any thread; reads the mbufs only.
 */
#ifndef BACKSTOP_CKSUM_MBUF_H
#define BACKSTOP_CKSUM_MBUF_H

#include <rte_mbuf.h>

#include "backstop/cksum.h"

/*
 * Folded sum of len bytes from byte off of packet m into *out: 0, or -1
 * when the packet is shorter than off + len (nothing written).
 */
static inline int
bs_cksum_mbuf(const struct rte_mbuf *m, uint32_t off, uint32_t len,
	uint16_t *out)
{
	const struct rte_mbuf *seg = m;
	uint64_t sum = 0;
	uint32_t done = 0;

	if (off + len <= rte_pktmbuf_data_len(m)) {
		*out = bs_cksum_fold(bs_cksum_add(0,
			rte_pktmbuf_mtod_offset(m, const uint8_t *, off), len));
		return 0;
	}
	if ((uint64_t)off + len > rte_pktmbuf_pkt_len(m))
		return -1;
	while (seg != NULL && off >= rte_pktmbuf_data_len(seg)) {
		off -= rte_pktmbuf_data_len(seg);
		seg = seg->next;
	}
	while (done < len) {
		if (seg == NULL)
			return -1; /* pkt_len larger than the chain */
		uint32_t n = rte_pktmbuf_data_len(seg) - off;
		if (n > len - done)
			n = len - done;
		uint64_t s = bs_cksum_add(0,
			rte_pktmbuf_mtod_offset(seg, const uint8_t *, off), n);
		sum += (done & 1) ? bs_cksum_odd(s) : s;
		done += n;
		off = 0;
		seg = seg->next;
	}
	*out = bs_cksum_fold(sum);
	return 0;
}

#endif /* BACKSTOP_CKSUM_MBUF_H */
