/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Coverage on the wire (include/backstop/coverage.h): a small table per
 * worker of protected servers and the sessions the wire could not
 * inspect.  A linear scan of at most BS_COV_SERVERS rows at the end of a
 * flow, never per packet; the table never grows.
 */
#include <arpa/inet.h>
#include <string.h>

#include "backstop/coverage.h"
#include "backstop/pkt.h"

static const char *const reason_names[BS_COV__MAX] = {
	[BS_COV_STARTTLS] = "starttls",
	[BS_COV_MIDSTREAM] = "midstream",
	[BS_COV_DESYNC] = "desync",
	[BS_COV_CAPS] = "caps",
	[BS_COV_REASM] = "reasm",
	[BS_COV_UNFOLLOWED] = "unfollowed",
};

const char *
bs_cov_reason_name(enum bs_cov_reason r)
{
	return (unsigned int)r < BS_COV__MAX ? reason_names[r] : "?";
}

static struct bs_cov_row *
row_of(struct bs_cov *c, uint8_t l3, const uint8_t *addr)
{
	size_t alen = l3 == BS_L3_IPV4 ? 4 : 16;
	for (uint32_t i = 0; i < c->n; i++)
		if (c->row[i].l3 == l3 && memcmp(c->row[i].addr, addr,
				alen) == 0)
			return &c->row[i];
	if (c->n == BS_COV_SERVERS)
		return &c->other;
	struct bs_cov_row *r = &c->row[c->n++];
	memset(r, 0, sizeof(*r));
	r->l3 = l3;
	memcpy(r->addr, addr, alen);
	return r;
}

void
bs_cov_count(struct bs_cov *c, uint8_t l3, const uint8_t *addr, int reason)
{
	struct bs_cov_row *r = row_of(c, l3, addr);
	r->sessions++;
	if (reason >= 0 && reason < BS_COV__MAX)
		r->uninspected[reason]++;
}

static void
row_add(struct bs_cov_row *to, const struct bs_cov_row *from)
{
	to->sessions += from->sessions;
	for (int k = 0; k < BS_COV__MAX; k++)
		to->uninspected[k] += from->uninspected[k];
}

void
bs_cov_sum(struct bs_cov *out, const struct bs_cov *const *in, unsigned int n)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int t = 0; t < n; t++) {
		const struct bs_cov *c = in[t];
		for (uint32_t i = 0; i < c->n && i < BS_COV_SERVERS; i++)
			row_add(row_of(out, c->row[i].l3, c->row[i].addr),
				&c->row[i]);
		row_add(&out->other, &c->other);
	}
}

uint64_t
bs_cov_uninspected(const struct bs_cov_row *r)
{
	uint64_t u = 0;
	for (int k = 0; k < BS_COV__MAX; k++)
		u += r->uninspected[k];
	return u;
}

static void
row_print(FILE *f, const char *label, const struct bs_cov_row *r)
{
	uint64_t u = bs_cov_uninspected(r);
	fprintf(f, "coverage %s sessions %llu uninspected %llu share %.1f%%",
		label, (unsigned long long)r->sessions, (unsigned long long)u,
		r->sessions ? 100.0 * (double)u / (double)r->sessions : 0.0);
	for (int k = 0; k < BS_COV__MAX; k++)
		fprintf(f, " %s %llu", reason_names[k],
			(unsigned long long)r->uninspected[k]);
	fputc('\n', f);
}

void
bs_cov_print(FILE *f, const struct bs_cov *c)
{
	for (uint32_t i = 0; i < c->n; i++) {
		char a[INET6_ADDRSTRLEN + 8], label[INET6_ADDRSTRLEN + 16];
		inet_ntop(c->row[i].l3 == BS_L3_IPV4 ? AF_INET : AF_INET6,
			c->row[i].addr, a, sizeof(a));
		snprintf(label, sizeof(label), "server %s", a);
		row_print(f, label, &c->row[i]);
	}
	if (c->other.sessions > 0)
		row_print(f, "other_servers", &c->other);
}
