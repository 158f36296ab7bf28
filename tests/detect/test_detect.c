/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of rules and detection: rule file syntax and compile errors
 * (naming rule and line), target filtering, candidate gating, the classes,
 * matches across chunk boundaries, counters, and JSON escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backstop/counters.h"
#include "backstop/detect.h"
#include "backstop/rules.h"

static const char rules_text[] =
        "# test rules\n"
        "\n"
        "10 dsn subject i /undelivered mail/ subject only\n"
        "11 dsn body i /this is the mail system/ body only\n"
        "12 dsn body iw /user unknown/ weak\n"
        "13 autoreply subject i /out of office/ vacation\n"
        "14 challenge body i /confirm you are human/ C/R\n"
        "15 dsn original i /secret-in-original/ original only\n";

static struct bs_ruleset *
load(const char *text, char *err, size_t errlen)
{
	return bs_ruleset_parse(text, strlen(text), "t.rules", err, errlen);
}

static void
test_rule_errors(void **state)
{
	char err[256];

	(void)state;
	assert_null(load("1 dsn body i /a(/ x\n", err, sizeof(err)));
	assert_non_null(strstr(err, "t.rules:1: rule 1:"));
	assert_null(load("# c\n2 dsn body i /ok/ x\n2 dsn body i /b/ y\n", err,
	        sizeof(err)));
	assert_non_null(strstr(err, "t.rules:3: rule 2: id already used"));
	assert_null(load("3 bounce body i /a/ x\n", err, sizeof(err)));
	assert_non_null(strstr(err, "rule 3: class"));
	assert_null(load("4 dsn nowhere i /a/ x\n", err, sizeof(err)));
	assert_non_null(strstr(err, "rule 4: bad target"));
	assert_null(load("5 dsn body q /a/ x\n", err, sizeof(err)));
	assert_non_null(strstr(err, "unknown flag 'q'"));
	assert_null(load("6 dsn body i a x\n", err, sizeof(err)));
	assert_null(load("x dsn body i /a/\n", err, sizeof(err)));
	assert_non_null(strstr(err, "bad rule id"));
	assert_null(load("\n\n7 dsn body i /a(/ x\n", err, sizeof(err)));
	assert_non_null(strstr(err, "t.rules:3: rule 7:"));
}

static void
test_rule_parse(void **state)
{
	char err[256];
	struct bs_ruleset *rs = load(rules_text, err, sizeof(err));
	const struct bs_rule *r;

	(void)state;
	assert_non_null(rs);
	assert_int_equal(bs_ruleset_count(rs), 6);
	r = bs_ruleset_rule(rs, 2);
	assert_int_equal(r->id, 12);
	assert_true(r->weak);
	assert_int_equal(r->targets, BS_TGT_BODY);
	assert_int_equal(r->line, 5);
	assert_string_equal(r->desc, "weak");
	/* '/' inside the expression, several targets. */
	bs_ruleset_free(rs);
	rs = load("1 dsn body,subject - /a/b\\/ c/ slash / inside\n", err,
	        sizeof(err));
	assert_non_null(rs);
	assert_string_equal(bs_ruleset_rule(rs, 0)->desc, "slash / inside");
	assert_int_equal(
	        bs_ruleset_rule(rs, 0)->targets, BS_TGT_BODY | BS_TGT_SUBJECT);
	bs_ruleset_free(rs);
	/* An empty rule set loads (no database). */
	rs = load("# nothing\n", err, sizeof(err));
	assert_non_null(rs);
	assert_int_equal(bs_ruleset_count(rs), 0);
	bs_ruleset_free(rs);
}

struct fixture {
	struct bs_ruleset *rs;
	struct bs_detect_ctx *ctx;
	struct bs_counters cnt;
};

static int
setup(void **state)
{
	char err[256];
	struct fixture *f = calloc(1, sizeof(*f));

	f->rs = load(rules_text, err, sizeof(err));
	if (!f->rs)
		return -1;
	f->ctx = bs_detect_ctx_create(f->rs);
	bs_detect_ctx_set_counters(f->ctx, &f->cnt);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	bs_detect_ctx_free(f->ctx);
	bs_ruleset_free(f->rs);
	free(f);
	return 0;
}

static void
run(struct fixture *f, const char *from, const char *text, size_t chunk,
        struct bs_detect_result *res)
{
	struct bs_msg *m = bs_msg_begin(f->ctx, from, NULL, 0);
	size_t len = strlen(text), off = 0;

	assert_non_null(m);
	while (off < len) {
		size_t n = chunk < len - off ? chunk : len - off;

		assert_int_equal(
		        bs_msg_feed(m, (const uint8_t *)text + off, n), 0);
		off += n;
	}
	assert_int_equal(bs_msg_end(m, res), 0);
}

static bool
has_rule(const struct bs_detect_result *r, uint32_t id)
{
	for (unsigned int i = 0; i < r->n_rule_ids; i++)
		if (r->rule_ids[i] == id)
			return true;
	return false;
}

static void
test_gate(void **state)
{
	struct fixture *f = *state;
	struct bs_detect_result r;
	static const char plain[] = "From: bob@example.com\n"
	                            "Subject: lunch\n"
	                            "\n"
	                            "this is the mail system\n";
	static const char sig[] = "From: bob@example.com\n"
	                          "Subject: undelivered mail\n"
	                          "\n"
	                          "this is the mail system\n";

	/* Ordinary mail without a signature: not scanned, whatever its
	 * body says. */
	run(f, NULL, plain, 4096, &r);
	assert_false(r.candidate);
	assert_int_equal(r.cls, BS_CLASS_NONE);
	assert_int_equal(r.bytes_scanned, 0);
	run(f, "bob@example.com", plain, 4096, &r);
	assert_false(r.candidate);
	/* Same bytes with a null envelope sender: scanned; a bounce only
	 * where the rules say so (rule 11 here, strong). */
	run(f, "", plain, 4096, &r);
	assert_true(r.candidate);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	assert_true(has_rule(&r, 11));
	assert_true(r.evidence & BS_EV_NULL_SENDER);
	assert_int_equal(f->cnt.v[BS_CNT_detect_msgs], 3);
	assert_int_equal(f->cnt.v[BS_CNT_detect_candidates], 1);
	assert_int_equal(f->cnt.v[BS_CNT_detect_class_dsn], 1);
	/* A Subject signature opens the gate for an ordinary sender... */
	run(f, "bob@example.com", sig, 4096, &r);
	assert_true(r.candidate);
	assert_true(r.evidence & BS_EV_SIGNATURE_GATE);
	assert_true(has_rule(&r, 10));
	assert_int_equal(r.cls, BS_CLASS_DSN); /* strong body wording */
	/* ... but the subject alone makes no bounce of it. */
	run(f, "bob@example.com",
	        "From: bob@example.com\nSubject: undelivered mail\n\nhi\n",
	        4096, &r);
	assert_true(r.candidate);
	assert_int_equal(r.cls, BS_CLASS_NONE);
	/* A reply to (or forward of) a bounce: the gate stays shut; a
	 * bounce quoting its original's subject opens it. */
	run(f, "bob@example.com",
	        "From: bob@example.com\nSubject: Re: AW: undelivered mail\n\n"
	        "this is the mail system\n",
	        4096, &r);
	assert_false(r.candidate);
	run(f, "bob@example.com",
	        "From: bob@example.com\nSubject: Fwd: [2] undelivered mail\n\n"
	        "this is the mail system\n",
	        4096, &r);
	assert_false(r.candidate);
	run(f, "bob@example.com",
	        "From: x@example.com\nSubject: Re: lunch: undelivered mail\n\n"
	        "this is the mail system\n",
	        4096, &r);
	assert_true(r.candidate);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	/* The signature decides early: header lines after it are still
	 * scanned (held, then given to the stream). */
	run(f, NULL,
	        "Subject: undelivered mail\nX-Other: y\n\n"
	        "this is the mail system\n",
	        1, &r);
	assert_true(r.candidate);
	assert_int_equal(r.cls, BS_CLASS_DSN);
}

static void
test_targets_and_chunks(void **state)
{
	struct fixture *f = *state;
	struct bs_detect_result r, r1;
	/* Body wording in the subject and subject wording in the body must
	 * not count; the header (decided late) is held and then scanned. */
	static const char msg[] = "Subject: this is the mail system\n"
	                          "X-Other: 1\n"
	                          "Auto-Submitted: auto-generated\n"
	                          "Content-Type: multipart/mixed; boundary=q\n"
	                          "\n"
	                          "--q\n"
	                          "\n"
	                          "undelivered mail\n"
	                          "--q\n"
	                          "Content-Type: message/rfc822\n"
	                          "\n"
	                          "Subject: x\n"
	                          "\n"
	                          "secret-in-original\n"
	                          "--q--\n";

	run(f, NULL, msg, 4096, &r);
	assert_true(r.candidate);
	assert_false(has_rule(&r, 10));
	assert_false(has_rule(&r, 11));
	assert_true(has_rule(&r, 15));
	for (size_t c = 1; c < 30; c++) {
		run(f, NULL, msg, c, &r1);
		assert_int_equal(r1.n_rule_ids, r.n_rule_ids);
		assert_memory_equal(
		        r1.rule_ids, r.rule_ids, sizeof(r.rule_ids));
		assert_int_equal(r1.cls, r.cls);
	}
}

static void
test_classes(void **state)
{
	struct fixture *f = *state;
	struct bs_detect_result r;

	/* Weak wording alone: not a bounce; with a daemon From: a bounce. */
	run(f, NULL,
	        "Auto-Submitted: auto-generated\nFrom: a@b\n\nuser unknown\n",
	        7, &r);
	assert_int_equal(r.cls, BS_CLASS_NONE);
	assert_true(r.evidence & BS_EV_RULE_DSN_WEAK);
	/* Text rules see white space folded: a phrase wrapped over two
	 * lines (and indented) is still the phrase; a word between is not. */
	run(f, NULL, "From: MAILER-DAEMON@b\n\nuser\n unknown\n", 7, &r);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	run(f, NULL, "From: MAILER-DAEMON@b\n\nuser\t \r\n  unknown\n", 7, &r);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	run(f, NULL, "From: MAILER-DAEMON@b\n\nuser is\n unknown\n", 7, &r);
	assert_int_equal(r.cls, BS_CLASS_NONE);
	run(f, NULL, "From: MAILER-DAEMON@b\n\nuser unknown\n", 7, &r);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	/* Weak wording in a message that says it is an auto-reply stays
	 * an auto-reply; "Auto-Submitted: auto-replied" alone does not say
	 * it (Exim's bounces carry it). */
	run(f, NULL,
	        "From: MAILER-DAEMON@b\nX-Autoreply: yes\n\nuser unknown\n",
	        7, &r);
	assert_int_equal(r.cls, BS_CLASS_AUTOREPLY);
	run(f, NULL,
	        "From: MAILER-DAEMON@b\nSubject: out of office\n\n"
	        "user unknown\n",
	        7, &r);
	assert_int_equal(r.cls, BS_CLASS_AUTOREPLY);
	run(f, NULL,
	        "From: MAILER-DAEMON@b\nAuto-Submitted: auto-replied\n\n"
	        "user unknown\n",
	        7, &r);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	/* A disposition notification carries DSN-like fields by design. */
	run(f, "",
	        "Content-Type: multipart/report; report-type=disposition-"
	        "notification; boundary=z\n\n--z\n\nuser unknown\n--z\n"
	        "Content-Type: message/disposition-notification\n\n"
	        "Final-Recipient: rfc822; a@b\n--z--\n",
	        7, &r);
	assert_int_equal(r.cls, BS_CLASS_AUTOREPLY);
	run(f, NULL, "Precedence: bulk\nSubject: Out of Office\n\nhi\n", 5, &r);
	assert_int_equal(r.cls, BS_CLASS_AUTOREPLY);
	run(f, "", "Subject: x\n\nplease confirm you are human\n", 5, &r);
	assert_int_equal(r.cls, BS_CLASS_CHALLENGE);
	run(f, NULL,
	        "Content-Type: multipart/report; report-type=feedback-report;"
	        " boundary=z\n\n--z\nContent-Type: message/feedback-report\n\n"
	        "Feedback-Type: abuse\n\n--z--\n",
	        3, &r);
	assert_int_equal(r.cls, BS_CLASS_FEEDBACK);
	assert_string_equal(r.mime.feedback_type, "abuse");
	/* Structure alone: a delivery-status part is a DSN. */
	run(f, NULL,
	        "Content-Type: multipart/report; report-type=delivery-status;"
	        " boundary=z\n\n--z\nContent-Type: message/delivery-status\n\n"
	        "Reporting-MTA: dns; a\n\nFinal-Recipient: rfc822; x@y\n"
	        "Status: 5.0.0\n\n--z--\n",
	        3, &r);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	assert_string_equal(r.mime.dsn.status, "5.0.0");
}

static void
test_json(void **state)
{
	struct fixture *f = *state;
	struct bs_detect_result r;
	char buf[8192], small[16];
	size_t n;

	run(f, "",
	        "Subject: =?utf-8?q?undelivered_mail_=22q=22_=5C_=01?= "
	        "\xff\xc3\xa9\n\nx\n",
	        4096, &r);
	n = bs_detect_result_json(&r, "\"file\":\"a\",", buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_non_null(strstr(buf, "{\"file\":\"a\",\"class\":\"dsn\""));
	assert_non_null(strstr(buf,
	        "\"subject\":\"undelivered mail \\\"q\\\" \\\\ \\u0001 "
	        "\\u00ff\xc3\xa9\""));
	assert_non_null(strstr(buf, "\"rules\":[10]"));
	/* Cut output: NUL-terminated, full length reported. */
	assert_int_equal(bs_detect_result_json(&r, NULL, small, sizeof(small)),
	        n - strlen("\"file\":\"a\","));
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void
test_abort_and_empty(void **state)
{
	struct fixture *f = *state;
	struct bs_msg *m = bs_msg_begin(f->ctx, "", NULL, 0);
	struct bs_detect_result r;
	char err[64];
	struct bs_ruleset *rs;
	struct bs_detect_ctx *ctx;

	bs_msg_feed(m, (const uint8_t *)"Subject: x\n", 11);
	bs_msg_abort(m);
	bs_msg_abort(NULL);
	/* Empty message. */
	run(f, "", "", 1, &r);
	assert_int_equal(r.cls, BS_CLASS_NONE);
	assert_true(r.mime.anomalies & BS_MIME_A_NO_HEADER_END);
	/* No rules: structure still classifies. */
	rs = load("", err, sizeof(err));
	ctx = bs_detect_ctx_create(rs);
	m = bs_msg_begin(ctx, "", NULL, 0);
	bs_msg_feed(m,
	        (const uint8_t *)"Content-Type: message/delivery-status\n\n"
	                         "Status: 5.1.1\n",
	        53);
	bs_msg_end(m, &r);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	assert_true(r.fail & BS_DF_NO_RULES);
	bs_detect_ctx_free(ctx);
	bs_ruleset_free(rs);
}

/* A bounce whose text part is Latin-1 (8bit), then a Windows-1252
 * quoted-printable part: each part holds a charset converter while read. */
static const char latin1_bounce[] =
        "Return-Path: <>\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        " boundary=\"b\"\n"
        "\n"
        "--b\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "\n"
        "Votre message n'a pas pu \xeatre d\xe9livr\xe9.\n"
        "this is the mail system at host mx.example.net.\n"
        "--b\n"
        "Content-Type: text/plain; charset=windows-1252\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        "Empf=E4nger unbekannt =80\n"
        "--b\n"
        "Content-Type: message/rfc822\n"
        "\n"
        "Message-ID: <o@example.org>\n"
        "\n"
        "body\n"
        "--b--\n";

/* Nothing is left held once every message has ended or been aborted. */
static void
assert_nothing_live(struct fixture *f)
{
	struct bs_detect_live l;
	struct bs_mime_charset_stats cs;

	bs_detect_ctx_live(f->ctx, &l);
	bs_mime_charset_stats(&cs);
	assert_int_equal(l.msgs, 0);
	assert_int_equal(l.streams, 0);
	assert_true(l.msgs_alloc <= BS_DETECT_POOL_MAX);
	assert_true(l.streams_alloc <= BS_DETECT_POOL_MAX * BS_DETECT_STREAMS_MAX);
	assert_true(cs.cached <= BS_MIME_CHARSET_CACHE);
	assert_int_equal(f->cnt.v[BS_CNT_detect_msgs_live], 0);
	assert_int_equal(f->cnt.v[BS_CNT_detect_streams_live], 0);
}

/*
 * Aborting a message at any point leaves nothing held (message, stream,
 * converter), for a candidate (null sender), a message gated on its header
 * (unknown sender) and a non-candidate (ordinary sender, parser stopped);
 * the thread's converters are reused, not reopened: a thousand aborted
 * messages open no more descriptors than one.
 */
static void
test_abort_releases(void **state)
{
	struct fixture *f = *state;
	static const char *const senders[] = {"", NULL, "bob@example.com"};
	size_t len = strlen(latin1_bounce);
	struct bs_mime_charset_stats cs0, cs1;
	struct bs_detect_result r;

	for (unsigned int s = 0; s < 3; s++) {
		for (size_t cut = 0; cut <= len; cut++) {
			struct bs_msg *m =
			        bs_msg_begin(f->ctx, senders[s], NULL, 0);

			assert_non_null(m);
			bs_msg_feed(m, (const uint8_t *)latin1_bounce, cut);
			if (cut == len && s == 0) {
				bs_msg_end(m, &r);
				assert_int_equal(r.cls, BS_CLASS_DSN);
			} else {
				bs_msg_abort(m);
			}
			assert_nothing_live(f);
		}
	}
	bs_mime_charset_stats(&cs0);
	assert_true(cs0.opened > 0); /* converters were used */
	for (int i = 0; i < 1000; i++) {
		struct bs_msg *m = bs_msg_begin(f->ctx, "", NULL, 0);

		bs_msg_feed(m, (const uint8_t *)latin1_bounce, len - 100);
		bs_msg_abort(m);
	}
	bs_mime_charset_stats(&cs1);
	assert_int_equal(cs1.opened, cs0.opened);
	assert_nothing_live(f);
	/* Two messages in flight at once, ended in the other order. */
	struct bs_msg *a = bs_msg_begin(f->ctx, "", NULL, 0);
	struct bs_msg *b = bs_msg_begin(f->ctx, "", NULL, 0);

	bs_msg_feed(a, (const uint8_t *)latin1_bounce, 300);
	bs_msg_feed(b, (const uint8_t *)latin1_bounce, 300);
	assert_int_equal(f->cnt.v[BS_CNT_detect_msgs_live], 2);
	{
		/* Streams open at a message's first batch for each database:
		 * the gauge follows what the context holds. */
		struct bs_detect_live l;

		bs_detect_ctx_live(f->ctx, &l);
		assert_int_equal(f->cnt.v[BS_CNT_detect_streams_live], l.streams);
		assert_true(l.streams <= 2 * BS_DETECT_STREAMS_MAX);
	}
	bs_msg_abort(b);
	bs_msg_feed(a, (const uint8_t *)latin1_bounce + 300, len - 300);
	bs_msg_end(a, &r);
	assert_int_equal(r.cls, BS_CLASS_DSN);
	assert_nothing_live(f);
	bs_mime_charset_stats(&cs1);
	assert_int_equal(cs1.opened, cs0.opened);
}

/*
 * Messages in flight at once (interleaved sessions) are reused once they
 * end: the second round of as many messages allocates nothing (one spare
 * message per context made every message past the first malloc 45 KB).
 */
static void
test_pool_reuse(void **state)
{
	struct fixture *f = *state;
	struct bs_msg *m[10];
	struct bs_detect_live l0, l;
	struct bs_detect_result r;
	size_t len = strlen(latin1_bounce);

	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 10; i++) {
			m[i] = bs_msg_begin(f->ctx, "", NULL, 0);
			assert_non_null(m[i]);
			bs_msg_feed(m[i], (const uint8_t *)latin1_bounce, len / 2);
		}
		for (int i = 0; i < 10; i++) {
			bs_msg_feed(m[i], (const uint8_t *)latin1_bounce + len / 2,
			        len - len / 2);
			bs_msg_end(m[i], &r);
			assert_int_equal(r.cls, BS_CLASS_DSN);
		}
		bs_detect_ctx_live(f->ctx, &l);
		assert_int_equal(l.msgs, 0);
		assert_int_equal(l.streams, 0);
		if (round == 0)
			l0 = l;
	}
	assert_int_equal(l.msgs_alloc, 10);
	assert_int_equal(l.msgs_alloc, l0.msgs_alloc);
	assert_int_equal(l.streams_alloc, l0.streams_alloc);
	assert_nothing_live(f);
}

/* The parser alone, dropped at any point without bs_mime_end(): the
 * thread's converters are reused, never more than the cache holds. */
static void
test_mime_abort_releases(void **state)
{
	static struct bs_mime m;
	static struct bs_mime_info in;
	struct bs_mime_charset_stats cs0, cs;
	size_t len = strlen(latin1_bounce);

	(void)state;
	bs_mime_init(&m, &in, NULL, NULL, NULL, BS_TGT_ALL);
	bs_mime_feed(&m, (const uint8_t *)latin1_bounce, len);
	bs_mime_end(&m);
	bs_mime_charset_stats(&cs0);
	for (size_t cut = 0; cut <= len; cut++) {
		bs_mime_init(&m, &in, NULL, NULL, NULL, BS_TGT_ALL);
		bs_mime_feed(&m, (const uint8_t *)latin1_bounce, cut);
		if (cut % 3 == 1)
			bs_mime_abort(&m);
		else if (cut % 3 == 2)
			bs_mime_stop(&m);
		/* cut % 3 == 0: simply dropped */
		bs_mime_charset_stats(&cs);
		assert_int_equal(cs.opened, cs0.opened);
		assert_true(cs.cached <= BS_MIME_CHARSET_CACHE);
	}
}

/*
 * Every message gives its top-level Message-ID, In-Reply-To and
 * References (the ledger learns outbound ids; auto-replies are matched by
 * In-Reply-To/References), whether or not it is a bounce candidate and
 * however it is cut; an id that does not fit is left out, never cut;
 * References keeps its newest ids.
 */
static void
test_top_ids(void **state)
{
	struct fixture *f = *state;
	struct bs_detect_result res;
	static const char plain[] =
	        "From: alice@example.com\r\n"
	        "To: bob@example.org\r\n"
	        "Message-ID:\r\n <m1.x@Example.COM>\r\n"
	        "In-Reply-To: <p0@example.org>\r\n"
	        "References: <r1@example.org>\r\n\t<p0@example.org>\r\n"
	        "Subject: hello\r\n\r\nbody\r\n"
	        "Message-ID: <not-a-header@example.com>\r\n";

	for (size_t chunk = 1; chunk <= sizeof(plain); chunk += 7) {
		run(f, "alice@example.com", plain, chunk, &res);
		assert_int_equal(res.cls, BS_CLASS_NONE);
		assert_false(res.candidate);
		assert_string_equal(res.mime.message_id, "<m1.x@Example.COM>");
		assert_string_equal(res.mime.in_reply_to, "<p0@example.org>");
		assert_string_equal(res.mime.references,
		        "<r1@example.org> <p0@example.org>");
	}
	/* An out-of-office reply: a candidate, same fields. */
	run(f, "", "From: bob@example.org\r\nSubject: Out of office\r\n"
	           "Auto-Submitted: auto-replied\r\n"
	           "In-Reply-To: <m1.x@example.com>\r\n\r\naway\r\n",
	        4096, &res);
	assert_true(res.candidate);
	assert_string_equal(res.mime.in_reply_to, "<m1.x@example.com>");
	assert_string_equal(res.mime.message_id, "");
	assert_string_equal(res.mime.references, "");

	/* Too long: the Message-ID is dropped whole (and the cut noted);
	 * References keeps whole ids from the end. */
	char *big = malloc(8192);
	assert_non_null(big);
	size_t o = (size_t)snprintf(big, 8192, "Message-ID: <");
	for (unsigned int i = 0; i < 300; i++)
		big[o++] = 'a';
	o += (size_t)snprintf(big + o, 8192 - o, "@example.com>\r\n"
	                                          "References:");
	for (unsigned int i = 0; i < 40; i++)
		o += (size_t)snprintf(big + o, 8192 - o,
		        " <ref%03u.0123456789@example.org>", i);
	o += (size_t)snprintf(big + o, 8192 - o,
	        "\r\nSubject: x\r\n\r\nbody\r\n");
	run(f, "alice@example.com", big, 100, &res);
	assert_string_equal(res.mime.message_id, "");
	assert_true(res.mime.anomalies & BS_MIME_A_FIELD_TRUNC);
	size_t rl = strlen(res.mime.references);
	assert_true(rl > 0 && rl < BS_REFS_MAX);
	assert_int_equal(res.mime.references[0], '<');
	assert_non_null(strstr(res.mime.references,
	        "<ref039.0123456789@example.org>"));
	assert_null(strstr(res.mime.references, "<ref000."));
	assert_int_equal(res.mime.references[rl - 1], '>');
	/* Whole ids: every '<' has its '>'. */
	for (const char *p = res.mime.references; *p; p++)
		if (*p == '<')
			assert_non_null(strchr(p, '>'));
	/* Past the header cap (2 KB) the parser cuts the field: what is
	 * left ends with a whole id. */
	o = (size_t)snprintf(big, 8192, "References:");
	for (unsigned int i = 0; i < 200; i++)
		o += (size_t)snprintf(big + o, 8192 - o,
		        " <ref%03u.0123456789@example.org>", i);
	o += (size_t)snprintf(big + o, 8192 - o, "\r\n\r\nbody\r\n");
	run(f, "alice@example.com", big, 100, &res);
	rl = strlen(res.mime.references);
	assert_true(rl > 0 && res.mime.references[rl - 1] == '>');
	assert_int_equal(res.mime.references[0], '<');
	free(big);

	/* JSON carries them in "top". */
	char json[65536];
	run(f, "alice@example.com", plain, 4096, &res);
	bs_detect_result_json(&res, NULL, json, sizeof(json));
	assert_non_null(strstr(json, "\"message_id\":\"<m1.x@Example.COM>\""));
	assert_non_null(strstr(json, "\"in_reply_to\":\"<p0@example.org>\""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rule_errors),
	        cmocka_unit_test(test_rule_parse),
	        cmocka_unit_test_setup_teardown(test_gate, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_targets_and_chunks, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_classes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_abort_and_empty, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_pool_reuse, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_abort_releases, setup, teardown),
	        cmocka_unit_test(test_mime_abort_releases),
	        cmocka_unit_test_setup_teardown(test_top_ids, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
