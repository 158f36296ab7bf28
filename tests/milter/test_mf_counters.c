/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit test of backstop-milter's counter blocks (milter.h): MTA threads
 * judge messages, one connection after another, while a reader sums the
 * blocks as the control socket and /metrics do.  Every read of a counter
 * is never below the previous read, messages in flight stay within the
 * slots, the final sums are exactly the messages sent, and the blocks
 * number the connections open at once (given back and reused with their
 * values), not the connections made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "backstop/milter.h"

#define WRITERS 4
#define MESSAGES 150 /* per writer, one connection each */

static struct bs_config cfg;
static struct bs_ruleset *rs;
static struct bs_verdict_policy *pol;
static struct bs_mf *core;
static volatile int writers_done;

static const char yaml[] = "protected_domains: [example.com]\n"
			   "relays: [out.example.com]\n"
			   "milter: {max_messages: 2}\n";

/* A DSN for mail alice@example.com never sent: refused. */
static const char *const fields[][2] = {
	{ "From", " Mail Delivery System <MAILER-DAEMON@remote.example.org>" },
	{ "To", " alice@example.com" },
	{ "Subject", " Undelivered Mail Returned to Sender" },
	{ "Content-Type", " multipart/report; report-type=delivery-status;\n"
			  "\tboundary=\"XX\"" },
};
static const char body[] =
	"--XX\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
	"\r\n--XX\r\nContent-Type: message/delivery-status\r\n\r\n"
	"Reporting-MTA: dns; remote.example.org\r\n\r\n"
	"Final-Recipient: rfc822; bob@remote.example.org\r\n"
	"Action: failed\r\nStatus: 5.1.1\r\n\r\n"
	"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
	"Received: from spam.example.net (spam.example.net [203.0.113.7])\r\n"
	"\tby mx.remote.example.org (Postfix) with ESMTP id 1234\r\n"
	"From: alice@example.com\r\nTo: bob@remote.example.org\r\n"
	"Message-ID: <a1@example.com>\r\nSubject: hi\r\n\r\nhello\r\n"
	"--XX--\r\n";

static void *
writer(void *arg)
{
	int *refused = arg;
	for (int i = 0; i < MESSAGES; i++) {
		struct bs_mf_txn *t = bs_mf_txn_new(core);
		if (t == NULL)
			abort(); /* cmocka's asserts are not for threads */
		bs_mf_connection(t);
		bs_mf_txn_mail(t, "<>", false);
		bs_mf_txn_rcpt(t, "<alice@example.com>");
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			bs_mf_txn_header(t, fields[f][0], strlen(fields[f][0]),
				fields[f][1], strlen(fields[f][1]), true);
		bs_mf_txn_eoh(t);
		bs_mf_txn_body(t, (const uint8_t *)body, sizeof(body) - 1);
		struct bs_mf_answer a;
		enum bs_mf_act act = bs_mf_txn_eom(t, &a);
		/* With 2 slots and 4 writers some are accepted unjudged
		 * (milter_overload); the others refused. */
		if (act == BS_MF_REJECT)
			(*refused)++;
		bs_mf_txn_free(t);
	}
	return NULL;
}

struct reader_res {
	unsigned long reads, down, inflight_bad;
};

static void *
reader(void *arg)
{
	struct reader_res *r = arg;
	static struct bs_counters last, now;
	memset(&last, 0, sizeof(last));
	while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE)) {
		bs_mf_counters(core, &now);
		r->reads++;
		for (unsigned int k = 0; k < BS_CNT__MAX; k++)
			if (bs_counter_desc[k].kind == BS_CNT_KIND_COUNTER &&
					now.v[k] < last.v[k])
				r->down++;
		if (now.v[BS_CNT_milter_in_flight] > 2)
			r->inflight_bad++;
		last = now;
	}
	return NULL;
}

static void
test_concurrent_blocks(void **state)
{
	(void)state;
	pthread_t w[WRITERS], rd;
	int refused[WRITERS] = { 0 };
	struct reader_res rr = { 0 };
	assert_int_equal(pthread_create(&rd, NULL, reader, &rr), 0);
	for (int i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&w[i], NULL, writer,
			&refused[i]), 0);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	__atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
	pthread_join(rd, NULL);

	struct bs_counters c;
	bs_mf_counters(core, &c);
	int nref = 0;
	for (int i = 0; i < WRITERS; i++)
		nref += refused[i];
	const uint64_t n = WRITERS * MESSAGES;
	assert_true(rr.reads > 0);
	assert_int_equal(rr.down, 0);
	assert_int_equal(rr.inflight_bad, 0);
	assert_int_equal(c.v[BS_CNT_milter_connections], n);
	assert_int_equal(c.v[BS_CNT_milter_messages], n);
	assert_int_equal(c.v[BS_CNT_milter_refused], nref);
	assert_int_equal(c.v[BS_CNT_milter_judged] +
		c.v[BS_CNT_milter_overload], n);
	assert_int_equal(c.v[BS_CNT_milter_judged], nref);
	/* The slots' rows (the verdict's) and the connections' agree. */
	assert_int_equal(c.v[BS_CNT_verdict_backscatter], nref);
	assert_int_equal(c.v[BS_CNT_milter_in_flight], 0);
	assert_true(nref > 0);
	/* One connection open per writer at a time: blocks are reused. */
	assert_true(bs_mf_counter_blocks(core) >= 1);
	assert_true(bs_mf_counter_blocks(core) <= WRITERS);
}

/* Counts outside any connection land in the spill block, summed too. */
static void
test_spill(void **state)
{
	(void)state;
	struct bs_counters a, b;
	bs_mf_counters(core, &a);
	bs_mf_inc(core, BS_CNT_milter_nomem);
	bs_mf_counters(core, &b);
	assert_int_equal(b.v[BS_CNT_milter_nomem],
		a.v[BS_CNT_milter_nomem] + 1);
}

static int
setup(void **state)
{
	char err[512];
	(void)state;
	if (bs_config_defaults(&cfg) < 0 ||
			bs_config_load_mem(&cfg, "test", (const uint8_t *)yaml,
				sizeof(yaml) - 1, err, sizeof(err)) < 0)
		return -1;
	rs = bs_ruleset_load(BS_DATA_DIR "/rules/default.rules", err,
		sizeof(err));
	pol = bs_verdict_policy_build(&cfg, err, sizeof(err));
	if (rs == NULL || pol == NULL)
		return -1;
	struct bs_mf_params p = {
		.cfg = &cfg, .rules = rs, .pol = pol, .role = BS_MF_INBOUND,
	};
	core = bs_mf_create(&p, err, sizeof(err));
	return core != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	bs_mf_free(core);
	bs_verdict_policy_free(pol);
	bs_ruleset_free(rs);
	bs_config_free(&cfg);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_blocks),
		cmocka_unit_test(test_spill),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
