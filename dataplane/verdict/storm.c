/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Storm detection, worker side (storm.h): counting a bounce into the
 * worker's own sketches, asking the slow path to judge a key that is
 * getting hot, and the lock-free "is this recipient in a storm?" that
 * the verdict asks.
 *
 * A note costs two SipHash-2-4 (address, domain), 2 x depth plain
 * increments in the worker's half, and 2 x depth reads of the published
 * snapshot; nothing is shared for writing, nothing waits.  The question
 * costs nothing but a pointer load while no storm is on (the common
 * case), and two hashes and two probes of a small table during one.
 */
#include "storm_int.h"

#include <string.h>

#include <sodium.h>

size_t
bs_storm_norm(const char *in, size_t len, char *out, size_t *dom,
	size_t *dlen)
{
	size_t n = 0, at = SIZE_MAX;
	for (size_t i = 0; i < len && n < BS_STORM_ADDR_MAX; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '<' || c == '>' || c == ' ' || c == '\t' || c == '\r' ||
				c == '\n')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '@')
			at = n;
		out[n++] = (char)c;
	}
	if (at != SIZE_MAX && at + 1 < n) {
		*dom = at + 1;
		*dlen = n - at - 1;
	} else {
		*dom = 0;
		*dlen = 0;
	}
	return n;
}

struct storm_hash
bs_storm_hash(const struct bs_storm *s, int kind, const char *b, size_t n)
{
	unsigned char out[crypto_shorthash_siphashx24_BYTES];
	crypto_shorthash_siphashx24(out, (const unsigned char *)b, n,
		s->key[kind]);
	struct storm_hash h;
	memcpy(h.w, out, sizeof(h.w));
	return h;
}

static void
candidate(struct bs_storm_part *p, const struct storm_snap *sn, int kind,
	const struct storm_hash *h, const uint32_t *mine, const char *name,
	size_t nlen, uint64_t epoch)
{
	const struct bs_storm *s = p->s;
	bool on;
	if (storm_snap_find(sn, h->w[0], kind, &on))
		return; /* already judged every tick */
	uint64_t est = (uint64_t)storm_est(s, sn->cells, kind, h) +
		storm_est(s, mine, kind, h);
	if (est * 2 < s->thr[kind])
		return;
	unsigned int m = (unsigned int)h->w[0] & (STORM_MEMO - 1);
	if (p->memo[m].h == h->w[0] && p->memo[m].epoch == epoch)
		return; /* sent this epoch */
	p->memo[m].h = h->w[0];
	p->memo[m].epoch = epoch;
	uint64_t tail = __atomic_load_n(&p->tail, __ATOMIC_ACQUIRE);
	if (p->head - tail > p->mask) {
		storm_inc(&p->dropped, 1);
		return;
	}
	struct storm_cand *c = &p->ring[p->head & p->mask];
	c->h = *h;
	c->kind = (uint8_t)kind;
	if (nlen > BS_STORM_NAME_MAX)
		nlen = BS_STORM_NAME_MAX;
	c->len = (uint8_t)nlen;
	memcpy(c->name, name, nlen);
	__atomic_store_n(&p->head, p->head + 1, __ATOMIC_RELEASE);
}

void
bs_storm_note(struct bs_storm_part *p, const char *rcpt, size_t len)
{
	const struct bs_storm *s = p->s;
	char a[BS_STORM_ADDR_MAX];
	size_t dom, dlen;
	size_t n = bs_storm_norm(rcpt, len, a, &dom, &dlen);
	if (n == 0)
		return;
	struct storm_hash h[2];
	h[STORM_RCPT] = bs_storm_hash(s, STORM_RCPT, a, n);
	if (dlen > 0)
		h[STORM_DOMAIN] = bs_storm_hash(s, STORM_DOMAIN, a + dom, dlen);
	uint64_t epoch = __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
	uint32_t *mine = p->sk[epoch & 1];
	int kinds = dlen > 0 ? 2 : 1;
	for (int k = 0; k < kinds; k++)
		for (uint32_t i = 0; i < s->depth; i++) {
			uint32_t *c = &mine[storm_cell(s, k, &h[k], i)];
			uint32_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
			if (v != UINT32_MAX)
				__atomic_store_n(c, v + 1, __ATOMIC_RELAXED);
		}
	storm_inc(&p->notes, 1);

	const struct storm_snap *sn = rcu_dereference(s->snap);
	if (sn == NULL)
		return;
	candidate(p, sn, STORM_RCPT, &h[STORM_RCPT], mine, a, n, epoch);
	if (dlen > 0)
		candidate(p, sn, STORM_DOMAIN, &h[STORM_DOMAIN], mine, a + dom,
			dlen, epoch);
}

static const struct storm_snap *
fresh_snap(const struct bs_storm *s, uint64_t now_ms)
{
	if (s == NULL)
		return NULL;
	const struct storm_snap *sn = rcu_dereference(s->snap);
	if (sn == NULL)
		return NULL;
	uint64_t pub = storm_ld(&sn->published_ms);
	if (now_ms > pub && now_ms - pub > s->stale_ms)
		return NULL; /* the slow path stopped: fail open */
	return sn;
}

bool
bs_storm_active(const struct bs_storm *s, const char *rcpt, size_t len,
	uint64_t now_ms)
{
	const struct storm_snap *sn = fresh_snap(s, now_ms);
	if (sn == NULL || storm_ld(&sn->n_active) == 0)
		return false;
	char a[BS_STORM_ADDR_MAX];
	size_t dom, dlen;
	size_t n = bs_storm_norm(rcpt, len, a, &dom, &dlen);
	if (n == 0)
		return false;
	struct storm_hash h = bs_storm_hash(s, STORM_RCPT, a, n);
	bool on = false;
	if (storm_snap_find(sn, h.w[0], STORM_RCPT, &on) && on)
		return true;
	if (dlen == 0)
		return false;
	h = bs_storm_hash(s, STORM_DOMAIN, a + dom, dlen);
	return storm_snap_find(sn, h.w[0], STORM_DOMAIN, &on) && on;
}

void
bs_storm_estimate(const struct bs_storm *s, const char *rcpt, size_t len,
	uint32_t *rcpt_count, uint32_t *domain_count)
{
	*rcpt_count = *domain_count = 0;
	const struct storm_snap *sn = s != NULL ? rcu_dereference(s->snap) : NULL;
	if (sn == NULL)
		return;
	char a[BS_STORM_ADDR_MAX];
	size_t dom, dlen;
	size_t n = bs_storm_norm(rcpt, len, a, &dom, &dlen);
	if (n == 0)
		return;
	struct storm_hash h = bs_storm_hash(s, STORM_RCPT, a, n);
	*rcpt_count = storm_est(s, sn->cells, STORM_RCPT, &h);
	if (dlen > 0) {
		h = bs_storm_hash(s, STORM_DOMAIN, a + dom, dlen);
		*domain_count = storm_est(s, sn->cells, STORM_DOMAIN, &h);
	}
}
