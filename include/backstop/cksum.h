/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Internet checksum's one's-complement sum (RFC 1071) over a buffer,
 * fast enough to verify every followed TCP segment in software (net_pcap
 * and other vdevs set no checksum offload flags, so the worker sums every
 * payload byte itself).  DPDK's rte_raw_cksum adds one 16-bit word at a
 * time; this adds 16 bytes at a time with SSE2 (part of every x86-64, so
 * no runtime dispatch is needed) or 8 at a time elsewhere, into 64-bit
 * lanes that cannot overflow, so the result is the same integer sum
 * modulo 0xffff and folds to exactly rte_raw_cksum's 16-bit value.
 *
 * Words are read in the machine's byte order, as rte_raw_cksum does: the
 * folded value is byte-swapped from the network-order sum on a
 * little-endian machine, which changes neither "== 0xffff" nor "== 0".
 * No EAL; any thread; pure.
 */
#ifndef BACKSTOP_CKSUM_H
#define BACKSTOP_CKSUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * sum plus the sum of len bytes at buf, taken as 16-bit words from buf
 * (an odd last byte is the low-order byte of a last word padded with a
 * zero, as in RFC 1071 on a little-endian machine).  Not folded: pass the
 * result on to the next call or to bs_cksum_fold().  buf may have any
 * alignment; len any value (sums stay exact up to 2^32 bytes per call and
 * while the running sum is below 2^63).
 */
uint64_t bs_cksum_add(uint64_t sum, const void *buf, size_t len);

/* A 64-bit partial sum folded with end-around carries to 16 bits: 0 only
 * for a sum of 0, else 1..0xffff (rte_raw_cksum's reduction). */
static inline uint16_t
bs_cksum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffffffffu) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * The 16-bit folded sum of a piece that starts at an odd byte offset of
 * the summed data: its words straddle the true word boundaries, so its
 * folded sum is byte-swapped before it is added to the rest (RFC 1071
 * 2(B), byte order independence).
 */
static inline uint64_t
bs_cksum_odd(uint64_t piece_sum)
{
	uint16_t v = bs_cksum_fold(piece_sum);

	return (uint16_t)((v << 8) | (v >> 8));
}

#endif /* BACKSTOP_CKSUM_H */
