/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the published configuration (pubcfg.h): a build compiles
 * rules and allocates per-worker scratch or says why not; publication
 * numbers generations; a retired set lives exactly as long as a message
 * pins it; and, under a reader thread that scans messages while sets are
 * published back to back, every message finishes on the set it started
 * on and every retired set is freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>
#include <urcu-qsbr.h>

#include "backstop/pubcfg.h"

/* Two rule files whose matches tell them apart: A's ids are 100s, B's
 * 200s; both match the same text. */
static const char RULES_A[] =
	"100 dsn body i /delivery has failed/ A one\n"
	"101 dsn body i /undeliverable/ A two\n";
static const char RULES_B[] =
	"200 dsn body i /delivery has failed/ B one\n";
static const char MSG[] =
	"From: MAILER-DAEMON@example.org\r\n"
	"Subject: Undeliverable\r\n\r\n"
	"Your message could not be delivered: delivery has failed.\r\n"
	"undeliverable\r\n";

static char path_a[64], path_b[64], path_bad[64];

static void
write_file(char *path, size_t len, const char *tag, const char *text)
{
	snprintf(path, len, "test_pubcfg_%d_%s.rules", (int)getpid(), tag);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup(void **state)
{
	(void)state;
	write_file(path_a, sizeof(path_a), "a", RULES_A);
	write_file(path_b, sizeof(path_b), "b", RULES_B);
	write_file(path_bad, sizeof(path_bad), "bad",
		"100 dsn body i /ok/ fine\n301 dsn body i /(unclosed/ bad\n");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path_a);
	unlink(path_b);
	unlink(path_bad);
	return 0;
}

static struct bs_pubcfg *
build(const char *path, unsigned int nw)
{
	struct bs_config c;
	char err[256];
	assert_int_equal(bs_config_defaults(&c), 0);
	struct bs_pubcfg *pc = bs_pubcfg_build(&c, path, nw, err, sizeof(err));
	bs_config_free(&c);
	if (pc == NULL)
		fail_msg("build %s: %s", path, err);
	return pc;
}

/* Scan MSG on worker w of pc; returns the first matched rule id. */
static uint32_t
scan_msg(struct bs_pubcfg *pc, unsigned int w, size_t cut)
{
	struct bs_detect_result r;
	struct bs_msg *m = bs_msg_begin(pc->detect[w], "", NULL, 0);
	assert_non_null(m);
	bs_msg_feed(m, (const uint8_t *)MSG, cut);
	bs_msg_feed(m, (const uint8_t *)MSG + cut, sizeof(MSG) - 1 - cut);
	bs_msg_end(m, &r);
	return r.n_rule_ids > 0 ? r.rule_ids[0] : 0;
}

static void
test_build(void **state)
{
	(void)state;
	struct bs_config c;
	char err[256];
	bs_config_defaults(&c);

	struct bs_pubcfg *pc = bs_pubcfg_build(&c, path_a, 3, err,
		sizeof(err));
	assert_non_null(pc);
	assert_non_null(pc->rules);
	assert_int_equal(bs_ruleset_count(pc->rules), 2);
	for (unsigned int w = 0; w < 3; w++)
		assert_non_null(pc->detect[w]);
	assert_null(pc->detect[3]);
	/* The settings are a copy: the caller's strings can go. */
	assert_ptr_not_equal(pc->cfg.detect_rules_file, c.detect_rules_file);
	assert_string_equal(pc->cfg.detect_rules_file, c.detect_rules_file);
	assert_int_equal(scan_msg(pc, 2, 10), 100);
	bs_pubcfg_free(pc);

	/* A compile error names the file, the line and the rule. */
	pc = bs_pubcfg_build(&c, path_bad, 1, err, sizeof(err));
	assert_null(pc);
	assert_non_null(strstr(err, path_bad));
	assert_non_null(strstr(err, ":2"));
	assert_non_null(strstr(err, "301"));

	/* Detection off: no rules, no scratch, a valid object. */
	c.detect_enabled = false;
	pc = bs_pubcfg_build(&c, NULL, 2, err, sizeof(err));
	assert_non_null(pc);
	assert_null(pc->rules);
	assert_null(pc->detect[0]);
	bs_pubcfg_free(pc);

	assert_null(bs_pubcfg_build(&c, NULL, 0, err, sizeof(err)));
	assert_null(bs_pubcfg_build(&c, NULL, BS_PUB_WORKERS_MAX + 1, err,
		sizeof(err)));
	bs_config_free(&c);
}

/* A published set copies the settings deeply: lists, the per-domain map
 * and keys survive the caller freeing its own (ASan would see a double
 * free or a use after free otherwise; tests/fuzz builds run it). */
static void
test_config_copy(void **state)
{
	(void)state;
	static const char yaml[] =
		"protected_domains: [a.example, b.example]\n"
		"relays: [mx1.a.example, 192.0.2.0/24]\n"
		"batv: {keys: [{id: 1, secret: s3cret}]}\n"
		"domains:\n"
		"  b.example: {relays: [out.b.example], verdict.unknown: refuse}\n";
	struct bs_config c, d;
	char err[256];
	assert_int_equal(bs_config_defaults(&c), 0);
	if (bs_config_load_mem(&c, "t.yaml", (const uint8_t *)yaml,
			sizeof(yaml) - 1, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(bs_config_copy(&d, &c), 0);
	assert_int_equal(d.protected_domains.n, 2);
	assert_ptr_not_equal(d.protected_domains.item,
		c.protected_domains.item);
	assert_ptr_not_equal(d.protected_domains.item[0],
		c.protected_domains.item[0]);
	assert_string_equal(d.protected_domains.item[1], "b.example");
	assert_int_equal(d.domains.n, 1);
	assert_ptr_not_equal(d.domains.d, c.domains.d);
	assert_ptr_not_equal(d.domains.d[0].name, c.domains.d[0].name);
	assert_string_equal(d.domains.d[0].relays.item[0], "out.b.example");
	assert_int_equal(d.batv_keys.n, 1);
	bs_config_free(&c);
	/* The copy stands alone. */
	assert_string_equal(d.relays.item[0], "mx1.a.example");
	assert_string_equal(d.domains.d[0].name, "b.example");
	struct bs_pubcfg *pc = bs_pubcfg_build(&d, path_a, 1, err, sizeof(err));
	if (pc == NULL)
		fail_msg("%s", err);
	assert_non_null(pc->policy);
	bs_config_free(&d);
	assert_string_equal(pc->cfg.protected_domains.item[0], "a.example");
	bs_pubcfg_free(pc);
}

static void
test_pin_keeps_retired(void **state)
{
	(void)state;
	struct bs_pub *pub = bs_pub_create(2);
	assert_non_null(pub);
	assert_null(bs_pub_current(pub));
	assert_int_equal(bs_pub_generation(pub), 0);

	struct bs_pubcfg *a = build(path_a, 2);
	assert_int_equal(bs_pub_publish(pub, a), 1);
	assert_ptr_equal(bs_pub_current(pub), a);

	/* A message of worker 1 starts on A and pins it. */
	struct bs_pubcfg *mine = bs_pub_current(pub);
	bs_pubcfg_pin(mine, 1);
	struct bs_msg *m = bs_msg_begin(mine->detect[1], "", NULL, 0);
	bs_msg_feed(m, (const uint8_t *)MSG, 40);

	struct bs_pubcfg *b = build(path_b, 2);
	assert_int_equal(bs_pub_publish(pub, b), 2);
	assert_int_equal(bs_pub_generation(pub), 2);
	assert_ptr_equal(bs_pub_current(pub), b);
	/* A is retired but pinned: still there after any reclaim. */
	assert_int_equal(bs_pub_retired(pub), 1);
	assert_int_equal(bs_pub_reclaim(pub), 1);
	assert_int_equal(bs_pubcfg_pinned(a), 1);

	/* The message finishes on A's database (A's rule id), while a new
	 * one runs on B. */
	struct bs_detect_result r;
	bs_msg_feed(m, (const uint8_t *)MSG + 40, sizeof(MSG) - 1 - 40);
	bs_msg_end(m, &r);
	assert_true(r.n_rule_ids >= 1);
	assert_int_equal(r.rule_ids[0], 100);
	assert_int_equal(scan_msg(b, 1, 5), 200);
	bs_pubcfg_unpin(mine, 1);
	assert_int_equal(bs_pub_reclaim(pub), 0);
	assert_int_equal(bs_pub_retired(pub), 0);

	/* Unpinned sets go at the next publication. */
	assert_int_equal(bs_pub_publish(pub, build(path_a, 2)), 3);
	assert_int_equal(bs_pub_retired(pub), 0);
	bs_pub_free(pub);
}

/* A worker: registered QSBR reader; scans messages that span several
 * quiescent states, each pinned to the set it started on. */
struct reader {
	struct bs_pub *pub;
	volatile bool stop;
	unsigned long msgs, wrong;
	uint64_t gens_seen;
	uint64_t last_gen;
};

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;
	rcu_register_thread();
	while (!rd->stop) {
		struct bs_pubcfg *pc = bs_pub_current(rd->pub);
		bs_pubcfg_pin(pc, 0);
		bool is_a = bs_ruleset_rule(pc->rules, 0)->id == 100;
		struct bs_msg *m = bs_msg_begin(pc->detect[0], "", NULL, 0);
		struct bs_detect_result r;
		/* Quiescent states inside the message: QSBR alone would let
		 * the set go here; the pin must not. */
		for (size_t o = 0; o < sizeof(MSG) - 1; o += 16) {
			size_t n = sizeof(MSG) - 1 - o < 16 ? sizeof(MSG) - 1 - o
							     : 16;
			bs_msg_feed(m, (const uint8_t *)MSG + o, n);
			rcu_quiescent_state();
		}
		bs_msg_end(m, &r);
		if (pc->gen != rd->last_gen) {
			rd->gens_seen++;
			rd->last_gen = pc->gen;
		}
		bs_pubcfg_unpin(pc, 0);
		rd->msgs++;
		if (r.n_rule_ids == 0 ||
				(r.rule_ids[0] == 100) != is_a ||
				(is_a ? (pc->gen % 2) != 1 : (pc->gen % 2) != 0))
			rd->wrong++;
		rcu_quiescent_state();
	}
	rcu_unregister_thread();
	return NULL;
}

static void
test_back_to_back(void **state)
{
	(void)state;
	struct bs_pub *pub = bs_pub_create(1);
	/* Odd generations are A, even are B (checked by the reader). */
	bs_pub_publish(pub, build(path_a, 1));
	struct reader rd = { .pub = pub };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	for (unsigned int i = 0; i < 200; i++) {
		bs_pub_publish(pub, build((i % 2) ? path_a : path_b, 1));
		bs_pub_reclaim(pub);
		usleep(200);
	}
	rd.stop = true;
	pthread_join(th, NULL);
	assert_int_equal(bs_pub_generation(pub), 201);
	assert_true(rd.msgs > 0);
	assert_int_equal(rd.wrong, 0);
	assert_true(rd.gens_seen > 2);
	/* The reader is gone: nothing pinned, everything reclaimable. */
	assert_int_equal(bs_pub_reclaim(pub), 0);
	printf("%lu messages over %lu generations\n", rd.msgs,
		(unsigned long)rd.gens_seen);
	bs_pub_free(pub);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_config_copy),
		cmocka_unit_test(test_pin_keeps_retired),
		cmocka_unit_test(test_back_to_back),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
