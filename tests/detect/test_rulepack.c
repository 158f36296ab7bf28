/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The default rule pack on hand-made messages: each language's wording in
 * its usual charset (ISO-2022-JP, GB2312, KOI8-R, ISO-8859-1), and
 * automatic mail that must not be taken for a bounce (parcel notices,
 * newsletters, forwarded bounces).  The corpus test covers real messages;
 * this one covers what the corpus lacks.
 *
 *   test_rulepack RULES_FILE
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

static const char *rules_path;
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

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_languages),
	        cmocka_unit_test(test_autoreply_and_challenge),
	        cmocka_unit_test(test_not_bounces),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_rulepack RULES_FILE\n");
		return 2;
	}
	rules_path = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
