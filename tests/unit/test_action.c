/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the inline action's bytes (action.h): the frames written
 * toward the server and the client (IPv4 and IPv6, untagged, 802.1Q and
 * QinQ, with and without the timestamp option) parse back as the TCP
 * segments they should be, with checksums verified here independently
 * (RFC 1071 over the pseudo-header, not the builder's code), MAC
 * addresses swapped toward the client and VLAN tags kept; the timestamp
 * option parser on well-formed and broken option lists; the reply text;
 * the latency histogram's quantiles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "backstop/action.h"
#include "backstop/pkt.h"
#include "backstop/verdict.h"

/* Independent checksum: 16-bit big-endian words, folded. */
static uint16_t
csum(const uint8_t *p, size_t n, uint32_t s)
{
	while (n > 1) {
		s += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		n -= 2;
	}
	if (n)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* A client frame: link header (vlans tags), IP, TCP with a TS option,
 * a little payload. */
static size_t
client_frame(uint8_t *f, int v6, int vlans, int with_ts)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 };
	static const uint8_t smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	size_t o = 0;
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	o = 12;
	for (int i = 0; i < vlans; i++) {
		f[o++] = i == 0 && vlans == 2 ? 0x88 : 0x81;
		f[o++] = i == 0 && vlans == 2 ? 0xa8 : 0x00;
		f[o++] = 0x00;
		f[o++] = (uint8_t)(100 + i);
	}
	f[o++] = v6 ? 0x86 : 0x08;
	f[o++] = v6 ? 0xdd : 0x00;
	size_t ip = o, thl = with_ts ? 32 : 20, pl = 5;
	if (v6) {
		memset(f + o, 0, 40);
		f[o] = 0x60;
		f[o + 4] = 0;
		f[o + 5] = (uint8_t)(thl + pl);
		f[o + 6] = 6;
		f[o + 7] = 60;
		for (int i = 0; i < 16; i++) {
			f[o + 8 + i] = (uint8_t)(0x20 + i);
			f[o + 24 + i] = (uint8_t)(0x40 + i);
		}
		o += 40;
	} else {
		memset(f + o, 0, 20);
		f[o] = 0x45;
		f[o + 3] = (uint8_t)(20 + thl + pl);
		f[o + 8] = 60;
		f[o + 9] = 6;
		f[o + 12] = 203, f[o + 13] = 0, f[o + 14] = 113, f[o + 15] = 7;
		f[o + 16] = 198, f[o + 17] = 51, f[o + 18] = 100, f[o + 19] = 25;
		uint16_t c = (uint16_t)~csum(f + o, 20, 0);
		f[o + 10] = (uint8_t)(c >> 8);
		f[o + 11] = (uint8_t)c;
		o += 20;
	}
	(void)ip;
	uint8_t *t = f + o;
	memset(t, 0, thl);
	t[0] = 0x9c, t[1] = 0x40; /* 40000 */
	t[2] = 0, t[3] = 25;
	t[4] = 0x11, t[5] = 0x22, t[6] = 0x33, t[7] = 0x44;
	t[8] = 0x55, t[9] = 0x66, t[10] = 0x77, t[11] = 0x88;
	t[12] = (uint8_t)((thl / 4) << 4);
	t[13] = 0x18;
	t[14] = 0xff, t[15] = 0xff;
	if (with_ts) {
		t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10;
		t[24] = 0, t[25] = 0, t[26] = 0x10, t[27] = 0x01; /* val */
		t[28] = 0, t[29] = 0, t[30] = 0x20, t[31] = 0x02; /* ecr */
	}
	memcpy(t + thl, ".\r\n\r\n", pl);
	return o + thl + pl;
}

/* Check that frame f (n bytes) is a valid TCP segment; return its parse. */
static void
check_valid(const uint8_t *f, size_t n, struct bs_pkt *p)
{
	assert_int_equal(bs_pkt_parse(f, n, p), BS_PKT_TCP);
	const uint8_t *ip = f + p->l3_off, *tcp = f + p->l4_off;
	size_t l4 = (size_t)(p->payload_off - p->l4_off) + p->payload_len;
	uint32_t s;
	if (p->l3 == BS_L3_IPV4) {
		assert_int_equal(csum(ip, 20, 0), 0xffff);
		assert_int_equal(ip[0], 0x45);
		assert_int_equal(ip[8], BS_ACT_TTL);
		s = csum(ip + 12, 8, 0);
	} else {
		assert_int_equal(ip[0] >> 4, 6);
		assert_int_equal(ip[7], BS_ACT_TTL);
		assert_int_equal((size_t)(ip[4] << 8 | ip[5]), l4);
		s = csum(ip + 8, 32, 0);
	}
	s += 6 + (uint32_t)l4;
	assert_int_equal(csum(tcp, l4, s), 0xffff);
	assert_int_equal(n, (size_t)p->payload_off + p->payload_len);
}

static void
test_frames(void **state)
{
	(void)state;
	uint8_t cf[256], out[BS_ACT_FRAME_MAX];
	for (int v6 = 0; v6 <= 1; v6++)
		for (int vl = 0; vl <= 2; vl++)
			for (int ts = 0; ts <= 1; ts++) {
				size_t n = client_frame(cf, v6, vl, ts);
				struct bs_pkt p, q;
				assert_int_equal(bs_pkt_parse(cf, n, &p),
					BS_PKT_TCP);
				struct bs_act_tmpl t;
				assert_int_equal(bs_act_tmpl_init(&t, cf, n, &p), 0);
				struct bs_act_ts tso = bs_act_ts_parse(
					cf + p.l4_off, p.payload_off - p.l4_off);
				assert_int_equal(tso.on, ts);
				if (ts) {
					assert_int_equal(tso.val, 0x1001);
					assert_int_equal(tso.ecr, 0x2002);
				}
				/* Toward the server: a RST at the segment's
				 * sequence number, as the client. */
				size_t m = bs_act_frame(&t, true,
					BS_TCP_RST | BS_TCP_ACK, p.seq, p.ack, 0,
					&tso, NULL, 0, out, sizeof(out));
				assert_true(m > 0);
				check_valid(out, m, &q);
				assert_memory_equal(out, cf, 12); /* MACs */
				assert_int_equal(q.vlan_count, vl);
				assert_memory_equal(q.src, p.src, v6 ? 16 : 4);
				assert_memory_equal(q.dst, p.dst, v6 ? 16 : 4);
				assert_int_equal(q.sport, 40000);
				assert_int_equal(q.dport, 25);
				assert_int_equal(q.seq, 0x11223344);
				assert_int_equal(q.ack, 0x55667788);
				assert_int_equal(q.tcp_flags, BS_TCP_RST | BS_TCP_ACK);
				assert_int_equal(q.payload_len, 0);
				/* Toward the client: the reply, as the server. */
				static const char rep[] = "550 5.7.1 no\r\n";
				struct bs_act_ts r = { tso.on, tso.ecr, tso.val };
				m = bs_act_frame(&t, false, BS_TCP_PSH | BS_TCP_ACK |
						BS_TCP_FIN, 0xfffffff0u, 0x11223349u,
					65535, &r, (const uint8_t *)rep,
					sizeof(rep) - 1, out, sizeof(out));
				assert_true(m > 0);
				check_valid(out, m, &q);
				assert_memory_equal(out, cf + 6, 6);
				assert_memory_equal(out + 6, cf, 6);
				assert_memory_equal(out + 12, cf + 12,
					(size_t)p.l3_off - 12); /* tags */
				assert_int_equal(q.vlan_count, vl);
				if (vl)
					assert_int_equal(q.vlan[0], 100);
				assert_memory_equal(q.src, p.dst, v6 ? 16 : 4);
				assert_memory_equal(q.dst, p.src, v6 ? 16 : 4);
				assert_int_equal(q.sport, 25);
				assert_int_equal(q.dport, 40000);
				assert_int_equal(q.seq, 0xfffffff0u);
				assert_int_equal(q.ack, 0x11223349u);
				assert_int_equal(q.win, 65535);
				assert_int_equal(q.payload_len, sizeof(rep) - 1);
				assert_memory_equal(out + q.payload_off, rep,
					sizeof(rep) - 1);
				struct bs_act_ts back = bs_act_ts_parse(
					out + q.l4_off, q.payload_off - q.l4_off);
				assert_int_equal(back.on, ts);
				if (ts) {
					assert_int_equal(back.val, 0x2002);
					assert_int_equal(back.ecr, 0x1001);
				}
				/* Too small a buffer: nothing written. */
				assert_int_equal(bs_act_frame(&t, false, 0, 0, 0, 0,
					&r, (const uint8_t *)rep, sizeof(rep) - 1,
					out, m - 1), 0);
			}
}

static void
test_ts_parse(void **state)
{
	(void)state;
	uint8_t t[60];
	memset(t, 0, sizeof(t));
	/* MSS, SACK-permitted, TS, window scale. */
	static const uint8_t opts[] = { 2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 7,
		0, 0, 0, 9, 1, 3, 3, 7 };
	memcpy(t + 20, opts, sizeof(opts));
	struct bs_act_ts ts = bs_act_ts_parse(t, 20 + sizeof(opts));
	assert_true(ts.on);
	assert_int_equal(ts.val, 7);
	assert_int_equal(ts.ecr, 9);
	/* The TS option cut by the header length: not found, no overread. */
	assert_false(bs_act_ts_parse(t, 20 + 10).on);
	/* A length of 0 or 1 ends the walk. */
	t[20] = 2, t[21] = 0;
	assert_false(bs_act_ts_parse(t, 40).on);
	t[21] = 1;
	assert_false(bs_act_ts_parse(t, 40).on);
	/* A wrong TS length is not a TS. */
	memset(t + 20, 1, 40);
	t[30] = 8, t[31] = 8;
	assert_false(bs_act_ts_parse(t, 60).on);
	/* End of options. */
	memset(t + 20, 0, 40);
	t[21] = 8, t[22] = 10;
	assert_false(bs_act_ts_parse(t, 60).on);
	/* No options. */
	assert_false(bs_act_ts_parse(t, 20).on);
}

static void
test_reply(void **state)
{
	(void)state;
	struct bs_verdict_result vr;
	char out[BS_ACT_REPLY_MAX];
	memset(&vr, 0, sizeof(vr));
	vr.verdict = BS_VERDICT_BACKSCATTER;
	vr.reasons = BS_VR_BIT(batv_missing) | BS_VR_BIT(relay_absent);
	snprintf(vr.domain, sizeof(vr.domain), "example.com");
	size_t n = bs_act_reply(&vr, 1, out, sizeof(out));
	static const char want[] = "550 5.7.1 Backscatter refused: this bounce "
		"answers no message sent from example.com (batv_missing "
		"relay_absent)\r\n421 4.7.0 Closing connection\r\n";
	assert_int_equal(n, sizeof(want) - 1);
	assert_memory_equal(out, want, n);
	/* Three owed (pipelined BDAT): three 550 lines, then the 421. */
	n = bs_act_reply(&vr, 3, out, sizeof(out));
	unsigned int lines = 0;
	for (size_t i = 0; i + 3 < n; i++)
		lines += memcmp(out + i, "550 ", 4) == 0 &&
			(i == 0 || out[i - 1] == '\n');
	assert_int_equal(lines, 3);
	/* Clamped to BS_ACT_REPLIES_MAX; 0 owed still answers once. */
	n = bs_act_reply(&vr, 200, out, sizeof(out));
	assert_true(n <= sizeof(out));
	assert_int_equal(bs_act_reply(&vr, 0, out, sizeof(out)),
		sizeof(want) - 1);
	/* Every reason: the line is cut at whole names, within its cap,
	 * still ends in ")\r\n"; a strange domain byte is replaced. */
	vr.reasons = (1ULL << BS_VR__MAX) - 1;
	vr.domain[3] = '\n';
	n = bs_act_reply(&vr, 1, out, sizeof(out));
	const char *e = memchr(out, '\n', n);
	assert_non_null(e);
	assert_true((size_t)(e - out) + 1 <= BS_ACT_LINE_MAX);
	assert_memory_equal(e - 2, ")\r", 2);
	assert_null(memchr(out, '\n', (size_t)(e - out)));
	for (size_t i = 0; i < n; i++)
		assert_true((out[i] >= 0x20 && out[i] < 0x7f) ||
			out[i] == '\r' || out[i] == '\n');
	/* Too small an output: no partial line. */
	n = bs_act_reply(&vr, 1, out, 10);
	assert_int_equal(n, 0);
}

static void
test_lat(void **state)
{
	(void)state;
	static struct bs_lat_hist h, s;
	for (uint64_t i = 1; i <= 1000; i++)
		bs_lat_add(&h, i * 1000); /* 1 us .. 1 ms */
	assert_int_equal(h.count, 1000);
	uint64_t p50 = bs_lat_quantile(&h, 0.5);
	uint64_t p99 = bs_lat_quantile(&h, 0.99);
	/* Within a bucket (19%) above the true value. */
	assert_true(p50 >= 500000 && p50 <= 500000 * 1.19 + 1);
	assert_true(p99 >= 990000 && p99 <= 1000000);
	assert_int_equal(bs_lat_quantile(&h, 1.0), 1000000);
	bs_lat_sum(&s, &h);
	bs_lat_sum(&s, &h);
	assert_int_equal(s.count, 2000);
	assert_int_equal(bs_lat_quantile(&s, 0.5), p50);
	for (unsigned int i = 8; i + 1 < 63 * 4; i++)
		assert_true(bs_lat_bucket_le(i) < bs_lat_bucket_le(i + 1));
	static struct bs_lat_hist z;
	assert_int_equal(bs_lat_quantile(&z, 0.5), 0);
	bs_lat_add(&z, 0);
	bs_lat_add(&z, UINT64_MAX);
	assert_int_equal(z.count, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frames),
		cmocka_unit_test(test_ts_parse),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_lat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
