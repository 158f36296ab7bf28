/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker SMTP flow table: chained hash over a preallocated entry pool,
 * keyed multiply-mix hash, one LRU list per timeout class for O(1) aging and
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
	uint64_t k[8];               /* hash secret */
	bs_flow_release_fn release;
	void *release_arg;
	uint32_t *bucket;            /* head entry index per bucket */
	struct bs_flow *ent;
};

/*
 * ---- Keyed hash of the 48-byte key. ----
 *
 * Multiply-mix (the core of wyhash): each pair of key words, XORed with
 * secret words, is multiplied into 128 bits and the halves folded; a
 * second multiply by a secret mixes the result, so every output bit
 * depends on every input bit.  A sender who does not know the secret
 * (random per table) cannot pick 5-tuples that share a bucket; it is no
 * MAC, and need not be: the worst a collision buys is a longer chain.
 * It replaced SipHash-1-3 (2.7% of the pass-through cycles, ~150
 * instructions per SMTP segment) at a few multiplies.
 */
static inline uint64_t
mum(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint32_t
bs_flow_hash(const struct bs_flow_table *t, const struct bs_flow_key *k)
{
	uint64_t w[6], h;

	memcpy(w, k, sizeof(w));
	/*
	 * An IPv4 key is 12 meaningful bytes, 2 VLAN IDs of 12 bits, a
	 * family and a link (the rest is zero): two words, not six.  The
	 * family is in the second word, so the encodings are apart.
	 */
	if (k->l3 == BS_L3_IPV4) {
		uint32_t a0, a1;
		memcpy(&a0, k->addr[0], 4);
		memcpy(&a1, k->addr[1], 4);
		uint64_t x = (uint64_t)a0 | ((uint64_t)a1 << 32);
		uint64_t y = (uint64_t)k->port[0] | ((uint64_t)k->port[1] << 16) |
			((uint64_t)(k->vlan[0] & 0xfff) << 32) |
			((uint64_t)(k->vlan[1] & 0xfff) << 44) |
			((uint64_t)(k->l3 & 0xf) << 56) |
			((uint64_t)(k->link & 0xf) << 60);
		h = mum(x ^ t->k[0], y ^ t->k[1]);
	} else {
		h = mum(w[0] ^ t->k[0], w[1] ^ t->k[1]) ^
			mum(w[2] ^ t->k[2], w[3] ^ t->k[3]) ^
			mum(w[4] ^ t->k[4], w[5] ^ t->k[5]);
	}
	h = mum(h ^ t->k[6], t->k[7]);
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
	/* Derive the secret words from the seed (splitmix64); the last
	 * is a multiplier, so odd. */
	uint64_t z = seed;
	for (int i = 0; i < 8; i++) {
		z += 0x9e3779b97f4a7c15ULL;
		uint64_t x = z;
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
		x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
		t->k[i] = x ^ (x >> 31);
	}
	t->k[7] |= 1;
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
	int swap;

	/* Canonical order: the endpoint whose address (then port) is
	 * smaller in network byte order is side 0, as memcmp() orders. */
	if (p->l3 == BS_L3_IPV4) {
		uint32_t s, d;
		memcpy(&s, p->src, 4);
		memcpy(&d, p->dst, 4);
		s = __builtin_bswap32(s);
		d = __builtin_bswap32(d);
		swap = s > d || (s == d && p->sport > p->dport);
	} else {
		uint64_t s0, s1, d0, d1;
		memcpy(&s0, p->src, 8);
		memcpy(&s1, p->src + 8, 8);
		memcpy(&d0, p->dst, 8);
		memcpy(&d1, p->dst + 8, 8);
		s0 = __builtin_bswap64(s0);
		s1 = __builtin_bswap64(s1);
		d0 = __builtin_bswap64(d0);
		d1 = __builtin_bswap64(d1);
		swap = s0 != d0 ? s0 > d0 : s1 != d1 ? s1 > d1
						     : p->sport > p->dport;
	}
	const uint8_t *a0 = swap ? p->dst : p->src;
	const uint8_t *a1 = swap ? p->src : p->dst;
	if (p->l3 == BS_L3_IPV4) {
		/* The parser leaves the rest of an IPv4 address as it was. */
		memset(k->addr, 0, sizeof(k->addr));
		memcpy(k->addr[0], a0, 4);
		memcpy(k->addr[1], a1, 4);
	} else {
		memcpy(k->addr[0], a0, 16);
		memcpy(k->addr[1], a1, 16);
	}
	k->port[0] = swap ? p->dport : p->sport;
	k->port[1] = swap ? p->sport : p->dport;
	/* vlan[] holds VIDs (12 bits); untagged and VID 0 are one link. */
	k->vlan[0] = p->vlan_count > 0 ? p->vlan[0] & 0xfff : 0;
	k->vlan[1] = p->vlan_count > 1 ? p->vlan[1] & 0xfff : 0;
	k->l3 = p->l3;
	k->link = (uint8_t)link;
	memset(k->pad, 0, sizeof(k->pad));
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
