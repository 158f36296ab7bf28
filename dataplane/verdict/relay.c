/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Relays: does the embedded original's Received chain pass one of the
 * domain's outbound relays?
 *
 * Each Received header is written by the host that received the message,
 * about the client that connected to it.  Only the parts that host wrote
 * from its own knowledge are believed: the client's address in brackets
 * inside the comment after "from" (Postfix "(rdns [ip])", Sendmail, Exim
 * "([ip])", qmail and Exchange "(ip)"), and its own name after "by".  The
 * name after "from" is the client's HELO, which a forger chooses; the
 * reverse DNS name is whatever the owner of the client's address put in
 * DNS: neither is believed.  Exim writes "from [ip] (helo=x)" when the
 * client has no reverse name; that leading literal is its own, and is
 * taken only with Exim's helo= comment beside it.
 *
 * The relay may sit anywhere in the chain: forwarding adds hops above
 * it.  Names match the "by" host (exact, or a glob where '*' matches any
 * run of characters), networks match the client address (IPv4 and IPv6,
 * IPv4-mapped IPv6 as IPv4) or a "by" address literal.
 */
#include <arpa/inet.h>
#include <string.h>

#include "verdict_priv.h"

/* Bytes of one Received value looked at (the clauses we read come
 * first; the rest is "with", "id", "for" and the date). */
#define RELAY_RCVD_MAX 1024

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parse an address literal s[0..n) ("IPv6:" prefix allowed). */
static int
parse_ip(const char *s, size_t n, uint8_t *fam, uint8_t ip[16])
{
	char buf[64];
	if (n > 5 && vp_eq_ci(s, 5, "ipv6:", 5)) {
		s += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, ip) == 1) {
		*fam = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, buf, ip) == 1) {
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
			0, 0xff, 0xff };
		if (memcmp(ip, mapped, 12) == 0) {
			memmove(ip, ip + 12, 4);
			*fam = 4;
		} else {
			*fam = 6;
		}
		return 0;
	}
	return -1;
}

/* The first "[literal]" in s[0..n). */
static bool
bracketed_ip(const char *s, size_t n, uint8_t *fam, uint8_t ip[16])
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '[')
			continue;
		size_t j = i + 1;
		while (j < n && s[j] != ']' && s[j] != '[' && !is_space(s[j]))
			j++;
		if (j < n && s[j] == ']' && parse_ip(s + i + 1, j - i - 1, fam,
				ip) == 0)
			return true;
	}
	return false;
}

/* A comment that is one address literal and nothing else ("(1.2.3.4)"). */
static bool
bare_ip(const char *s, size_t n, uint8_t *fam, uint8_t ip[16])
{
	while (n > 0 && is_space(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_space(s[n - 1]))
		n--;
	return parse_ip(s, n, fam, ip) == 0;
}

int
bs_relay_hop_parse(const char *raw, size_t rn, struct bs_relay_hop *h)
{
	char s[RELAY_RCVD_MAX];
	size_t n = 0;
	memset(h, 0, sizeof(*h));
	/* Unfold and squeeze white space. */
	for (size_t i = 0; i < rn && n < sizeof(s); i++) {
		char c = raw[i];
		if (is_space(c)) {
			if (n > 0 && s[n - 1] != ' ')
				s[n++] = ' ';
			continue;
		}
		s[n++] = c;
	}
	size_t i = 0;
	while (i < n && s[i] == ' ')
		i++;
	/* The "by" clause starts at the word "by" outside comments. */
	size_t by = n;
	int depth = 0;
	for (size_t k = i; k < n; k++) {
		if (s[k] == '(')
			depth++;
		else if (s[k] == ')' && depth > 0)
			depth--;
		else if (depth == 0 && k + 3 <= n && (k == 0 || s[k - 1] == ' ' ||
				s[k - 1] == ')') && vp_eq_ci(s + k, 2, "by", 2) &&
				(k + 2 == n || s[k + 2] == ' ')) {
			by = k;
			break;
		}
	}
	if (by - i >= 5 && vp_eq_ci(s + i, 5, "from ", 5)) {
		size_t t0 = i + 5, t1 = t0;
		while (t1 < by && s[t1] != ' ' && s[t1] != '(')
			t1++;
		/* Comments of the from clause, in order. */
		bool got = false, exim_helo = false;
		for (size_t k = t1; k < by && !got; k++) {
			if (s[k] != '(')
				continue;
			size_t e = k + 1;
			int d = 1;
			while (e < by && d > 0) {
				if (s[e] == '(')
					d++;
				else if (s[e] == ')')
					d--;
				if (d > 0)
					e++;
			}
			const char *c = s + k + 1;
			size_t cn = e - k - 1, cut = cn;
			k = e;
			/* The client's HELO, quoted by the receiver, is the
			 * client's word: qmail "(HELO x)", Exim "helo=x". */
			if (cn >= 5 && (vp_eq_ci(c, 5, "helo ", 5) ||
					vp_eq_ci(c, 5, "ehlo ", 5)))
				continue;
			for (size_t q = 0; q + 5 <= cn; q++)
				if (vp_eq_ci(c + q, 5, "helo=", 5)) {
					cut = q;
					exim_helo = true;
					break;
				}
			if (bracketed_ip(c, cut, &h->fam, h->ip) ||
					bare_ip(c, cut, &h->fam, h->ip))
				got = true;
		}
		if (!got && exim_helo && t1 - t0 > 2 && s[t0] == '[' &&
				s[t1 - 1] == ']')
			parse_ip(s + t0 + 1, t1 - t0 - 2, &h->fam, h->ip);
	}
	if (by < n) {
		size_t b0 = by + 3, b1 = b0, o = 0;
		while (b1 < n && s[b1] != ' ' && s[b1] != '(' && s[b1] != ';')
			b1++;
		if (b1 > b0 && s[b1 - 1] == '.')
			b1--;
		for (size_t k = b0; k < b1 && o + 1 < sizeof(h->by); k++)
			h->by[o++] = vp_lower(s[k]);
		h->by[o] = '\0';
	}
	return h->fam != 0 || h->by[0] != '\0' ? 0 : -1;
}

/* '*' matches any run of characters (dots included). */
static bool
glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *back = NULL;
	while (*s) {
		if (*pat == '*') {
			star = pat++;
			back = s;
		} else if (*pat == *s) {
			pat++;
			s++;
		} else if (star != NULL) {
			pat = star + 1;
			s = ++back;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

static bool
prefix_match(const uint8_t *a, const uint8_t *net, unsigned int plen)
{
	unsigned int full = plen / 8, rest = plen % 8;
	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

static bool
net_match(const struct vp_relay *r, uint8_t fam, const uint8_t *ip)
{
	if ((r->kind == VP_RELAY_V4 && fam == 4) ||
			(r->kind == VP_RELAY_V6 && fam == 6))
		return prefix_match(ip, r->ip, r->plen);
	return false;
}

bool
bs_relay_hop_match(const struct bs_verdict_policy *p, const char *domain,
	size_t dlen, const struct bs_relay_hop *h)
{
	const struct vp_domain *d = vp_domain_find(p, domain, dlen);
	if (d == NULL)
		return false;
	uint8_t byfam = 0, byip[16];
	if (h->by[0] != '\0') {
		size_t bl = strlen(h->by);
		if (bl > 2 && h->by[0] == '[' && h->by[bl - 1] == ']')
			parse_ip(h->by + 1, bl - 2, &byfam, byip);
		else
			parse_ip(h->by, bl, &byfam, byip);
	}
	for (uint32_t i = 0; i < d->relays->n; i++) {
		const struct vp_relay *r = &d->relays->r[i];
		switch (r->kind) {
		case VP_RELAY_NAME:
			if (h->by[0] != '\0' && strcmp(r->name, h->by) == 0)
				return true;
			break;
		case VP_RELAY_GLOB:
			if (h->by[0] != '\0' && glob_match(r->name, h->by))
				return true;
			break;
		default:
			if (h->fam != 0 && net_match(r, h->fam, h->ip))
				return true;
			if (byfam != 0 && net_match(r, byfam, byip))
				return true;
			break;
		}
	}
	return false;
}
