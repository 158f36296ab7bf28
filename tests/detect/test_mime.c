/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the MIME/DSN parser: header unfolding, RFC 2047, nested
 * multiparts, base64 and quoted-printable, delivery-status fields, the
 * embedded original (message/rfc822, text/rfc822-headers, quoted inline),
 * caps, and that chunking never changes the result.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backstop/mime.h"

/* What the scan callback saw, per target. */
struct seen {
	char body[8192];
	size_t body_len;
	char all[16384];
	size_t all_len;
	uint32_t targets;
	int hdr_done;
};

static void
on_scan(void *arg, uint32_t tgt, const uint8_t *p, size_t n)
{
	struct seen *s = arg;

	s->targets |= tgt;
	if ((tgt & BS_TGT_BODY) && s->body_len + n < sizeof(s->body)) {
		memcpy(s->body + s->body_len, p, n);
		s->body_len += n;
		s->body[s->body_len] = '\0';
	}
	if (s->all_len + n < sizeof(s->all)) {
		memcpy(s->all + s->all_len, p, n);
		s->all_len += n;
		s->all[s->all_len] = '\0';
	}
}

static void
on_hdr(void *arg)
{
	((struct seen *)arg)->hdr_done++;
}

/* Parse text fed in chunks of `chunk` bytes (0: all at once). */
static void
parse(const char *text, size_t chunk, struct bs_mime_info *info, struct seen *s)
{
	static struct bs_mime m;
	size_t len = strlen(text), off = 0;

	memset(s, 0, sizeof(*s));
	bs_mime_init(&m, info, on_scan, on_hdr, s, BS_TGT_ALL);
	while (off < len) {
		size_t n = chunk ? chunk : len;

		if (n > len - off)
			n = len - off;
		bs_mime_feed(&m, (const uint8_t *)text + off, n);
		off += n;
	}
	bs_mime_end(&m);
}

static const char dsn_msg[] =
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        "Subject: Undelivered Mail Returned\r\n"
        "\tto Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
        "\r\n"
        "preamble\r\n"
        "--outer\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        "  boundary=\"inner\"\r\n"
        "\r\n"
        "--inner\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        /* "This is the mail system at host mx.example.net.\n" */
        "VGhpcyBpcyB0aGUgbWFpbCBzeXN0ZW0gYXQgaG9zdCBteC5leGFtcGxlLm5ldC4K\r\n"
        "--inner\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n"
        "\r\n"
        "Final-Recipient: rfc822; nobody@example.org\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>:\r\n"
        "    Recipient address rejected\r\n"
        "\r\n"
        "Final-Recipient: rfc822; second@example.org\r\n"
        "Action: delayed\r\n"
        "Status: 4.4.1\r\n"
        "\r\n"
        "--inner\r\n"
        "Content-Type: message/rfc822\r\n"
        "\r\n"
        "Received: from helo.example.com (rdns.example.com [192.0.2.1])\r\n"
        "\tby mx.example.com (Postfix) with ESMTP id 1234;\r\n"
        "\tMon, 1 Jan 2024 00:00:00 +0000\r\n"
        "Received: from [IPv6:2001:db8::1] (helo=x)\r\n"
        "\tby relay.example.com with esmtp\r\n"
        "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1;\r\n"
        "\tb=abc\r\n"
        "Message-ID: <orig-1@example.com>\r\n"
        "From: Alice <alice@example.com>\r\n"
        "To: nobody@example.org\r\n"
        "Subject: =?UTF-8?B?SGVsbG8=?= =?UTF-8?Q?_W=C3=B6rld?=\r\n"
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        "\r\n"
        "original body\r\n"
        "--inner--\r\n"
        "--outer--\r\n";

static void
test_nested_dsn(void **state)
{
	struct bs_mime_info in;
	struct seen s;

	(void)state;
	parse(dsn_msg, 0, &in, &s);
	assert_int_equal(s.hdr_done, 1);
	assert_string_equal(in.content_type, "multipart/mixed");
	assert_string_equal(in.report_type, "delivery-status");
	/* Folded subject, unfolded. */
	assert_string_equal(in.subject, "Undelivered Mail Returned to Sender");
	assert_true(in.auto_flags & BS_AUTO_NULL_RP);
	assert_true(in.auto_flags & BS_AUTO_DAEMON_FROM);
	assert_true(in.auto_flags & BS_AUTO_REPLIED);
	assert_false(in.auto_flags & BS_AUTO_REPORT_CT);
	/* DSN fields: first recipient only, folded Diagnostic-Code joined. */
	assert_true(in.dsn.present);
	assert_int_equal(in.dsn.n_rcpt, 2);
	assert_string_equal(in.dsn.reporting_mta, "dns; mx.example.net");
	assert_string_equal(
	        in.dsn.final_recipient, "rfc822; nobody@example.org");
	assert_string_equal(in.dsn.action, "failed");
	assert_string_equal(in.dsn.status, "5.1.1");
	assert_string_equal(in.dsn.diagnostic_code,
	        "smtp; 550 5.1.1 <nobody@example.org>: Recipient address "
	        "rejected");
	/* The original. */
	assert_true(in.orig.present);
	assert_int_equal(in.orig.source, BS_ORIG_RFC822);
	assert_string_equal(in.orig.message_id, "<orig-1@example.com>");
	assert_string_equal(in.orig.from, "Alice <alice@example.com>");
	assert_string_equal(in.orig.to, "nobody@example.org");
	assert_string_equal(in.orig.subject, "Hello W\xc3\xb6rld");
	assert_int_equal(in.orig.n_received, 2);
	assert_string_equal(in.orig.received[0].from_host, "helo.example.com");
	assert_string_equal(in.orig.received[0].from_rdns, "rdns.example.com");
	assert_string_equal(in.orig.received[0].from_ip, "192.0.2.1");
	assert_string_equal(in.orig.received[0].by_host, "mx.example.com");
	assert_string_equal(in.orig.received[1].from_ip, "2001:db8::1");
	assert_string_equal(in.orig.received[1].by_host, "relay.example.com");
	assert_int_equal(in.orig.n_dkim, 1);
	assert_string_equal(in.orig.dkim[0],
	        "v=1; a=rsa-sha256; d=example.com; s=s1;\r\n\tb=abc");
	/* base64 text decoded for the scanner, tagged body. */
	assert_non_null(strstr(s.body, "This is the mail system at host"));
	assert_null(strstr(s.body, "original body"));
	assert_true(s.targets & BS_TGT_DSN);
	assert_true(s.targets & BS_TGT_ORIGINAL);
	assert_true(s.targets & BS_TGT_SUBJECT);
	assert_int_equal(in.anomalies, 0);
}

static void
test_chunking(void **state)
{
	struct bs_mime_info a, b;
	struct seen sa, sb;

	(void)state;
	parse(dsn_msg, 0, &a, &sa);
	for (size_t c = 1; c < 40; c++) {
		parse(dsn_msg, c, &b, &sb);
		assert_int_equal(bs_mime_info_used(&a), bs_mime_info_used(&b));
		assert_true(bs_mime_info_same(&a, &b));
		assert_string_equal(sa.all, sb.all);
	}
}

/* Lines of exactly LINE_MAX bytes (CR included or not), and longer, give
 * the same result whatever the chunking (found by fuzz_mime). */
static void
test_long_lines_chunking(void **state)
{
	static char msg[20000];
	struct bs_mime_info a, b;
	static struct seen sa, sb;
	size_t o = 0;

	(void)state;
	o += (size_t)snprintf(msg, sizeof(msg),
	        "Return-Path: <>\nContent-Type: text/plain\n\n");
	for (size_t len = BS_MIME_LINE_MAX - 2; len <= BS_MIME_LINE_MAX + 2;
	        len++) {
		memset(msg + o, 'a', len);
		o += len;
		memcpy(msg + o, len % 2 ? "\r\n" : "\n", len % 2 ? 2 : 1);
		o += len % 2 ? 2 : 1;
	}
	memset(msg + o, 'b', 2 * BS_MIME_LINE_MAX);
	o += 2 * BS_MIME_LINE_MAX;
	msg[o++] = '\n';
	msg[o] = '\0';
	parse(msg, 0, &a, &sa);
	for (size_t c = 1; c < 64; c++) {
		parse(msg, c, &b, &sb);
		assert_int_equal(bs_mime_info_used(&a), bs_mime_info_used(&b));
		assert_true(bs_mime_info_same(&a, &b));
		assert_int_equal(sa.all_len, sb.all_len);
		assert_memory_equal(sa.all, sb.all, sa.all_len);
	}
}

static void
test_lf_and_crlf_same(void **state)
{
	struct bs_mime_info a, b;
	struct seen sa, sb;
	char *lf = strdup(dsn_msg);
	size_t o = 0;

	(void)state;
	for (size_t i = 0; lf[i]; i++)
		if (lf[i] != '\r')
			lf[o++] = lf[i];
	lf[o] = '\0';
	parse(dsn_msg, 0, &a, &sa);
	parse(lf, 7, &b, &sb);
	assert_int_equal(bs_mime_info_used(&a), bs_mime_info_used(&b));
	assert_true(bs_mime_info_same(&a, &b));
	free(lf);
}

static void
test_rfc2047(void **state)
{
	char out[64];
	const char *s;

	(void)state;
	s = "=?ISO-8859-1?Q?Andr=E9?= Pirard";
	bs_mime_decode_2047(out, sizeof(out), s, strlen(s));
	assert_string_equal(out, "Andr\xc3\xa9 Pirard");
	/* Space between two encoded words goes; other text stays. */
	s = "=?utf-8?b?YQ==?=  =?utf-8?b?Yg==?= c";
	bs_mime_decode_2047(out, sizeof(out), s, strlen(s));
	assert_string_equal(out, "ab c");
	/* Not an encoded word: copied. */
	s = "=?broken plain";
	bs_mime_decode_2047(out, sizeof(out), s, strlen(s));
	assert_string_equal(out, "=?broken plain");
	/* Cut at the destination size. */
	s = "=?utf-8?q?0123456789?=";
	bs_mime_decode_2047(out, 5, s, strlen(s));
	assert_string_equal(out, "0123");
}

static void
test_qp_and_headers_part(void **state)
{
	static const char msg[] =
	        "From: postmaster@example.net\n"
	        "Content-Type: multipart/report; report-type=delivery-status; "
	        "boundary=b\n"
	        "\n"
	        "--b\n"
	        "Content-Type: text/plain\n"
	        "Content-Transfer-Encoding: quoted-printable\n"
	        "\n"
	        "Your message could not be deliv=\n"
	        "ered: caf=C3=A9\n"
	        "--b\n"
	        "Content-Type: text/rfc822-headers\n"
	        "\n"
	        "Message-Id: <h@example.com>\n"
	        "Subject: hi\n"
	        "\n"
	        "--b--\n";
	struct bs_mime_info in;
	struct seen s;

	(void)state;
	parse(msg, 3, &in, &s);
	assert_non_null(strstr(
	        s.body, "Your message could not be delivered: caf\xc3\xa9\n"));
	assert_true(in.auto_flags & BS_AUTO_REPORT_CT);
	assert_true(in.orig.present);
	assert_int_equal(in.orig.source, BS_ORIG_HEADERS);
	assert_string_equal(in.orig.message_id, "<h@example.com>");
	assert_string_equal(in.orig.subject, "hi");
}

static void
test_inline_original(void **state)
{
	static const char msg[] =
	        "From: MAILER-DAEMON@example.net\n"
	        "Subject: failure notice\n"
	        "\n"
	        "Hi. This is the qmail-send program at example.net.\n"
	        "<x@example.org>:\n"
	        "Sorry, no mailbox here by that name.\n"
	        "\n"
	        "--- Below this line is a copy of the message.\n"
	        "\n"
	        "Return-Path: <alice@example.com>\n"
	        "Received: (qmail 1 invoked from network); 1 Jan 2024\n"
	        "Received: from unknown (HELO smtp5.example.net) "
	        "(192.0.2.201)\n"
	        "  by 0 with SMTP; 29 Apr 2010 23:45:10 -0000\n"
	        "Message-ID: <q@example.com>\n"
	        "From: alice@example.com\n"
	        "\n"
	        "body of the original\n";
	struct bs_mime_info in;
	struct seen s;

	(void)state;
	parse(msg, 0, &in, &s);
	assert_true(in.orig.present);
	assert_int_equal(in.orig.source, BS_ORIG_INLINE);
	assert_string_equal(in.orig.return_path, "<alice@example.com>");
	assert_string_equal(in.orig.message_id, "<q@example.com>");
	assert_int_equal(in.orig.n_received, 2);
	assert_string_equal(in.orig.received[1].from_host, "unknown");
	assert_string_equal(in.orig.received[1].from_rdns, "");
	assert_string_equal(in.orig.received[1].from_ip, "192.0.2.201");
	assert_string_equal(in.orig.received[1].by_host, "0");
	assert_non_null(strstr(s.body, "qmail-send"));
	/* The original's body is not the notification's body. */
	assert_null(strstr(s.body, "body of the original"));
}

static void
test_unindented_fold_and_mbox(void **state)
{
	static const char msg[] =
	        "From MAILER-DAEMON Sat Oct  4 08:00:09 2025\n"
	        "From: a@example.com\n"
	        "Content-Type: multipart/alternative;\n"
	        "boundary=\"zz\"\n"
	        "\n"
	        "--zz\n"
	        "Content-Type: text/plain\n"
	        "\n"
	        "hello\n"
	        "--zz--\n";
	struct bs_mime_info in;
	struct seen s;

	(void)state;
	parse(msg, 0, &in, &s);
	assert_string_equal(in.from, "a@example.com");
	assert_string_equal(s.body, "hello\n");
}

static void
test_caps(void **state)
{
	/* A 5000-byte line, 20 nested multiparts, a 4000-byte header. */
	size_t cap = 200000, o = 0;
	char *msg = malloc(cap);
	struct bs_mime_info in;
	struct seen s;

	(void)state;
	o += (size_t)snprintf(msg + o, cap - o, "Subject: ");
	memset(msg + o, 'x', 4000);
	o += 4000;
	o += (size_t)snprintf(msg + o, cap - o,
	        "\nContent-Type: multipart/mixed; boundary=b0\n\n");
	for (int i = 1; i < 20; i++)
		o += (size_t)snprintf(msg + o, cap - o,
		        "--b%d\nContent-Type: multipart/mixed; "
		        "boundary=b%d\n\n",
		        i - 1, i);
	o += (size_t)snprintf(msg + o, cap - o, "--b19\n\n");
	memset(msg + o, 'y', 5000);
	o += 5000;
	msg[o++] = '\n';
	msg[o] = '\0';
	parse(msg, 0, &in, &s);
	assert_true(in.anomalies & BS_MIME_A_DEPTH);
	assert_true(in.anomalies & BS_MIME_A_HDR_TRUNC);
	assert_true(in.anomalies & BS_MIME_A_LINE_SPLIT);
	assert_true(in.anomalies & BS_MIME_A_UNTERMINATED);
	assert_int_equal(strlen(in.subject), BS_FIELD_MAX - 1);
	free(msg);
}

static void
test_bad_base64_and_garbage(void **state)
{
	static const char msg[] = "Content-Type: text/plain\n"
	                          "Content-Transfer-Encoding: base64\n"
	                          "\n"
	                          "aGVs*bG8=\n";
	struct bs_mime_info in;
	struct seen s;
	uint8_t junk[4096];

	(void)state;
	parse(msg, 0, &in, &s);
	assert_true(in.anomalies & BS_MIME_A_BAD_B64);
	assert_non_null(strstr(s.body, "hello"));
	/* Random bytes: no crash, header never ends. */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7919u >> 3);
	{
		static struct bs_mime m;

		bs_mime_init(&m, &in, on_scan, on_hdr, &s, BS_TGT_ALL);
		bs_mime_feed(&m, junk, sizeof(junk));
		bs_mime_end(&m);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_nested_dsn),
	        cmocka_unit_test(test_chunking),
	        cmocka_unit_test(test_long_lines_chunking),
	        cmocka_unit_test(test_lf_and_crlf_same),
	        cmocka_unit_test(test_rfc2047),
	        cmocka_unit_test(test_qp_and_headers_part),
	        cmocka_unit_test(test_inline_original),
	        cmocka_unit_test(test_unindented_fold_and_mbox),
	        cmocka_unit_test(test_caps),
	        cmocka_unit_test(test_bad_base64_and_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
