/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DKIM of the embedded original, from its header block alone.
 *
 * A bounce carries the original's header (often without its body), so a
 * signature is verified over its signed header fields only (RFC 6376 3.7
 * with the body hash left out): the hash of the canonicalised fields
 * named in h= and of the DKIM-Signature field with its b= value emptied,
 * checked with the domain's configured public key.  The body hash (bh=)
 * is not checked and the verdict's reasons say so; l= is ignored.  That
 * still proves what the verdict needs: the domain's key signed a message
 * with exactly this From, Message-ID, Date, ... (a forger who copies a
 * real signature onto other headers changes the hash).
 *
 * Algorithms: rsa-sha256 (RSA PKCS#1 v1.5) and ed25519-sha256 (RFC 8463:
 * Ed25519 over the SHA-256 of the data).  rsa-sha1 is not accepted
 * (RFC 8301).  Header canonicalisation: simple and relaxed (RFC 6376
 * 3.4.1, 3.4.2).  The x= expiry is not enforced: a bounce arrives after
 * the message was sent, and the question is who signed it, not whether a
 * receiver should still accept it.
 *
 * Cost: everything up to the hash is parsing; the verification itself
 * (OpenSSL) is counted against the worker's budget per second.
 */
#include <openssl/rsa.h>
#include <string.h>

#include "verdict_priv.h"

/* Header fields indexed in one block; a 16 KiB block of real mail holds
 * far fewer.  More: the block is not verified (unchecked). */
#define DKIM_FIELDS_MAX 512
/* Names in one h= tag. */
#define DKIM_H_MAX 64
/* Signature bytes (RSA-8192). */
#define DKIM_SIG_MAX 1024
/* Longest DKIM-Signature field handled. */
#define DKIM_FIELD_MAX 4096

struct hfield {
	uint32_t off, len; /* the whole field, final line end included */
	uint32_t nlen;     /* name length (before ':', trailing WSP cut) */
	uint32_t colon;    /* offset of ':' from off */
	uint32_t body_end; /* len without the final line end */
};

static bool
is_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static bool
is_fws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Split h into fields.  Returns the count, or -1 if there are more. */
static int
index_fields(const uint8_t *h, size_t n, struct hfield *f)
{
	int nf = 0;
	size_t i = 0;
	while (i < n) {
		size_t start = i;
		/* One field: a line, and the lines after it that start with
		 * white space. */
		for (;;) {
			while (i < n && h[i] != '\n')
				i++;
			if (i < n)
				i++;
			if (i >= n || !is_wsp(h[i]))
				break;
		}
		if (h[start] == '\r' || h[start] == '\n' || is_wsp(h[start]))
			continue; /* blank or stray continuation line */
		size_t c = start;
		while (c < i && h[c] != ':' && h[c] != '\n')
			c++;
		if (c >= i || h[c] != ':')
			continue; /* not a field */
		if (nf == DKIM_FIELDS_MAX)
			return -1;
		struct hfield *x = &f[nf++];
		x->off = (uint32_t)start;
		x->len = (uint32_t)(i - start);
		x->colon = (uint32_t)(c - start);
		size_t nl = c - start;
		while (nl > 0 && is_wsp(h[start + nl - 1]))
			nl--;
		x->nlen = (uint32_t)nl;
		size_t be = i - start;
		if (be > 0 && h[start + be - 1] == '\n')
			be--;
		if (be > 0 && h[start + be - 1] == '\r')
			be--;
		x->body_end = (uint32_t)be;
	}
	return nf;
}

/* Hash input, staged so OpenSSL sees few large updates. */
struct hsink {
	EVP_MD_CTX *md;
	size_t n;
	uint8_t buf[512];
};

static void
sink_put(struct hsink *s, const uint8_t *p, size_t n)
{
	if (s->n + n > sizeof(s->buf)) {
		EVP_DigestUpdate(s->md, s->buf, s->n);
		s->n = 0;
		if (n > sizeof(s->buf)) {
			EVP_DigestUpdate(s->md, p, n);
			return;
		}
	}
	memcpy(s->buf + s->n, p, n);
	s->n += n;
}

static void
sink_byte(struct hsink *s, uint8_t c)
{
	sink_put(s, &c, 1);
}

static void
sink_flush(struct hsink *s)
{
	if (s->n > 0)
		EVP_DigestUpdate(s->md, s->buf, s->n);
	s->n = 0;
}

/*
 * Canonicalise field p[0..len) (name up to colon; body_end = end without
 * the final line end) into the sink; crlf: append the line end.
 */
static void
canon_field(struct hsink *s, const uint8_t *p, size_t colon, size_t body_end,
	bool relaxed, bool crlf)
{
	if (!relaxed) {
		/* simple: as it is, every line ending in CRLF. */
		for (size_t i = 0; i < body_end; i++) {
			if (p[i] == '\n') {
				if (i == 0 || p[i - 1] != '\r')
					sink_byte(s, '\r');
				sink_byte(s, '\n');
			} else {
				sink_byte(s, p[i]);
			}
		}
		if (crlf)
			sink_put(s, (const uint8_t *)"\r\n", 2);
		return;
	}
	/* relaxed: lower-case name, no WSP around the colon, value
	 * unfolded, WSP runs as one space, none at either end. */
	size_t nl = colon;
	while (nl > 0 && is_wsp(p[nl - 1]))
		nl--;
	for (size_t i = 0; i < nl; i++)
		sink_byte(s, (uint8_t)vp_lower((char)p[i]));
	sink_byte(s, ':');
	bool pend = false, any = false;
	for (size_t i = colon + 1; i < body_end; i++) {
		uint8_t c = p[i];
		if (c == '\r' || c == '\n')
			continue;
		if (is_wsp(c)) {
			pend = any;
			continue;
		}
		if (pend)
			sink_byte(s, ' ');
		pend = false;
		any = true;
		sink_byte(s, c);
	}
	if (crlf)
		sink_put(s, (const uint8_t *)"\r\n", 2);
}

/* One tag of a tag list: name and value ranges (offsets into the text). */
struct tag {
	size_t n0, n1, v0, v1; /* trimmed */
	size_t raw0, raw1;     /* value with surrounding white space */
};

/* Parse the tag list t[0..n); calls at most max tags.  Returns count. */
static int
parse_tags(const uint8_t *t, size_t n, struct tag *out, int max)
{
	int k = 0;
	size_t i = 0;
	while (i < n && k < max) {
		size_t e = i;
		while (e < n && t[e] != ';')
			e++;
		size_t eq = i;
		while (eq < e && t[eq] != '=')
			eq++;
		if (eq < e) {
			struct tag *g = &out[k];
			g->n0 = i;
			g->n1 = eq;
			while (g->n0 < g->n1 && is_fws(t[g->n0]))
				g->n0++;
			while (g->n1 > g->n0 && is_fws(t[g->n1 - 1]))
				g->n1--;
			g->raw0 = eq + 1;
			g->raw1 = e;
			g->v0 = eq + 1;
			g->v1 = e;
			while (g->v0 < g->v1 && is_fws(t[g->v0]))
				g->v0++;
			while (g->v1 > g->v0 && is_fws(t[g->v1 - 1]))
				g->v1--;
			if (g->n1 > g->n0)
				k++;
		}
		i = e + 1;
	}
	return k;
}

static bool
tag_is(const uint8_t *t, const struct tag *g, const char *name)
{
	size_t l = strlen(name);
	return g->n1 - g->n0 == l && memcmp(t + g->n0, name, l) == 0;
}

static bool
val_is(const uint8_t *t, const struct tag *g, const char *v)
{
	size_t l = strlen(v);
	return g->v1 - g->v0 == l &&
		vp_eq_ci((const char *)t + g->v0, l, v, l);
}

static int
b64v(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* base64 with FWS anywhere; -1 on a bad character or overflow. */
static int
b64_decode(const uint8_t *s, size_t n, uint8_t *out, size_t max)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (is_fws(s[i]))
			continue;
		if (s[i] == '=')
			break;
		int v = b64v(s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == max)
				return -1;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	return (int)o;
}

static bool
name_eq(const uint8_t *h, const struct hfield *f, const uint8_t *n, size_t nl)
{
	return f->nlen == nl &&
		vp_eq_ci((const char *)h + f->off, nl, (const char *)n, nl);
}

enum sig_result { SIG_SKIP, SIG_FAIL, SIG_VALID, SIG_BUDGET };

/* Take one unit of the budget; false when it is spent. */
static bool
budget_take(struct bs_verdict_ctx *vc, uint64_t now_s)
{
	if (vc->dkim_sec != now_s) {
		vc->dkim_sec = now_s;
		vc->dkim_used = 0;
	}
	if (vc->dkim_used >= vc->p->dkim_per_s)
		return false;
	vc->dkim_used++;
	return true;
}

static enum sig_result
verify_one(struct bs_verdict_ctx *vc, const struct vp_domain *dom,
	const uint8_t *h, const struct hfield *fs, int nf, int si,
	uint64_t now_s, unsigned int *checks)
{
	const struct hfield *sf = &fs[si];
	const uint8_t *fv = h + sf->off + sf->colon + 1;
	size_t fvn = sf->body_end - sf->colon - 1;
	struct tag tags[32];
	int nt = parse_tags(fv, fvn, tags, 32);
	const struct tag *ta = NULL, *tc = NULL, *td = NULL, *ts = NULL,
			 *th = NULL, *tb = NULL, *tv = NULL;
	for (int i = 0; i < nt; i++) {
		const struct tag *g = &tags[i];
		if (tag_is(fv, g, "a"))
			ta = g;
		else if (tag_is(fv, g, "c"))
			tc = g;
		else if (tag_is(fv, g, "d"))
			td = g;
		else if (tag_is(fv, g, "s"))
			ts = g;
		else if (tag_is(fv, g, "h"))
			th = g;
		else if (tag_is(fv, g, "b"))
			tb = g;
		else if (tag_is(fv, g, "v"))
			tv = g;
	}
	/* Not a signature of this domain: not ours to judge. */
	if (td == NULL || !vp_eq_ci((const char *)fv + td->v0,
			td->v1 - td->v0, dom->name, dom->len))
		return SIG_SKIP;
	if (tv == NULL || !val_is(fv, tv, "1") || ta == NULL || ts == NULL ||
			th == NULL || tb == NULL)
		return SIG_FAIL;
	uint8_t alg;
	if (val_is(fv, ta, "rsa-sha256"))
		alg = BS_DKIM_ALG_RSA;
	else if (val_is(fv, ta, "ed25519-sha256"))
		alg = BS_DKIM_ALG_ED25519;
	else
		return SIG_FAIL;
	const struct vp_dkim_key *key = NULL;
	for (uint32_t i = 0; i < dom->n_dkim; i++)
		if (dom->dkim[i].alg == alg &&
				vp_eq_ci((const char *)fv + ts->v0,
					ts->v1 - ts->v0, dom->dkim[i].selector,
					strlen(dom->dkim[i].selector)))
			key = &dom->dkim[i];
	if (key == NULL)
		return SIG_FAIL; /* a selector the domain does not use */
	bool relaxed = false;
	if (tc != NULL) {
		size_t l = tc->v1 - tc->v0, slash = l;
		for (size_t i = 0; i < l; i++)
			if (fv[tc->v0 + i] == '/') {
				slash = i;
				break;
			}
		const char *c = (const char *)fv + tc->v0;
		if (vp_eq_ci(c, slash, "relaxed", 7))
			relaxed = true;
		else if (!vp_eq_ci(c, slash, "simple", 6))
			return SIG_FAIL;
	}
	uint8_t sig[DKIM_SIG_MAX];
	int sl = b64_decode(fv + tb->v0, tb->v1 - tb->v0, sig, sizeof(sig));
	if (sl <= 0)
		return SIG_FAIL;

	/* The h= names, and that From is one of them (RFC 6376 5.4). */
	const uint8_t *hn[DKIM_H_MAX];
	size_t hl[DKIM_H_MAX];
	int nh = 0;
	bool from = false;
	for (size_t i = th->v0; i < th->v1;) {
		while (i < th->v1 && (is_fws(fv[i]) || fv[i] == ':'))
			i++;
		size_t e = i;
		while (e < th->v1 && fv[e] != ':' && !is_fws(fv[e]))
			e++;
		if (e > i) {
			if (nh == DKIM_H_MAX)
				return SIG_FAIL;
			hn[nh] = fv + i;
			hl[nh] = e - i;
			from |= vp_eq_ci((const char *)fv + i, e - i, "from", 4);
			nh++;
		}
		i = e;
	}
	if (!from)
		return SIG_FAIL;

	if (!budget_take(vc, now_s))
		return SIG_BUDGET;
	(*checks)++;

	struct hsink s;
	s.md = vc->md;
	s.n = 0;
	if (!EVP_DigestInit_ex(vc->md, vc->sha256, NULL))
		return SIG_FAIL;
	/* Each name takes the last instance not taken yet (bottom up). */
	for (int i = 0; i < nh; i++) {
		int want = 0;
		for (int j = 0; j < i; j++)
			want += hl[j] == hl[i] &&
				vp_eq_ci((const char *)hn[j], hl[j],
					(const char *)hn[i], hl[i]);
		for (int k = nf - 1; k >= 0; k--) {
			if (!name_eq(h, &fs[k], hn[i], hl[i]))
				continue;
			if (want-- > 0)
				continue;
			canon_field(&s, h + fs[k].off, fs[k].colon,
				fs[k].body_end, relaxed, true);
			break;
		}
	}
	/* The signature field with b= emptied, no final line end. */
	uint8_t tmp[DKIM_FIELD_MAX];
	size_t b0 = sf->colon + 1 + tb->raw0, b1 = sf->colon + 1 + tb->raw1;
	if (sf->body_end - (b1 - b0) > sizeof(tmp))
		return SIG_FAIL;
	size_t tn = 0;
	memcpy(tmp, h + sf->off, b0);
	tn = b0;
	memcpy(tmp + tn, h + sf->off + b1, sf->body_end - b1);
	tn += sf->body_end - b1;
	canon_field(&s, tmp, sf->colon, tn, relaxed, false);
	sink_flush(&s);
	uint8_t dg[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	if (!EVP_DigestFinal_ex(vc->md, dg, &dl))
		return SIG_FAIL;

	int ok = 0;
	if (alg == BS_DKIM_ALG_RSA) {
		EVP_PKEY_CTX *pc = vc->rsa[key->idx];
		ok = pc != NULL ? EVP_PKEY_verify(pc, sig, (size_t)sl, dg, dl)
				: 0;
	} else {
		/* Ed25519 verifies in one shot over the digest (RFC 8463). */
		EVP_MD_CTX *m = vc->ed;
		if (EVP_MD_CTX_reset(m) && EVP_DigestVerifyInit(m, NULL, NULL,
				NULL, key->pkey) > 0)
			ok = EVP_DigestVerify(m, sig, (size_t)sl, dg, dl);
	}
	return ok == 1 ? SIG_VALID : SIG_FAIL;
}

enum bs_dkim_status
bs_dkim_verify(struct bs_verdict_ctx *vc, const char *domain, size_t dlen,
	const uint8_t *hdr, size_t len, uint64_t now_s, unsigned int *checks)
{
	struct hfield fs[DKIM_FIELDS_MAX];
	*checks = 0;
	const struct vp_domain *dom = vp_domain_find(vc->p, domain, dlen);
	if (dom == NULL || dom->n_dkim == 0 || hdr == NULL || len == 0)
		return BS_DKIM_ST_NONE;
	int nf = index_fields(hdr, len, fs);
	if (nf < 0)
		return BS_DKIM_ST_UNCHECKED;
	int seen = 0;
	bool budget = false;
	for (int i = 0; i < nf && seen < VP_DKIM_SIGS_MAX; i++) {
		if (!name_eq(hdr, &fs[i], (const uint8_t *)"dkim-signature", 14))
			continue;
		enum sig_result r = verify_one(vc, dom, hdr, fs, nf, i, now_s,
			checks);
		if (r == SIG_SKIP)
			continue;
		seen++;
		if (r == SIG_VALID)
			return BS_DKIM_ST_VALID;
		budget |= r == SIG_BUDGET;
	}
	if (budget)
		return BS_DKIM_ST_BUDGET;
	return seen > 0 ? BS_DKIM_ST_FAIL : BS_DKIM_ST_NONE;
}
