/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker SMTP flow table: chained hash over a preallocated entry pool,
 * keyed SipHash-1-3, one LRU list per timeout class for O(1) aging and
 * eviction (half-open first).  See flow.h for the
 * contract.
 *
 * Why chaining over a pool rather than rte_hash: the engine must run
 * without EAL (tests, fuzzers, offline tools), every entry must be
 * reachable from an LRU list for O(1) aging, and the table is per worker
 * so rte_hash's multi-writer machinery would be dead weight.
 */
#include "backstop/flow.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct bs_flow_key) == 48,
	"flow key is compared as six 64-bit words");
_Static_assert(offsetof(struct bs_flow, lru_stamp) == 64,
	"key, hash, chain and last_seen fill the first cache line");
_Static_assert(sizeof(struct bs_flow) == 128,
	"two cache lines per entry (README and docs/performance.md say so)");

struct lru {
	uint32_t head, tail;
};

struct bs_flow_table {
	uint32_t capacity;
	uint32_t bucket_mask;
	uint32_t count;
	uint64_t expired;            /* entries removed by aging */
	uint64_t evicted[BS_FLOW_TMO__MAX]; /* live entries taken for room */
	uint32_t free_head;          /* free entries, chained by chain_next */
	uint64_t timeout[BS_FLOW_TMO__MAX];
	uint64_t granule[BS_FLOW_TMO__MAX]; /* relink at most this often */
	struct lru lru[BS_FLOW_TMO__MAX];
	uint64_t k0, k1;             /* SipHash key */
	bs_flow_release_fn release;
	void *release_arg;
	uint32_t *bucket;            /* head entry index per bucket */
	struct bs_flow *ent;
};

/* ---- SipHash-1-3 over the 48-byte key (Aumasson & Bernstein). ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
	do {                                                                \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);   \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                      \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                      \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);   \
	} while (0)

uint32_t
bs_flow_hash(const struct bs_flow_table *t, const struct bs_flow_key *k)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ t->k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ t->k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ t->k0;
	uint64_t v3 = 0x7465646279746573ULL ^ t->k1;
	uint64_t w[6];
	unsigned int nw;

	/*
	 * An IPv4 key is 12 meaningful bytes and 2 VLAN IDs of 12 bits, a
	 * family and a link (the rest is zero): hash two words, not six.
	 * The family is in the last word, so the two encodings cannot
	 * collide by construction.
	 */
	if (k->l3 == BS_L3_IPV4) {
		uint32_t a0, a1;
		memcpy(&a0, k->addr[0], 4);
		memcpy(&a1, k->addr[1], 4);
		w[0] = (uint64_t)a0 | ((uint64_t)a1 << 32);
		w[1] = (uint64_t)k->port[0] | ((uint64_t)k->port[1] << 16) |
			((uint64_t)(k->vlan[0] & 0xfff) << 32) |
			((uint64_t)(k->vlan[1] & 0xfff) << 44) |
			((uint64_t)(k->l3 & 0xf) << 56) |
			((uint64_t)(k->link & 0xf) << 60);
		nw = 2;
	} else {
		memcpy(w, k, sizeof(w));
		nw = 6;
	}
	for (unsigned int i = 0; i < nw; i++) {
		v3 ^= w[i];
		SIPROUND;
		v0 ^= w[i];
	}
	uint64_t b = (uint64_t)(nw * 8) << 56;
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	uint64_t h = v0 ^ v1 ^ v2 ^ v3;
	return (uint32_t)(h ^ (h >> 32));
}

/* Keys are six aligned words: compare them inline (a memcmp call was
 * 1.3% of the cycles of the pass-through benchmark). */
static inline bool
key_eq(const struct bs_flow_key *a, const struct bs_flow_key *b)
{
	uint64_t x[6], y[6];
	memcpy(x, a, sizeof(x));
	memcpy(y, b, sizeof(y));
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) |
		(x[3] ^ y[3]) | (x[4] ^ y[4]) | (x[5] ^ y[5])) == 0;
}

/* ---- LRU lists (indices into ent[]). ---- */

static void
lru_unlink(struct bs_flow_table *t, struct bs_flow *f)
{
	struct lru *l = &t->lru[f->tmo];
	if (f->lru_prev != BS_FLOW_NONE)
		t->ent[f->lru_prev].lru_next = f->lru_next;
	else
		l->head = f->lru_next;
	if (f->lru_next != BS_FLOW_NONE)
		t->ent[f->lru_next].lru_prev = f->lru_prev;
	else
		l->tail = f->lru_prev;
}

static void
lru_append(struct bs_flow_table *t, struct bs_flow *f)
{
	struct lru *l = &t->lru[f->tmo];
	uint32_t idx = (uint32_t)(f - t->ent);
	f->lru_next = BS_FLOW_NONE;
	f->lru_prev = l->tail;
	if (l->tail != BS_FLOW_NONE)
		t->ent[l->tail].lru_next = idx;
	else
		l->head = idx;
	l->tail = idx;
}

static void
relink(struct bs_flow_table *t, struct bs_flow *f)
{
	f->lru_stamp = f->last_seen;
	if (t->lru[f->tmo].tail != (uint32_t)(f - t->ent)) {
		lru_unlink(t, f);
		lru_append(t, f);
	}
}

static inline void
touch(struct bs_flow_table *t, struct bs_flow *f, uint64_t now)
{
	f->last_seen = now;
	if (now - f->lru_stamp >= t->granule[f->tmo])
		relink(t, f);
}

/* ---- Table. ---- */

static uint32_t
pow2_ceil(uint32_t v)
{
	uint32_t p = 1;
	while (p < v && p < (1u << 31))
		p <<= 1;
	return p;
}

uint64_t
bs_flow_table_mem(uint32_t capacity)
{
	return sizeof(struct bs_flow_table) +
		(uint64_t)pow2_ceil(capacity) * sizeof(uint32_t) +
		(uint64_t)capacity * sizeof(struct bs_flow);
}

struct bs_flow_table *
bs_flow_table_create(uint32_t capacity,
	const uint64_t timeout_ms[BS_FLOW_TMO__MAX], bs_flow_release_fn release,
	void *release_arg, uint64_t seed)
{
	if (capacity == 0 || capacity >= BS_FLOW_NONE)
		return NULL;
	struct bs_flow_table *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	uint32_t nb = pow2_ceil(capacity);
	t->bucket = malloc((size_t)nb * sizeof(uint32_t));
	t->ent = calloc(capacity, sizeof(struct bs_flow));
	if (t->bucket == NULL || t->ent == NULL) {
		bs_flow_table_free(t);
		return NULL;
	}
	t->capacity = capacity;
	t->bucket_mask = nb - 1;
	memset(t->bucket, 0xff, (size_t)nb * sizeof(uint32_t));
	for (uint32_t i = 0; i < capacity; i++)
		t->ent[i].chain_next = i + 1 < capacity ? i + 1 : BS_FLOW_NONE;
	t->free_head = 0;
	for (int c = 0; c < BS_FLOW_TMO__MAX; c++) {
		t->timeout[c] = timeout_ms[c];
		t->granule[c] = timeout_ms[c] / 16 < 1000 ? timeout_ms[c] / 16
							  : 1000;
		t->lru[c].head = t->lru[c].tail = BS_FLOW_NONE;
	}
	/* Derive the two key words from the seed (splitmix64). */
	uint64_t z = seed;
	for (int i = 0; i < 2; i++) {
		z += 0x9e3779b97f4a7c15ULL;
		uint64_t x = z;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
		x ^= x >> 31;
		if (i == 0)
			t->k0 = x;
		else
			t->k1 = x;
	}
	t->release = release;
	t->release_arg = release_arg;
	return t;
}

void
bs_flow_table_free(struct bs_flow_table *t)
{
	if (t == NULL)
		return;
	if (t->ent != NULL && t->release != NULL)
		for (uint32_t i = 0; i < t->capacity; i++)
			if (t->ent[i].in_use)
				t->release(&t->ent[i], t->release_arg);
	free(t->bucket);
	free(t->ent);
	free(t);
}

int
bs_flow_key_from_pkt(const struct bs_pkt *p, unsigned int link,
	struct bs_flow_key *k)
{
	size_t alen = p->l3 == BS_L3_IPV4 ? 4 : 16;
	int c = memcmp(p->src, p->dst, alen);
	int swap = c > 0 || (c == 0 && p->sport > p->dport);

	memset(k, 0, sizeof(*k));
	k->l3 = p->l3;
	k->link = (uint8_t)link;
	/* vlan[] holds VIDs (12 bits); untagged and VID 0 are one link. */
	if (p->vlan_count > 0)
		k->vlan[0] = p->vlan[0] & 0xfff;
	if (p->vlan_count > 1)
		k->vlan[1] = p->vlan[1] & 0xfff;
	if (!swap) {
		memcpy(k->addr[0], p->src, alen);
		memcpy(k->addr[1], p->dst, alen);
		k->port[0] = p->sport;
		k->port[1] = p->dport;
	} else {
		memcpy(k->addr[0], p->dst, alen);
		memcpy(k->addr[1], p->src, alen);
		k->port[0] = p->dport;
		k->port[1] = p->sport;
	}
	return swap ? BS_DIR_1TO0 : BS_DIR_0TO1;
}

static void
unlink_and_free(struct bs_flow_table *t, struct bs_flow *f)
{
	uint32_t idx = (uint32_t)(f - t->ent);
	uint32_t *pp = &t->bucket[f->hash & t->bucket_mask];
	while (*pp != idx)
		pp = &t->ent[*pp].chain_next; /* present by invariant */
	*pp = f->chain_next;
	lru_unlink(t, f);
	if (t->release != NULL)
		t->release(f, t->release_arg);
	f->in_use = 0;
	f->app = NULL;
	f->chain_next = t->free_head;
	t->free_head = idx;
	t->count--;
}

static int
is_expired(const struct bs_flow_table *t, const struct bs_flow *f, uint64_t now)
{
	return now >= f->last_seen && now - f->last_seen >= t->timeout[f->tmo];
}

/* Entries a full table sweeps before refusing a new flow. */
#define ALLOC_SWEEP 8

/*
 * Take an entry: from the free list, else by a short aging sweep, else by
 * evicting the least recently seen half-open entry, else closed one.  A
 * SYN flood thus recycles its own entries and never pushes out a
 * connection whose handshake completed.
 */
static struct bs_flow *
alloc_entry(struct bs_flow_table *t, uint64_t now)
{
	if (t->free_head == BS_FLOW_NONE) {
		bs_flow_expire(t, now, ALLOC_SWEEP);
		static const enum bs_flow_tmo order[] = { BS_FLOW_TMO_SYN,
			BS_FLOW_TMO_SHORT };
		for (unsigned int i = 0; t->free_head == BS_FLOW_NONE &&
				i < sizeof(order) / sizeof(order[0]); i++) {
			uint32_t h = t->lru[order[i]].head;
			if (h == BS_FLOW_NONE)
				continue;
			unlink_and_free(t, &t->ent[h]);
			t->evicted[order[i]]++;
		}
		if (t->free_head == BS_FLOW_NONE)
			return NULL;
	}
	struct bs_flow *f = &t->ent[t->free_head];
	t->free_head = f->chain_next;
	return f;
}

void
bs_flow_prefetch(const struct bs_flow_table *t, uint32_t h, int stage)
{
	const uint32_t *b = &t->bucket[h & t->bucket_mask];
	if (stage == 0) {
		__builtin_prefetch(b, 0, 3);
		return;
	}
	uint32_t i = *b;
	if (i != BS_FLOW_NONE) {
		/* Both lines: the lookup reads the first, tracking the second. */
		__builtin_prefetch(&t->ent[i], 1, 3);
		__builtin_prefetch((const char *)&t->ent[i] + 64, 1, 3);
	}
}

struct bs_flow *
bs_flow_lookup(struct bs_flow_table *t, const struct bs_flow_key *k,
	uint64_t now, bool create, bool *created)
{
	return bs_flow_lookup_hashed(t, k, bs_flow_hash(t, k), now, create,
		created);
}

struct bs_flow *
bs_flow_find_hashed(const struct bs_flow_table *t, const struct bs_flow_key *k,
	uint32_t h)
{
	for (uint32_t i = t->bucket[h & t->bucket_mask]; i != BS_FLOW_NONE;
			i = t->ent[i].chain_next) {
		struct bs_flow *f = &t->ent[i];
		if (f->hash == h && key_eq(&f->key, k))
			return f;
	}
	return NULL;
}

void
bs_flow_touch(struct bs_flow_table *t, struct bs_flow *f, uint64_t now)
{
	touch(t, f, now);
}

struct bs_flow *
bs_flow_lookup_hashed(struct bs_flow_table *t, const struct bs_flow_key *k,
	uint32_t h, uint64_t now, bool create, bool *created)
{
	uint32_t *head = &t->bucket[h & t->bucket_mask];

	*created = false;
	for (uint32_t i = *head; i != BS_FLOW_NONE; i = t->ent[i].chain_next) {
		struct bs_flow *f = &t->ent[i];
		if (f->hash == h && key_eq(&f->key, k)) {
			touch(t, f, now);
			return f;
		}
	}
	if (!create)
		return NULL;
	struct bs_flow *f = alloc_entry(t, now);
	if (f == NULL)
		return NULL;
	/* alloc_entry may have changed this very chain: reload head. */
	head = &t->bucket[h & t->bucket_mask];
	memset(f, 0, sizeof(*f));
	f->key = *k;
	f->hash = h;
	f->in_use = 1;
	f->tmo = BS_FLOW_TMO_SYN;
	f->last_seen = now;
	f->lru_stamp = now;
	f->chain_next = *head;
	*head = (uint32_t)(f - t->ent);
	lru_append(t, f);
	t->count++;
	*created = true;
	return f;
}

void
bs_flow_set_tmo(struct bs_flow_table *t, struct bs_flow *f,
	enum bs_flow_tmo tmo)
{
	if (f->tmo == tmo)
		return;
	lru_unlink(t, f);
	f->tmo = (uint8_t)tmo;
	f->lru_stamp = f->last_seen;
	lru_append(t, f);
}

void
bs_flow_remove(struct bs_flow_table *t, struct bs_flow *f)
{
	unlink_and_free(t, f);
}

uint32_t
bs_flow_expire(struct bs_flow_table *t, uint64_t now, uint32_t max)
{
	uint32_t n = 0;
	for (int c = 0; c < BS_FLOW_TMO__MAX; c++) {
		/* steps bounds relinks too, so one call does bounded work. */
		for (uint32_t steps = 0; n < max && steps < 2 * max; steps++) {
			uint32_t h = t->lru[c].head;
			if (h == BS_FLOW_NONE)
				break;
			struct bs_flow *f = &t->ent[h];
			/*
			 * The head's stamp is (to within a granule) the oldest:
			 * if even it is too young, nothing here can be expired.
			 * This keeps the sweep free while no flow is near its
			 * timeout, however busy the flows are.
			 */
			if (now - f->lru_stamp < t->timeout[c])
				break;
			if (is_expired(t, f, now)) {
				unlink_and_free(t, f);
				n++;
				t->expired++;
			} else {
				relink(t, f); /* touched since: requeue */
			}
		}
	}
	return n;
}

uint64_t
bs_flow_expired(const struct bs_flow_table *t)
{
	return t->expired;
}

uint64_t
bs_flow_evicted(const struct bs_flow_table *t, enum bs_flow_tmo tmo)
{
	return (unsigned int)tmo < BS_FLOW_TMO__MAX ? t->evicted[tmo] : 0;
}

uint32_t
bs_flow_count(const struct bs_flow_table *t)
{
	return t->count;
}

const struct bs_flow *
bs_flow_at(const struct bs_flow_table *t, uint32_t i)
{
	return i < t->capacity && t->ent[i].in_use ? &t->ent[i] : NULL;
}

uint32_t
bs_flow_capacity(const struct bs_flow_table *t)
{
	return t->capacity;
}
