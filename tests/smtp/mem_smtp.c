/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Memory of an established SMTP flow between two transactions, as the
 * worker holds it: the flow table entry plus what the engine keeps on
 * the heap (measured with mallinfo2(), so allocator overhead counts).
 *
 * FLOWS sessions are driven through reassembly and the SMTP engine the
 * way an MTA runs one: handshake, greeting, EHLO and its multi-line reply
 * (cut across two segments, as a long reply is), a pipelined envelope,
 * a message of a few segments, its "250 queued", and the client's ACK of
 * that reply.  There every flow stops: the message is accepted and the
 * next MAIL (or QUIT) not yet sent, which is where a long-lived session
 * spends its time.  A second figure is taken in the middle of a message
 * (DATA under way) for comparison.  Prints "name: value" lines for
 * scripts/bench.sh.
 *
 * Usage: mem_smtp [flows]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/flow.h"
#include "backstop/pkt.h"
#include "backstop/smtp.h"

struct sess {
	struct bs_smtp_flow *f;
	uint32_t nxt[2]; /* next seq per direction: 0 client, 1 server */
};

static void
seg(struct bs_smtp_ctx *ctx, struct sess *s, int dir, const char *data,
	size_t len, uint8_t flags)
{
	struct bs_seg sg;

	memset(&sg, 0, sizeof(sg));
	sg.data = (const uint8_t *)data;
	sg.len = (uint32_t)len;
	sg.seq = s->nxt[dir];
	sg.ack = s->nxt[!dir];
	sg.win = 65535;
	sg.flags = flags;
	sg.to_server = dir == 0;
	sg.wscale = (flags & BS_TCP_SYN) ? BS_WSCALE(7) : 0;
	sg.sack = (flags & BS_TCP_SYN) != 0;
	bs_smtp_flow_input(ctx, s->f, &sg, 0);
	s->nxt[dir] += (uint32_t)len + ((flags & BS_TCP_SYN) ? 1 : 0);
}

static void
say(struct bs_smtp_ctx *ctx, struct sess *s, int dir, const char *str)
{
	seg(ctx, s, dir, str, strlen(str), BS_TCP_ACK | BS_TCP_PSH);
}

/* The message: headers and body lines, about 3 KB, in 1460-byte
 * segments. */
static void
message(struct bs_smtp_ctx *ctx, struct sess *s, int finish)
{
	static char msg[4096];
	size_t n = 0;

	if (msg[0] == '\0') {
		n += (size_t)snprintf(msg + n, sizeof(msg) - n,
			"From: alice@example.org\r\nTo: bob@example.net\r\n"
			"Subject: report\r\nMessage-ID: <1@example.org>\r\n"
			"\r\n");
		while (n < 3000)
			n += (size_t)snprintf(msg + n, sizeof(msg) - n,
				"The quarterly figures are attached below, "
				"line %zu.\r\n", n);
	}
	n = strlen(msg);
	for (size_t off = 0; off < n; off += 1460) {
		size_t k = n - off < 1460 ? n - off : 1460;

		seg(ctx, s, 0, msg + off, k, BS_TCP_ACK | BS_TCP_PSH);
		if (!finish && off + k >= 1460)
			return; /* stop inside the message */
	}
	say(ctx, s, 0, ".\r\n");
}

static void
session(struct bs_smtp_ctx *ctx, struct sess *s, int finish)
{
	seg(ctx, s, 0, NULL, 0, BS_TCP_SYN);
	s->nxt[1] = 7000000 + s->nxt[0];
	seg(ctx, s, 1, NULL, 0, BS_TCP_SYN | BS_TCP_ACK);
	seg(ctx, s, 0, NULL, 0, BS_TCP_ACK);
	say(ctx, s, 1, "220 mx.example.net ESMTP Postfix\r\n");
	say(ctx, s, 0, "EHLO mail.example.org\r\n");
	say(ctx, s, 1, "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 5");
	say(ctx, s, 1, "2428800\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME"
		"\r\n250 DSN\r\n");
	say(ctx, s, 0, "MAIL FROM:<alice@example.org> SIZE=3000\r\n"
		"RCPT TO:<bob@example.net>\r\nDATA\r\n");
	say(ctx, s, 1, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with "
		"<CR><LF>.<CR><LF>\r\n");
	message(ctx, s, finish);
	if (!finish)
		return;
	say(ctx, s, 1, "250 2.0.0 Ok: queued as 4F2A81C0E3\r\n");
	seg(ctx, s, 0, NULL, 0, BS_TCP_ACK); /* the client's ACK of it */
}

static size_t
heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static int
measure(unsigned int n, int finish, double *heap, double *charged)
{
	struct bs_counters cnt;
	struct bs_smtp_params p;
	struct bs_smtp_ctx *ctx;
	struct sess *s = calloc(n, sizeof(*s));
	size_t before;

	if (s == NULL)
		return -1;
	memset(&cnt, 0, sizeof(cnt));
	bs_smtp_params_default(&p);
	ctx = bs_smtp_ctx_create(&p, NULL, NULL, &cnt);
	if (ctx == NULL)
		return -1;
	before = heap_used();
	for (unsigned int i = 0; i < n; i++) {
		struct bs_smtp_endpoints ep = { .l3 = BS_L3_IPV4,
			.cport = (uint16_t)(1024 + i), .sport = 25 };

		s[i].f = bs_smtp_flow_new(ctx, &ep);
		s[i].nxt[0] = 1000u + i * 77u;
		if (s[i].f == NULL)
			return -1;
		session(ctx, &s[i], finish);
		if (!bs_smtp_flow_inspected(s[i].f)) {
			fprintf(stderr, "mem_smtp: flow %u not followed\n", i);
			return -1;
		}
	}
	*heap = (double)(heap_used() - before) / n;
	*charged = (double)bs_smtp_ctx_session_bytes(ctx) / n;
	for (unsigned int i = 0; i < n; i++)
		bs_smtp_flow_free(ctx, s[i].f, 0);
	bs_smtp_ctx_free(ctx);
	free(s);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned int n = argc > 1 ? (unsigned int)atoi(argv[1]) : 2000;
	double idle_heap, idle_charged, mid_heap, mid_charged;
	/* Per entry of a full default table (65536 entries). */
	double entry = (double)bs_flow_table_mem(65536) / 65536;

	if (n == 0 || measure(n, 1, &idle_heap, &idle_charged) < 0 ||
		measure(n, 0, &mid_heap, &mid_charged) < 0)
		return 1;
	printf("mem_flow_table_entry_bytes: %.0f\n", entry);
	printf("mem_engine_heap_per_idle_flow_bytes: %.0f\n", idle_heap);
	printf("mem_engine_charged_per_idle_flow_bytes: %.0f\n", idle_charged);
	printf("mem_per_smtp_flow_between_txn_bytes: %.0f\n",
		entry + idle_heap);
	printf("mem_engine_heap_per_flow_in_data_bytes: %.0f\n", mid_heap);
	return 0;
}
