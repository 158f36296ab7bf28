/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the flow table: symmetric keys (VLAN tags and link
 * included), create and find, the release hook, timeout classes and O(1)
 * aging order, a full table (evicts half-open entries first, refuses when
 * all are established, recycles an expired entry), and a model check that
 * runs random operations against a simple reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backstop/flow.h"

static const uint64_t tmo[BS_FLOW_TMO__MAX] = {
	[BS_FLOW_TMO_LONG] = 1000,
	[BS_FLOW_TMO_SHORT] = 100,
	[BS_FLOW_TMO_SYN] = 100,
};

static unsigned int released;

static void
on_release(struct bs_flow *f, void *arg)
{
	(void)arg;
	assert_true(f->in_use);
	released++;
}

static void
mkpkt(struct bs_pkt *p, uint32_t cli, uint16_t cport, int v6, int reverse)
{
	memset(p, 0, sizeof(*p));
	p->l3 = v6 ? BS_L3_IPV6 : BS_L3_IPV4;
	uint8_t c[16] = { 10 }, s[16] = { 172, 16 };
	memcpy(c + 1, &cli, 4);
	s[15] = 25;
	if (!v6)
		s[3] = 25;
	if (!reverse) {
		memcpy(p->src, c, v6 ? 16 : 4);
		memcpy(p->dst, s, v6 ? 16 : 4);
		p->sport = cport;
		p->dport = 25;
	} else {
		memcpy(p->src, s, v6 ? 16 : 4);
		memcpy(p->dst, c, v6 ? 16 : 4);
		p->sport = 25;
		p->dport = cport;
	}
}

static void
test_symmetric_key(void **state)
{
	(void)state;
	for (int v6 = 0; v6 < 2; v6++) {
		struct bs_pkt a, b;
		struct bs_flow_key ka, kb;
		mkpkt(&a, 7, 40000, v6, 0);
		mkpkt(&b, 7, 40000, v6, 1);
		int da = bs_flow_key_from_pkt(&a, 0, &ka);
		int db = bs_flow_key_from_pkt(&b, 0, &kb);
		assert_memory_equal(&ka, &kb, sizeof(ka));
		assert_int_not_equal(da, db);
	}
	/* Same addresses, ports swapped decides the order. */
	struct bs_pkt a;
	struct bs_flow_key k1, k2;
	memset(&a, 0, sizeof(a));
	a.l3 = BS_L3_IPV4;
	a.sport = 25;
	a.dport = 1000;
	int d1 = bs_flow_key_from_pkt(&a, 0, &k1);
	a.sport = 1000;
	a.dport = 25;
	int d2 = bs_flow_key_from_pkt(&a, 0, &k2);
	assert_memory_equal(&k1, &k2, sizeof(k1));
	assert_int_not_equal(d1, d2);
}

static void
test_create_find_remove(void **state)
{
	(void)state;
	released = 0;
	struct bs_flow_table *t = bs_flow_table_create(16, tmo, on_release,
		NULL, 1);
	assert_non_null(t);
	struct bs_pkt p;
	struct bs_flow_key k;
	bool created;
	mkpkt(&p, 1, 1000, 0, 0);
	bs_flow_key_from_pkt(&p, 0, &k);
	assert_null(bs_flow_lookup(t, &k, 0, false, &created));
	struct bs_flow *f = bs_flow_lookup(t, &k, 0, true, &created);
	assert_non_null(f);
	assert_true(created);
	assert_int_equal(bs_flow_count(t), 1);
	mkpkt(&p, 1, 1000, 0, 1);
	bs_flow_key_from_pkt(&p, 0, &k);
	assert_ptr_equal(bs_flow_lookup(t, &k, 5, true, &created), f);
	assert_false(created);
	bs_flow_remove(t, f);
	assert_int_equal(released, 1);
	assert_int_equal(bs_flow_count(t), 0);
	assert_null(bs_flow_lookup(t, &k, 5, false, &created));
	bs_flow_table_free(t);
}

static void
test_aging_classes(void **state)
{
	(void)state;
	released = 0;
	struct bs_flow_table *t = bs_flow_table_create(64, tmo, on_release,
		NULL, 2);
	struct bs_flow *f[10];
	struct bs_pkt p;
	struct bs_flow_key k;
	bool created;
	for (uint32_t i = 0; i < 10; i++) {
		mkpkt(&p, i, 2000, 0, 0);
		bs_flow_key_from_pkt(&p, 0, &k);
		f[i] = bs_flow_lookup(t, &k, i, true, &created);
		assert_non_null(f[i]);
		if (i % 2 == 0)
			bs_flow_set_tmo(t, f[i], BS_FLOW_TMO_LONG);
	}
	/* At 104 the short flows seen at 1,3 are 100 ms idle: expired. */
	assert_int_equal(bs_flow_expire(t, 104, 100), 2);
	assert_int_equal(bs_flow_count(t), 8);
	/* Touching a long flow keeps it alive past its first deadline. */
	mkpkt(&p, 0, 2000, 0, 1);
	bs_flow_key_from_pkt(&p, 0, &k);
	assert_non_null(bs_flow_lookup(t, &k, 900, false, &created));
	assert_int_equal(bs_flow_expire(t, 200, 100), 3); /* 5, 7, 9 */
	/* Batch limit is honoured. */
	assert_int_equal(bs_flow_expire(t, 1500, 1), 1);
	assert_int_equal(bs_flow_expire(t, 1500, 100), 3); /* 4,6,8 minus one */
	assert_int_equal(bs_flow_count(t), 1);            /* flow 0 */
	assert_int_equal(bs_flow_expired(t), 9);
	assert_int_equal(released, 9);
	bs_flow_table_free(t);
	assert_int_equal(released, 10);
}

static void
test_full_table(void **state)
{
	(void)state;
	struct bs_flow_table *t = bs_flow_table_create(4, tmo, NULL, NULL, 3);
	struct bs_pkt p;
	struct bs_flow_key k;
	bool created;
	for (uint32_t i = 0; i < 4; i++) {
		mkpkt(&p, i, 3000, 0, 0);
		bs_flow_key_from_pkt(&p, 0, &k);
		struct bs_flow *f = bs_flow_lookup(t, &k, 10, true, &created);
		assert_non_null(f);
		bs_flow_set_tmo(t, f, BS_FLOW_TMO_LONG);
	}
	mkpkt(&p, 99, 3000, 0, 0);
	bs_flow_key_from_pkt(&p, 0, &k);
	/* Full of established flows: refused, existing ones untouched. */
	assert_null(bs_flow_lookup(t, &k, 50, true, &created));
	assert_int_equal(bs_flow_count(t), 4);
	/* A flow touched lazily (no relink) must not be swept as expired. */
	mkpkt(&p, 0, 3000, 0, 1);
	bs_flow_key_from_pkt(&p, 0, &k);
	assert_non_null(bs_flow_lookup(t, &k, 1005, false, &created));
	mkpkt(&p, 99, 3000, 0, 0);
	bs_flow_key_from_pkt(&p, 0, &k);
	/* Once they are expired, a new flow's short sweep reclaims them. */
	assert_non_null(bs_flow_lookup(t, &k, 1100, true, &created));
	assert_true(created);
	assert_int_equal(bs_flow_count(t), 2);  /* flow 0 and the new one */
	assert_int_equal(bs_flow_expired(t), 3);
	assert_int_equal(bs_flow_evicted(t, BS_FLOW_TMO_SYN), 0);
	bs_flow_table_free(t);
}

/*
 * A SYN flood fills the table with half-open entries: a new flow evicts
 * the oldest of them (never an established one), closed ones go next,
 * and each eviction is counted.
 */
static void
test_halfopen_evicted(void **state)
{
	(void)state;
	released = 0;
	struct bs_flow_table *t = bs_flow_table_create(4, tmo, on_release,
		NULL, 5);
	struct bs_flow *f[4];
	struct bs_pkt p;
	struct bs_flow_key k;
	bool created;
	for (uint32_t i = 0; i < 4; i++) {
		mkpkt(&p, i, 3000, 0, 0);
		bs_flow_key_from_pkt(&p, 0, &k);
		f[i] = bs_flow_lookup(t, &k, 10 + i, true, &created);
		assert_non_null(f[i]);
		assert_int_equal(f[i]->tmo, BS_FLOW_TMO_SYN);
	}
	/* 0 and 2 complete their handshakes; 3 closes; 1 stays half-open. */
	bs_flow_set_tmo(t, f[0], BS_FLOW_TMO_LONG);
	bs_flow_set_tmo(t, f[2], BS_FLOW_TMO_LONG);
	bs_flow_set_tmo(t, f[3], BS_FLOW_TMO_SHORT);
	mkpkt(&p, 50, 3000, 0, 0);
	bs_flow_key_from_pkt(&p, 0, &k);
	assert_non_null(bs_flow_lookup(t, &k, 20, true, &created));
	assert_int_equal(bs_flow_evicted(t, BS_FLOW_TMO_SYN), 1);
	assert_int_equal(released, 1);
	mkpkt(&p, 1, 3000, 0, 0);
	bs_flow_key_from_pkt(&p, 0, &k);
	assert_null(bs_flow_lookup(t, &k, 21, false, &created));
	/* Next: the new half-open one (50), then the closed one (3). */
	mkpkt(&p, 51, 3000, 0, 0);
	bs_flow_key_from_pkt(&p, 0, &k);
	struct bs_flow *n = bs_flow_lookup(t, &k, 22, true, &created);
	assert_non_null(n);
	assert_int_equal(bs_flow_evicted(t, BS_FLOW_TMO_SYN), 2);
	bs_flow_set_tmo(t, n, BS_FLOW_TMO_LONG);
	mkpkt(&p, 52, 3000, 0, 0);
	bs_flow_key_from_pkt(&p, 0, &k);
	assert_non_null(bs_flow_lookup(t, &k, 23, true, &created));
	assert_int_equal(bs_flow_evicted(t, BS_FLOW_TMO_SHORT), 1);
	/* The established ones are all still there. */
	for (uint32_t i = 0; i < 3; i += 2) {
		mkpkt(&p, i, 3000, 0, 1);
		bs_flow_key_from_pkt(&p, 0, &k);
		assert_ptr_equal(bs_flow_lookup(t, &k, 24, false, &created),
			f[i]);
	}
	assert_int_equal(bs_flow_count(t), 4);
	assert_int_equal(bs_flow_expired(t), 0);
	bs_flow_table_free(t);
}

/* The VLAN tags and the link are part of a connection's identity. */
static void
test_vlan_link_key(void **state)
{
	(void)state;
	struct bs_flow_table *t = bs_flow_table_create(16, tmo, NULL, NULL, 6);
	struct bs_pkt a, b;
	struct bs_flow_key ka, kb;
	bool created;
	for (int v6 = 0; v6 < 2; v6++) {
		mkpkt(&a, 7, 4000, v6, 0);
		mkpkt(&b, 7, 4000, v6, 1);
		a.vlan_count = b.vlan_count = 2;
		a.vlan[0] = b.vlan[0] = 200;
		a.vlan[1] = b.vlan[1] = 100;
		/* Both directions on one VLAN pair and link: one flow. */
		bs_flow_key_from_pkt(&a, 1, &ka);
		bs_flow_key_from_pkt(&b, 1, &kb);
		assert_memory_equal(&ka, &kb, sizeof(ka));
		struct bs_flow *f = bs_flow_lookup(t, &ka, 0, true, &created);
		assert_non_null(f);
		/* Another inner tag, outer tag, no tag, or link: others. */
		b.vlan[1] = 101;
		bs_flow_key_from_pkt(&b, 1, &kb);
		assert_null(bs_flow_lookup(t, &kb, 0, false, &created));
		b.vlan[1] = 100;
		b.vlan[0] = 201;
		bs_flow_key_from_pkt(&b, 1, &kb);
		assert_null(bs_flow_lookup(t, &kb, 0, false, &created));
		b.vlan_count = 0;
		bs_flow_key_from_pkt(&b, 1, &kb);
		assert_null(bs_flow_lookup(t, &kb, 0, false, &created));
		b.vlan_count = 2;
		b.vlan[0] = 200;
		bs_flow_key_from_pkt(&b, 0, &kb);
		assert_null(bs_flow_lookup(t, &kb, 0, false, &created));
		bs_flow_key_from_pkt(&b, 1, &kb);
		assert_ptr_equal(bs_flow_lookup(t, &kb, 0, false, &created), f);
		/* The priority bits of a TCI are not part of the VLAN. */
		b.vlan[0] = 200 | 0x6000;
		bs_flow_key_from_pkt(&b, 1, &kb);
		assert_ptr_equal(bs_flow_lookup(t, &kb, 0, false, &created), f);
	}
	bs_flow_table_free(t);
}

/*
 * Model check: random lookups/creates/removes/expiries against an array
 * that records which keys should be present and when they were last seen.
 */
#define MODEL_KEYS 300
static void
test_model(void **state)
{
	(void)state;
	struct bs_flow_table *t = bs_flow_table_create(128, tmo, NULL, NULL, 4);
	struct {
		bool present;
		uint64_t last;
		int tmo;
	} m[MODEL_KEYS];
	uint64_t evicted = 0;
	memset(m, 0, sizeof(m));
	srand(42);
	uint64_t now = 0;
	for (int step = 0; step < 200000; step++) {
		now += (uint64_t)(rand() % 3);
		uint32_t i = (uint32_t)(rand() % MODEL_KEYS);
		struct bs_pkt p;
		struct bs_flow_key k;
		bool created;
		mkpkt(&p, i, (uint16_t)(1024 + i), (int)(i % 2), rand() % 2);
		bs_flow_key_from_pkt(&p, 0, &k);
		int op = rand() % 10;
		if (op < 7) {
			bool create = op < 5;
			unsigned int before = bs_flow_count(t);
			struct bs_flow *f = bs_flow_lookup(t, &k, now, create,
				&created);
			if (m[i].present) {
				/* Present unless aged out and not yet swept,
				 * or (half-open, closed) evicted for room. */
				uint64_t limit = tmo[m[i].tmo];
				if (now - m[i].last < limit &&
						m[i].tmo == BS_FLOW_TMO_LONG)
					assert_non_null(f);
				if (f == NULL)
					m[i].present = false;
			}
			uint64_t ev = bs_flow_evicted(t, BS_FLOW_TMO_SYN) +
				bs_flow_evicted(t, BS_FLOW_TMO_SHORT);
			if (ev != evicted) {
				/* Someone evictable went: the model no longer
				 * knows who, so it forgets them all. */
				evicted = ev;
				for (uint32_t j = 0; j < MODEL_KEYS; j++)
					if (m[j].tmo != BS_FLOW_TMO_LONG &&
							j != i)
						m[j].present = false;
			}
			if (f != NULL) {
				/* Recycling and eviction never take an
				 * established entry: a key the model holds
				 * live in that class is never lost. */
				if (created) {
					m[i].tmo = BS_FLOW_TMO_SYN;
				}
				m[i].present = true;
				m[i].last = now;
				int r = rand() % 8;
				if (r < 2) {
					bs_flow_set_tmo(t, f, BS_FLOW_TMO_LONG);
					m[i].tmo = BS_FLOW_TMO_LONG;
				} else if (r == 2) {
					bs_flow_set_tmo(t, f, BS_FLOW_TMO_SHORT);
					m[i].tmo = BS_FLOW_TMO_SHORT;
				}
			} else if (create) {
				assert_int_equal(before, bs_flow_capacity(t));
			}
		} else if (op < 8) {
			struct bs_flow *f = bs_flow_lookup(t, &k, now, false,
				&created);
			if (f != NULL) {
				bs_flow_remove(t, f);
				m[i].present = false;
			}
		} else {
			bs_flow_expire(t, now, 8);
		}
		assert_true(bs_flow_count(t) <= bs_flow_capacity(t));
	}
	/* Everything the model says is alive must be found. */
	for (uint32_t i = 0; i < MODEL_KEYS; i++) {
		if (!m[i].present || now - m[i].last >= tmo[m[i].tmo] ||
				m[i].tmo != BS_FLOW_TMO_LONG)
			continue;
		struct bs_pkt p;
		struct bs_flow_key k;
		bool created;
		mkpkt(&p, i, (uint16_t)(1024 + i), (int)(i % 2), 0);
		bs_flow_key_from_pkt(&p, 0, &k);
		assert_non_null(bs_flow_lookup(t, &k, now, false, &created));
	}
	bs_flow_table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_symmetric_key),
		cmocka_unit_test(test_create_find_remove),
		cmocka_unit_test(test_aging_classes),
		cmocka_unit_test(test_full_table),
		cmocka_unit_test(test_halfopen_evicted),
		cmocka_unit_test(test_vlan_link_key),
		cmocka_unit_test(test_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
