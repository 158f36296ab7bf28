/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target of the inline action's bytes (action.h): any frame the
 * parser takes as TCP becomes a template; the RST toward the server and
 * the reply toward the client built from it (fuzzed flags, numbers,
 * window, reasons and domain of the verdict, replies owed) must parse
 * back as TCP segments of the same connection, with checksums that
 * verify (checked here independently) and the payload given; the
 * timestamp option parser runs on arbitrary option bytes.  Any mismatch
 * aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/action.h"
#include "backstop/pkt.h"
#include "backstop/verdict.h"

#define CHECK(c)                                                             \
	do {                                                                 \
		if (!(c))                                                    \
			abort();                                             \
	} while (0)

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

static void
verify(const uint8_t *f, size_t n, const struct bs_act_tmpl *t, bool to_srv,
	const uint8_t *pl, size_t plen)
{
	struct bs_pkt q;
	CHECK(bs_pkt_parse(f, n, &q) == BS_PKT_TCP);
	CHECK(q.l3 == t->l3);
	size_t alen = t->l3 == BS_L3_IPV4 ? 4 : 16;
	CHECK(memcmp(q.src, to_srv ? t->cli : t->srv, alen) == 0);
	CHECK(memcmp(q.dst, to_srv ? t->srv : t->cli, alen) == 0);
	CHECK(q.sport == (to_srv ? t->cport : t->sport));
	CHECK(q.dport == (to_srv ? t->sport : t->cport));
	CHECK(q.payload_len == plen);
	CHECK(plen == 0 || memcmp(f + q.payload_off, pl, plen) == 0);
	size_t l4 = (size_t)(q.payload_off - q.l4_off) + q.payload_len;
	uint32_t s;
	if (q.l3 == BS_L3_IPV4) {
		CHECK(csum(f + q.l3_off, 20, 0) == 0xffff);
		s = csum(f + q.l3_off + 12, 8, 0);
	} else {
		s = csum(f + q.l3_off + 8, 32, 0);
	}
	CHECK(csum(f + q.l4_off, l4, s + 6 + (uint32_t)l4) == 0xffff);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[BS_ACT_FRAME_MAX];
	static char reply[BS_ACT_REPLY_MAX];
	if (size < 96)
		return 0;
	uint8_t flags = data[0];
	uint32_t seq, ack;
	uint16_t win;
	memcpy(&seq, data + 1, 4);
	memcpy(&ack, data + 5, 4);
	memcpy(&win, data + 9, 2);
	unsigned int owed = data[11];
	struct bs_verdict_result vr;
	memset(&vr, 0, sizeof(vr));
	memcpy(&vr.reasons, data + 12, 8);
	memcpy(vr.domain, data + 20, sizeof(vr.domain) - 1);
	vr.domain[sizeof(vr.domain) - 1] = '\0';
	/* Options bytes of any content and length. */
	uint8_t th[60];
	memcpy(th, data + 20, 40);
	memcpy(th + 40, data + 60, 20);
	struct bs_act_ts any = bs_act_ts_parse(th, 20 + data[80] % 41);
	(void)any;
	const uint8_t *frame = data + 84;
	size_t flen = size - 84;

	size_t rl = bs_act_reply(&vr, owed, reply, sizeof(reply));
	CHECK(rl <= sizeof(reply));
	for (size_t i = 0; i < rl; i++)
		CHECK((reply[i] >= 0x20 && reply[i] < 0x7f) ||
			reply[i] == '\r' || reply[i] == '\n');
	CHECK(rl == 0 || (rl >= 2 && reply[rl - 1] == '\n'));

	struct bs_pkt p;
	if (bs_pkt_parse(frame, flen, &p) != BS_PKT_TCP)
		return 0;
	struct bs_act_tmpl t;
	if (bs_act_tmpl_init(&t, frame, flen, &p) != 0)
		return 0;
	struct bs_act_ts ts = bs_act_ts_parse(frame + p.l4_off,
		(size_t)(p.payload_off - p.l4_off));
	size_t n = bs_act_frame(&t, true, flags, seq, ack, win, &ts, NULL, 0,
		out, sizeof(out));
	CHECK(n > 0);
	verify(out, n, &t, true, NULL, 0);
	struct bs_act_ts r = { ts.on, ts.ecr, ts.val };
	n = bs_act_frame(&t, false, flags, seq, ack, win, &r,
		(const uint8_t *)reply, rl, out, sizeof(out));
	CHECK(n > 0);
	verify(out, n, &t, false, (const uint8_t *)reply, rl);
	struct bs_pkt q;
	bs_pkt_parse(out, n, &q);
	CHECK(q.seq == seq && q.ack == ack && q.win == win &&
		q.tcp_flags == flags);
	struct bs_act_ts back = bs_act_ts_parse(out + q.l4_off,
		(size_t)(q.payload_off - q.l4_off));
	CHECK(back.on == ts.on && (!ts.on || (back.val == ts.ecr &&
		back.ecr == ts.val)));
	/* Too small: nothing. */
	CHECK(bs_act_frame(&t, false, flags, seq, ack, win, &r,
		(const uint8_t *)reply, rl, out, n - 1) == 0);
	return 0;
}
