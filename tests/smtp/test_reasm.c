/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of TCP reassembly (dataplane/smtp/reasm.c): in-order and
 * out-of-order delivery, sequence wrap, mid-stream pickup, the handshake
 * seen out of order, the overlap policy (first bytes win: conflicts
 * reported for rewriting, or dropped without room, and counted), RST
 * acceptance as Linux does it (RFC 5961), urgent data,
 * window and FIN limits, the memory caps and the unreliable cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backstop/pkt.h"
#include "backstop/reasm.h"

struct sink {
	uint8_t buf[2][4096];
	size_t len[2];
	int fin[2];
	unsigned int calls;
	void *last_pkt;
};

static void
sink_cb(void *arg, unsigned int dir, const uint8_t *p, uint32_t n, void *pkt)
{
	struct sink *s = arg;

	s->calls++;
	s->last_pkt = pkt;
	if (p == NULL) {
		s->fin[dir] = 1;
		return;
	}
	assert_true(s->len[dir] + n <= sizeof(s->buf[dir]));
	memcpy(s->buf[dir] + s->len[dir], p, n);
	s->len[dir] += n;
}

struct fx {
	struct bs_counters cnt;
	struct bs_reasm_ctx ctx;
	struct bs_reasm r;
	struct sink sink;
};

static struct fx *
fx_new(uint32_t flow_cap, uint32_t history)
{
	struct fx *x = calloc(1, sizeof(*x));

	x->ctx.ooo_global_max = 1 << 20;
	x->ctx.ooo_flow_max = flow_cap;
	x->ctx.ooo_segs_max = BS_REASM_OOO_SEGS(flow_cap);
	x->ctx.gap_timeout_ms = 1000;
	x->ctx.history = history;
	x->ctx.cnt = &x->cnt;
	bs_reasm_init(&x->r);
	return x;
}

static void
fx_free(struct fx *x)
{
	bs_reasm_release(&x->ctx, &x->r);
	assert_int_equal(x->ctx.ooo_held, 0);
	free(x);
}

static enum bs_seg_verdict
seg(struct fx *x, int to_server, uint32_t seq, uint32_t ack, uint8_t flags,
	const char *data, uint64_t now)
{
	struct bs_seg s = {
		.data = (const uint8_t *)data,
		.len = data ? (uint32_t)strlen(data) : 0,
		.seq = seq, .ack = ack, .win = 65535, .flags = flags,
		.to_server = (uint8_t)to_server,
		.pkt = (void *)(uintptr_t)seq,
	};

	return bs_reasm_input(&x->ctx, &x->r, &s, now, sink_cb, &x->sink);
}

/* Handshake with the given ISNs; client data starts at ic + 1. */
static void
hs(struct fx *x, uint32_t ic, uint32_t is)
{
	seg(x, 1, ic, 0, BS_TCP_SYN, NULL, 0);
	seg(x, 0, is, ic + 1, BS_TCP_SYN | BS_TCP_ACK, NULL, 0);
	seg(x, 1, ic + 1, is + 1, BS_TCP_ACK, NULL, 0);
}

#define A (BS_TCP_ACK | BS_TCP_PSH)

static void
test_inorder_nocopy(void **state)
{
	struct fx *x = fx_new(4096, 256);
	const char *d = "EHLO x\r\n";
	struct bs_seg s = { .data = (const uint8_t *)d, .len = 8,
		.seq = 101, .ack = 501, .win = 1000, .flags = A,
		.to_server = 1 };

	(void)state;
	hs(x, 100, 500);
	bs_reasm_input(&x->ctx, &x->r, &s, 0, sink_cb, &x->sink);
	assert_int_equal(x->sink.len[0], 8);
	assert_memory_equal(x->sink.buf[0], d, 8);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_bytes_inorder], 8);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_ooo_queued], 0);
	assert_int_equal(x->r.midstream, 0);
	fx_free(x);
}

static void
test_ooo_and_wrap(void **state)
{
	struct fx *x = fx_new(4096, 256);
	uint32_t ic = 0xfffffffa; /* data starts at 0xfffffffb: wraps */

	(void)state;
	hs(x, ic, 7);
	seg(x, 1, ic + 1 + 6, 8, A, "world", 0);
	seg(x, 1, ic + 1 + 3, 8, A, "lo ", 0);
	assert_int_equal(x->sink.len[0], 0);
	assert_int_equal(bs_reasm_held(&x->r), 8);
	seg(x, 1, ic + 1, 8, A, "hel", 0);
	assert_int_equal(x->sink.len[0], 11);
	assert_memory_equal(x->sink.buf[0], "hello world", 11);
	assert_int_equal(bs_reasm_held(&x->r), 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_ooo_queued], 2);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_bytes_ooo], 8);
	fx_free(x);
}

static void
test_retrans_same_and_conflict(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	hs(x, 1000, 2000);
	seg(x, 1, 1001, 2001, A, "MAIL FROM:<a@b>\r\n", 0);
	/* Same bytes again: a plain retransmission. */
	assert_int_equal(seg(x, 1, 1001, 2001, A, "MAIL FROM:<a@b>\r\n", 0),
		BS_SEG_PASS);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_retrans], 1);
	/* Different bytes for delivered data: evasion, dropped. */
	assert_int_equal(seg(x, 1, 1001, 2001, A, "MAIL FROM:<>\r\nXXX", 0),
		BS_SEG_DROP);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_overlap_conflict], 1);
	assert_int_equal(x->sink.len[0], 17);
	/* A keepalive with a garbage byte at nxt - 1: passed as it is. */
	{
		struct bs_seg ka = { .data = (const uint8_t *)"", .len = 1,
			.seq = 1001 + 16, .ack = 2001, .win = 65535,
			.flags = BS_TCP_ACK, .to_server = 1 };

		assert_int_equal(bs_reasm_input(&x->ctx, &x->r, &ka, 0,
					 sink_cb, &x->sink), BS_SEG_PASS);
	}
	assert_int_equal(x->cnt.v[BS_CNT_reasm_overlap_conflict], 1);
	/* Partial overlap with same old bytes plus new bytes: accepted. */
	seg(x, 1, 1001 + 15, 2001, A, "\r\nRCPT", 0);
	assert_int_equal(x->sink.len[0], 21);
	assert_memory_equal(x->sink.buf[0] + 17, "RCPT", 4);
	fx_free(x);
}

static void
test_ooo_conflict_first_wins(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	hs(x, 1000, 2000);
	seg(x, 1, 1005, 2001, A, "BBBB", 0);
	/* Overlaps the held bytes with other content: dropped. */
	assert_int_equal(seg(x, 1, 1003, 2001, A, "xxCCCC", 0), BS_SEG_DROP);
	/* Exact duplicate of held bytes: not stored twice. */
	seg(x, 1, 1005, 2001, A, "BBBB", 0);
	assert_int_equal(bs_reasm_held(&x->r), 4);
	seg(x, 1, 1001, 2001, A, "AAAA", 0);
	assert_int_equal(x->sink.len[0], 8);
	assert_memory_equal(x->sink.buf[0], "AAAABBBB", 8);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_overlap_conflict], 1);
	fx_free(x);
}

static void
test_unverified_without_history(void **state)
{
	struct fx *x = fx_new(4096, 0);

	(void)state;
	hs(x, 1000, 2000);
	seg(x, 1, 1001, 2001, A, "abc", 0);
	assert_int_equal(seg(x, 1, 1001, 2001, A, "xyz", 0), BS_SEG_PASS);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_retrans_unverified], 1);
	fx_free(x);
}

static void
test_midstream(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	seg(x, 1, 5000, 9000, A, "RCPT TO:<x@y>\r\n", 0);
	assert_int_equal(x->r.midstream, 1);
	assert_int_equal(x->sink.len[0], 15);
	/* The ack initialised the server direction. */
	seg(x, 0, 9000, 5015, A, "250 ok\r\n", 0);
	assert_int_equal(x->sink.len[1], 8);
	assert_true(x->cnt.v[BS_CNT_reasm_midstream] >= 1);
	fx_free(x);
}

static void
test_urgent_removed(void **state)
{
	struct fx *x = fx_new(4096, 256);
	struct bs_seg s = { .data = (const uint8_t *)"DATX\r\n", .len = 6,
		.seq = 101, .ack = 501, .win = 1000, .urg = 4,
		.flags = A | BS_TCP_URG, .to_server = 1 };

	(void)state;
	hs(x, 100, 500);
	/* Urgent pointer 4: byte 3 ('X') leaves the stream, like Linux. */
	bs_reasm_input(&x->ctx, &x->r, &s, 0, sink_cb, &x->sink);
	assert_int_equal(x->sink.len[0], 5);
	assert_memory_equal(x->sink.buf[0], "DAT\r\n", 5);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_urgent], 1);
	/* Urgent pointer beyond the segment: removed when it arrives. */
	s.data = (const uint8_t *)"ab";
	s.len = 2;
	s.seq = 107;
	s.urg = 4; /* byte 110 */
	bs_reasm_input(&x->ctx, &x->r, &s, 0, sink_cb, &x->sink);
	seg(x, 1, 109, 501, A, "cdef", 0);
	assert_int_equal(x->sink.len[0], 10);
	assert_memory_equal(x->sink.buf[0] + 5, "abcef", 5);
	fx_free(x);
}

static void
test_window_and_fin(void **state)
{
	struct fx *x = fx_new(4096, 256);
	struct bs_seg s = { .seq = 501, .ack = 101, .win = 10, .flags = BS_TCP_ACK,
		.to_server = 0 };

	(void)state;
	seg(x, 1, 100, 0, BS_TCP_SYN, NULL, 0);
	/* SYN-ACK without window scaling on either side. */
	{
		struct bs_seg sa = { .seq = 500, .ack = 101, .win = 10,
			.flags = BS_TCP_SYN | BS_TCP_ACK, .to_server = 0,
			.wscale = BS_WSCALE_NONE };

		x->r.dir[0].wscale = BS_WSCALE_NONE;
		bs_reasm_input(&x->ctx, &x->r, &sa, 0, sink_cb, &x->sink);
	}
	bs_reasm_input(&x->ctx, &x->r, &s, 0, sink_cb, &x->sink);
	/* Window is [101, 111): a segment at 111 is beyond it. */
	seg(x, 1, 111, 501, A, "zz", 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_out_of_window], 1);
	assert_int_equal(bs_reasm_held(&x->r), 0);
	seg(x, 1, 101, 501, A | BS_TCP_FIN, "QUIT\r\n", 0);
	assert_int_equal(x->sink.fin[0], 1);
	seg(x, 1, 107, 501, A, "more", 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_after_fin], 1);
	assert_int_equal(x->sink.len[0], 6);
	fx_free(x);
}

static void
test_caps_make_unreliable(void **state)
{
	struct fx *x = fx_new(8, 256);

	(void)state;
	hs(x, 100, 500);
	seg(x, 1, 111, 501, A, "12345", 0);
	assert_int_equal(x->r.unreliable, 0);
	seg(x, 1, 121, 501, A, "6789", 0);
	assert_int_equal(x->r.unreliable, 1);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_ooo_flow_cap], 1);
	assert_int_equal(bs_reasm_held(&x->r), 0);
	assert_int_equal(x->ctx.ooo_held, 0);
	fx_free(x);

	/* The segment count cap: many tiny held segments. */
	x = fx_new(4096, 256);
	x->ctx.ooo_segs_max = 3;
	hs(x, 100, 500);
	seg(x, 1, 111, 501, A, "a", 0);
	seg(x, 1, 113, 501, A, "b", 0);
	seg(x, 1, 115, 501, A, "c", 0);
	assert_int_equal(x->r.unreliable, 0);
	seg(x, 1, 117, 501, A, "d", 0);
	assert_int_equal(x->r.unreliable, 1);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_ooo_flow_cap], 1);
	fx_free(x);

	x = fx_new(4096, 256);
	x->ctx.ooo_global_max = 4;
	hs(x, 100, 500);
	seg(x, 1, 111, 501, A, "12345", 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_ooo_global_cap], 1);
	assert_int_equal(x->r.unreliable, 1);
	fx_free(x);
}

static void
test_gap_timeout_and_acked(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	hs(x, 100, 500);
	seg(x, 1, 105, 501, A, "late", 10);
	seg(x, 0, 501, 101, A, "250 x\r\n", 500);
	assert_int_equal(x->r.unreliable, 0);
	seg(x, 0, 508, 101, A, "250 y\r\n", 2000);
	assert_int_equal(x->r.unreliable, 1);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_gap_timeout], 1);
	fx_free(x);

	x = fx_new(4096, 256);
	hs(x, 100, 500);
	seg(x, 1, 101, 501, A, "abc", 0);
	/* The server acks 10 bytes; only 3 passed here. */
	seg(x, 0, 501, 111, BS_TCP_ACK, NULL, 0);
	assert_int_equal(x->r.unreliable, 1);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_gap_acked], 1);
	fx_free(x);

	/* A client acking server bytes never sent is not believed. */
	x = fx_new(4096, 256);
	hs(x, 100, 500);
	seg(x, 1, 101, 600, BS_TCP_ACK, NULL, 0);
	assert_int_equal(x->r.unreliable, 0);
	fx_free(x);
}

static void
test_rst(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	hs(x, 100, 500);
	seg(x, 1, 101, 501, A, "abc", 0);
	/* Blind RST far outside the window: ignored. */
	seg(x, 0, 500 + 0x40000000u, 0, BS_TCP_RST, NULL, 0);
	assert_int_equal(x->r.reset, 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_rst_ignored], 1);
	seg(x, 0, 501, 0, BS_TCP_RST, NULL, 0);
	assert_int_equal(x->r.reset, 1);
	fx_free(x);
}

static void
test_syn_data_and_zero_len(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	/* SYN carrying data (TFO): data starts at ISN + 1. */
	seg(x, 1, 100, 0, BS_TCP_SYN, "EHLO", 0);
	assert_int_equal(x->sink.len[0], 4);
	seg(x, 1, 105, 0, BS_TCP_ACK, "", 0);
	seg(x, 1, 105, 0, A, " x", 0);
	assert_int_equal(x->sink.len[0], 6);
	fx_free(x);
}

/*
 * Reordering on the wire: the client's ACK of the handshake seen before
 * the server's SYN-ACK is still a handshake in progress, not a pickup
 * in the middle of a stream.
 */
static void
test_handshake_ack_before_synack(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	seg(x, 1, 100, 0, BS_TCP_SYN, NULL, 0);
	seg(x, 1, 101, 501, BS_TCP_ACK, NULL, 0);
	seg(x, 0, 500, 101, BS_TCP_SYN | BS_TCP_ACK, NULL, 0);
	assert_int_equal(x->r.midstream, 0);
	seg(x, 0, 501, 101, A, "220 mx\r\n", 0);
	seg(x, 1, 101, 509, A, "EHLO x\r\n", 0);
	assert_int_equal(x->r.midstream, 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_midstream], 0);
	assert_int_equal(x->sink.len[1], 8);
	assert_int_equal(x->sink.len[0], 8);
	/* So does client data that overtakes the SYN-ACK. */
	fx_free(x);
	x = fx_new(4096, 256);
	seg(x, 1, 100, 0, BS_TCP_SYN, NULL, 0);
	seg(x, 1, 101, 501, A, "EHLO x\r\n", 0);
	seg(x, 0, 500, 101, BS_TCP_SYN | BS_TCP_ACK, NULL, 0);
	seg(x, 0, 501, 109, A, "250 ok\r\n", 0);
	assert_int_equal(x->r.midstream, 0);
	assert_int_equal(x->sink.len[0], 8);
	assert_int_equal(x->sink.len[1], 8);
	fx_free(x);
}

/* RST from dir with sequence number seq (and the given ack). */
static void
rst(struct fx *x, int to_server, uint32_t seq)
{
	seg(x, to_server, seq, 0, BS_TCP_RST, NULL, 0);
}

/*
 * RST acceptance as Linux's tcp_validate_incoming() (RFC 5961 3.2): only
 * a RST at exactly rcv_nxt resets; one elsewhere in the window gets a
 * challenge ACK and changes nothing; one outside it is dropped.
 */
static void
test_rst_exact_only(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	hs(x, 100, 500);
	seg(x, 1, 101, 501, A, "EHLO x\r\n", 0);
	/* In the server's window, 1 byte past rcv_nxt: challenged. */
	rst(x, 1, 110);
	assert_int_equal(x->r.reset, 0);
	rst(x, 1, 109 + 1000);
	assert_int_equal(x->r.reset, 0);
	/* Before rcv_nxt (an old RST): not accepted either. */
	rst(x, 1, 105);
	assert_int_equal(x->r.reset, 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_rst], 0);
	/* The stream goes on. */
	seg(x, 1, 109, 501, A, "MAIL", 0);
	assert_int_equal(x->sink.len[0], 12);
	/* Exactly rcv_nxt: reset. */
	rst(x, 1, 113);
	assert_int_equal(x->r.reset, 1);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_rst], 1);
	fx_free(x);

	/* After the sender's FIN was received, rcv_nxt counts the FIN:
	 * both FIN + 1 and (CLOSE_WAIT) FIN itself are accepted. */
	x = fx_new(4096, 256);
	hs(x, 100, 500);
	seg(x, 1, 101, 501, A | BS_TCP_FIN, "QUIT\r\n", 0);
	rst(x, 1, 108);
	assert_int_equal(x->r.reset, 1);
	fx_free(x);
	x = fx_new(4096, 256);
	hs(x, 100, 500);
	seg(x, 1, 101, 501, A | BS_TCP_FIN, "QUIT\r\n", 0);
	rst(x, 1, 107);
	assert_int_equal(x->r.reset, 1);
	fx_free(x);
}

/* seg() with an out block (and a fix buffer) the caller inspects. */
static enum bs_seg_verdict
seg_out(struct fx *x, int to_server, uint32_t seq, uint32_t ack,
	uint8_t flags, const char *data, struct bs_seg_out *o)
{
	struct bs_seg s = {
		.data = (const uint8_t *)data,
		.len = data ? (uint32_t)strlen(data) : 0,
		.seq = seq, .ack = ack, .win = 65535, .flags = flags,
		.to_server = (uint8_t)to_server, .out = o,
	};

	o->flags = 0;
	return bs_reasm_input(&x->ctx, &x->r, &s, 0, sink_cb, &x->sink);
}

/*
 * A retransmission that overlaps delivered bytes with other content and
 * carries new bytes after them: the new bytes are taken (a legitimate
 * sender must not stall), the overlap is reported for rewriting to the
 * bytes first seen.
 */
static void
test_partial_conflict_rewritten(void **state)
{
	struct fx *x = fx_new(4096, 256);
	uint8_t fix[64];
	struct bs_seg_out o = { .fix = fix, .fix_cap = sizeof(fix) };

	(void)state;
	hs(x, 1000, 2000);
	seg(x, 1, 1001, 2001, A, "MAIL FROM:<a@b>\r\n", 0);
	/* Old bytes differ ("<>" for "<a@b>"), then "RCPT" is new. */
	assert_int_equal(seg_out(x, 1, 1001, 2001, A,
				 "MAIL FROM:<>\r\n\r\n\rRCPT", &o),
		BS_SEG_REWRITE);
	assert_true(o.flags & BS_SEGO_REWRITE);
	assert_int_equal(o.fix_lo, 11);
	assert_int_equal(o.fix_hi, 17);
	assert_memory_equal(fix, "MAIL FROM:<a@b>\r\nRCPT", 21);
	assert_int_equal(x->sink.len[0], 21);
	assert_memory_equal(x->sink.buf[0], "MAIL FROM:<a@b>\r\nRCPT", 21);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_overlap_conflict], 1);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_rewritten], 1);
	/* Without a fix buffer: dropped as before, and nothing taken. */
	assert_int_equal(seg(x, 1, 1001 + 17, 2001, A, "XXXX TO", 0),
		BS_SEG_DROP);
	assert_int_equal(x->sink.len[0], 21);
	/* A fix buffer shorter than the segment: dropped too. */
	o.fix_cap = 4;
	assert_int_equal(seg_out(x, 1, 1001 + 17, 2001, A, "XXXX TO", &o),
		BS_SEG_DROP);
	assert_int_equal(o.flags, 0);
	assert_int_equal(x->sink.len[0], 21);
	fx_free(x);
}

/* The same against held (out-of-order) bytes: the held ones win, the
 * bytes around them are taken. */
static void
test_held_conflict_rewritten(void **state)
{
	struct fx *x = fx_new(4096, 256);
	uint8_t fix[64];
	struct bs_seg_out o = { .fix = fix, .fix_cap = sizeof(fix) };

	(void)state;
	hs(x, 1000, 2000);
	seg(x, 1, 1005, 2001, A, "BBBB", 0);
	assert_int_equal(seg_out(x, 1, 1001, 2001, A, "AAAAxxCCDDDD", &o),
		BS_SEG_REWRITE);
	assert_int_equal(o.fix_lo, 4);
	assert_int_equal(o.fix_hi, 8);
	assert_memory_equal(fix, "AAAABBBBDDDD", 12);
	assert_int_equal(x->sink.len[0], 12);
	assert_memory_equal(x->sink.buf[0], "AAAABBBBDDDD", 12);
	assert_int_equal(bs_reasm_held(&x->r), 0);
	fx_free(x);
}

/* Bytes older than the history ring cannot be compared or rewritten:
 * they pass as they are (counted unverified), new bytes are taken. */
static void
test_conflict_older_than_history(void **state)
{
	struct fx *x = fx_new(4096, 8);
	uint8_t fix[64];
	struct bs_seg_out o = { .fix = fix, .fix_cap = sizeof(fix) };

	(void)state;
	hs(x, 1000, 2000);
	seg(x, 1, 1001, 2001, A, "0123456789abcdef", 0);
	/* The ring holds the last 8 bytes: "89abcdef". */
	assert_int_equal(seg_out(x, 1, 1001, 2001, A, "XXXX456789abcdefGH", &o),
		BS_SEG_PASS);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_retrans_unverified], 1);
	assert_int_equal(x->sink.len[0], 18);
	/* Now "abcdefGH": in the ring rewritten, before it left alone. */
	assert_int_equal(seg_out(x, 1, 1001 + 6, 2001, A, "XXXXXXXXXXxxIJ", &o),
		BS_SEG_REWRITE);
	assert_int_equal(o.fix_lo, 4);
	assert_int_equal(o.fix_hi, 12);
	assert_memory_equal(fix, "XXXXabcdefGHIJ", 14);
	assert_int_equal(x->sink.len[0], 20);
	assert_memory_equal(x->sink.buf[0] + 18, "IJ", 2);
	fx_free(x);
}

/*
 * A history ring is kept only while the receiver may lack its bytes:
 * once they are all acknowledged it goes back to the pool, and a copy of
 * acknowledged bytes (which the receiver drops as a duplicate) is neither
 * compared nor counted unverified.  Bytes not yet acknowledged are still
 * compared and a conflict among them is still caught.
 */
static void
test_history_released_when_acked(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	bs_blkpool_init(&x->ctx.hist_pool, 256, 4);
	hs(x, 1000, 2000);
	seg(x, 1, 1001, 2001, A, "MAIL FROM:<a@b>\r\n", 0);
	assert_non_null(x->r.dir[BS_REASM_C2S].hist);
	/* The server acknowledges all 17 bytes: the ring goes back. */
	seg(x, 0, 2001, 1018, BS_TCP_ACK, NULL, 0);
	assert_null(x->r.dir[BS_REASM_C2S].hist);
	assert_int_equal(x->ctx.hist_pool.n, 1);
	/* Other bytes for the acknowledged ones: the server drops them,
	 * so they pass, unchanged and uncounted as a conflict. */
	assert_int_equal(seg(x, 1, 1001, 2001, A, "MAIL FROM:<>\r\nXXX", 0),
		BS_SEG_PASS);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_overlap_conflict], 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_retrans_unverified], 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_retrans], 1);
	/* New bytes take the ring from the pool again. */
	seg(x, 1, 1018, 2001, A, "RCPT TO:<c@d>\r\n", 0);
	assert_non_null(x->r.dir[BS_REASM_C2S].hist);
	assert_int_equal(x->ctx.hist_pool.n, 0);
	/* Acknowledged up to "RCPT": its other bytes are still compared. */
	seg(x, 0, 2001, 1022, BS_TCP_ACK, NULL, 0);
	assert_non_null(x->r.dir[BS_REASM_C2S].hist);
	assert_int_equal(seg(x, 1, 1018, 2001, A, "XXXX TO:<c@d>\r\n", 0),
		BS_SEG_PASS);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_overlap_conflict], 0);
	assert_int_equal(seg(x, 1, 1018, 2001, A, "RCPT TO:<e@f>\r\n", 0),
		BS_SEG_DROP);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_overlap_conflict], 1);
	assert_int_equal(x->sink.len[0], 32);
	assert_memory_equal(x->sink.buf[0] + 17, "RCPT TO:<c@d>\r\n", 15);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_retrans_unverified], 0);
	/* The FIN: nothing after it is compared, the ring goes back. */
	seg(x, 1, 1033, 2001, BS_TCP_ACK | BS_TCP_FIN, NULL, 0);
	assert_null(x->r.dir[BS_REASM_C2S].hist);
	assert_int_equal(x->ctx.hist_pool.n, 1);
	bs_reasm_release(&x->ctx, &x->r);
	bs_reasm_ctx_drain(&x->ctx);
	assert_int_equal(x->ctx.hist_pool.n, 0);
	fx_free(x);
}

/* The out block says what the table may believe: a RST accepted, a FIN
 * reached; and a RST at the right edge of held data counts with SACK. */
static void
test_out_flags_and_sack(void **state)
{
	struct fx *x = fx_new(4096, 256);
	struct bs_seg_out o = { 0 };

	(void)state;
	hs(x, 100, 500);
	seg_out(x, 1, 101, 501, A | BS_TCP_FIN, "QUIT\r\n", &o);
	assert_int_equal(o.flags, BS_SEGO_FIN);
	seg_out(x, 1, 200, 501, BS_TCP_RST, NULL, &o);
	assert_int_equal(o.flags, 0);
	seg_out(x, 0, 501, 108, BS_TCP_RST, NULL, &o);
	assert_int_equal(o.flags, BS_SEGO_RST);
	fx_free(x);

	/* SACK on both SYNs: a RST at the end of the held data resets. */
	for (int sack = 0; sack < 2; sack++) {
		struct bs_seg sy = { .seq = 100, .flags = BS_TCP_SYN,
			.to_server = 1, .sack = (uint8_t)sack, .win = 65535 };
		struct bs_seg sa = { .seq = 500, .ack = 101,
			.flags = BS_TCP_SYN | BS_TCP_ACK, .to_server = 0,
			.sack = 1, .win = 65535 };

		x = fx_new(4096, 256);
		bs_reasm_input(&x->ctx, &x->r, &sy, 0, sink_cb, &x->sink);
		bs_reasm_input(&x->ctx, &x->r, &sa, 0, sink_cb, &x->sink);
		seg(x, 1, 101, 501, BS_TCP_ACK, NULL, 0);
		seg(x, 1, 105, 501, A, "late", 0);
		rst(x, 1, 109);
		assert_int_equal(x->r.reset, sack);
		fx_free(x);
	}
}

/*
 * A FIN counts where Linux's receiver takes it: when the stream reaches
 * it.  One ahead of a hole waits; data that passes it drops it (the real
 * FIN later still counts); one beyond the window is discarded; a held
 * segment's FIN that is reached purges what is held after it.
 */
static void
test_fin_as_linux(void **state)
{
	struct fx *x = fx_new(4096, 256);

	(void)state;
	hs(x, 100, 500);
	/* A bare FIN ahead of the stream, then data running past it. */
	seg(x, 1, 111, 501, BS_TCP_ACK | BS_TCP_FIN, NULL, 0);
	assert_int_equal(x->sink.fin[0], 0);
	seg(x, 1, 101, 501, A, "MAIL FROM:<> SIZE=1\r\n", 0);
	assert_int_equal(x->sink.fin[0], 0);
	assert_int_equal(x->sink.len[0], 21);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_after_fin], 0);
	/* Beyond the window (65535 from the server's SYN-ACK): ignored. */
	seg(x, 1, 122 + 70000, 501, BS_TCP_ACK | BS_TCP_FIN, NULL, 0);
	assert_int_equal(x->cnt.v[BS_CNT_reasm_out_of_window], 1);
	seg(x, 1, 122, 501, A, "QUIT\r\n", 0);
	assert_int_equal(x->sink.len[0], 27);
	/* The real FIN, at the end of the stream. */
	seg(x, 1, 128, 501, BS_TCP_ACK | BS_TCP_FIN, NULL, 0);
	assert_int_equal(x->sink.fin[0], 1);
	fx_free(x);

	/* Held data with FIN, reached: later bytes held beyond are not
	 * part of the stream. */
	x = fx_new(4096, 256);
	hs(x, 100, 500);
	seg(x, 1, 104, 501, A | BS_TCP_FIN, "def", 0);
	seg(x, 1, 105, 501, A, "efXYZ", 0);
	seg(x, 1, 101, 501, A, "abc", 0);
	assert_int_equal(x->sink.fin[0], 1);
	assert_int_equal(x->sink.len[0], 6);
	assert_memory_equal(x->sink.buf[0], "abcdef", 6);
	assert_int_equal(bs_reasm_held(&x->r), 0);
	fx_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inorder_nocopy),
		cmocka_unit_test(test_ooo_and_wrap),
		cmocka_unit_test(test_retrans_same_and_conflict),
		cmocka_unit_test(test_ooo_conflict_first_wins),
		cmocka_unit_test(test_unverified_without_history),
		cmocka_unit_test(test_midstream),
		cmocka_unit_test(test_urgent_removed),
		cmocka_unit_test(test_window_and_fin),
		cmocka_unit_test(test_caps_make_unreliable),
		cmocka_unit_test(test_gap_timeout_and_acked),
		cmocka_unit_test(test_rst),
		cmocka_unit_test(test_syn_data_and_zero_len),
		cmocka_unit_test(test_handshake_ack_before_synack),
		cmocka_unit_test(test_rst_exact_only),
		cmocka_unit_test(test_partial_conflict_rewritten),
		cmocka_unit_test(test_held_conflict_rewritten),
		cmocka_unit_test(test_conflict_older_than_history),
		cmocka_unit_test(test_history_released_when_acked),
		cmocka_unit_test(test_out_flags_and_sack),
		cmocka_unit_test(test_fin_as_linux),
	};

	return cmocka_run_group_tests_name("reasm", tests, NULL, NULL);
}
