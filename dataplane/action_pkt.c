/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The inline action's bytes (see include/backstop/action.h): frames that
 * continue a connection in either direction, the refusal's reply text,
 * the timestamp option, and the hold-latency histogram.
 *
 * Why frames are written from a template rather than by editing the
 * held packet: the held segment may be a chained mbuf, carry IPv4
 * options, IPv6 extension headers or TCP options we do not want to
 * repeat, and its buffer may be shared; a fresh frame of known layout
 * (20-byte IPv4 or 40-byte IPv6 header, 20-byte TCP header plus the
 * timestamp option) is simpler to get right and to test byte for byte.
 * The link header (MACs, VLAN tags) is copied from the client's frame,
 * with the MAC addresses swapped toward the client, so the packet takes
 * the path the server's own packets take.
 */
#include <errno.h>
#include <string.h>

#include "backstop/action.h"
#include "backstop/verdict.h"

static inline void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		(uint32_t)p[2] << 8 | p[3];
}

/* One's complement sum of n bytes (RFC 1071), not yet folded. */
static uint32_t
sum16(uint32_t s, const uint8_t *p, size_t n)
{
	for (; n >= 2; p += 2, n -= 2)
		s += (uint32_t)p[0] << 8 | p[1];
	if (n)
		s += (uint32_t)p[0] << 8;
	return s;
}

static uint16_t
fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

int
bs_act_tmpl_init(struct bs_act_tmpl *t, const uint8_t *frame, size_t len,
	const struct bs_pkt *p)
{
	memset(t, 0, sizeof(*t));
	if (p->l3_off < 14 || p->l3_off > BS_ACT_L2_MAX || p->l3_off > len ||
			(p->l3 != BS_L3_IPV4 && p->l3 != BS_L3_IPV6))
		return -EINVAL;
	memcpy(t->l2, frame, p->l3_off);
	t->l2_len = (uint8_t)p->l3_off;
	/* The innermost ethertype is the IP version's (the frame may have
	 * carried it so already; a fresh frame has no extension header). */
	put16(t->l2 + p->l3_off - 2, p->l3 == BS_L3_IPV4 ? 0x0800 : 0x86dd);
	t->l3 = p->l3;
	/* The parser fills only the 4 bytes of an IPv4 address. */
	size_t alen = p->l3 == BS_L3_IPV4 ? 4 : 16;
	memcpy(t->cli, p->src, alen);
	memcpy(t->srv, p->dst, alen);
	t->cport = p->sport;
	t->sport = p->dport;
	return 0;
}

struct bs_act_ts
bs_act_ts_parse(const uint8_t *tcp, size_t hlen)
{
	struct bs_act_ts ts = { .on = false };
	size_t i = 20;

	if (hlen > 60)
		hlen = 60;
	while (i < hlen) {
		uint8_t kind = tcp[i];
		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= hlen)
			break;
		uint8_t ol = tcp[i + 1];
		if (ol < 2 || i + ol > hlen)
			break;
		if (kind == 8 && ol == 10) {
			ts.on = true;
			ts.val = get32(tcp + i + 2);
			ts.ecr = get32(tcp + i + 6);
			break;
		}
		i += ol;
	}
	return ts;
}

size_t
bs_act_frame(const struct bs_act_tmpl *t, bool to_server, uint8_t flags,
	uint32_t seq, uint32_t ack, uint16_t win, const struct bs_act_ts *ts,
	const uint8_t *payload, size_t plen, uint8_t *out, size_t cap)
{
	size_t l3len = t->l3 == BS_L3_IPV4 ? 20 : 40;
	size_t thl = ts != NULL && ts->on ? 32 : 20;
	size_t alen = t->l3 == BS_L3_IPV4 ? 4 : 16;

	if (plen > BS_ACT_REPLY_MAX || t->l2_len < 14 ||
			t->l2_len > BS_ACT_L2_MAX ||
			(size_t)t->l2_len + l3len + thl + plen > cap)
		return 0;
	uint8_t *l2 = out, *ip = out + t->l2_len, *tcp = ip + l3len;
	memcpy(l2, t->l2, t->l2_len);
	if (!to_server) {
		/* Toward the client: from the server's MAC to the client's
		 * next hop, on the same VLANs. */
		memcpy(l2, t->l2 + 6, 6);
		memcpy(l2 + 6, t->l2, 6);
	}
	const uint8_t *src = to_server ? t->cli : t->srv;
	const uint8_t *dst = to_server ? t->srv : t->cli;
	size_t l4len = thl + plen;
	if (t->l3 == BS_L3_IPV4) {
		memset(ip, 0, 20);
		ip[0] = 0x45;
		put16(ip + 2, (uint16_t)(20 + l4len));
		put16(ip + 6, 0x4000); /* DF */
		ip[8] = BS_ACT_TTL;
		ip[9] = 6;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		put16(ip + 10, fold(sum16(0, ip, 20)));
	} else {
		memset(ip, 0, 8);
		ip[0] = 0x60;
		put16(ip + 4, (uint16_t)l4len);
		ip[6] = 6;
		ip[7] = BS_ACT_TTL;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
	}
	put16(tcp, to_server ? t->cport : t->sport);
	put16(tcp + 2, to_server ? t->sport : t->cport);
	put32(tcp + 4, seq);
	put32(tcp + 8, ack);
	tcp[12] = (uint8_t)((thl / 4) << 4);
	tcp[13] = flags;
	put16(tcp + 14, win);
	put16(tcp + 16, 0);
	put16(tcp + 18, 0);
	if (thl == 32) {
		tcp[20] = 1;
		tcp[21] = 1;
		tcp[22] = 8;
		tcp[23] = 10;
		put32(tcp + 24, ts->val);
		put32(tcp + 28, ts->ecr);
	}
	if (plen > 0)
		memcpy(tcp + thl, payload, plen);
	/* Pseudo-header (RFC 9293 3.1, RFC 8200 8.1). */
	uint32_t s = sum16(0, src, alen);
	s = sum16(s, dst, alen);
	s += 6 + (uint32_t)l4len;
	s = sum16(s, tcp, l4len);
	put16(tcp + 16, fold(s));
	return (size_t)t->l2_len + l3len + l4len;
}

/* Append s (printable ASCII only) to out[o..lim); returns the new o. */
static size_t
append(char *out, size_t o, size_t lim, const char *s)
{
	for (; *s != '\0' && o < lim; s++) {
		unsigned char c = (unsigned char)*s;
		out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	return o;
}

size_t
bs_act_reply(const struct bs_verdict_result *vr, unsigned int n_550,
	char *out, size_t cap)
{
	static const char tail[] = "421 4.7.0 Closing connection\r\n";
	char line[BS_ACT_LINE_MAX];
	size_t o = 0, lim = sizeof(line) - 3; /* room for ")\r\n" */

	if (n_550 < 1)
		n_550 = 1;
	if (n_550 > BS_ACT_REPLIES_MAX)
		n_550 = BS_ACT_REPLIES_MAX;
	o = append(line, o, lim, "550 5.7.1 Backscatter refused: this bounce "
		"answers no message sent from ");
	o = append(line, o, lim, vr->domain[0] != '\0' ? vr->domain
						  : "this domain");
	o = append(line, o, lim, " (");
	bool first = true;
	for (unsigned int r = 0; r < BS_VR__MAX; r++) {
		if (!(vr->reasons & (1ULL << r)))
			continue;
		const char *nm = bs_verdict_reason_name((enum bs_verdict_reason)r);
		/* Whole names only. */
		if (o + strlen(nm) + 1 > lim)
			break;
		if (!first)
			o = append(line, o, lim, " ");
		o = append(line, o, lim, nm);
		first = false;
	}
	line[o++] = ')';
	line[o++] = '\r';
	line[o++] = '\n';
	size_t n = 0;
	for (unsigned int i = 0; i < n_550; i++) {
		if (n + o + sizeof(tail) - 1 > cap)
			break;
		memcpy(out + n, line, o);
		n += o;
	}
	if (n + sizeof(tail) - 1 <= cap) {
		memcpy(out + n, tail, sizeof(tail) - 1);
		n += sizeof(tail) - 1;
	}
	return n;
}

/* Bucket of ns: exponent e = floor(log2 ns), then the next 2 bits. */
static unsigned int
lat_bucket(uint64_t ns)
{
	if (ns < 4)
		return (unsigned int)ns;
	unsigned int e = 63u - (unsigned int)__builtin_clzll(ns);
	unsigned int sub = (unsigned int)(ns >> (e - 2)) & 3u;
	unsigned int i = e * 4 + sub;
	return i < BS_LAT_BUCKETS ? i : BS_LAT_BUCKETS - 1;
}

uint64_t
bs_lat_bucket_le(unsigned int i)
{
	if (i < 4)
		return i;
	unsigned int e = i / 4, sub = i % 4;
	if (e < 2)
		return 3; /* never used: below 4 ns is one bucket per value */
	if (e >= 63)
		return UINT64_MAX;
	/* Bucket (e, sub) holds [2^e + sub 2^(e-2), 2^e + (sub+1) 2^(e-2)). */
	return (1ULL << e) + ((uint64_t)(sub + 1) << (e - 2)) - 1;
}

void
bs_lat_add(struct bs_lat_hist *h, uint64_t ns)
{
	h->b[lat_bucket(ns)]++;
	h->count++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void
bs_lat_sum(struct bs_lat_hist *out, const struct bs_lat_hist *in)
{
	for (unsigned int i = 0; i < BS_LAT_BUCKETS; i++)
		out->b[i] += in->b[i];
	out->count += in->count;
	out->sum_ns += in->sum_ns;
	if (in->max_ns > out->max_ns)
		out->max_ns = in->max_ns;
}

uint64_t
bs_lat_quantile(const struct bs_lat_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	uint64_t want = (uint64_t)(q * (double)h->count);
	if (want >= h->count)
		want = h->count - 1;
	uint64_t seen = 0;
	for (unsigned int i = 0; i < BS_LAT_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t le = bs_lat_bucket_le(i);
			return le < h->max_ns ? le : h->max_ns;
		}
	}
	return h->max_ns;
}
