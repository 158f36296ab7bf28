/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BATV: tags in the envelope sender that the protected domain's outbound
 * server made, returned to it as the recipient of a bounce.
 *
 * Validated: the form Exim's ${prvs} makes and the BATV draft describes,
 *   prvs=KDDDHHHHHH=local@domain
 * K the key digit (picks the secret: rotation), DDD the expiry day (days
 * since the epoch, mod 1000), HHHHHH the first 3 bytes of HMAC-SHA1 with
 * the secret over "K" "DDD" "local@domain", in hex.  Checked as Exim's
 * ${prvscheck} checks it, with one difference at the wrap of the day
 * counter: Exim accepts a tag whose day is >= today (forcing today to 0
 * when the day is < 7 and today >= 993), so after the wrap it takes a
 * tag that expired days ago as valid, and it takes any tag whose day lies
 * ahead, however old; here a tag is valid while (DDD - today) mod 1000 <=
 * batv.lifetime_days, and expired otherwise.  tests/verdict compares both
 * on tags Exim made, day by day across the wrap.
 *
 * Recognised and only stripped (their signatures use keys or algorithms
 * that are not published): Cisco's prvs=local=KDDDHHHHHH, Barracuda's
 * btv1==TAG==local, SparkPost's msprvs1=TAG=local, and the SRS0= / SRS1=
 * forwarding wrappers.  Tags and hex digits compare case-insensitively.
 */
#include <openssl/crypto.h>
#include <string.h>

#include "verdict_priv.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
hexval(char c)
{
	c = vp_lower(c);
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool
prefix_ci(const char *s, size_t n, const char *p)
{
	size_t k = strlen(p);
	return n >= k && vp_eq_ci(s, k, p, k);
}

/* KDDDHHHHHH at s (10 bytes). */
static bool
is_prvs_tag(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!is_digit(s[i]))
			return false;
	for (int i = 4; i < 10; i++)
		if (hexval(s[i]) < 0)
			return false;
	return true;
}

static void
take_tag(struct bs_batv_tag *t, const char *s)
{
	t->key = (uint8_t)(s[0] - '0');
	t->day = (uint16_t)((s[1] - '0') * 100 + (s[2] - '0') * 10 +
		(s[3] - '0'));
	for (int i = 0; i < 6; i++)
		t->hash[i] = vp_lower(s[4 + i]);
	t->hash[6] = '\0';
}

static const char *
find_eq(const char *s, const char *end, size_t want)
{
	/* The want-th '=' in [s, end), or NULL. */
	for (; s < end; s++)
		if (*s == '=' && --want == 0)
			return s;
	return NULL;
}

enum bs_batv_form
bs_batv_parse(const char *addr, size_t len, struct bs_batv_tag *t)
{
	const char *at = NULL;
	memset(t, 0, sizeof(*t));
	for (size_t i = len; i > 0; i--)
		if (addr[i - 1] == '@') {
			at = addr + i - 1;
			break;
		}
	const char *lp = addr;
	size_t ln = at ? (size_t)(at - addr) : len;
	const char *end = lp + ln;
	t->local = lp;
	t->local_len = ln;
	if (at != NULL) {
		t->domain = at + 1;
		t->domain_len = len - ln - 1;
	}

	if (prefix_ci(lp, ln, "prvs=")) {
		/* Exim / draft: prvs=KDDDHHHHHH=local */
		if (ln > 16 && lp[15] == '=' && is_prvs_tag(lp + 5)) {
			take_tag(t, lp + 5);
			t->local = lp + 16;
			t->local_len = ln - 16;
			return t->form = BS_BATV_PRVS;
		}
		/* Cisco: prvs=local=KDDDHHHHHH */
		if (ln > 16 && lp[ln - 11] == '=' && is_prvs_tag(lp + ln - 10)) {
			t->local = lp + 5;
			t->local_len = ln - 16;
			return t->form = BS_BATV_PRVS_CISCO;
		}
		return BS_BATV_NONE;
	}
	if (prefix_ci(lp, ln, "btv1==")) {
		for (const char *s = lp + 6; s + 2 < end; s++)
			if (s[0] == '=' && s[1] == '=') {
				t->local = s + 2;
				t->local_len = (size_t)(end - s - 2);
				return t->form = BS_BATV_BTV1;
			}
		return BS_BATV_NONE;
	}
	if (prefix_ci(lp, ln, "msprvs1=")) {
		const char *e = find_eq(lp + 8, end, 1);
		if (e != NULL && e > lp + 8 && e + 1 < end) {
			t->local = e + 1;
			t->local_len = (size_t)(end - e - 1);
			return t->form = BS_BATV_MSPRVS;
		}
		return BS_BATV_NONE;
	}
	if (prefix_ci(lp, ln, "srs0=") || prefix_ci(lp, ln, "srs0+") ||
			prefix_ci(lp, ln, "srs0-") || prefix_ci(lp, ln, "srs1=") ||
			prefix_ci(lp, ln, "srs1+") || prefix_ci(lp, ln, "srs1-")) {
		/* SRS0=HHH=TT=domain=local; SRS1=HHH=fwd==HHH=TT=domain=local:
		 * the original address is the last two fields. */
		const char *s = lp + 5;
		if (vp_lower(lp[3]) == '1') {
			const char *dd = NULL;
			for (const char *q = s; q + 1 < end; q++)
				if (q[0] == '=' && q[1] == '=') {
					dd = q;
					break;
				}
			if (dd == NULL)
				return BS_BATV_NONE;
			s = dd + 2;
		}
		const char *e1 = find_eq(s, end, 1);
		const char *e2 = e1 ? find_eq(e1 + 1, end, 1) : NULL;
		const char *e3 = e2 ? find_eq(e2 + 1, end, 1) : NULL;
		if (e3 == NULL || e3 == e2 + 1 || e3 + 1 >= end)
			return BS_BATV_NONE;
		t->domain = e2 + 1;
		t->domain_len = (size_t)(e3 - e2 - 1);
		t->local = e3 + 1;
		t->local_len = (size_t)(end - e3 - 1);
		return t->form = BS_BATV_SRS;
	}
	return BS_BATV_NONE;
}

/* HMAC-SHA1 of data with key k; the first 3 bytes into out. */
static bool
hmac3(struct bs_verdict_ctx *vc, unsigned int k, const uint8_t *data,
	size_t n, uint8_t out[3])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	size_t ml = 0;
	EVP_MAC_CTX *c = vc->hmac[k];
	if (c == NULL || !EVP_MAC_init(c, NULL, 0, NULL) ||
			!EVP_MAC_update(c, data, n) ||
			!EVP_MAC_final(c, md, &ml, sizeof(md)) || ml < 3)
		return false;
	memcpy(out, md, 3);
	return true;
}

enum bs_batv_status
bs_batv_check(struct bs_verdict_ctx *vc, const struct bs_batv_tag *t,
	uint64_t now_s)
{
	const struct bs_verdict_policy *p = vc->p;
	uint8_t want[3], got[3];
	/* "K" "DDD" local "@" domain: at most 4 + the address. */
	uint8_t buf[4 + BS_SMTP_ADDR_MAX + 2];
	if (t->form != BS_BATV_PRVS)
		return BS_BATV_ST_NONE;
	if (!p->batv_key[t->key].set)
		return BS_BATV_ST_BAD;
	for (int i = 0; i < 3; i++)
		want[i] = (uint8_t)(hexval(t->hash[2 * i]) << 4 |
			hexval(t->hash[2 * i + 1]));
	size_t an = t->local_len + 1 + t->domain_len;
	if (t->domain == NULL || an + 4 > sizeof(buf))
		return BS_BATV_ST_BAD;
	buf[0] = (uint8_t)('0' + t->key);
	buf[1] = (uint8_t)('0' + t->day / 100);
	buf[2] = (uint8_t)('0' + t->day / 10 % 10);
	buf[3] = (uint8_t)('0' + t->day % 10);
	memcpy(buf + 4, t->local, t->local_len);
	buf[4 + t->local_len] = '@';
	memcpy(buf + 5 + t->local_len, t->domain, t->domain_len);

	/*
	 * The signer hashed the address as it had it; a remote MTA may
	 * have changed the case of the domain (or, rarely, of everything)
	 * on the way back.  Forging still needs the key, so trying those
	 * two spellings costs a forger nothing and saves real bounces.
	 */
	bool ok = false;
	for (int pass = 0; pass < 3 && !ok; pass++) {
		bool changed = pass == 0;
		size_t from = pass == 1 ? 5 + t->local_len : 4;
		for (size_t i = from; pass > 0 && i < 4 + an; i++) {
			char c = vp_lower((char)buf[i]);
			if (c != (char)buf[i]) {
				buf[i] = (uint8_t)c;
				changed = true;
			}
		}
		if (!changed)
			continue;
		if (!hmac3(vc, t->key, buf, 4 + an, got))
			return BS_BATV_ST_BAD;
		ok = CRYPTO_memcmp(got, want, 3) == 0;
	}
	if (!ok)
		return BS_BATV_ST_BAD;
	unsigned int today = (unsigned int)(now_s / 86400 % 1000);
	unsigned int ahead = (t->day + 1000 - today) % 1000;
	return ahead <= p->batv_lifetime ? BS_BATV_ST_VALID
					 : BS_BATV_ST_EXPIRED;
}
