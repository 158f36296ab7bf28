/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ledger's worker side: recording an outbound Message-ID into the
 * worker's ring, and the lock-free lookup the verdict uses (ledger.h).
 *
 * Both normalise into a stack buffer and hash with SipHash-2-4 (libsodium's
 * crypto_shorthash: a pure function, no allocation, ~20 ns for a typical
 * id).  The record is then 16 bytes in an SPSC ring (the evring design:
 * each index written by one side, acquire/release, no read-modify-write);
 * the lookup is one cds_lfht_lookup() under QSBR, which costs the reader
 * nothing but the table walk.
 */
#include "ledger_int.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

uint64_t
bs_ledger_key(const struct bs_ledger *l, const char *norm, size_t n)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)norm, n, l->secret);
	uint64_t k;
	memcpy(&k, h, sizeof(k));
	return k;
}

int
bs_ledger_record(struct bs_ledger_part *p, const char *msgid, size_t len,
	uint64_t now_s)
{
	char norm[BS_MSGID_MAX];
	int n = bs_msgid_normalise(msgid, len, norm, sizeof(norm));
	if (n < 0) {
		ledger_inc(&p->bad, 1);
		return -EINVAL;
	}
	uint64_t key = bs_ledger_key(p->l, norm, (size_t)n);
	uint64_t head = p->head; /* ours */
	uint64_t tail = __atomic_load_n(&p->tail, __ATOMIC_ACQUIRE);
	if (head - tail > p->mask) {
		ledger_inc(&p->dropped, 1);
		return -ENOSPC;
	}
	p->ring[head & p->mask] = (struct ledger_rec){ key, now_s };
	__atomic_store_n(&p->head, head + 1, __ATOMIC_RELEASE);
	ledger_inc(&p->recorded, 1);
	return 0;
}

static int
match_key(struct cds_lfht_node *node, const void *key)
{
	const struct ledger_ent *e = ledger_ent_of(node);
	return __atomic_load_n(&e->key, __ATOMIC_ACQUIRE) ==
		*(const uint64_t *)key;
}

enum bs_ledger_answer
bs_ledger_lookup(const struct bs_ledger *l, const char *msgid, size_t len,
	uint64_t now_s)
{
	if (l == NULL)
		return BS_LEDGER_OFF;
	char norm[BS_MSGID_MAX];
	int n = bs_msgid_normalise(msgid, len, norm, sizeof(norm));
	if (n < 0)
		return BS_LEDGER_OFF;
	uint64_t key = bs_ledger_key(l, norm, (size_t)n);

	bool hit = false;
	struct cds_lfht_iter it;
	rcu_read_lock();
	cds_lfht_lookup(l->ht, (unsigned long)key, match_key, &key, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	if (node != NULL) {
		const struct ledger_ent *e = ledger_ent_of(node);
		uint64_t seen = ledger_ld(&e->seen_s);
		/* The writer expires at its own pace; the TTL is exact
		 * here.  A time from a worker whose clock runs ahead is
		 * a hit, not an underflow. */
		hit = seen >= now_s || now_s - seen <= l->ttl_s;
	}
	rcu_read_unlock();
	if (hit)
		return BS_LEDGER_HIT;
	uint64_t warm = ledger_ld(&l->warm_since_s);
	if (now_s < warm || now_s - warm < l->ttl_s)
		return BS_LEDGER_WARMING;
	return BS_LEDGER_MISS;
}
