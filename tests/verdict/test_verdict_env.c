/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict with the real outbound ledger and storm detector behind
 * its ops table (contract 4), both built from the verdict's settings
 * (contract 5): a bounce quoting a Message-ID that left the domain is
 * legit, one quoting another id proves nothing while the ledger warms up
 * and, once warm, proves forgery only for an authoritative domain; an
 * auto-reply found by In-Reply-To; a burst of unknown bounces to one
 * address turns them into backscatter (storm) and back after the window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <urcu-qsbr.h>

#include "backstop/config.h"
#include "backstop/ledger.h"
#include "backstop/storm.h"
#include "backstop/verdict.h"

#define T0 1900000000ULL

struct world {
	struct bs_config cfg;
	struct bs_verdict_policy *pol;
	struct bs_verdict_ctx *vc;
	struct bs_ledger *l;
	struct bs_storm *s;
	uint64_t now_s;
};

static enum bs_ledger_answer
w_ledger(void *arg, const char *id, size_t n)
{
	struct world *w = arg;
	return bs_ledger_lookup(w->l, id, n, w->now_s);
}

static bool
w_storm(void *arg, const char *rcpt, size_t n)
{
	struct world *w = arg;
	return bs_storm_active(w->s, rcpt, n, w->now_s * 1000);
}

static void
w_bounce(void *arg, const char *rcpt, size_t n)
{
	struct world *w = arg;
	bs_storm_note(bs_storm_part(w->s, 0), rcpt, n);
}

static void
world(struct world *w, const char *yaml)
{
	char err[512];
	struct bs_ledger_params lp;
	struct bs_storm_params sp;
	memset(w, 0, sizeof(*w));
	assert_int_equal(bs_config_defaults(&w->cfg), 0);
	if (bs_config_load_mem(&w->cfg, "t.yaml", (const uint8_t *)yaml,
			strlen(yaml), err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	w->pol = bs_verdict_policy_build(&w->cfg, err, sizeof(err));
	assert_non_null(w->pol);
	w->vc = bs_verdict_ctx_create(w->pol, NULL);
	assert_non_null(w->vc);
	bs_verdict_ledger_params(&w->cfg, 1, &lp);
	assert_int_equal(lp.ttl_s, w->cfg.ledger_ttl_days * 86400);
	assert_int_equal(lp.max_entries, w->cfg.ledger_max_entries);
	w->l = bs_ledger_create(&lp, T0, err, sizeof(err));
	if (w->l == NULL)
		fail_msg("ledger: %s", err);
	bs_verdict_storm_params(&w->cfg, 1, &sp);
	sp.tick_ms = 1000;
	w->s = bs_storm_create(&sp, err, sizeof(err));
	if (w->s == NULL)
		fail_msg("storm: %s", err);
	w->now_s = T0;
}

static void
world_free(struct world *w)
{
	bs_storm_destroy(w->s);
	bs_ledger_destroy(w->l);
	bs_verdict_ctx_free(w->vc);
	bs_verdict_policy_free(w->pol);
	bs_config_free(&w->cfg);
}

/* Judge a message of class cls quoting msgid to rcpt. */
static struct bs_verdict_result
judge(struct world *w, uint8_t cls, const char *msgid, const char *irt,
	const char *rcpt)
{
	struct bs_detect_result *det = calloc(1, sizeof(*det));
	struct bs_smtp_rcpt rc;
	struct bs_verdict_input in;
	struct bs_verdict_result out;
	struct bs_verdict_env env = { w_ledger, w_storm, w_bounce, w };
	assert_non_null(det);
	det->cls = cls;
	if (msgid != NULL) {
		det->mime.orig.present = true;
		snprintf(det->mime.orig.message_id, BS_FIELD_MAX, "%s", msgid);
		snprintf(det->mime.orig.from, BS_FIELD_MAX, "a@example.com");
	}
	memset(&rc, 0, sizeof(rc));
	snprintf(rc.addr, sizeof(rc.addr), "%s", rcpt);
	rc.len = (uint16_t)strlen(rcpt);
	rc.reply = 250;
	bs_verdict_input_init(&in, NULL, det, w->now_s);
	in.rcpt = &rc;
	in.nrcpt = 1;
	in.in_reply_to = irt;
	bs_verdict_judge(w->vc, &env, &in, &out);
	free(det);
	return out;
}

static void
test_ledger(void **state)
{
	(void)state;
	struct world w;
	struct bs_verdict_result r;
	world(&w, "protected_domains: [example.com]\n"
		"ledger: {ttl_days: 2, max_entries: 1024}\n"
		"domains: {example.com: {ledger.authoritative: true}}\n");
	/* Outbound: a worker records the id as it left; the writer step
	 * makes it visible. */
	const char *id = "<20300317174000.1@Example.COM>";
	assert_int_equal(bs_ledger_record(bs_ledger_part(w.l, 0), id,
		strlen(id), T0), 0);
	assert_int_equal(bs_ledger_tick(w.l, T0), 0);

	r = judge(&w, BS_CLASS_DSN, "<20300317174000.1@example.com>", NULL,
		"a@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_LEGIT);
	assert_true(r.reasons & BS_VR_BIT(ledger_hit));
	/* Another id while the ledger is younger than its TTL: nothing. */
	r = judge(&w, BS_CLASS_DSN, "<forged.1@example.com>", NULL,
		"a@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_UNKNOWN);
	assert_true(r.reasons & BS_VR_BIT(ledger_warming));
	/* An out-of-office reply carries no original: In-Reply-To. */
	r = judge(&w, BS_CLASS_AUTOREPLY, NULL, id, "a@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_LEGIT);

	/* Warm (a whole TTL watched): a miss proves forgery for this
	 * authoritative domain. */
	w.now_s = T0 + 2 * 86400 + 60;
	const char *id2 = "<later.2@example.com>";
	assert_int_equal(bs_ledger_record(bs_ledger_part(w.l, 0), id2,
		strlen(id2), w.now_s), 0);
	assert_int_equal(bs_ledger_tick(w.l, w.now_s), 0);
	r = judge(&w, BS_CLASS_DSN, "<forged.1@example.com>", NULL,
		"a@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_BACKSCATTER);
	assert_true(r.reasons & BS_VR_BIT(ledger_miss));
	r = judge(&w, BS_CLASS_DSN, id2, NULL, "a@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_LEGIT);
	world_free(&w);

	/* Not authoritative (the default): the same miss proves nothing. */
	world(&w, "protected_domains: [example.com]\n"
		"ledger: {ttl_days: 1, max_entries: 1024}\n");
	w.now_s = T0 + 86400 + 60;
	assert_int_equal(bs_ledger_tick(w.l, w.now_s), 0);
	r = judge(&w, BS_CLASS_DSN, "<forged.1@example.com>", NULL,
		"a@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_UNKNOWN);
	assert_true(r.reasons & BS_VR_BIT(ledger_miss));
	world_free(&w);
}

static void
test_storm(void **state)
{
	(void)state;
	struct world w;
	struct bs_verdict_result r;
	world(&w, "protected_domains: [example.com]\n"
		"storm: {window_s: 10, rcpt_threshold: 20, domain_threshold: "
		"100000}\n");
	uint64_t t = T0 * 1000;
	bs_storm_tick(w.s, t);
	/* Nothing checkable, outside a storm: unknown, delivered. */
	r = judge(&w, BS_CLASS_AUTOREPLY, NULL, NULL, "victim@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_UNKNOWN);
	assert_int_equal(r.action, BS_ACTION_DELIVER);
	/* A burst: every judged bounce is noted through the ops table. */
	bool stormed = false;
	for (int sec = 0; sec < 6 && !stormed; sec++) {
		for (int i = 0; i < 10; i++) {
			r = judge(&w, BS_CLASS_AUTOREPLY, NULL, NULL,
				i & 1 ? "Victim@Example.COM"
				      : "prvs=0123abcdef=victim@example.com");
			stormed |= r.verdict == BS_VERDICT_BACKSCATTER;
		}
		t += 1000;
		w.now_s = t / 1000;
		bs_storm_tick(w.s, t);
	}
	r = judge(&w, BS_CLASS_AUTOREPLY, NULL, NULL, "victim@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_BACKSCATTER);
	assert_int_equal(r.action, BS_ACTION_REFUSE);
	assert_true(r.reasons & BS_VR_BIT(storm));
	/* Another address of the domain is not in the storm. */
	r = judge(&w, BS_CLASS_AUTOREPLY, NULL, NULL, "bob@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_UNKNOWN);
	/* The window passes with no bounce: back to unknown. */
	for (int sec = 0; sec < 25; sec++) {
		t += 1000;
		bs_storm_tick(w.s, t);
	}
	w.now_s = t / 1000;
	r = judge(&w, BS_CLASS_AUTOREPLY, NULL, NULL, "victim@example.com");
	assert_int_equal(r.verdict, BS_VERDICT_UNKNOWN);
	assert_false(r.reasons & BS_VR_BIT(storm));
	world_free(&w);
}

static int
reg(void **state)
{
	(void)state;
	rcu_register_thread();
	return 0;
}

static int
unreg(void **state)
{
	(void)state;
	rcu_unregister_thread();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ledger),
		cmocka_unit_test(test_storm),
	};
	return cmocka_run_group_tests(tests, reg, unreg);
}
