/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the whole engine behind the packet parser, on one
 * flow: reassembly, the SMTP engine, the transaction stage with NDR
 * detection (default rule pack) and the event ring.
 *
 * Input: a script of segments.  Each segment starts with a control byte
 * (bit 0: direction, bit 1: deliver out of order by rewinding the
 * sequence number, bit 2: FIN) and a length byte; the payload follows.
 * The harness opens the flow with a proper handshake and keeps sequence
 * numbers in step, so the fuzzer's bytes reach the SMTP parser and the
 * MIME parser rather than dying in TCP checks.  A fixed prologue of
 * server greeting and MAIL/RCPT/DATA replies makes DATA reachable.
 * Inputs of odd length run on a second stage whose session budget is
 * the smallest allowed, so that the budget's fail-open path is fuzzed.
 *
 * Oracle besides ASan/UBSan: once the flow is freed, every message begun
 * was ended or aborted (no detection in flight, no detection entry
 * left), and every out-of-order and every session byte was returned.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/pkt.h"
#include "backstop/reasm.h"
#include "backstop/rules.h"
#include "backstop/txn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bs_config cfg, cfg_tight;
static struct bs_pub *pub;
static struct bs_counters cnt;
static FILE *devnull;
/* One stage for all inputs, as on a worker; stage[1] has a tight budget. */
static struct bs_txn_stage stage[2];

static void
init(void)
{
	char err[256];
	char path[512];
	if (bs_config_defaults(&cfg) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/rules/default.rules", BS_DATA_DIR);
	cfg.smtp_event_digest = true;
	cfg_tight = cfg;
	cfg_tight.smtp_session_budget_bytes = 65536;
	/* Detection through a published set, as on workers (slots 0, 1). */
	pub = bs_pub_create(2);
	struct bs_pubcfg *pc = pub ? bs_pubcfg_build(&cfg, path, 2, err,
		sizeof(err)) : NULL;
	if (pc == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	bs_pub_set_counters(pub, 0, &cnt);
	bs_pub_set_counters(pub, 1, &cnt);
	bs_pub_publish(pub, pc);
	devnull = fopen("/dev/null", "w");
	if (bs_txn_init(&stage[0], &cfg, pub, 0, &cnt, true, 0) < 0 ||
		bs_txn_init(&stage[1], &cfg_tight, pub, 1, &cnt, true, 0) < 0)
		abort();
}

static void
seg(struct bs_txn_stage *st, struct bs_smtp_flow *f, uint32_t *seq,
	uint32_t ack, bool to_server, uint8_t flags, const uint8_t *p,
	uint32_t n, uint64_t now)
{
	struct bs_seg s = {
		.data = p, .len = n, .seq = *seq, .ack = ack, .win = 65535,
		.flags = flags, .to_server = to_server,
		.wscale = (flags & BS_TCP_SYN) ? BS_WSCALE(7) : 0,
	};
	bs_smtp_flow_input(st->smtp, f, &s, now);
	*seq += n + ((flags & (BS_TCP_SYN | BS_TCP_FIN)) ? 1 : 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		init();
		ready = 1;
	}
	struct bs_smtp_endpoints ep = { .l3 = BS_L3_IPV4, .cport = 40000,
		.sport = 25 };
	struct bs_txn_stage *tp = &stage[size & 1];
	struct bs_smtp_flow *f = bs_txn_flow_new(tp, &ep);
	if (f == NULL)
		abort();
	uint32_t cs = 1000, ss = 0xfffff000u; /* server side wraps */
	uint64_t now = 1;
	seg(tp, f, &cs, 0, true, BS_TCP_SYN, NULL, 0, now);
	seg(tp, f, &ss, cs, false, BS_TCP_SYN | BS_TCP_ACK, NULL, 0, now);
	static const char *const pro_s[] = {
		"220 mx ESMTP\r\n", "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
	};
	static const char *const pro_c[] = { "EHLO x\r\n" };
	seg(tp, f, &ss, cs, false, BS_TCP_ACK, (const uint8_t *)pro_s[0],
		(uint32_t)strlen(pro_s[0]), now);
	seg(tp, f, &cs, ss, true, BS_TCP_ACK, (const uint8_t *)pro_c[0],
		(uint32_t)strlen(pro_c[0]), now);
	seg(tp, f, &ss, cs, false, BS_TCP_ACK, (const uint8_t *)pro_s[1],
		(uint32_t)strlen(pro_s[1]), now);

	size_t i = 0;
	while (i + 2 <= size) {
		uint8_t ctl = data[i], n = data[i + 1];
		i += 2;
		if (n > size - i)
			n = (uint8_t)(size - i);
		bool to_server = !(ctl & 1);
		uint32_t *sq = to_server ? &cs : &ss;
		uint32_t ack = to_server ? ss : cs;
		uint8_t flags = BS_TCP_ACK | ((ctl & 4) ? BS_TCP_FIN : 0);
		if (ctl & 2) {
			/* Rewind: a retransmission or overlap of recent bytes. */
			uint32_t back = (uint32_t)(ctl >> 3);
			uint32_t s2 = *sq - back;
			seg(tp, f, &s2, ack, to_server, flags, data + i, n, now);
		} else {
			seg(tp, f, sq, ack, to_server, flags, data + i, n, now);
		}
		i += n;
		now += ctl & 7;
		bs_evring_drain(tp->events, devnull);
	}
	bs_txn_flow_free(tp, f);
	bs_evring_drain(tp->events, devnull);
	/* Every message begun was ended or aborted, every held byte and
	 * every session byte returned. */
	if (tp->detect_inflight != 0 || tp->det_live != 0 ||
		bs_smtp_ctx_held(tp->smtp) != 0 ||
		bs_smtp_ctx_session_bytes(tp->smtp) != 0)
		abort();
	return 0;
}
