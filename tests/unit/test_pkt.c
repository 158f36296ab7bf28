/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the packet parser: each header type, the bounds checks
 * (every prefix of a valid frame must parse as truncated, never read past
 * the end), and the IPv6 extension header walk limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backstop/pkt.h"

struct frame {
	uint8_t b[2048];
	size_t len;
};

static void
put(struct frame *f, const void *p, size_t n)
{
	memcpy(f->b + f->len, p, n);
	f->len += n;
}

static void
put16(struct frame *f, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	put(f, b, 2);
}

static void
eth(struct frame *f, uint16_t type)
{
	static const uint8_t macs[12] = { 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1 };
	f->len = 0;
	put(f, macs, 12);
	put16(f, type);
}

/* IPv4 header with optional options; total length covers l4len. */
static void
ipv4(struct frame *f, uint8_t proto, size_t optlen, size_t l4len,
	uint16_t frag)
{
	uint8_t h[60] = { 0 };
	size_t ihl = 20 + optlen;
	h[0] = (uint8_t)(0x40 | (ihl / 4));
	h[2] = (uint8_t)((ihl + l4len) >> 8);
	h[3] = (uint8_t)(ihl + l4len);
	h[6] = (uint8_t)(frag >> 8);
	h[7] = (uint8_t)frag;
	h[8] = 64;
	h[9] = proto;
	uint8_t src[4] = { 192, 0, 2, 1 }, dst[4] = { 198, 51, 100, 25 };
	memcpy(h + 12, src, 4);
	memcpy(h + 16, dst, 4);
	for (size_t i = 20; i < ihl; i++)
		h[i] = 1; /* NOP options */
	put(f, h, ihl);
}

static void
tcp(struct frame *f, uint16_t sport, uint16_t dport, uint32_t seq,
	uint8_t flags, const char *payload)
{
	uint8_t h[20] = { 0 };
	h[0] = (uint8_t)(sport >> 8);
	h[1] = (uint8_t)sport;
	h[2] = (uint8_t)(dport >> 8);
	h[3] = (uint8_t)dport;
	h[4] = (uint8_t)(seq >> 24);
	h[5] = (uint8_t)(seq >> 16);
	h[6] = (uint8_t)(seq >> 8);
	h[7] = (uint8_t)seq;
	h[12] = 5 << 4;
	h[13] = flags;
	h[14] = 0xff;
	h[15] = 0xff;
	put(f, h, 20);
	put(f, payload, strlen(payload));
}

static void
test_ipv4_tcp(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	const char *pl = "EHLO x\r\n";
	eth(&f, 0x0800);
	ipv4(&f, 6, 0, 20 + strlen(pl), 0);
	tcp(&f, 40000, 25, 0xfffffff0u, BS_TCP_PSH | BS_TCP_ACK, pl);
	/* Ethernet padding after the datagram must be ignored. */
	memset(f.b + f.len, 0, 10);
	assert_int_equal(bs_pkt_parse(f.b, f.len + 10, &p), BS_PKT_TCP);
	assert_int_equal(p.l3, BS_L3_IPV4);
	assert_int_equal(p.sport, 40000);
	assert_int_equal(p.dport, 25);
	assert_int_equal(p.seq, 0xfffffff0u);
	assert_int_equal(p.tcp_flags, BS_TCP_PSH | BS_TCP_ACK);
	assert_int_equal(p.payload_len, strlen(pl));
	assert_memory_equal(f.b + p.payload_off, pl, strlen(pl));
	assert_int_equal(p.src[0], 192);
	assert_int_equal(p.dst[3], 25);
	assert_false(p.has_ip_opts);
}

static void
test_ipv4_options_vlan(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	eth(&f, 0x88a8);
	put16(&f, 200);
	put16(&f, 0x8100);
	put16(&f, 100);
	put16(&f, 0x0800);
	ipv4(&f, 6, 8, 20 + 4, 0);
	tcp(&f, 25, 1025, 1, BS_TCP_ACK, "250 ");
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_TCP);
	assert_int_equal(p.vlan_count, 2);
	assert_int_equal(p.vlan[0], 200);
	assert_int_equal(p.vlan[1], 100);
	assert_true(p.has_ip_opts);
	assert_int_equal(p.l4_off, 14 + 8 + 28);
	assert_int_equal(p.payload_len, 4);
}

static void
test_three_vlan_tags_not_followed(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	eth(&f, 0x8100);
	for (int i = 0; i < 3; i++) {
		put16(&f, (uint16_t)(10 + i));
		put16(&f, i < 2 ? 0x8100 : 0x0800);
	}
	ipv4(&f, 6, 0, 20, 0);
	tcp(&f, 1, 25, 1, BS_TCP_SYN, "");
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_NON_IP);
}

static void
test_ipv4_fragments(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	eth(&f, 0x0800);
	ipv4(&f, 6, 0, 20, 0x2000); /* MF */
	tcp(&f, 1, 25, 1, BS_TCP_SYN, "");
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_FRAGMENT);
	eth(&f, 0x0800);
	ipv4(&f, 6, 0, 20, 0x0005); /* offset 40 */
	tcp(&f, 1, 25, 1, BS_TCP_SYN, "");
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_FRAGMENT);
	eth(&f, 0x0800);
	ipv4(&f, 6, 0, 20, 0x4000); /* DF only: not a fragment */
	tcp(&f, 1, 25, 1, BS_TCP_SYN, "");
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_TCP);
}

static void
ipv6(struct frame *f, uint8_t nh, size_t plen)
{
	uint8_t h[40] = { 0x60 };
	h[4] = (uint8_t)(plen >> 8);
	h[5] = (uint8_t)plen;
	h[6] = nh;
	h[7] = 64;
	h[8] = 0x20;
	h[9] = 0x01;
	h[24] = 0x20;
	h[25] = 0x01;
	h[39] = 0x25;
	put(f, h, 40);
}

static void
test_ipv6_ext_headers(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	uint8_t hbh[8] = { 60, 0, 1, 4, 0, 0, 0, 0 };  /* -> dstopts */
	uint8_t dst[16] = { 44, 1, 1, 12 };             /* 16 bytes -> frag */
	uint8_t frag[8] = { 6, 0, 0, 0, 0, 0, 0, 7 };   /* atomic -> TCP */
	eth(&f, 0x86dd);
	ipv6(&f, 0, 8 + 16 + 8 + 20 + 3);
	put(&f, hbh, 8);
	put(&f, dst, 16);
	put(&f, frag, 8);
	tcp(&f, 1025, 587, 5, BS_TCP_ACK, "abc");
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_TCP);
	assert_int_equal(p.l3, BS_L3_IPV6);
	assert_true(p.has_ip_opts);
	assert_int_equal(p.dport, 587);
	assert_int_equal(p.payload_len, 3);
	assert_int_equal(p.dst[15], 0x25);

	/* A real fragment (M set) is not followed. */
	frag[3] = 1;
	eth(&f, 0x86dd);
	ipv6(&f, 44, 8 + 20);
	put(&f, frag, 8);
	tcp(&f, 1025, 25, 5, BS_TCP_ACK, "");
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_FRAGMENT);
}

static void
test_ipv6_ext_chain_limit(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	uint8_t dst[8] = { 60, 0, 1, 4 };
	eth(&f, 0x86dd);
	ipv6(&f, 60, (BS_PKT_MAX_IPV6_EXT + 4) * 8);
	for (int i = 0; i < BS_PKT_MAX_IPV6_EXT + 4; i++)
		put(&f, dst, 8);
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_MALFORMED);
}

static void
test_malformed(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	eth(&f, 0x0800);
	ipv4(&f, 6, 0, 20, 0);
	tcp(&f, 1, 25, 1, 0, "");
	f.b[14] = 0x44; /* IHL 4 */
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_MALFORMED);
	f.b[14] = 0x45;
	f.b[14 + 20 + 12] = 0x40; /* TCP data offset 4 */
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_MALFORMED);
	f.b[14 + 20 + 12] = 0x50;
	f.b[16] = 0;
	f.b[17] = 10; /* total length below IHL */
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_MALFORMED);
}

/*
 * Every strict prefix of a valid frame is truncated (or, for very short
 * prefixes, too short to say): never TCP with a payload past the end.
 * Each prefix is copied to an exact-size heap block so ASan catches any
 * read past it.
 */
static void
test_every_prefix(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	eth(&f, 0x8100);
	put16(&f, 7);
	put16(&f, 0x86dd);
	uint8_t hbh[8] = { 6, 0, 1, 4 };
	ipv6(&f, 0, 8 + 20 + 5);
	put(&f, hbh, 8);
	tcp(&f, 1, 25, 9, BS_TCP_ACK, "hello");
	for (size_t n = 0; n < f.len; n++) {
		uint8_t *b = malloc(n ? n : 1);
		assert_non_null(b);
		memcpy(b, f.b, n);
		int r = bs_pkt_parse(b, n, &p);
		assert_int_equal(r, BS_PKT_TRUNCATED);
		free(b);
	}
	assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_TCP);
}

/*
 * A chained mbuf: only the first hl bytes are contiguous.  Headers there
 * parse, with the payload length of the whole frame; headers cut by the
 * segment are truncated, never read past hl (exact-size copy for ASan).
 */
static void
test_first_segment_only(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	char big[1200];
	memset(big, 'D', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	eth(&f, 0x0800);
	ipv4(&f, 6, 4, 20 + strlen(big), 0);
	tcp(&f, 40000, 25, 7, BS_TCP_ACK, big);
	size_t hdrs = 14 + 24 + 20;
	for (size_t hl = 0; hl <= 200; hl++) {
		uint8_t *seg = malloc(hl ? hl : 1);
		assert_non_null(seg);
		memcpy(seg, f.b, hl);
		int r = bs_pkt_parse_seg(seg, hl, f.len, &p);
		if (hl < hdrs) {
			assert_int_equal(r, BS_PKT_TRUNCATED);
		} else {
			assert_int_equal(r, BS_PKT_TCP);
			assert_int_equal(p.payload_off, hdrs);
			assert_int_equal(p.payload_len, strlen(big));
		}
		free(seg);
	}
	/* IPv6 with an extension header split by the segment end. */
	uint8_t hbh[8] = { 6, 0, 1, 4 };
	eth(&f, 0x86dd);
	ipv6(&f, 0, 8 + 20 + 5);
	put(&f, hbh, 8);
	tcp(&f, 1, 25, 9, BS_TCP_ACK, "hello");
	for (size_t hl = 0; hl < 14 + 40 + 8 + 20; hl++) {
		uint8_t *seg = malloc(hl ? hl : 1);
		memcpy(seg, f.b, hl);
		assert_int_equal(bs_pkt_parse_seg(seg, hl, f.len, &p),
			BS_PKT_TRUNCATED);
		free(seg);
	}
}

static void
test_non_ip(void **state)
{
	(void)state;
	struct frame f;
	struct bs_pkt p;
	eth(&f, 0x0806);
	memset(f.b + f.len, 0, 28);
	assert_int_equal(bs_pkt_parse(f.b, f.len + 28, &p), BS_PKT_NON_IP);
	assert_int_equal(p.ethertype, 0x0806);
	assert_string_equal(bs_pkt_result_name(BS_PKT_NON_IP), "non_ip");
	assert_string_equal(bs_pkt_result_name(99), "unknown");
}

/* SYN options: window scale and SACK-permitted, in any order. */
static void
test_syn_options(void **state)
{
	(void)state;
	static const uint8_t opts[2][12] = {
		{ 2, 4, 0x05, 0xb4, 4, 2, 1, 3, 3, 7, 0, 0 }, /* MSS SACK WS */
		{ 1, 3, 3, 9, 2, 4, 0x05, 0xb4, 0, 0, 0, 0 }, /* WS MSS, EOL */
	};
	for (int i = 0; i < 2; i++) {
		struct frame f;
		struct bs_pkt p;
		eth(&f, 0x0800);
		ipv4(&f, 6, 0, 32, 0);
		tcp(&f, 40000, 25, 7, BS_TCP_SYN, "");
		f.b[f.len - 20 + 12] = 8 << 4; /* 32-byte header */
		put(&f, opts[i], 12);
		assert_int_equal(bs_pkt_parse(f.b, f.len, &p), BS_PKT_TCP);
		assert_int_equal(p.wscale, i == 0 ? 2 + 7
						  : 2 + 9);
		assert_int_equal(p.sack_ok, i == 0);
		assert_int_equal(p.payload_len, 0);
	}
}

/* Full Internet checksum of n bytes (reference for the incremental one). */
static uint16_t
cksum_full(const uint8_t *b, size_t n)
{
	uint64_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += (i & 1) ? b[i] : (uint32_t)b[i] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* RFC 1624 update of a rewritten span gives a checksum that verifies,
 * for spans at even and odd offsets, of any length. */
static void
test_cksum_adjust(void **state)
{
	(void)state;
	uint8_t b[301], old[301];
	srand(7);
	for (int round = 0; round < 2000; round++) {
		size_t n = 2 + (size_t)rand() % 299;
		for (size_t i = 0; i < n; i++)
			b[i] = (uint8_t)rand();
		/* Bytes 0..1 hold the checksum of the whole. */
		b[0] = b[1] = 0;
		uint16_t ck = cksum_full(b, n);
		b[0] = (uint8_t)(ck >> 8);
		b[1] = (uint8_t)ck;
		assert_int_equal(cksum_full(b, n), 0);
		size_t off = 2 + (size_t)rand() % (n - 1);
		size_t len = off < n ? (size_t)rand() % (n - off + 1) : 0;
		memcpy(old, b + off, len);
		for (size_t i = 0; i < len; i++)
			b[off + i] = (uint8_t)rand();
		ck = bs_cksum_adjust(ck, old, b + off, len, off);
		b[0] = (uint8_t)(ck >> 8);
		b[1] = (uint8_t)ck;
		/* 0 and 0xffff are both ones' complement zero. */
		uint16_t v = cksum_full(b, n);
		assert_true(v == 0 || v == 0xffff);
	}
}

/* One peek/parse comparison; returns 1 when the peek classified it. */
static int
peek_agrees(const uint8_t *b, size_t hl, size_t len)
{
	struct bs_pkt p;
	uint8_t l3 = 0;
	uint16_t sp = 0, dp = 0;
	uint8_t *seg = malloc(hl ? hl : 1); /* exact size: ASan sees past hl */

	assert_non_null(seg);
	memcpy(seg, b, hl);
	int k = bs_pkt_peek(seg, hl, len, &l3, &sp, &dp);
	int r = bs_pkt_parse_seg(seg, hl, len, &p);
	free(seg);
	if (k == BS_PKT_PEEK_FULL)
		return 0;
	assert_int_equal(k, r);
	assert_int_equal(l3, p.l3);
	assert_int_equal(p.vlan_count, 0);
	assert_false(p.has_ip_opts);
	if (r == BS_PKT_TCP || r == BS_PKT_UDP) {
		assert_int_equal(sp, p.sport);
		assert_int_equal(dp, p.dport);
	}
	return 1;
}

/*
 * The fast path's first look (bs_pkt_peek) says what the full parser
 * says whenever it says anything: on clean frames of every kind, each of
 * their prefixes and first segments, and random mutations of their
 * headers.  It must also take the common frames itself (else it is no
 * fast path).
 */
static void
test_peek_agrees(void **state)
{
	(void)state;
	struct frame fr[10];
	int n = 0, fast = 0;
	uint8_t hbh[8] = { 6, 0, 1, 4 };
	uint8_t udp[8] = { 0x13, 0x88, 0, 53, 0, 8, 0, 0 };

	eth(&fr[n], 0x0800); /* IPv4 TCP */
	ipv4(&fr[n], 6, 0, 20 + 5, 0);
	tcp(&fr[n++], 40000, 443, 7, BS_TCP_ACK, "hello");
	eth(&fr[n], 0x0800); /* IPv4 UDP */
	ipv4(&fr[n], 17, 0, 8, 0);
	put(&fr[n++], udp, 8);
	eth(&fr[n], 0x0800); /* IPv4 ICMP */
	ipv4(&fr[n], 1, 0, 8, 0);
	put(&fr[n++], udp, 8);
	eth(&fr[n], 0x0800); /* IPv4 options */
	ipv4(&fr[n], 6, 8, 20, 0);
	tcp(&fr[n++], 1, 25, 7, BS_TCP_SYN, "");
	eth(&fr[n], 0x0800); /* IPv4 fragment */
	ipv4(&fr[n], 6, 0, 20, 0x2000);
	tcp(&fr[n++], 1, 25, 7, BS_TCP_ACK, "");
	eth(&fr[n], 0x86dd); /* IPv6 TCP */
	ipv6(&fr[n], 6, 20 + 3);
	tcp(&fr[n++], 25, 40000, 9, BS_TCP_ACK, "250");
	eth(&fr[n], 0x86dd); /* IPv6 UDP */
	ipv6(&fr[n], 17, 8);
	put(&fr[n++], udp, 8);
	eth(&fr[n], 0x86dd); /* IPv6 ICMPv6 */
	ipv6(&fr[n], 58, 8);
	put(&fr[n++], udp, 8);
	eth(&fr[n], 0x86dd); /* IPv6 extension header */
	ipv6(&fr[n], 0, 8 + 20);
	put(&fr[n], hbh, 8);
	tcp(&fr[n++], 1, 25, 9, BS_TCP_ACK, "");
	eth(&fr[n], 0x8100); /* VLAN */
	put16(&fr[n], 7);
	put16(&fr[n], 0x0800);
	ipv4(&fr[n], 6, 0, 20, 0);
	tcp(&fr[n++], 1, 25, 9, BS_TCP_ACK, "");
	for (int i = 0; i < n; i++) {
		const struct frame *f = &fr[i];

		fast += peek_agrees(f->b, f->len, f->len);
		for (size_t len = 0; len < f->len + 4; len++)
			for (size_t hl = 0; hl <= len; hl += 3)
				peek_agrees(f->b, hl, len);
	}
	/* The six clean frames without tags, options, fragments or
	 * extension headers are the fast path's. */
	assert_int_equal(fast, 6);
	srand(7);
	for (int it = 0; it < 200000; it++) {
		struct frame m = fr[it % n];
		int k = 1 + rand() % 4;

		for (int j = 0; j < k; j++)
			m.b[rand() % (m.len < 70 ? m.len : 70)] = (uint8_t)rand();
		size_t len = m.len - (size_t)(rand() % 3 == 0 ? rand() % 8 : 0);
		peek_agrees(m.b, rand() % 5 ? len : (size_t)rand() % (len + 1),
			len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_tcp),
		cmocka_unit_test(test_ipv4_options_vlan),
		cmocka_unit_test(test_three_vlan_tags_not_followed),
		cmocka_unit_test(test_ipv4_fragments),
		cmocka_unit_test(test_ipv6_ext_headers),
		cmocka_unit_test(test_ipv6_ext_chain_limit),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_first_segment_only),
		cmocka_unit_test(test_non_ip),
		cmocka_unit_test(test_syn_options),
		cmocka_unit_test(test_cksum_adjust),
		cmocka_unit_test(test_peek_agrees),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
