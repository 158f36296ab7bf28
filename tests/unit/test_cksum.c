/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The one's-complement sum (dataplane/cksum.c) against DPDK's
 * rte_raw_cksum and a plain RFC 1071 reference, for every length 0..3000
 * at every alignment 0..15 of random bytes (and of all-0xff and all-zero
 * bytes, the fold's edge values); the mbuf walk (dataplane/cksum_mbuf.h)
 * over hand-built chains cut at random, odd offsets included, against the
 * sum of the same bytes in one piece; and a changed byte always noticed.
 * No EAL: DPDK's header-only inline functions and struct rte_mbuf only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <rte_ip.h>

#include "backstop/cksum.h"
#include "cksum_mbuf.h"

/* Which chain walk is tested (the old one: -DCKSUM_MBUF=rte_raw_cksum_mbuf). */
#ifndef CKSUM_MBUF
#define CKSUM_MBUF bs_cksum_mbuf
#endif

#define MAXLEN 3000
#define ALIGNS 16

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* RFC 1071 as written: big-endian 16-bit words, end-around carries. */
static uint16_t
ref_sum_be(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i++) {
		s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
		s = (s & 0xffff) + (s >> 16);
	}
	return (uint16_t)s;
}

static uint16_t
bswap(uint16_t v)
{
	return (uint16_t)((v << 8) | (v >> 8));
}

static void
check_all(uint8_t *buf, const char *what)
{
	for (size_t a = 0; a < ALIGNS; a++) {
		for (size_t n = 0; n <= MAXLEN; n++) {
			const uint8_t *p = buf + a;
			uint16_t got = bs_cksum_fold(bs_cksum_add(0, p, n));
			uint16_t dpdk = rte_raw_cksum(p, n);
			uint16_t ref = ref_sum_be(p, n);

			if (got != dpdk || bswap(got) != ref)
				fail_msg("%s: len %zu align %zu: %04x, "
					 "rte_raw_cksum %04x, reference %04x",
					what, n, a, got, dpdk, bswap(ref));
		}
	}
}

static void
test_lengths_alignments(void **state)
{
	(void)state;
	static uint8_t buf[MAXLEN + ALIGNS];

	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)rnd();
		check_all(buf, "random");
	}
	memset(buf, 0xff, sizeof(buf));
	check_all(buf, "all 0xff");
	memset(buf, 0, sizeof(buf));
	check_all(buf, "all zero");
}

/* A running sum carried across calls adds up like one call. */
static void
test_running_sum(void **state)
{
	(void)state;
	static uint8_t buf[MAXLEN];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd();
	for (int k = 0; k < 2000; k++) {
		size_t n = rnd() % (MAXLEN + 1);
		/* even cut: the words of the second call are true words */
		size_t cut = (rnd() % (n + 1)) & ~(size_t)1;
		uint64_t s = bs_cksum_add(bs_cksum_add(7, buf, cut), buf + cut,
			n - cut);

		assert_int_equal(bs_cksum_fold(s),
			bs_cksum_fold(bs_cksum_add(7, buf, n)));
	}
}

/* A chain of nseg mbufs over data (cut at cuts[]) in bufs[]. */
#define MAXSEG 8
struct chain {
	struct rte_mbuf m[MAXSEG];
	uint8_t room[MAXSEG][MAXLEN + 64];
};

static void
build_chain(struct chain *c, const uint8_t *data, size_t len,
	const size_t *cuts, int nseg)
{
	memset(c->m, 0, sizeof(c->m));
	size_t pos = 0;
	for (int s = 0; s < nseg; s++) {
		size_t end = s + 1 < nseg ? cuts[s] : len;
		/* headroom of random parity: each piece at its own alignment */
		uint16_t head = (uint16_t)(rnd() % 32);

		memcpy(c->room[s] + head, data + pos, end - pos);
		c->m[s].buf_addr = c->room[s];
		c->m[s].data_off = head;
		c->m[s].data_len = (uint16_t)(end - pos);
		c->m[s].next = s + 1 < nseg ? &c->m[s + 1] : NULL;
		pos = end;
	}
	c->m[0].pkt_len = (uint32_t)len;
	c->m[0].nb_segs = (uint16_t)nseg;
}

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_chains(void **state)
{
	(void)state;
	static struct chain c;
	static uint8_t data[MAXLEN];
	int odd_seen = 0;

	for (int k = 0; k < 20000; k++) {
		size_t len = 1 + rnd() % MAXLEN;
		int nseg = 1 + (int)(rnd() % MAXSEG);
		size_t cuts[MAXSEG];

		/* mostly random bytes; sometimes all 0xff, where carries
		 * out of a piece's 16 bits are most likely */
		int ones = rnd() % 4 == 0;
		for (size_t i = 0; i < len; i++)
			data[i] = ones ? 0xff : (uint8_t)rnd();
		for (int s = 0; s + 1 < nseg; s++)
			cuts[s] = rnd() % (len + 1);
		qsort(cuts, (size_t)(nseg - 1), sizeof(cuts[0]), cmp_size);
		build_chain(&c, data, len, cuts, nseg);

		uint32_t off = rnd() % (uint32_t)len;
		uint32_t n = rnd() % (uint32_t)(len - off + 1);
		for (int s = 0; s + 1 < nseg; s++)
			odd_seen += cuts[s] > off && ((cuts[s] - off) & 1);
		uint16_t got = 0xbeef;
		assert_int_equal(CKSUM_MBUF(&c.m[0], off, n, &got), 0);
		uint16_t want = bs_cksum_fold(bs_cksum_add(0, data + off, n));
		if (got != want)
			fail_msg("chain of %d, len %zu, off %u, n %u: %04x, "
				 "one piece %04x", nseg, len, off, n, got, want);
		/* past the end: refused, nothing written */
		got = 0xbeef;
		assert_int_equal(CKSUM_MBUF(&c.m[0], off, (uint32_t)len - off +
			1, &got), -1);
		assert_int_equal(got, 0xbeef);
	}
	/* the property was exercised where it is hard: odd piece starts */
	assert_true(odd_seen > 1000);
}

/* Any single changed byte changes the sum. */
static void
test_change_detected(void **state)
{
	(void)state;
	static uint8_t data[1460];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)rnd();
	uint16_t base = bs_cksum_fold(bs_cksum_add(0, data, sizeof(data)));
	for (size_t i = 0; i < sizeof(data); i++) {
		uint8_t old = data[i];

		data[i] = (uint8_t)(old + 1 + rnd() % 255);
		uint16_t now = bs_cksum_fold(bs_cksum_add(0, data, sizeof(data)));
		/* the word moves by d or 256 d (d in 1..255): never a
		 * multiple of 0xffff */
		assert_int_not_equal(now, base);
		data[i] = old;
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lengths_alignments),
		cmocka_unit_test(test_running_sum),
		cmocka_unit_test(test_chains),
		cmocka_unit_test(test_change_detected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
