/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The default rule pack on hand-made messages: each language's wording in
 * its usual charset (ISO-2022-JP, GB2312, KOI8-R, ISO-8859-1), and
 * automatic mail that must not be taken for a bounce (parcel notices,
 * newsletters, forwarded bounces).  The corpus test covers real messages;
 * this one covers what the corpus lacks: also the kinds of bounce found
 * missing on bounce collections the project never saw (messages/: an
 * anti-virus gateway notice, a list manager's rejection, an NDR from a
 * named and BATV-tagged sender, a Sieve rejection), none of which has a
 * null sender, Auto-Submitted or a delivery-status part to open the gate,
 * and messages that must stay ordinary (structure alone, a reply to a
 * bounce).
 *
 *   test_rulepack RULES_FILE MESSAGES_DIR
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backstop/detect.h"
#include "backstop/rules.h"

static const char *rules_path, *msg_dir;
static struct bs_ruleset *rs;
static struct bs_detect_ctx *ctx;

static int
setup(void **state)
{
	char err[512];

	(void)state;
	rs = bs_ruleset_load(rules_path, err, sizeof(err));
	if (!rs) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	ctx = bs_detect_ctx_create(rs);
	return ctx ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	bs_detect_ctx_free(ctx);
	bs_ruleset_free(rs);
	return 0;
}

static enum bs_class
classify(const char *from, const char *text)
{
	struct bs_msg *m = bs_msg_begin(ctx, from, NULL, 0);
	struct bs_detect_result r;

	assert_non_null(m);
	/* Odd chunk size on purpose: phrases cross chunk boundaries. */
	for (size_t off = 0, len = strlen(text); off < len; off += 5)
		bs_msg_feed(m, (const uint8_t *)text + off,
		        len - off < 5 ? len - off : 5);
	bs_msg_end(m, &r);
	return (enum bs_class)r.cls;
}

static void
test_languages(void **state)
{
	(void)state;
	/* Japanese subject, ISO-2022-JP, RFC 2047 B. */
	assert_int_equal(
	        classify(NULL,
	                "From: postmaster@docomo.example\n"
	                "Subject: "
	                "=?iso-2022-jp?B?GyRCR1s/LklURz0kTiQqQ04kaSQ7GyhC?=\n"
	                "\nX\n"),
	        BS_CLASS_DSN);
	/* Japanese body, ISO-2022-JP text part, null sender. */
	assert_int_equal(
	        classify("",
	                "Subject: x\nContent-Type: text/plain; "
	                "charset=ISO-2022-JP\n\n"
	                "\x1b$B08@hITL@$N$?$aG[?.$G$-$^$;$s$G$7$?\x1b(B\n"),
	        BS_CLASS_DSN);
	/* Chinese subject, GB2312. */
	assert_int_equal(
	        classify(NULL, "From: MAILER-DAEMON@qq.example\n"
	                       "Subject: =?gb2312?B?z7XNs83L0MU=?=\n\nx\n"),
	        BS_CLASS_DSN);
	/* Russian subject and body, KOI8-R. */
	assert_int_equal(
	        classify(NULL,
	                "From: mailer-daemon@yandex.example\n"
	                "Subject: "
	                "=?koi8-r?B?7sXEz9PUwdfMxc7Oz8Ug08/Pwt3FzsnF?=\n\nx\n"),
	        BS_CLASS_DSN);
	assert_int_equal(
	        classify("", "Subject: x\nContent-Type: text/plain; "
	                     "charset=koi8-r\n\n"
	                     "\xf3\xcf\xcf\xc2\xdd\xc5\xce\xc9\xc5 \xce\xc5 "
	                     "\xcd\xcf\xd6\xc5"
	                     "\xd4 \xc2\xd9\xd4\xd8 "
	                     "\xc4\xcf\xd3\xd4\xc1\xd7\xcc\xc5\xce\xcf\n"),
	        BS_CLASS_DSN);
	/* German (ISO-8859-1, quoted-printable), French, Spanish, Italian,
	 * Portuguese, Dutch. */
	assert_int_equal(
	        classify("",
	                "Subject: x\nContent-Type: text/plain; "
	                "charset=iso-8859-1\n"
	                "Content-Transfer-Encoding: quoted-printable\n\n"
	                "Ihre Nachricht konnte nicht zugestellt\nwerden.\n"),
	        BS_CLASS_DSN);
	assert_int_equal(
	        classify(NULL, "From: postmaster@orange.example\n"
	                       "Subject: Non remis : rendez-vous\n\nx\n"),
	        BS_CLASS_DSN);
	assert_int_equal(
	        classify("",
	                "Subject: x\n\nEl mensaje no se pudo entregar a los "
	                "destinatarios.\n"),
	        BS_CLASS_DSN);
	assert_int_equal(
	        classify("", "Subject: Impossibile recapitare: prova\n\nx\n"),
	        BS_CLASS_DSN);
	assert_int_equal(
	        classify("", "Subject: x\n\nA mensagem n\xc3\xa3o p\xc3\xb4"
	                     "de ser "
	                     "entregue.\n"),
	        BS_CLASS_DSN);
	assert_int_equal(classify("", "Subject: Onbestelbaar: test\n\nx\n"),
	        BS_CLASS_DSN);
	/* English: Postfix, Exim, qmail, Exchange, Gmail. */
	assert_int_equal(
	        classify("", "Subject: x\n\nThis is the mail system at host\n"
	                     "mx.example.net.\n"),
	        BS_CLASS_DSN);
	assert_int_equal(
	        classify(NULL, "Auto-Submitted: auto-replied\nSubject: x\n\n"
	                       "This message was created automatically by mail "
	                       "delivery\n"
	                       "software.\n"),
	        BS_CLASS_DSN);
	assert_int_equal(classify("", "Subject: x\n\nHi. This is the "
	                              "qmail-send program at a.\n"),
	        BS_CLASS_DSN);
	assert_int_equal(classify("", "Subject: x\n\nDelivery has failed to "
	                              "these recipients or "
	                              "groups:\n"),
	        BS_CLASS_DSN);
}

static void
test_autoreply_and_challenge(void **state)
{
	(void)state;
	assert_int_equal(
	        classify(NULL,
	                "Auto-Submitted: auto-replied\nSubject: Automatic "
	                "reply: "
	                "meeting\n\nI am out of the office until Monday.\n"),
	        BS_CLASS_AUTOREPLY);
	assert_int_equal(classify(NULL, "Subject: Abwesenheitsnotiz: "
	                                "Termin\n\nIch bin bis Montag "
	                                "nicht im B\xc3\xbcro.\n"),
	        BS_CLASS_AUTOREPLY);
	assert_int_equal(
	        classify(NULL,
	                "Auto-Submitted: auto-replied\nSubject: Re: hello\n\n"
	                "Please confirm that you are a human by clicking the "
	                "link\n"),
	        BS_CLASS_CHALLENGE);
}

static void
test_not_bounces(void **state)
{
	(void)state;
	/* A parcel notice from a no-reply sender: automatic, not a bounce. */
	assert_int_equal(
	        classify(NULL,
	                "From: Parcel Service <no-reply@parcels.example>\n"
	                "Precedence: bulk\n"
	                "Subject: Delivery failed: we could not deliver your "
	                "parcel\n"
	                "\nThe delivery failed. Your package could not be "
	                "delivered.\n"
	                "Status: 5.0.0 is your tracking status\n"),
	        BS_CLASS_NONE);
	/* A newsletter about mail delivery. */
	assert_int_equal(
	        classify(NULL,
	                "From: news@isp.example\nPrecedence: list\n"
	                "Subject: Undeliverable mail and how to avoid it\n\n"
	                "Mailbox full? User unknown? Read on.\n"),
	        BS_CLASS_NONE);
	/* A person forwarding a bounce: not automatic, not scanned. */
	assert_int_equal(
	        classify("bob@example.com",
	                "From: bob@example.com\nSubject: Fwd: Undelivered Mail "
	                "Returned "
	                "to Sender\n\nThis is the mail system at host a.\n"),
	        BS_CLASS_NONE);
}

static char *
slurp(const char *name)
{
	char path[4096];
	FILE *f;
	char *b;
	long n;

	snprintf(path, sizeof(path), "%s/%s", msg_dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot read %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	b[n] = '\0';
	fclose(f);
	return b;
}

/*
 * Each message with its envelope sender as the appliance sees it, and with
 * the envelope unknown (backstop-classify): the same class both ways.
 */
static void
test_unseen_kinds(void **state)
{
	static const struct {
		const char *file, *mail_from;
		enum bs_class want;
	} cases[] = {
	        {"av-gateway-notice.eml", "mailsecurity@gw.example.net",
	                BS_CLASS_DSN},
	        {"list-manager-reject.eml",
	                "owner-ASTRO-L@LISTSERV.EXAMPLE.EDU", BS_CLASS_DSN},
	        {"named-sender-ndr.eml",
	                "prvs=0123abcd45=mailservice@isp.example",
	                BS_CLASS_DSN},
	        {"sieve-reject-mdn.eml", "", BS_CLASS_DSN},
	        /* A daemon From and an attached message, nothing else: not
	         * a bounce, whatever the envelope. */
	        {"structure-only-not-bounce.eml", "archive@example.com",
	                BS_CLASS_NONE},
	        {"structure-only-not-bounce.eml", "", BS_CLASS_NONE},
	        /* A person's reply to a bounce, quoting it. */
	        {"reply-to-bounce-not-bounce.eml", "erin@example.com",
	                BS_CLASS_NONE},
	};

	unsigned int bad = 0;

	(void)state;
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *m = slurp(cases[i].file);
		enum bs_class got = classify(cases[i].mail_from, m);
		enum bs_class got_offline = classify(NULL, m);

		if (got != cases[i].want || got_offline != cases[i].want) {
			printf("FAIL %s (MAIL FROM:<%s>): %s, offline %s, "
			       "want %s\n",
			        cases[i].file, cases[i].mail_from,
			        bs_class_name(got), bs_class_name(got_offline),
			        bs_class_name(cases[i].want));
			bad++;
		}
		free(m);
	}
	assert_int_equal(bad, 0);
}

/*
 * A bounce's marks that are not a null sender: MAILER-DAEMON as the
 * envelope sender (some MTAs send from it, some BATV-tagged), and
 * Return-Path: <MAILER-DAEMON>, which is how Sendmail writes a null
 * sender when it delivers (the offline classifier's only view of it).
 */
static void
test_daemon_sender(void **state)
{
	static const char ndr[] = "From: Mail Server <mail@mx.example.net>\n"
	                          "Subject: Notification\n"
	                          "\n"
	                          "Sorry, delivery to <x@example.org> failed:\n"
	                          "550 5.1.1 user unknown\n";

	(void)state;
	assert_int_equal(classify("bob@example.net", ndr), BS_CLASS_NONE);
	assert_int_equal(classify("MAILER-DAEMON@mx.example.net", ndr),
	        BS_CLASS_DSN);
	assert_int_equal(classify("prvs=1234567890=postmaster@mx.example.net",
	                         ndr),
	        BS_CLASS_DSN);
	assert_int_equal(classify("mailer-daemon.notes@example.net", ndr),
	        BS_CLASS_NONE);
	{
		char with_rp[512];

		snprintf(with_rp, sizeof(with_rp),
		        "Return-Path: <MAILER-DAEMON@mx.example.net>\n%s", ndr);
		assert_int_equal(classify(NULL, with_rp), BS_CLASS_DSN);
		snprintf(with_rp, sizeof(with_rp),
		        "Return-Path: <MAILER-DAEMON>\n%s", ndr);
		assert_int_equal(classify(NULL, with_rp), BS_CLASS_DSN);
	}
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_languages),
	        cmocka_unit_test(test_autoreply_and_challenge),
	        cmocka_unit_test(test_not_bounces),
	        cmocka_unit_test(test_unseen_kinds),
	        cmocka_unit_test(test_daemon_sender),
	};

	if (argc != 3) {
		fprintf(stderr,
		        "usage: test_rulepack RULES_FILE MESSAGES_DIR\n");
		return 2;
	}
	rules_path = argv[1];
	msg_dir = argv[2];
	return cmocka_run_group_tests(tests, setup, teardown);
}
