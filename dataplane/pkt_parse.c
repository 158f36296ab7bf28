/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Header parsing for the packet path: Ethernet, VLAN, IPv4, IPv6, TCP/UDP.
 *
 * Everything here reads attacker-controlled bytes.  Each step checks that
 * the bytes it is about to read were captured (`need()`), lengths taken
 * from headers are checked against what the outer header and the capture
 * allow, and the walk over IPv6 extension headers is bounded.  The parser
 * classifies; it never rejects: every result is forwarded by the caller.
 */
#include "backstop/pkt.h"

#include <string.h>

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100 /* pre-standard QinQ, still seen */
#define IPV6_HLEN 40
#define TCP_MIN_HLEN 20
#define UDP_HLEN 8

#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_MH_ 135

static inline uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
		((uint32_t)p[2] << 8) | p[3];
}

/* True if n bytes from off lie inside [0, end). */
static inline int
need(size_t off, size_t n, size_t end)
{
	return off <= end && n <= end - off;
}

/*
 * Options of a SYN: window scale (RFC 7323 2.2: the receiver's window is
 * only known with it) and SACK-permitted (RFC 2018: Linux then accepts a
 * RST at the right edge of its SACK blocks).  The walk stays inside the
 * option bytes; a malformed list just ends the walk (the header is still
 * forwarded).  Returns the BS_WSCALE_* encoding; *sack is set if offered.
 */
static uint8_t
tcp_syn_opts(const uint8_t *o, size_t len, uint8_t *sack)
{
	size_t i = 0;
	uint8_t ws = 1;

	*sack = 0;
	while (i < len) {
		uint8_t kind = o[i];
		if (kind == 0) /* end of options */
			break;
		if (kind == 1) { /* NOP */
			i++;
			continue;
		}
		if (i + 1 >= len || o[i + 1] < 2 || o[i + 1] > len - i)
			break;
		if (kind == 3 && o[i + 1] == 3 && ws == 1) {
			uint8_t shift = o[i + 2];
			ws = (uint8_t)(2 + (shift > 14 ? 14 : shift));
		} else if (kind == 4 && o[i + 1] == 2) {
			*sack = 1;
		}
		i += o[i + 1];
	}
	return ws;
}

/*
 * Transport header at l4 of an IP datagram ending at end; only the first
 * hl bytes of the frame are contiguous in buf (headers must lie there).
 */
static int
parse_l4(const uint8_t *buf, size_t l4, size_t end, size_t hl,
	struct bs_pkt *p)
{
	size_t hend = end < hl ? end : hl; /* header bytes we may read */

	p->l4_off = (uint16_t)l4;
	switch (p->proto) {
	case IPPROTO_TCP_: {
		if (!need(l4, TCP_MIN_HLEN, hend))
			return BS_PKT_TRUNCATED;
		const uint8_t *t = buf + l4;
		size_t doff = (size_t)(t[12] >> 4) * 4;
		if (doff < TCP_MIN_HLEN)
			return BS_PKT_MALFORMED;
		if (!need(l4, doff, hend))
			return BS_PKT_TRUNCATED;
		p->sport = rd16(t);
		p->dport = rd16(t + 2);
		p->seq = rd32(t + 4);
		p->ack = rd32(t + 8);
		p->tcp_flags = t[13];
		p->win = rd16(t + 14);
		p->urg = rd16(t + 18);
		p->sack_ok = 0;
		p->wscale = (p->tcp_flags & BS_TCP_SYN)
			? tcp_syn_opts(t + TCP_MIN_HLEN, doff - TCP_MIN_HLEN,
				&p->sack_ok) : 0;
		p->payload_off = (uint16_t)(l4 + doff);
		p->payload_len = (uint32_t)(end - l4 - doff);
		return BS_PKT_TCP;
	}
	case IPPROTO_UDP_:
		if (!need(l4, UDP_HLEN, hend))
			return BS_PKT_TRUNCATED;
		p->sport = rd16(buf + l4);
		p->dport = rd16(buf + l4 + 2);
		return BS_PKT_UDP;
	default:
		return BS_PKT_OTHER_L4;
	}
}

static int
parse_ipv4(const uint8_t *buf, size_t hl, size_t len, size_t off,
	struct bs_pkt *p)
{
	if (!need(off, 20, hl))
		return BS_PKT_TRUNCATED;
	const uint8_t *ip = buf + off;
	if ((ip[0] >> 4) != 4)
		return BS_PKT_MALFORMED;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	size_t tot = rd16(ip + 2);
	if (ihl < 20 || tot < ihl)
		return BS_PKT_MALFORMED;
	p->l3 = BS_L3_IPV4;
	p->has_ip_opts = ihl > 20;
	p->proto = ip[9];
	memcpy(p->src, ip + 12, 4);
	memcpy(p->dst, ip + 16, 4);
	if (!need(off, ihl, hl))
		return BS_PKT_TRUNCATED; /* options cut by the segment */
	/*
	 * A datagram longer than the capture cannot be followed (its payload
	 * is not all here); bytes beyond tot are link padding.
	 */
	if (!need(off, tot, len))
		return BS_PKT_TRUNCATED;
	uint16_t frag = rd16(ip + 6);
	if (frag & 0x3fff) /* MF set or offset non-zero */
		return BS_PKT_FRAGMENT;
	return parse_l4(buf, off + ihl, off + tot, hl, p);
}

static int
parse_ipv6(const uint8_t *buf, size_t hl, size_t len, size_t off,
	struct bs_pkt *p)
{
	if (!need(off, IPV6_HLEN, hl))
		return BS_PKT_TRUNCATED;
	const uint8_t *ip = buf + off;
	if ((ip[0] >> 4) != 6)
		return BS_PKT_MALFORMED;
	p->l3 = BS_L3_IPV6;
	memcpy(p->src, ip + 8, 16);
	memcpy(p->dst, ip + 24, 16);
	size_t plen = rd16(ip + 4);
	/* Jumbograms (payload length 0 + hop-by-hop option) are not on
	 * Ethernet links we serve; treat as malformed and pass. */
	if (plen == 0)
		return BS_PKT_MALFORMED;
	size_t end = off + IPV6_HLEN + plen;
	if (end > len)
		return BS_PKT_TRUNCATED;
	size_t hend = end < hl ? end : hl; /* extension headers lie here */
	uint8_t nh = ip[6];
	size_t l4 = off + IPV6_HLEN;
	for (unsigned int n = 0;; n++) {
		size_t xl;
		switch (nh) {
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
		case IPPROTO_MH_:
			if (!need(l4, 8, hend))
				return BS_PKT_TRUNCATED;
			xl = ((size_t)buf[l4 + 1] + 1) * 8;
			break;
		case IPPROTO_AH_:
			if (!need(l4, 8, hend))
				return BS_PKT_TRUNCATED;
			xl = ((size_t)buf[l4 + 1] + 2) * 4;
			break;
		case IPPROTO_FRAGMENT_:
			if (!need(l4, 8, hend))
				return BS_PKT_TRUNCATED;
			/*
			 * An atomic fragment (offset 0, M clear; RFC 6946) is
			 * a whole datagram: parse through it.
			 */
			if (rd16(buf + l4 + 2) & 0xfff9) {
				p->has_ip_opts = 1;
				return BS_PKT_FRAGMENT;
			}
			xl = 8;
			break;
		default:
			p->proto = nh;
			return parse_l4(buf, l4, end, hl, p);
		}
		if (n >= BS_PKT_MAX_IPV6_EXT)
			return BS_PKT_MALFORMED;
		if (!need(l4, xl, hend))
			return BS_PKT_TRUNCATED;
		p->has_ip_opts = 1;
		nh = buf[l4];
		l4 += xl;
	}
}

int
bs_pkt_parse(const uint8_t *buf, size_t len, struct bs_pkt *p)
{
	return bs_pkt_parse_seg(buf, len, len, p);
}

int
bs_pkt_parse_seg(const uint8_t *buf, size_t hl, size_t len, struct bs_pkt *p)
{
	/*
	 * Reset only what every caller reads whatever the result; the rest
	 * is written before it is meaningful.  (A full memset of *p was a
	 * measurable share of the per-packet cost.)
	 */
	p->vlan_count = 0;
	p->l3 = BS_L3_NONE;
	p->proto = 0;
	p->has_ip_opts = 0;
	p->sport = p->dport = 0;
	p->tcp_flags = 0;
	p->payload_len = 0;
	if (hl > len)
		hl = len;
	if (hl < ETH_HLEN)
		return BS_PKT_TRUNCATED;
	size_t off = 12;
	uint16_t et = rd16(buf + off);
	while (et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ ||
			et == ETHERTYPE_QINQ_OLD) {
		if (p->vlan_count == BS_PKT_MAX_VLAN) {
			p->ethertype = et;
			return BS_PKT_NON_IP;
		}
		if (!need(off, 6, hl))
			return BS_PKT_TRUNCATED;
		p->vlan[p->vlan_count++] = rd16(buf + off + 2) & 0x0fff;
		off += 4;
		et = rd16(buf + off);
	}
	off += 2;
	p->ethertype = et;
	p->l3_off = (uint16_t)off;
	switch (et) {
	case ETHERTYPE_IPV4:
		return parse_ipv4(buf, hl, len, off, p);
	case ETHERTYPE_IPV6:
		return parse_ipv6(buf, hl, len, off, p);
	default:
		return BS_PKT_NON_IP;
	}
}

const char *
bs_pkt_result_name(int r)
{
	static const char *const names[] = {
		[BS_PKT_TCP] = "tcp",
		[BS_PKT_UDP] = "udp",
		[BS_PKT_OTHER_L4] = "other_l4",
		[BS_PKT_FRAGMENT] = "fragment",
		[BS_PKT_NON_IP] = "non_ip",
		[BS_PKT_TRUNCATED] = "truncated",
		[BS_PKT_MALFORMED] = "malformed",
	};
	if (r < 0 || (size_t)r >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[r];
}

uint16_t
bs_cksum_adjust(uint16_t ck, const uint8_t *old, const uint8_t *new_,
	size_t n, size_t off)
{
	/* 64 bits: n may be a whole 64 KB segment, two terms per byte. */
	uint64_t sum = (uint16_t)~ck;

	for (size_t i = 0; i < n; i++) {
		unsigned int sh = ((off + i) & 1) ? 0 : 8;
		sum += 0xffffu - ((uint32_t)old[i] << sh);
		sum += (uint32_t)new_[i] << sh;
	}
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
