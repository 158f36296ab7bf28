/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The RSS key backstop programs into NICs is symmetric: DPDK's software
 * Toeplitz (rte_softrss, the function NICs implement) gives both
 * directions of random IPv4 and IPv6 TCP connections the same hash.  A
 * control case shows the test can fail: the default Microsoft key is not
 * symmetric.  Then the start-up check port.c runs on each PMD's read-back
 * key and redirection table (bs_rss_asymmetric) is shown to pass the
 * project's configuration and to fail asymmetric ones.  Links port.c;
 * no EAL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <rte_thash.h>

#include "dataplane.h"

/* The well-known default key (Microsoft RSS spec). */
static const uint8_t ms_key[40] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
	0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
	0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
	0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static uint32_t
hash4(const uint8_t *key, uint32_t sa, uint32_t da, uint16_t sp, uint16_t dp)
{
	uint32_t t[3] = { sa, da, ((uint32_t)sp << 16) | dp };
	return rte_softrss(t, 3, key);
}

static uint32_t
hash6(const uint8_t *key, const uint32_t *sa, const uint32_t *da,
	uint16_t sp, uint16_t dp)
{
	uint32_t t[9];
	for (int i = 0; i < 4; i++) {
		t[i] = sa[i];
		t[4 + i] = da[i];
	}
	t[8] = ((uint32_t)sp << 16) | dp;
	return rte_softrss(t, 9, key);
}

static void
test_symmetric(void **state)
{
	(void)state;
	uint8_t key[52];
	bs_rss_sym_key(key, sizeof(key));
	srand(7);
	for (int n = 0; n < 10000; n++) {
		uint32_t a = (uint32_t)rand() * 2654435761u, b = (uint32_t)rand();
		uint16_t p = (uint16_t)rand(), q = (uint16_t)rand();
		assert_int_equal(hash4(key, a, b, p, q), hash4(key, b, a, q, p));
		uint32_t a6[4], b6[4];
		for (int i = 0; i < 4; i++) {
			a6[i] = (uint32_t)rand() * 2246822519u;
			b6[i] = (uint32_t)rand() * 3266489917u;
		}
		assert_int_equal(hash6(key, a6, b6, p, q),
			hash6(key, b6, a6, q, p));
	}
}

static void
test_default_key_is_not(void **state)
{
	(void)state;
	int differ = 0;
	for (uint32_t n = 1; n < 100; n++)
		differ += hash4(ms_key, 0xc0000201u + n, 0xc6336419u, 40000, 25)
			!= hash4(ms_key, 0xc6336419u, 0xc0000201u + n, 25, 40000);
	assert_true(differ > 90);
}

/*
 * The start-up check port.c runs on what it reads back from each PMD:
 * the configuration port.c programs (the symmetric key at the key sizes
 * PMDs report, the hash types it asks for, default and uneven
 * redirection tables) passes; an asymmetric key, or a table that sends
 * the two directions' hashes to different queues, fails.
 */
static void
test_startup_check(void **state)
{
	(void)state;
	const uint64_t hf = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
	uint16_t reta[512];
	uint8_t key[52];

	for (unsigned int klen = 40; klen <= 52; klen += 12) {
		bs_rss_sym_key(key, klen);
		for (unsigned int nq = 2; nq <= 8; nq *= 2) {
			for (unsigned int i = 0; i < 512; i++)
				reta[i] = (uint16_t)(i % nq);
			assert_int_equal(bs_rss_asymmetric(key, klen, hf, reta,
				512, nq, 2000), 0);
			/* No table read back: judged by the queue count. */
			assert_int_equal(bs_rss_asymmetric(key, klen, hf, NULL,
				0, nq, 2000), 0);
			/* Addresses only (ports not hashed). */
			assert_int_equal(bs_rss_asymmetric(key, klen,
				RTE_ETH_RSS_IP, reta, 512, nq, 2000), 0);
		}
	}
	/* Any table is fine with a symmetric key: same hash, same entry. */
	for (unsigned int i = 0; i < 512; i++)
		reta[i] = (uint16_t)((i * 7919u) % 3);
	assert_int_equal(bs_rss_asymmetric(key, 52, hf, reta, 512, 3, 2000),
		0);
	/* The Microsoft default key splits most connections. */
	for (unsigned int i = 0; i < 512; i++)
		reta[i] = (uint16_t)(i % 4);
	assert_true(bs_rss_asymmetric(ms_key, 40, hf, reta, 512, 4, 2000) >
		2000);
	/* One wrong byte in the symmetric key breaks it too. */
	bs_rss_sym_key(key, 40);
	key[17] ^= 0x01;
	assert_true(bs_rss_asymmetric(key, 40, hf, reta, 512, 4, 2000) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_symmetric),
		cmocka_unit_test(test_default_key_is_not),
		cmocka_unit_test(test_startup_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
