/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The embedded original's raw header block (struct bs_original.hdr_raw,
 * contract 3 in the helpers' CONTRACTS.md): what the verdict stage hands
 * to DKIM verification and reads the Received chain from.
 *
 *   test_orig_hdr CORPUS_DIR
 *
 * Real bounces from ../shared/corpus (a Postfix message/rfc822 original
 * with two DKIM-Signature fields, an Exim inline copy, a PowerMTA
 * text/rfc822-headers part with a DKIM-Signature), the same header block
 * re-sent base64 and quoted-printable encoded, the cap, an mbox From_
 * line, charsets.  The expected bytes are cut out of the file here, by a
 * few lines of code that know nothing of the parser: the lines after the
 * part's (or marker's) blank line, up to the next blank line, each ending
 * in CRLF.  Every case is also fed in 1- and 7-byte chunks.
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
#include "backstop/mime.h"
#include "backstop/rules.h"

static const char *corpus;

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void
put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void
puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static struct buf
slurp(const char *name)
{
	char path[4096];
	struct buf b = {0};
	FILE *f;
	uint8_t tmp[65536];
	size_t k;

	snprintf(path, sizeof(path), "%s/ndr/sisimai/%s", corpus, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("missing prerequisite: corpus file %s", path);
	while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
		put(&b, tmp, k);
	fclose(f);
	return b;
}

/* Next line of b from *off: [*ls, *le) without its CR LF; false at end. */
static bool
next_line(const struct buf *b, size_t *off, size_t *ls, size_t *le)
{
	size_t i = *off;

	if (i >= b->n)
		return false;
	*ls = i;
	while (i < b->n && b->p[i] != '\n')
		i++;
	*le = i;
	if (*le > *ls && b->p[*le - 1] == '\r')
		(*le)--;
	*off = i < b->n ? i + 1 : i;
	return true;
}

/*
 * The original's header lines, cut out of the file: after the first line
 * equal to marker, (part: skip the part's own header to its blank line),
 * skip blank lines, then every line up to the next blank one, + CRLF.
 */
static struct buf
expect_hdr(const struct buf *b, const char *marker, bool part)
{
	struct buf out = {0};
	size_t off = 0, ls, le;
	int state = 0; /* 0 find marker, 1 part header, 2 blanks, 3 lines */

	put(&out, "", 0);
	while (next_line(b, &off, &ls, &le)) {
		size_t n = le - ls;
		const uint8_t *p = b->p + ls;

		if (state == 0) {
			if (n == strlen(marker) && memcmp(p, marker, n) == 0)
				state = part ? 1 : 2;
		} else if (state == 1) {
			if (n == 0)
				state = 2;
		} else if (state == 2 && n == 0) {
			continue;
		} else {
			if (n == 0)
				break;
			state = 3;
			put(&out, p, n);
			put(&out, "\r\n", 2);
		}
	}
	assert_int_equal(state, 3); /* the marker was found */
	return out;
}

/* Parse b with the MIME parser in chunks (0: whole); *in is the result. */
static void
parse(const struct buf *b, size_t chunk, struct bs_mime_info *in)
{
	static struct bs_mime m;

	bs_mime_init(&m, in, NULL, NULL, NULL, BS_TGT_ALL);
	for (size_t off = 0; off < b->n;) {
		size_t k = chunk && chunk < b->n - off ? chunk : b->n - off;

		bs_mime_feed(&m, b->p + off, k);
		off += k;
	}
	bs_mime_end(&m);
}

static struct bs_mime_info info;

/* Parse whole, in 1- and 7-byte chunks; hdr_raw must equal want each
 * time.  Returns the (whole) result in info. */
static void
check_raw(const struct buf *msg, const struct buf *want, uint8_t source)
{
	static const size_t chunks[] = {1, 7, 0};

	for (unsigned int c = 0; c < 3; c++) {
		parse(msg, chunks[c], &info);
		assert_true(info.orig.present);
		assert_int_equal(info.orig.source, source);
		assert_false(info.orig.hdr_raw_cut);
		if (info.orig.hdr_raw_len != want->n ||
		        memcmp(info.orig.hdr_raw, want->p, want->n) != 0) {
			fprintf(stderr, "chunk %zu: got %u bytes:\n%.*s\n--- want "
			                "%zu:\n%s\n",
			        chunks[c], info.orig.hdr_raw_len,
			        (int)info.orig.hdr_raw_len, info.orig.hdr_raw,
			        want->n, want->p);
			fail();
		}
	}
}

/* Postfix: message/rfc822, two DKIM-Signature fields folded with tabs. */
static void
test_postfix_rfc822(void **state)
{
	struct buf msg = slurp("lhost-postfix-76.eml");
	struct buf want = expect_hdr(&msg, "Content-Type: message/rfc822", 1);

	(void)state;
	check_raw(&msg, &want, BS_ORIG_RFC822);
	assert_int_equal(info.orig.n_dkim, 2);
	/* The fold is kept byte for byte, and the block ends with the
	 * original's last field (its blank line excluded). */
	assert_non_null(strstr((const char *)info.orig.hdr_raw,
	        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
	        "d=example.jp;\r\n\ts=cr7e05; t=1658887004;\r\n"));
	assert_true(want.n > 100);
	{
		static const char last[] =
		        "X-Virus-Scanned: ClamAV using ClamSMTP\r\n";

		assert_memory_equal(info.orig.hdr_raw + want.n -
		                (sizeof(last) - 1),
		        last, sizeof(last) - 1);
	}
	free(msg.p);
	free(want.p);
}

/* Exim: the original copied inline after its marker line (LF file). */
static void
test_exim_inline(void **state)
{
	struct buf msg = slurp("lhost-exim-01.eml");
	struct buf want = expect_hdr(&msg,
	        "------ This is a copy of the message, including all the "
	        "headers. ------",
	        0);

	(void)state;
	check_raw(&msg, &want, BS_ORIG_INLINE);
	assert_memory_equal(
	        info.orig.hdr_raw, "Return-path: <shironeko@example.jp>\r\n", 37);
	free(msg.p);
	free(want.p);
}

/* PowerMTA: text/rfc822-headers carrying a DKIM-Signature. */
static void
test_powermta_headers(void **state)
{
	struct buf msg = slurp("lhost-powermta-03.eml");
	struct buf want = expect_hdr(&msg, "Content-Type: text/rfc822-headers", 1);

	(void)state;
	check_raw(&msg, &want, BS_ORIG_HEADERS);
	assert_int_equal(info.orig.n_dkim, 1);
	free(msg.p);
	free(want.p);
}

static void
b64_encode(struct buf *o, const struct buf *in)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                        "0123456789+/";
	size_t col = 0;

	for (size_t i = 0; i < in->n; i += 3) {
		uint32_t v = (uint32_t)in->p[i] << 16;
		char q[4];

		if (i + 1 < in->n)
			v |= (uint32_t)in->p[i + 1] << 8;
		if (i + 2 < in->n)
			v |= in->p[i + 2];
		q[0] = t[v >> 18 & 63];
		q[1] = t[v >> 12 & 63];
		q[2] = i + 1 < in->n ? t[v >> 6 & 63] : '=';
		q[3] = i + 2 < in->n ? t[v & 63] : '=';
		put(o, q, 4);
		if ((col += 4) == 76) {
			put(o, "\r\n", 2);
			col = 0;
		}
	}
	put(o, "\r\n", 2);
}

/* RFC 2045 6.7: '=' and 8-bit as =XX, trailing white space encoded, soft
 * breaks so that no encoded line exceeds 76 characters; hard CRLF kept. */
static void
qp_encode(struct buf *o, const struct buf *in)
{
	size_t col = 0;

	for (size_t i = 0; i < in->n; i++) {
		uint8_t c = in->p[i];
		char e[4];
		size_t k;
		bool eol = i + 1 < in->n && c == '\r' && in->p[i + 1] == '\n';

		if (eol) {
			put(o, "\r\n", 2);
			col = 0;
			i++;
			continue;
		}
		bool ws_end = (c == ' ' || c == '\t') &&
		              (i + 1 >= in->n || in->p[i + 1] == '\r');

		if (c == '=' || c >= 127 || (c < 32 && c != '\t') || ws_end) {
			snprintf(e, sizeof(e), "=%02X", c);
			k = 3;
		} else {
			e[0] = (char)c;
			k = 1;
		}
		if (col + k > 75) {
			put(o, "=\r\n", 3);
			col = 0;
		}
		put(o, e, k);
		col += k;
	}
}

/* The PowerMTA original's header block, re-sent base64 and QP encoded in
 * text/rfc822-headers and message/rfc822 parts: hdr_raw is the decoded
 * block, exactly. */
static void
test_encoded_parts(void **state)
{
	struct buf src = slurp("lhost-powermta-03.eml");
	struct buf block = expect_hdr(&src, "Content-Type: text/rfc822-headers", 1);
	static const char *const types[] = {"text/rfc822-headers",
	        "message/rfc822"};

	(void)state;
	for (unsigned int t = 0; t < 2; t++)
		for (unsigned int e = 0; e < 2; e++) {
			struct buf msg = {0};

			puts_(&msg, "From: MAILER-DAEMON@mx.example.net\r\n"
			            "Content-Type: multipart/report; "
			            "report-type=delivery-status; boundary=\"b\"\r\n"
			            "\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
			            "Delivery failed.\r\n--b\r\nContent-Type: ");
			puts_(&msg, types[t]);
			puts_(&msg, e ? "\r\nContent-Transfer-Encoding: base64\r\n\r\n"
			              : "\r\nContent-Transfer-Encoding: "
			                "quoted-printable\r\n\r\n");
			if (e) {
				b64_encode(&msg, &block);
			} else {
				qp_encode(&msg, &block);
				puts_(&msg, "\r\n");
			}
			puts_(&msg, "--b--\r\n");
			check_raw(&msg, &block,
			        t ? BS_ORIG_RFC822 : BS_ORIG_HEADERS);
			assert_int_equal(info.orig.n_dkim, 1);
			assert_string_equal(info.orig.received[0].by_host,
			        "mx2.neko.example.com");
			free(msg.p);
		}
	free(src.p);
	free(block.p);
}

/* Over the cap: cut at the last whole field that fits (a folded field is
 * never kept in part), flagged, and counted by the detector. */
static void
test_cap(void **state)
{
	struct buf msg = {0}, want = {0};
	struct bs_counters cnt = {0};
	char line[128], err[128];
	struct bs_ruleset *rs;
	struct bs_detect_ctx *ctx;
	struct bs_msg *dm;
	static struct bs_detect_result res;
	int i;

	(void)state;
	puts_(&msg, "From: MAILER-DAEMON@mx.example.net\n"
	            "Content-Type: multipart/report; report-type=delivery-status;"
	            " boundary=b\n\n--b\nContent-Type: message/rfc822\n\n");
	put(&want, "", 0);
	for (i = 0; want.n < BS_ORIG_HDR_RAW_MAX - 200; i++) {
		snprintf(line, sizeof(line), "X-Filler-%04d: %s\n", i,
		        "0123456789012345678901234567890123456789012345678");
		puts_(&msg, line);
		line[strlen(line) - 1] = '\0';
		puts_(&want, line);
		puts_(&want, "\r\n");
	}
	/* A folded field of 3 x 100 bytes that crosses the cap. */
	puts_(&msg, "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; "
	            "s=s1; h=from:to:subject:date:message-id; b=AAAAAAAAAAAA\n"
	            "\tBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	            "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n"
	            "\tCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
	            "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC\n"
	            "Message-ID: <after-the-cap@example.org>\n\nbody\n--b--\n");
	assert_true(want.n + 300 > BS_ORIG_HDR_RAW_MAX);
	parse(&msg, 0, &info);
	assert_true(info.orig.hdr_raw_cut);
	assert_int_equal(info.orig.hdr_raw_len, want.n);
	assert_memory_equal(info.orig.hdr_raw, want.p, want.n);
	assert_true(info.anomalies & BS_MIME_A_ORIG_HDR_CUT);
	/* The parsed fields do not depend on the cap. */
	assert_string_equal(info.orig.message_id, "<after-the-cap@example.org>");
	assert_int_equal(info.orig.n_dkim, 1);
	parse(&msg, 7, &info);
	assert_int_equal(info.orig.hdr_raw_len, want.n);

	/* Through the detector: the result carries the block, the cut is
	 * counted. */
	rs = bs_ruleset_parse("", 0, "none", err, sizeof(err));
	ctx = bs_detect_ctx_create(rs);
	bs_detect_ctx_set_counters(ctx, &cnt);
	dm = bs_msg_begin(ctx, "", NULL, 0);
	bs_msg_feed(dm, msg.p, msg.n);
	bs_msg_end(dm, &res);
	assert_true(res.mime.orig.hdr_raw_cut);
	assert_int_equal(res.mime.orig.hdr_raw_len, want.n);
	assert_memory_equal(res.mime.orig.hdr_raw, want.p, want.n);
	assert_int_equal(cnt.v[BS_CNT_detect_orig_hdr_cut], 1);
	bs_detect_ctx_free(ctx);
	bs_ruleset_free(rs);
	free(msg.p);
	free(want.p);
}

/*
 * An mbox From_ line before the original's header is not a field: left
 * out (message/rfc822 part, and inline after a marker, as the bounce in
 * the corpus's rb-issue-368-bug.eml writes it).  Bare LF and CRLF mixed
 * come out as CRLF; header bytes of a text part in Latin-1 are kept as
 * carried (not converted), so a verifier sees what was signed.
 */
static void
test_mbox_from_and_bytes(void **state)
{
	static const char rfc[] =
	        "From: MAILER-DAEMON@mx.example.net\n"
	        "Content-Type: multipart/mixed; boundary=b\n\n"
	        "--b\nContent-Type: message/rfc822\n\n"
	        "From alice@example.org  Sat Oct  4 08:00:07 2025\r\n"
	        "Received: from a.example.org\n\tby b.example.net; x\r\n"
	        "Subject: hi\n\nbody\n--b--\n";
	static const char inl[] =
	        "From: postmaster@example.net\n"
	        "Content-Type: text/plain; charset=iso-8859-1\n\n"
	        "bounced E-Mail:\n\n"
	        "From alice@example.org  Sat Oct  4 08:00:07 2025\n"
	        "Date: Sat, 04 Oct 2025 06:00:03 +0000\n"
	        "Subject: r\xe9union\n"
	        "\n"
	        "text\n";
	struct buf m = {0};

	(void)state;
	puts_(&m, rfc);
	parse(&m, 0, &info);
	assert_int_equal(info.orig.hdr_raw_len,
	        strlen("Received: from a.example.org\r\n\tby b.example.net; "
	               "x\r\nSubject: hi\r\n"));
	assert_memory_equal(info.orig.hdr_raw,
	        "Received: from a.example.org\r\n\tby b.example.net; x\r\n"
	        "Subject: hi\r\n",
	        info.orig.hdr_raw_len);
	m.n = 0;
	puts_(&m, inl);
	parse(&m, 3, &info);
	assert_true(info.orig.present);
	assert_int_equal(info.orig.source, BS_ORIG_INLINE);
	assert_string_equal(info.orig.subject, "r\xc3\xa9union");
	assert_int_equal(info.orig.hdr_raw_len,
	        strlen("Date: Sat, 04 Oct 2025 06:00:03 +0000\r\n"
	               "Subject: r\xe9union\r\n"));
	assert_memory_equal(info.orig.hdr_raw,
	        "Date: Sat, 04 Oct 2025 06:00:03 +0000\r\nSubject: r\xe9union\r\n",
	        info.orig.hdr_raw_len);
	free(m.p);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_postfix_rfc822),
	        cmocka_unit_test(test_exim_inline),
	        cmocka_unit_test(test_powermta_headers),
	        cmocka_unit_test(test_encoded_parts),
	        cmocka_unit_test(test_cap),
	        cmocka_unit_test(test_mbox_from_and_bytes),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_orig_hdr CORPUS_DIR\n");
		return 2;
	}
	corpus = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
