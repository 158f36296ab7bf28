/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Coverage on the wire (coverage.h): sessions and uninspected sessions
 * per protected server, by reason; tables of several workers summed by
 * address; a full table sends further servers to one overflow row; and
 * the reason the SMTP engine gives for a flow that started TLS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backstop/coverage.h"
#include "backstop/pkt.h"
#include "backstop/smtp.h"

static const uint8_t a1[16] = { 198, 51, 100, 2 };
static const uint8_t a2[16] = { 198, 51, 100, 3 };
static const uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };

static void
test_count_and_sum(void **state)
{
	(void)state;
	static struct bs_cov w0, w1, sum;
	memset(&w0, 0, sizeof(w0));
	memset(&w1, 0, sizeof(w1));
	bs_cov_count(&w0, BS_L3_IPV4, a1, -1);
	bs_cov_count(&w0, BS_L3_IPV4, a1, BS_COV_STARTTLS);
	bs_cov_count(&w0, BS_L3_IPV6, a6, BS_COV_MIDSTREAM);
	bs_cov_count(&w1, BS_L3_IPV4, a2, -1);
	bs_cov_count(&w1, BS_L3_IPV4, a1, BS_COV_STARTTLS);
	bs_cov_count(&w1, BS_L3_IPV4, a1, BS_COV_UNFOLLOWED);
	const struct bs_cov *t[2] = { &w0, &w1 };
	bs_cov_sum(&sum, t, 2);
	assert_int_equal(sum.n, 3);
	assert_memory_equal(sum.row[0].addr, a1, 4);
	assert_int_equal(sum.row[0].sessions, 4);
	assert_int_equal(sum.row[0].uninspected[BS_COV_STARTTLS], 2);
	assert_int_equal(bs_cov_uninspected(&sum.row[0]), 3);
	assert_int_equal(sum.row[1].l3, BS_L3_IPV6);
	assert_int_equal(sum.row[2].sessions, 1);
	assert_int_equal(bs_cov_uninspected(&sum.row[2]), 0);

	char buf[4096] = "";
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	bs_cov_print(f, &sum);
	fclose(f);
	assert_non_null(strstr(buf, "coverage server 198.51.100.2 sessions 4 "
		"uninspected 3 share 75.0% starttls 2 midstream 0 desync 0 "
		"caps 0 reasm 0 unfollowed 1\n"));
	assert_non_null(strstr(buf, "coverage server 2001:db8::2 sessions 1 "));
	assert_null(strstr(buf, "other_servers"));
}

static void
test_bounded(void **state)
{
	(void)state;
	static struct bs_cov c;
	memset(&c, 0, sizeof(c));
	uint8_t a[16] = { 10 };
	for (unsigned int i = 0; i < BS_COV_SERVERS + 10; i++) {
		a[2] = (uint8_t)(i >> 8);
		a[3] = (uint8_t)i;
		bs_cov_count(&c, BS_L3_IPV4, a, BS_COV_STARTTLS);
	}
	assert_int_equal(c.n, BS_COV_SERVERS);
	assert_int_equal(c.other.sessions, 10);
	assert_int_equal(c.other.uninspected[BS_COV_STARTTLS], 10);
	/* A known server still has its own row when the table is full. */
	a[2] = 0;
	a[3] = 5;
	bs_cov_count(&c, BS_L3_IPV4, a, -1);
	assert_int_equal(c.row[5].sessions, 2);
	assert_int_equal(c.other.sessions, 10);
}

/* The engine names STARTTLS as the reason a flow went uninspected. */
static void
test_engine_reason(void **state)
{
	(void)state;
	struct bs_smtp_params sp;
	bs_smtp_params_default(&sp);
	static struct bs_counters cnt;
	static const struct bs_smtp_events ev;
	struct bs_smtp_ctx *ctx = bs_smtp_ctx_create(&sp, &ev, NULL, &cnt);
	assert_non_null(ctx);
	struct bs_smtp_endpoints ep = { .l3 = BS_L3_IPV4, .cport = 40000,
		.sport = 25, .server_inside = BS_SIDE_INSIDE };
	struct bs_smtp_flow *f = bs_smtp_flow_new(ctx, &ep);
	assert_non_null(f);
	uint32_t cs = 1000, ss = 5000;
	struct bs_seg syn = { .seq = cs, .flags = 0x02, .to_server = 1,
		.win = 65535 };
	struct bs_seg synack = { .seq = ss, .ack = cs + 1, .flags = 0x12,
		.to_server = 0, .win = 65535 };
	bs_smtp_flow_input(ctx, f, &syn, 1);
	bs_smtp_flow_input(ctx, f, &synack, 1);
	cs++;
	ss++;
	const char *srv[] = { "220 mx ESMTP\r\n",
		"250-mx\r\n250 STARTTLS\r\n", "220 2.0.0 Ready to start TLS\r\n" };
	const char *cli[] = { "EHLO c\r\n", "STARTTLS\r\n" };
	for (int i = 0; i < 3; i++) {
		struct bs_seg s = { .data = (const uint8_t *)srv[i],
			.len = (uint32_t)strlen(srv[i]), .seq = ss, .ack = cs,
			.flags = 0x18, .to_server = 0, .win = 65535 };
		assert_int_equal(bs_smtp_flow_why(f), -1);
		bs_smtp_flow_input(ctx, f, &s, 2);
		ss += s.len;
		if (i < 2) {
			struct bs_seg k = { .data = (const uint8_t *)cli[i],
				.len = (uint32_t)strlen(cli[i]), .seq = cs,
				.ack = ss, .flags = 0x18, .to_server = 1,
				.win = 65535 };
			bs_smtp_flow_input(ctx, f, &k, 2);
			cs += k.len;
		}
	}
	assert_false(bs_smtp_flow_inspected(f));
	assert_int_equal(bs_smtp_flow_why(f), BS_COV_STARTTLS);
	bs_smtp_flow_free(ctx, f, 3);
	bs_smtp_ctx_free(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_count_and_sum),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_engine_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
