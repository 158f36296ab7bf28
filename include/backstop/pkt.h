/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet header parsing: Ethernet, up to two VLAN tags, IPv4 (options,
 * fragments), IPv6 (extension headers), TCP.
 *
 * The parser reads headers only, never past the captured length, and
 * never writes to the packet: forwarding stays byte-exact whatever it
 * decides.  It is pure (no EAL, no allocation) so unit tests and fuzzers
 * drive it directly.
 */
#ifndef BACKSTOP_PKT_H
#define BACKSTOP_PKT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Most VLAN tags we look through (802.1Q, 802.1ad QinQ). */
#define BS_PKT_MAX_VLAN 2
/*
 * Most IPv6 extension headers we walk before giving up.  Real traffic
 * carries zero to two; a long chain is an evasion or DoS attempt.
 */
#define BS_PKT_MAX_IPV6_EXT 8

enum bs_pkt_l3 { BS_L3_NONE = 0, BS_L3_IPV4 = 4, BS_L3_IPV6 = 6 };

/* Outcome of bs_pkt_parse(); every outcome forwards the packet. */
enum bs_pkt_result {
	BS_PKT_TCP = 0,     /* TCP header parsed, payload located */
	BS_PKT_UDP,         /* UDP over IP (ports filled) */
	BS_PKT_OTHER_L4,    /* IP, neither TCP nor UDP */
	BS_PKT_FRAGMENT,    /* IP fragment: not inspected */
	BS_PKT_NON_IP,      /* not IPv4/IPv6 */
	BS_PKT_TRUNCATED,   /* headers run past the captured bytes */
	BS_PKT_MALFORMED,   /* header fields are inconsistent */
};

/* TCP flags. */
#define BS_TCP_FIN 0x01
#define BS_TCP_SYN 0x02
#define BS_TCP_RST 0x04
#define BS_TCP_PSH 0x08
#define BS_TCP_ACK 0x10
#define BS_TCP_URG 0x20

struct bs_pkt {
	uint16_t ethertype;   /* innermost, host order */
	uint8_t vlan_count;
	uint8_t l3;           /* enum bs_pkt_l3 */
	uint8_t proto;        /* IP protocol of the transport header */
	uint8_t has_ip_opts;  /* IPv4 options or IPv6 extension headers */
	uint16_t l3_off;      /* offset of the IP header */
	uint16_t l4_off;      /* offset of the transport header */
	uint16_t vlan[BS_PKT_MAX_VLAN]; /* TCI, host order */
	/* Addresses: IPv4 in the first 4 bytes (the rest is not cleared). */
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport, dport; /* host order */
	/* TCP only. */
	uint32_t seq, ack;     /* host order */
	uint16_t win;          /* unscaled */
	uint16_t urg;          /* urgent pointer */
	uint8_t tcp_flags;
	/* SYN only: window scale option; 0 = not a SYN, 1 = SYN without the
	 * option, 2 + n = shift count n (the encoding of reasm.h). */
	uint8_t wscale;
	uint8_t sack_ok;       /* SYN only: SACK-permitted option present */
	uint16_t payload_off;  /* offset of the TCP payload */
	uint32_t payload_len;  /* bytes of TCP payload per the IP length */
};

/*
 * Parse the headers of one frame of len captured bytes.
 * Returns an enum bs_pkt_result; *p is filled as far as parsing got.
 * Trailing bytes after the IP datagram (Ethernet padding) are ignored.
 * payload_off + payload_len <= len.
 * Any thread; no allocation.
 */
int bs_pkt_parse(const uint8_t *buf, size_t len, struct bs_pkt *p);

/*
 * The same for a frame of len bytes of which only the first hl are
 * contiguous at buf (a chained mbuf's first segment).  Every header must
 * lie in those hl bytes (else BS_PKT_TRUNCATED); lengths are checked
 * against len, so payload_off + payload_len may run past hl into the
 * following segments.  hl > len is treated as len.
 */
int bs_pkt_parse_seg(const uint8_t *buf, size_t hl, size_t len,
	struct bs_pkt *p);

/*
 * First look at a frame, for the fast path: what most frames of a link
 * are (untagged IPv4 without options or IPv6 without extension headers,
 * unfragmented, TCP/UDP/other transport, headers consistent) it
 * classifies without filling a struct bs_pkt, and gives the ports.
 * Returns what bs_pkt_parse_seg() would return for the frame (BS_PKT_TCP,
 * BS_PKT_UDP or BS_PKT_OTHER_L4, with *l3 its BS_L3_* and, for TCP and
 * UDP, the same ports; no VLAN tag, no IP options), or BS_PKT_PEEK_FULL
 * when only the full parser can say (tags, options, fragments, short,
 * truncated or malformed frames, non-IP).  Same bounds as
 * bs_pkt_parse_seg(): headers within the first hl bytes, the datagram
 * within len.  Every check the full parser makes on such a frame is made
 * here too, so the two never disagree (tests/unit/test_pkt.c and
 * tests/fuzz/fuzz_pkt.c compare them).  Inline: it runs for every
 * packet.  Any thread; pure.
 */
#define BS_PKT_PEEK_FULL (-1)

static inline uint16_t
bs_pkt_ld16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return __builtin_bswap16(v);
}

static inline int
bs_pkt_peek(const uint8_t *buf, size_t hl, size_t len, uint8_t *l3,
	uint16_t *sport, uint16_t *dport)
{
	const uint8_t *ip = buf + 14;
	size_t end, l4, hend;
	uint8_t proto;

	if (hl > len)
		hl = len;
	if (hl < 14 + 20)
		return BS_PKT_PEEK_FULL;
	uint16_t et = bs_pkt_ld16(buf + 12);
	if (et == 0x0800) {
		size_t tot = bs_pkt_ld16(ip + 2);
		/* Version 4, no options (IHL 5), the datagram captured, not
		 * a fragment (MF or an offset). */
		if (ip[0] != 0x45 || tot < 20 || tot > len - 14 ||
				(bs_pkt_ld16(ip + 6) & 0x3fff))
			return BS_PKT_PEEK_FULL;
		*l3 = BS_L3_IPV4;
		proto = ip[9];
		l4 = 14 + 20;
		end = 14 + tot;
	} else if (et == 0x86dd) {
		if (hl < 14 + 40 || (ip[0] >> 4) != 6)
			return BS_PKT_PEEK_FULL;
		size_t plen = bs_pkt_ld16(ip + 4);
		end = 14 + 40 + plen;
		proto = ip[6];
		/* Jumbogram, truncated, or an extension header first: the
		 * full parser's. */
		if (plen == 0 || end > len || proto == 0 || proto == 43 ||
				proto == 44 || proto == 51 || proto == 60 ||
				proto == 135)
			return BS_PKT_PEEK_FULL;
		*l3 = BS_L3_IPV6;
		l4 = 14 + 40;
	} else {
		return BS_PKT_PEEK_FULL;
	}
	hend = end < hl ? end : hl;
	if (proto == 6) {
		if (l4 + 20 > hend)
			return BS_PKT_PEEK_FULL;
		size_t doff = (size_t)(buf[l4 + 12] >> 4) * 4;
		if (doff < 20 || l4 + doff > hend)
			return BS_PKT_PEEK_FULL;
	} else if (proto == 17) {
		if (l4 + 8 > hend)
			return BS_PKT_PEEK_FULL;
	} else {
		return BS_PKT_OTHER_L4;
	}
	*sport = bs_pkt_ld16(buf + l4);
	*dport = bs_pkt_ld16(buf + l4 + 2);
	return proto == 6 ? BS_PKT_TCP : BS_PKT_UDP;
}

/* Short name of a result, for logs and tests. */
const char *bs_pkt_result_name(int r);

/*
 * Internet checksum (RFC 1071) field value ck (as read, big-endian) after
 * n bytes of the summed data, starting at byte offset off of it, change
 * from old[] to new_[] (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).  The
 * offset's parity says which half of a 16-bit word each byte is.  Any
 * thread; pure.
 */
uint16_t bs_cksum_adjust(uint16_t ck, const uint8_t *old,
	const uint8_t *new_, size_t n, size_t off);

#endif /* BACKSTOP_PKT_H */
