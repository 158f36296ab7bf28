/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to the verdict module: the compiled policy and the per-worker
 * context, shared by policy.c, batv.c, relay.c, dkim.c and verdict.c.
 */
#ifndef BACKSTOP_VERDICT_PRIV_H
#define BACKSTOP_VERDICT_PRIV_H

#include <openssl/evp.h>

#include "backstop/verdict.h"

enum vp_relay_kind { VP_RELAY_NAME, VP_RELAY_GLOB, VP_RELAY_V4, VP_RELAY_V6 };

struct vp_relay {
	uint8_t kind; /* enum vp_relay_kind */
	uint8_t plen; /* CIDR prefix length */
	uint8_t ip[16];
	char *name; /* NAME, GLOB: lower case */
};

struct vp_relays {
	uint32_t n;
	struct vp_relay *r;
};

struct vp_dkim_key {
	char *selector; /* lower case */
	uint8_t alg;    /* enum bs_cfg_dkim_alg */
	uint32_t idx;   /* 0..n_dkim_keys-1 over the policy */
	EVP_PKEY *pkey;
};

struct vp_domain {
	char *name;
	size_t len;
	bool batv_enforce;
	bool ledger_auth;
	uint8_t unknown; /* enum bs_cfg_action */
	const struct vp_relays *relays; /* global list or own_relays */
	struct vp_relays own_relays;
	uint32_t n_dkim;
	struct vp_dkim_key *dkim;
};

struct vp_batv_key {
	bool set;
	uint16_t len;
	uint8_t secret[BS_CFG_SECRET_MAX];
};

struct bs_verdict_policy {
	uint32_t n_domains;
	struct vp_domain *dom;
	uint32_t hmask;  /* hash slots - 1 (power of two) */
	int32_t *hash;   /* index into dom, -1 empty */
	struct vp_relays relays; /* the global list */
	uint32_t n_batv_keys;
	struct vp_batv_key batv_key[BS_CFG_BATV_KEYS_MAX];
	uint32_t batv_lifetime;
	uint32_t n_exempt;
	char **exempt;
	bool judge_feedback;
	uint32_t dkim_per_s;
	uint32_t n_dkim_keys; /* over all domains */
};

/* Most DKIM signatures of the domain looked at in one message. */
#define VP_DKIM_SIGS_MAX 4

struct bs_verdict_ctx {
	const struct bs_verdict_policy *p;
	struct bs_counters *cnt;
	EVP_MAC_CTX *hmac[BS_CFG_BATV_KEYS_MAX]; /* keyed once, per key */
	EVP_MD *sha256;
	EVP_MD_CTX *md;
	/* Per RSA key of the policy (by idx): a verify context set up once
	 * (padding, digest), so a check is only the RSA operation. */
	EVP_PKEY_CTX **rsa;
	EVP_MD_CTX *ed; /* Ed25519 verifications */
	uint64_t dkim_sec;  /* second of dkim_used */
	uint32_t dkim_used; /* signature checks in that second */
};

/* The policy's entry for domain (any case), or NULL. */
const struct vp_domain *vp_domain_find(const struct bs_verdict_policy *p,
	const char *d, size_t n);

/* ASCII lower case, no locale. */
static inline char
vp_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static inline bool
vp_eq_ci(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (vp_lower(a[i]) != vp_lower(b[i]))
			return false;
	return true;
}

#endif
