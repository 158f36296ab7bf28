/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict policy: evidence, cheapest first, combined into legit,
 * backscatter, unknown or not-bounce with reasons (docs/VERDICT.md has
 * the table this code implements).
 *
 * Per recipient of the transaction (accepted or pending; refused ones do
 * not count): its domain must be protected, or the message is not judged
 * for it.  BATV is per recipient (the tag is in the address); the ledger,
 * relays and DKIM are about the embedded original and are computed once
 * per message, lazily, and only while no proof of legitimacy was found.
 * The message's verdict is the most lenient of its recipients' (legit
 * before not judged before unknown before backscatter), because refusing
 * the message refuses it for every recipient.
 */
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/rules.h"
#include "verdict_priv.h"

static const char *const reason_names[BS_VR__MAX] = {
#define BS_VERDICT_REASON_NAME_(X, name, help) [BS_VR_##name] = #name,
	BS_VERDICT_REASONS(BS_VERDICT_REASON_NAME_, _)
#undef BS_VERDICT_REASON_NAME_
};

/* Counter of each reason, in reason order. */
static const uint16_t reason_counter[BS_VR__MAX] = {
#define BS_VERDICT_REASON_CNT_(X, name, help)                                \
	[BS_VR_##name] = BS_CNT_verdict_reason_##name,
	BS_VERDICT_REASONS(BS_VERDICT_REASON_CNT_, _)
#undef BS_VERDICT_REASON_CNT_
};

const char *
bs_verdict_name(enum bs_verdict v)
{
	switch (v) {
	case BS_VERDICT_LEGIT:
		return "legit";
	case BS_VERDICT_BACKSCATTER:
		return "backscatter";
	case BS_VERDICT_UNKNOWN:
		return "unknown";
	default:
		return "not-bounce";
	}
}

const char *
bs_verdict_reason_name(enum bs_verdict_reason r)
{
	return (unsigned int)r < BS_VR__MAX ? reason_names[r] : "?";
}

struct bs_verdict_ctx *
bs_verdict_ctx_create(const struct bs_verdict_policy *p,
	struct bs_counters *cnt)
{
	struct bs_verdict_ctx *vc = calloc(1, sizeof(*vc));
	if (vc == NULL)
		return NULL;
	vc->p = p;
	vc->cnt = cnt;
	vc->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	vc->md = EVP_MD_CTX_new();
	vc->ed = EVP_MD_CTX_new();
	if (vc->sha256 == NULL || vc->md == NULL || vc->ed == NULL)
		goto fail;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		goto fail;
	for (unsigned int k = 0; k < BS_CFG_BATV_KEYS_MAX; k++) {
		if (!p->batv_key[k].set)
			continue;
		OSSL_PARAM prm[2] = {
			OSSL_PARAM_construct_utf8_string("digest",
				(char *)"SHA1", 0),
			OSSL_PARAM_construct_end(),
		};
		vc->hmac[k] = EVP_MAC_CTX_new(mac);
		if (vc->hmac[k] == NULL ||
				!EVP_MAC_init(vc->hmac[k], p->batv_key[k].secret,
					p->batv_key[k].len, prm)) {
			EVP_MAC_free(mac);
			goto fail;
		}
	}
	EVP_MAC_free(mac);
	vc->rsa = calloc(p->n_dkim_keys + 1, sizeof(*vc->rsa));
	if (vc->rsa == NULL)
		goto fail;
	for (uint32_t i = 0; i < p->n_domains; i++)
		for (uint32_t j = 0; j < p->dom[i].n_dkim; j++) {
			const struct vp_dkim_key *k = &p->dom[i].dkim[j];
			if (k->alg != BS_DKIM_ALG_RSA)
				continue;
			EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k->pkey, NULL);
			vc->rsa[k->idx] = pc;
			if (pc == NULL || EVP_PKEY_verify_init(pc) <= 0 ||
					EVP_PKEY_CTX_set_rsa_padding(pc,
						RSA_PKCS1_PADDING) <= 0 ||
					EVP_PKEY_CTX_set_signature_md(pc,
						vc->sha256) <= 0)
				goto fail;
		}
	return vc;
fail:
	bs_verdict_ctx_free(vc);
	return NULL;
}

void
bs_verdict_ctx_set_counters(struct bs_verdict_ctx *vc, struct bs_counters *cnt)
{
	if (vc != NULL)
		vc->cnt = cnt;
}

void
bs_verdict_ctx_free(struct bs_verdict_ctx *vc)
{
	if (vc == NULL)
		return;
	for (unsigned int k = 0; k < BS_CFG_BATV_KEYS_MAX; k++)
		EVP_MAC_CTX_free(vc->hmac[k]);
	for (uint32_t i = 0; vc->rsa != NULL && i < vc->p->n_dkim_keys; i++)
		EVP_PKEY_CTX_free(vc->rsa[i]);
	free(vc->rsa);
	EVP_MD_CTX_free(vc->md);
	EVP_MD_CTX_free(vc->ed);
	EVP_MD_free(vc->sha256);
	free(vc);
}

void
bs_verdict_input_init(struct bs_verdict_input *in,
	const struct bs_smtp_record *rec, const struct bs_detect_result *det,
	uint64_t now_s)
{
	memset(in, 0, sizeof(*in));
	if (rec != NULL) {
		in->mail_from = rec->mail_from;
		in->rcpt = rec->rcpt;
		in->nrcpt = rec->nrcpt;
	}
	in->det = det;
	in->now_s = now_s;
	/* The bounce's own identifiers (an auto-reply answers a message
	 * by them; detection keeps them for every message). */
	if (det != NULL && det->mime.in_reply_to[0] != '\0')
		in->in_reply_to = det->mime.in_reply_to;
	if (det != NULL && det->mime.references[0] != '\0')
		in->references = det->mime.references;
	/* Detection keeps the original's raw header block (mime.h). */
	if (det != NULL && det->mime.orig.hdr_raw_len > 0) {
		in->hdr = det->mime.orig.hdr_raw;
		in->hdr_len = det->mime.orig.hdr_raw_len;
		in->hdr_cut = det->mime.orig.hdr_raw_cut;
	}
}

/* The domain of the address in a header value ("Name <a@b>", "a@b"). */
static bool
addr_domain(const char *v, const char **d, size_t *dn)
{
	const char *s = strchr(v, '<'), *e;
	if (s != NULL) {
		s++;
		e = strchr(s, '>');
		if (e == NULL)
			e = s + strlen(s);
	} else {
		s = v;
		e = v + strlen(v);
	}
	const char *at = NULL;
	for (const char *q = s; q < e; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
		return false;
	const char *de = at + 1;
	while (de < e && *de != ' ' && *de != '>' && *de != ')' && *de != ';' &&
			*de != ',' && *de != '\t')
		de++;
	*d = at + 1;
	*dn = (size_t)(de - at - 1);
	return *dn > 0;
}

/* d (dn bytes) is exempt domain e or a subdomain of it. */
static bool
in_domain(const char *d, size_t dn, const char *e)
{
	size_t el = strlen(e);
	if (dn == el)
		return vp_eq_ci(d, dn, e, el);
	return dn > el && d[dn - el - 1] == '.' &&
		vp_eq_ci(d + dn - el, el, e, el);
}

/* Was the original sent to one of batv.exempt_destinations? */
static bool
to_exempt(const struct bs_verdict_policy *p, const struct bs_mime_info *mi)
{
	const char *cand[3] = { mi->dsn.final_recipient,
		mi->dsn.original_recipient, mi->orig.to };
	for (unsigned int i = 0; i < 3 && p->n_exempt > 0; i++) {
		const char *d;
		size_t dn;
		if (cand[i][0] == '\0' || !addr_domain(cand[i], &d, &dn))
			continue;
		for (uint32_t k = 0; k < p->n_exempt; k++)
			if (in_domain(d, dn, p->exempt[k]))
				return true;
	}
	return false;
}

/* Message-ID normalised for the ledger: the addr-spec inside <>, with
 * its domain part lower case.  Returns its length (0: none). */
static size_t
msgid_norm(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i = 0, e;
	while (i < n && s[i] != '<')
		i++;
	if (i < n) {
		i++;
		e = i;
		while (e < n && s[e] != '>')
			e++;
	} else {
		i = 0;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		e = i;
		while (e < n && s[e] != ' ' && s[e] != '\t')
			e++;
	}
	size_t l = e - i;
	if (l == 0 || l >= outlen)
		return 0;
	memcpy(out, s + i, l);
	out[l] = '\0';
	char *at = strrchr(out, '@');
	for (char *q = at; q != NULL && *q; q++)
		*q = vp_lower(*q);
	return l;
}

/* Evidence about the original, computed at most once per message and
 * domain (recipients of one message nearly always share the domain). */
struct msg_ev {
	const struct vp_domain *x; /* the domain it was computed for */
	bool ledger_done, relay_done, dkim_done;
	uint64_t ledger_r; /* reasons */
	bool ledger_legit, ledger_forged;
	uint64_t relay_r;
	bool relay_legit, relay_forged;
	uint64_t dkim_r;
	bool dkim_legit, dkim_forged;
	unsigned int dkim_checks;
};

/* Most Message-IDs looked up per message (In-Reply-To and the last
 * References). */
#define VERDICT_IDS_MAX 8
/* Most Received hops read from a raw header block. */
#define VERDICT_HOPS_MAX 64

static enum bs_ledger_answer
ledger_one(const struct bs_verdict_env *env, const char *s, size_t n)
{
	char id[BS_FIELD_MAX];
	size_t l = msgid_norm(s, n, id, sizeof(id));
	if (l == 0)
		return BS_LEDGER_OFF;
	return env->ledger(env->arg, id, l);
}

/* Record one answer; true on a hit (the search ends there). */
static bool
ledger_note(struct msg_ev *m, enum bs_ledger_answer a, bool *miss,
	bool *warm)
{
	if (a == BS_LEDGER_HIT) {
		m->ledger_r = BS_VR_BIT(ledger_hit);
		m->ledger_legit = true;
		return true;
	}
	*miss |= a == BS_LEDGER_MISS;
	*warm |= a == BS_LEDGER_WARMING;
	return false;
}

static void
eval_ledger(struct msg_ev *m, const struct bs_verdict_env *env,
	const struct bs_verdict_input *in, const struct vp_domain *dom)
{
	const struct bs_detect_result *det = in->det;
	bool miss = false, warm = false;
	unsigned int na = 0;
	m->ledger_done = true;
	if (env == NULL || env->ledger == NULL)
		return;
	if (det->mime.orig.message_id[0] != '\0') {
		na++;
		if (ledger_note(m, ledger_one(env, det->mime.orig.message_id,
				strlen(det->mime.orig.message_id)), &miss, &warm))
			return;
	}
	/* Auto-replies and challenges answer a message by its id. */
	if (det->cls == BS_CLASS_AUTOREPLY || det->cls == BS_CLASS_CHALLENGE) {
		if (in->in_reply_to != NULL) {
			na++;
			if (ledger_note(m, ledger_one(env, in->in_reply_to,
					strlen(in->in_reply_to)), &miss, &warm))
				return;
		}
		const char *r = in->references;
		size_t rl = r ? strlen(r) : 0;
		/* From the end: the message answered is the last one. */
		while (r != NULL && rl > 0 && na < VERDICT_IDS_MAX) {
			size_t e = rl;
			while (e > 0 && r[e - 1] != '>')
				e--;
			if (e == 0)
				break;
			size_t b = e - 1;
			while (b > 0 && r[b] != '<')
				b--;
			if (r[b] != '<')
				break;
			na++;
			if (ledger_note(m, ledger_one(env, r + b, e - b), &miss,
					&warm))
				return;
			rl = b;
		}
	}
	if (warm) {
		m->ledger_r = BS_VR_BIT(ledger_warming);
	} else if (miss) {
		m->ledger_r = BS_VR_BIT(ledger_miss);
		/* Only a domain whose every outbound message the appliance
		 * sees in clear can take a miss as proof. */
		m->ledger_forged = dom->ledger_auth;
	}
}

static void
eval_relays(struct msg_ev *m, const struct bs_verdict_policy *p,
	const struct bs_verdict_input *in, const struct vp_domain *x,
	bool claim)
{
	const struct bs_original *o = &in->det->mime.orig;
	struct bs_relay_hop h;
	unsigned int hops = 0;
	bool complete;
	m->relay_done = true;
	if (x->relays->n == 0)
		return;
	if (in->hdr != NULL) {
		/* Every Received field of the raw block. */
		const uint8_t *s = in->hdr, *end = in->hdr + in->hdr_len;
		complete = !in->hdr_cut;
		while (s < end) {
			const uint8_t *e = s;
			for (;;) {
				while (e < end && *e != '\n')
					e++;
				if (e < end)
					e++;
				if (e >= end || (*e != ' ' && *e != '\t'))
					break;
			}
			if (e - s > 9 && vp_eq_ci((const char *)s, 9,
					"received:", 9)) {
				if (hops == VERDICT_HOPS_MAX) {
					complete = false;
					break;
				}
				if (bs_relay_hop_parse((const char *)s + 9,
						(size_t)(e - s - 9), &h) == 0) {
					hops++;
					if (bs_relay_hop_match(p, x->name, x->len,
							&h))
						goto seen;
				}
			}
			s = e;
		}
	} else {
		complete = o->n_received_seen == o->n_received;
		for (unsigned int i = 0; i < o->n_received; i++) {
			const char *r = o->received[i].raw;
			size_t rl = strlen(r);
			/* raw was cut at its cap: the by clause may be gone. */
			if (rl + 1 >= BS_RECEIVED_RAW_MAX)
				complete = false;
			if (bs_relay_hop_parse(r, rl, &h) == 0) {
				hops++;
				if (bs_relay_hop_match(p, x->name, x->len, &h))
					goto seen;
			}
		}
	}
	if (hops > 0 && complete) {
		m->relay_r = BS_VR_BIT(relay_absent);
		m->relay_forged = claim;
	} else {
		m->relay_r = BS_VR_BIT(relay_unchecked);
	}
	return;
seen:
	m->relay_r = BS_VR_BIT(relay_seen);
	m->relay_legit = true;
}

static void
eval_dkim(struct msg_ev *m, struct bs_verdict_ctx *vc,
	const struct bs_verdict_input *in, const struct vp_domain *x,
	bool claim)
{
	m->dkim_done = true;
	if (x->n_dkim == 0)
		return;
	if (in->hdr == NULL || in->hdr_len == 0) {
		m->dkim_r = BS_VR_BIT(dkim_unchecked);
		return;
	}
	enum bs_dkim_status st = bs_dkim_verify(vc, x->name, x->len, in->hdr,
		in->hdr_len, in->now_s, &m->dkim_checks);
	switch (st) {
	case BS_DKIM_ST_VALID:
		m->dkim_r = BS_VR_BIT(dkim_valid) | BS_VR_BIT(dkim_body_unchecked);
		m->dkim_legit = true;
		break;
	case BS_DKIM_ST_BUDGET:
		m->dkim_r = BS_VR_BIT(dkim_budget);
		break;
	case BS_DKIM_ST_UNCHECKED:
		m->dkim_r = BS_VR_BIT(dkim_unchecked);
		break;
	case BS_DKIM_ST_NONE:
	case BS_DKIM_ST_FAIL:
		/* A cut block may have lost the signature or a signed field. */
		if (in->hdr_cut) {
			m->dkim_r = BS_VR_BIT(dkim_unchecked);
			break;
		}
		if (st == BS_DKIM_ST_FAIL || claim) {
			m->dkim_r = BS_VR_BIT(dkim_fail);
			m->dkim_forged = claim;
		}
		break;
	}
}

struct rcpt_v {
	uint8_t v;
	uint8_t action;
};

/* Build "local@domain" lower case (tags stripped) for storm keys. */
static size_t
storm_key(const struct bs_batv_tag *t, const char *dom, size_t dn, char *out,
	size_t outlen)
{
	const char *d = t->form == BS_BATV_SRS ? t->domain : dom;
	size_t ddn = t->form == BS_BATV_SRS ? t->domain_len : dn;
	if (t->local_len + 1 + ddn >= outlen)
		return 0;
	size_t o = 0;
	for (size_t i = 0; i < t->local_len; i++)
		out[o++] = vp_lower(t->local[i]);
	out[o++] = '@';
	for (size_t i = 0; i < ddn; i++)
		out[o++] = vp_lower(d[i]);
	out[o] = '\0';
	return o;
}

int
bs_verdict_judge(struct bs_verdict_ctx *vc, const struct bs_verdict_env *env,
	const struct bs_verdict_input *in, struct bs_verdict_result *out)
{
	const struct bs_verdict_policy *p = vc->p;
	const struct bs_detect_result *det = in->det;
	uint8_t cls = det != NULL ? det->cls : BS_CLASS_NONE;
	struct msg_ev m;

	memset(out, 0, sizeof(*out));
	memset(&m, 0, sizeof(m));
	out->verdict = BS_VERDICT_NOT_BOUNCE;
	if (cls == BS_CLASS_NONE) {
		out->reasons = BS_VR_BIT(not_bounce);
		goto count;
	}
	if (cls == BS_CLASS_FEEDBACK && !p->judge_feedback) {
		out->reasons = BS_VR_BIT(feedback_not_judged);
		goto count;
	}

	const struct bs_mime_info *mi = &det->mime;
	const struct bs_original *o = &mi->orig;
	/* The protected domain the original claims to come from. */
	const struct vp_domain *claim = NULL;
	{
		const char *d;
		size_t dn;
		if (o->from[0] && addr_domain(o->from, &d, &dn))
			claim = vp_domain_find(p, d, dn);
		if (claim == NULL && o->return_path[0] &&
				addr_domain(o->return_path, &d, &dn))
			claim = vp_domain_find(p, d, dn);
	}
	bool exempt_checked = false, exempt = false;
	bool any = false, any_legit = false, any_unjudged = false;
	bool any_unknown = false, unknown_deliver = false;
	uint64_t reasons = 0;

	for (uint32_t i = 0; i < in->nrcpt; i++) {
		const struct bs_smtp_rcpt *r = &in->rcpt[i];
		if (r->reply >= 400)
			continue; /* refused: the message does not go there */
		any = true;
		size_t alen = strnlen(r->addr, r->len);
		struct bs_batv_tag t;
		enum bs_batv_form form = bs_batv_parse(r->addr, alen, &t);
		const char *at = memrchr(r->addr, '@', alen);
		const char *rd = at ? at + 1 : "";
		size_t rdn = at ? alen - (size_t)(at + 1 - r->addr) : 0;
		const struct vp_domain *dom = vp_domain_find(p, rd, rdn);
		if (dom == NULL) {
			reasons |= BS_VR_BIT(not_protected);
			any_unjudged = true;
			continue;
		}
		if (out->domain[0] == '\0')
			snprintf(out->domain, sizeof(out->domain), "%s",
				dom->name);
		char sk[BS_SMTP_ADDR_MAX + 2];
		size_t skn = storm_key(&t, rd, rdn, sk, sizeof(sk));
		if (env != NULL && env->bounce != NULL && skn > 0)
			env->bounce(env->arg, sk, skn);

		bool legit = false, forged = false;
		uint64_t rr = 0;
		/* A tag is in the envelope sender, so it judges what returns
		 * to the envelope sender: DSNs.  Auto-replies answer From:. */
		bool dsn = cls == BS_CLASS_DSN;
		if (p->n_batv_keys > 0) {
			if (form == BS_BATV_PRVS) {
				switch (bs_batv_check(vc, &t, in->now_s)) {
				case BS_BATV_ST_VALID:
					rr |= BS_VR_BIT(batv_valid);
					legit = true;
					break;
				case BS_BATV_ST_EXPIRED:
					rr |= BS_VR_BIT(batv_expired);
					forged |= dom->batv_enforce && dsn;
					break;
				default:
					rr |= BS_VR_BIT(batv_bad);
					forged |= dom->batv_enforce && dsn;
					break;
				}
			} else if (form != BS_BATV_NONE) {
				rr |= BS_VR_BIT(batv_other);
			} else {
				if (!exempt_checked) {
					exempt = to_exempt(p, mi);
					exempt_checked = true;
				}
				if (exempt) {
					rr |= BS_VR_BIT(batv_exempt);
				} else {
					rr |= BS_VR_BIT(batv_missing);
					forged |= dom->batv_enforce && dsn;
				}
			}
		} else if (form != BS_BATV_NONE && form != BS_BATV_PRVS) {
			rr |= BS_VR_BIT(batv_other);
		}
		if (!o->present)
			rr |= BS_VR_BIT(no_original);
		else if (claim == NULL)
			rr |= BS_VR_BIT(original_foreign);

		/* The original's evidence is about the domain it claims,
		 * or else the recipient's. */
		const struct vp_domain *x = claim ? claim : dom;
		if (m.x != x) {
			unsigned int done = m.dkim_checks;
			memset(&m, 0, sizeof(m));
			m.x = x;
			m.dkim_checks = done;
		}
		if (!legit) {
			if (!m.ledger_done)
				eval_ledger(&m, env, in, x);
			rr |= m.ledger_r;
			legit = m.ledger_legit;
			forged |= m.ledger_forged && o->present;
		}
		if (!legit && o->present) {
			if (!m.relay_done)
				eval_relays(&m, p, in, x, claim != NULL);
			rr |= m.relay_r;
			legit = m.relay_legit;
			forged |= m.relay_forged;
		}
		/* DKIM last: the only check that costs real CPU. */
		if (!legit && o->present) {
			if (!m.dkim_done)
				eval_dkim(&m, vc, in, x, claim != NULL);
			rr |= m.dkim_r;
			legit = m.dkim_legit;
			forged |= m.dkim_forged;
		}

		if (legit) {
			any_legit = true;
		} else if (!forged) {
			if (env != NULL && env->storm != NULL && skn > 0 &&
					env->storm(env->arg, sk, skn)) {
				rr |= BS_VR_BIT(storm);
			} else {
				any_unknown = true;
				unknown_deliver |= dom->unknown ==
					BS_ACTION_DELIVER;
			}
		}
		reasons |= rr;
	}
	out->reasons = reasons;
	out->dkim_checks = (uint16_t)m.dkim_checks;
	if (!any) {
		out->reasons |= BS_VR_BIT(no_recipient);
	} else if (any_legit) {
		out->verdict = BS_VERDICT_LEGIT;
	} else if (any_unjudged) {
		out->verdict = BS_VERDICT_NOT_BOUNCE;
	} else if (any_unknown) {
		out->verdict = BS_VERDICT_UNKNOWN;
		out->action = unknown_deliver ? BS_ACTION_DELIVER
					      : BS_ACTION_REFUSE;
	} else {
		out->verdict = BS_VERDICT_BACKSCATTER;
		out->action = BS_ACTION_REFUSE;
	}
count:
	if (vc->cnt != NULL) {
		struct bs_counters *c = vc->cnt;
		static const uint16_t vcnt[] = {
			[BS_VERDICT_NOT_BOUNCE] = BS_CNT_verdict_not_bounce,
			[BS_VERDICT_LEGIT] = BS_CNT_verdict_legit,
			[BS_VERDICT_BACKSCATTER] = BS_CNT_verdict_backscatter,
			[BS_VERDICT_UNKNOWN] = BS_CNT_verdict_unknown,
		};
		c->v[vcnt[out->verdict]]++;
		if (out->action == BS_ACTION_REFUSE)
			BS_CNT_INC(c, verdict_refuse);
		BS_CNT_ADD(c, verdict_dkim_checks, out->dkim_checks);
		for (uint64_t b = out->reasons; b != 0; b &= b - 1)
			c->v[reason_counter[__builtin_ctzll(b)]]++;
	}
	return 0;
}

size_t
bs_verdict_result_json(const struct bs_verdict_result *r, char *buf,
	size_t len)
{
	size_t o = 0;
	int k = snprintf(buf, len, "\"verdict\":\"%s\",\"action\":\"%s\","
		"\"reasons\":[", bs_verdict_name((enum bs_verdict)r->verdict),
		r->action == BS_ACTION_REFUSE ? "refuse" : "deliver");
	o = k > 0 ? (size_t)k : 0;
	bool first = true;
	for (unsigned int i = 0; i < BS_VR__MAX; i++) {
		if (!(r->reasons & (1ULL << i)))
			continue;
		k = snprintf(o < len ? buf + o : NULL, o < len ? len - o : 0,
			"%s\"%s\"", first ? "" : ",", reason_names[i]);
		o += k > 0 ? (size_t)k : 0;
		first = false;
	}
	k = snprintf(o < len ? buf + o : NULL, o < len ? len - o : 0, "]");
	o += k > 0 ? (size_t)k : 0;
	if (r->domain[0] != '\0') {
		k = snprintf(o < len ? buf + o : NULL, o < len ? len - o : 0,
			",\"verdict_domain\":\"%s\"", r->domain);
		o += k > 0 ? (size_t)k : 0;
	}
	return o;
}
