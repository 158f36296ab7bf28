/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict policy: the verdict settings of a configuration compiled
 * once into what the workers read.  Domains go into an open-addressing
 * hash table (a bounce's recipient domain is looked up once per
 * recipient), relay patterns into matchers (names, globs, CIDR networks
 * as address bytes and prefix lengths), DKIM keys into OpenSSL EVP_PKEY
 * objects (parsing a key costs far more than verifying with it), and
 * per-domain settings are resolved against the global ones, so a worker
 * never combines settings at run time.
 *
 * The policy is immutable after bs_verdict_policy_build() and holds no
 * pointer into the configuration: the control plane can free or replace
 * the configuration while workers use the policy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verdict_priv.h"

static uint32_t
hash_ci(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)vp_lower(s[i]);
		h *= 16777619u;
	}
	return h;
}

const struct vp_domain *
vp_domain_find(const struct bs_verdict_policy *p, const char *d, size_t n)
{
	if (p->n_domains == 0 || n == 0)
		return NULL;
	/* One trailing dot is the same domain. */
	if (d[n - 1] == '.')
		n--;
	for (uint32_t i = hash_ci(d, n) & p->hmask;; i = (i + 1) & p->hmask) {
		int32_t k = p->hash[i];
		if (k < 0)
			return NULL;
		const struct vp_domain *e = &p->dom[k];
		if (vp_eq_ci(e->name, e->len, d, n))
			return e;
	}
}

bool
bs_verdict_policy_protects(const struct bs_verdict_policy *p,
	const char *domain, size_t len)
{
	return vp_domain_find(p, domain, len) != NULL;
}

static void
relays_free(struct vp_relays *r)
{
	for (uint32_t i = 0; i < r->n; i++)
		free(r->r[i].name);
	free(r->r);
	memset(r, 0, sizeof(*r));
}

/* Compile a validated list of relay patterns. */
static int
relays_build(struct vp_relays *out, const struct bs_cfg_list *l)
{
	out->n = 0;
	out->r = calloc(l->n ? l->n : 1, sizeof(*out->r));
	if (out->r == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < l->n; i++) {
		struct vp_relay *r = &out->r[out->n];
		const char *s = l->item[i];
		char buf[64];
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		memset(r, 0, sizeof(*r));
		if (n < sizeof(buf)) {
			memcpy(buf, s, n);
			buf[n] = '\0';
			if (inet_pton(AF_INET, buf, r->ip) == 1) {
				r->kind = VP_RELAY_V4;
				r->plen = slash ? (uint8_t)atoi(slash + 1) : 32;
				out->n++;
				continue;
			}
			if (inet_pton(AF_INET6, buf, r->ip) == 1) {
				r->kind = VP_RELAY_V6;
				r->plen = slash ? (uint8_t)atoi(slash + 1) : 128;
				out->n++;
				continue;
			}
		}
		r->kind = strchr(s, '*') ? VP_RELAY_GLOB : VP_RELAY_NAME;
		if ((r->name = strdup(s)) == NULL)
			return -ENOMEM;
		out->n++;
	}
	return 0;
}

static EVP_PKEY *
load_key(const struct bs_cfg_dkim_key *k)
{
	if (k->alg == BS_DKIM_ALG_ED25519)
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
			k->der, k->der_len);
	const unsigned char *q = k->der;
	return d2i_PUBKEY(NULL, &q, k->der_len);
}

void
bs_verdict_policy_free(struct bs_verdict_policy *p)
{
	if (p == NULL)
		return;
	for (uint32_t i = 0; i < p->n_domains; i++) {
		struct vp_domain *d = &p->dom[i];
		free(d->name);
		relays_free(&d->own_relays);
		for (uint32_t j = 0; j < d->n_dkim; j++) {
			free(d->dkim[j].selector);
			EVP_PKEY_free(d->dkim[j].pkey);
		}
		free(d->dkim);
	}
	free(p->dom);
	free(p->hash);
	relays_free(&p->relays);
	for (uint32_t i = 0; i < p->n_exempt; i++)
		free(p->exempt[i]);
	free(p->exempt);
	OPENSSL_cleanse(p->batv_key, sizeof(p->batv_key));
	free(p);
}

struct bs_verdict_policy *
bs_verdict_policy_build(const struct bs_config *cfg, char *err, size_t errlen)
{
	struct bs_verdict_policy *p = calloc(1, sizeof(*p));
	const struct bs_cfg_list *pd = &cfg->protected_domains;
	if (p == NULL)
		goto nomem;
	p->batv_lifetime = cfg->batv_lifetime_days;
	p->judge_feedback = cfg->verdict_judge_feedback;
	p->dkim_per_s = cfg->verdict_dkim_per_s;
	for (uint32_t i = 0; i < cfg->batv_keys.n; i++) {
		const struct bs_cfg_batv_key *k = &cfg->batv_keys.key[i];
		struct vp_batv_key *v = &p->batv_key[k->id];
		v->set = true;
		v->len = k->len;
		memcpy(v->secret, k->secret, k->len);
		p->n_batv_keys++;
	}
	if (relays_build(&p->relays, &cfg->relays) < 0)
		goto nomem;
	p->exempt = calloc(cfg->batv_exempt_destinations.n + 1, sizeof(char *));
	if (p->exempt == NULL)
		goto nomem;
	for (uint32_t i = 0; i < cfg->batv_exempt_destinations.n; i++) {
		p->exempt[i] = strdup(cfg->batv_exempt_destinations.item[i]);
		if (p->exempt[i] == NULL)
			goto nomem;
		p->n_exempt++;
	}

	/* Domains: at most half the slots used, so probes stay short. */
	uint32_t slots = 16;
	while (slots < pd->n * 2)
		slots <<= 1;
	p->hmask = slots - 1;
	p->hash = malloc(slots * sizeof(*p->hash));
	p->dom = calloc(pd->n ? pd->n : 1, sizeof(*p->dom));
	if (p->hash == NULL || p->dom == NULL)
		goto nomem;
	memset(p->hash, 0xff, slots * sizeof(*p->hash));
	for (uint32_t i = 0; i < pd->n; i++) {
		struct vp_domain *d = &p->dom[p->n_domains];
		const struct bs_cfg_domain *own;
		if ((d->name = strdup(pd->item[i])) == NULL)
			goto nomem;
		d->len = strlen(d->name);
		p->n_domains++;
		own = bs_config_domain(cfg, d->name, d->len);
#define PD_SET(row) (own != NULL && (own->set & (1u << BS_CFG_PD_##row)))
		d->batv_enforce = PD_SET(batv_enforce) ? own->batv_enforce
						       : cfg->batv_enforce;
		d->unknown = PD_SET(verdict_unknown) ? own->verdict_unknown
						     : cfg->verdict_unknown;
		d->ledger_auth = PD_SET(ledger_authoritative)
			? own->ledger_authoritative
			: cfg->ledger_authoritative;
		if (PD_SET(relays)) {
			if (relays_build(&d->own_relays, &own->relays) < 0)
				goto nomem;
			d->relays = &d->own_relays;
		} else {
			d->relays = &p->relays;
		}
#undef PD_SET
		uint32_t nk = 0;
		for (uint32_t j = 0; j < cfg->dkim_keys.n; j++)
			nk += strcmp(cfg->dkim_keys.key[j].domain, d->name) == 0;
		d->dkim = calloc(nk ? nk : 1, sizeof(*d->dkim));
		if (d->dkim == NULL)
			goto nomem;
		for (uint32_t j = 0; j < cfg->dkim_keys.n; j++) {
			const struct bs_cfg_dkim_key *k = &cfg->dkim_keys.key[j];
			if (strcmp(k->domain, d->name) != 0)
				continue;
			struct vp_dkim_key *v = &d->dkim[d->n_dkim];
			v->alg = k->alg;
			v->idx = p->n_dkim_keys;
			v->selector = strdup(k->selector);
			v->pkey = load_key(k);
			if (v->selector == NULL || v->pkey == NULL) {
				free(v->selector);
				EVP_PKEY_free(v->pkey);
				snprintf(err, errlen, "%s:%u: dkim_keys: key %s of "
					"%s does not load", cfg->source, k->line,
					k->selector, k->domain);
				bs_verdict_policy_free(p);
				return NULL;
			}
			d->n_dkim++;
			p->n_dkim_keys++;
		}
		uint32_t h = hash_ci(d->name, d->len) & p->hmask;
		while (p->hash[h] >= 0)
			h = (h + 1) & p->hmask;
		p->hash[h] = (int32_t)(p->n_domains - 1);
	}
	return p;
nomem:
	snprintf(err, errlen, "verdict policy: out of memory");
	bs_verdict_policy_free(p);
	return NULL;
}

void
bs_verdict_ledger_params(const struct bs_config *cfg, unsigned int n_parts,
	struct bs_ledger_params *p)
{
	bs_ledger_params_default(p);
	p->max_entries = cfg->ledger_max_entries;
	p->ttl_s = cfg->ledger_ttl_s != 0 ? cfg->ledger_ttl_s
					  : cfg->ledger_ttl_days * 86400u;
	p->snapshot_path = cfg->ledger_snapshot != NULL &&
			cfg->ledger_snapshot[0] != '\0'
		? cfg->ledger_snapshot : NULL;
	p->snapshot_period_s = cfg->ledger_snapshot_period_s;
	p->max_gap_s = cfg->ledger_max_gap_s;
	p->n_parts = n_parts ? n_parts : 1;
	/* Shared with backstop-milter (docs/MILTER.md): the appliance
	 * writes ledger.snapshot and merges milter.ledger_snapshot. */
	p->secret_file = cfg->ledger_secret_file != NULL &&
			cfg->ledger_secret_file[0] != '\0'
		? cfg->ledger_secret_file : NULL;
	p->import_period_s = cfg->ledger_import_period_s;
	p->import_path = p->snapshot_path != NULL &&
			cfg->milter_ledger_snapshot != NULL &&
			cfg->milter_ledger_snapshot[0] != '\0'
		? cfg->milter_ledger_snapshot : NULL;
}

void
bs_verdict_storm_params(const struct bs_config *cfg, unsigned int n_parts,
	struct bs_storm_params *p)
{
	bs_storm_params_default(p);
	p->window_s = cfg->storm_window_s;
	p->slots = cfg->storm_slots;
	/* The window moves in whole seconds at least. */
	if (p->slots > p->window_s)
		p->slots = p->window_s;
	p->rcpt_threshold = cfg->storm_rcpt_threshold;
	p->domain_threshold = cfg->storm_domain_threshold;
	p->n_parts = n_parts ? n_parts : 1;
}
