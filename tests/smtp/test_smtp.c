/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tests of the SMTP engine over reassembly: golden transcripts (each
 * golden/NAME.smtp beside the expected golden/NAME.json), the
 * segmentation property over real messages of the shared corpus (every
 * cut, reordering, duplication and overlap gives the same records, and
 * the SHA-256 equals that of the message itself), and the session and
 * evasion cases: STARTTLS, mid-stream, desynchronisation, conflicting
 * retransmissions, urgent data, caps.
 *
 * Environment: BS_SMTP_GOLDEN (folder of the transcripts) and BS_CORPUS
 * (the shared mail corpus); meson sets both.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backstop/pkt.h"
#include "harness.h"

static const char *golden_dir = "golden";
static const char *corpus_dir = "../../../shared/corpus";

static char *
read_path(const char *dir, const char *name, const char *ext, size_t *len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s%s", dir, name, ext);
	return (char *)h_read_file(path, len);
}

static void
check_golden(const char *name)
{
	size_t tlen = 0, jlen = 0;
	char *text = read_path(golden_dir, name, ".smtp", &tlen);
	char *want = read_path(golden_dir, name, ".json", &jlen);
	struct h_script s = { 0 };
	struct h_opts o = { .isn_c = 1000, .isn_s = 0xfffff000u, .digest = 1,
		.fin = 1 };
	struct h_out out;

	if (text == NULL || want == NULL)
		fail_msg("golden %s missing in %s", name, golden_dir);
	assert_int_equal(h_script_parse(&s, text, tlen), 0);
	for (uint64_t seed = 0; seed < 40; seed++) {
		o.maxseg = seed == 1 ? 1 : 0;
		o.isn_c = (uint32_t)(seed * 0x9e3779b9u);
		h_run(&s, &o, seed > 1 ? seed : 0, &out);
		if (out.json == NULL || strcmp(out.json, want) != 0) {
			print_error("golden %s seed %lu:\n got: %s\nwant: %s\n",
				name, (unsigned long)seed,
				out.json ? out.json : "(none)", want);
			fail();
		}
		assert_int_equal(out.order_err, 0);
		assert_int_equal(out.drops, 0);
		h_out_free(&out);
	}
	h_script_free(&s);
	free(text);
	free(want);
}

static void
test_golden_basic(void **state)
{
	(void)state;
	check_golden("basic");
}

static void
test_golden_pipelining_multi(void **state)
{
	(void)state;
	check_golden("pipelining_multi");
}

static void
test_golden_bdat(void **state)
{
	(void)state;
	check_golden("bdat");
}

static void
test_golden_auth_starttls(void **state)
{
	(void)state;
	check_golden("auth_starttls");
}

static void
test_golden_early_data(void **state)
{
	(void)state;
	check_golden("early_data");
}

static void
test_golden_lenient(void **state)
{
	(void)state;
	check_golden("lenient");
}

static void
test_golden_rset_arg(void **state)
{
	(void)state;
	check_golden("rset_arg");
}

static void
test_golden_ehlo_refused(void **state)
{
	(void)state;
	check_golden("ehlo_refused");
}

static void
test_golden_data_refused(void **state)
{
	(void)state;
	check_golden("data_refused");
}

static void
test_golden_mail_retry(void **state)
{
	(void)state;
	check_golden("mail_retry");
}

static void
test_golden_bdat_states(void **state)
{
	(void)state;
	check_golden("bdat_states");
}

static void
test_golden_blanks(void **state)
{
	(void)state;
	check_golden("blanks");
}

/* Envelope and greeting around a body, DATA or BDAT. */
static void
session_for(struct h_script *s, const uint8_t *wire, size_t wlen,
	const uint8_t *raw, size_t rlen, int bdat)
{
	char cmd[64];

	h_script_str(s, 1, "220 mx ESMTP\r\n");
	h_script_str(s, 0, "EHLO relay.example.org\r\n");
	h_script_str(s, 1, "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
			   "250 SIZE 100000000\r\n");
	h_script_str(s, 0, "MAIL FROM:<>\r\nRCPT TO:<u@example.net>\r\n");
	if (!bdat) {
		h_script_str(s, 0, "DATA\r\n");
		h_script_str(s, 1, "250 ok\r\n250 ok\r\n354 go\r\n");
		h_script_add(s, 0, wire, wlen);
		h_script_str(s, 0, ".\r\n");
		h_script_str(s, 1, "250 queued\r\n");
	} else {
		/* Two chunks, the second LAST. */
		size_t half = rlen / 2;

		snprintf(cmd, sizeof(cmd), "BDAT %zu\r\n", half);
		h_script_str(s, 0, cmd);
		h_script_add(s, 0, raw, half);
		snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", rlen - half);
		h_script_str(s, 0, cmd);
		h_script_add(s, 0, raw + half, rlen - half);
		h_script_str(s, 1, "250 ok\r\n250 ok\r\n250 chunk\r\n"
				   "250 queued\r\n");
	}
	h_script_str(s, 0, "QUIT\r\n");
	h_script_str(s, 1, "221 bye\r\n");
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Up to max .eml paths of a corpus folder, sorted. */
static size_t
list_eml(const char *sub, char **paths, size_t max)
{
	char dir[1024];
	DIR *d;
	struct dirent *e;
	size_t n = 0;

	snprintf(dir, sizeof(dir), "%s/%s", corpus_dir, sub);
	d = opendir(dir);
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL && n < 4096) {
		size_t l = strlen(e->d_name);
		char *p;

		if (l < 5 || strcmp(e->d_name + l - 4, ".eml") != 0)
			continue;
		p = malloc(strlen(dir) + l + 2);
		sprintf(p, "%s/%s", dir, e->d_name);
		paths[n++] = p;
	}
	closedir(d);
	qsort(paths, n, sizeof(*paths), name_cmp);
	for (size_t i = max; i < n; i++)
		free(paths[i]);
	return n < max ? n : max;
}

/*
 * The property: for corpus messages sent with DATA and with BDAT, 500
 * random segmentations in all (cut, reordered, duplicated, overlapped,
 * sequence numbers anywhere including across the wrap) give the very
 * records of the in-order run, and that record's sha256 and size are
 * those of the message itself.
 */
static void
test_property_corpus(void **state)
{
	static const char *const subs[] = { "ndr/sisimai", "not-ndr/mail-gem",
		"autoreply/sisimai", "feedback/sisimai" };
	char *paths[4096];
	size_t np = 0;
	unsigned int runs = 0, msgs = 0;
	uint64_t rs = 42, peak_ref = 0, peak_rand = 0;

	(void)state;
	for (size_t i = 0; i < 4; i++)
		np += list_eml(subs[i], paths + np, 15);
	if (np == 0)
		fail_msg("no corpus messages under %s", corpus_dir);
	for (size_t i = 0; i < np; i++) {
		size_t len = 0, wlen, clen;
		uint8_t *msg = h_read_file(paths[i], &len), *crlf;
		uint8_t *wire;
		char hex[65], needle[128];

		assert_non_null(msg);
		wire = h_smtp_body(msg, len, &wlen, &crlf, &clen);
		h_sha256_hex(crlf, clen, hex);
		snprintf(needle, sizeof(needle), "\"size\":%zu,\"reply\":250,"
			 "\"sha256\":\"%s\"", clen, hex);
		for (int bdat = 0; bdat < 2; bdat++) {
			struct h_script s = { 0 };
			struct h_opts o = { .isn_c = 77, .isn_s = 99, .digest = 1,
				.fin = 1 };
			struct h_out ref, out;
			unsigned int seeds = (unsigned int)(500 / (np * 2)) + 1;

			session_for(&s, wire, wlen, crlf, clen, bdat);
			h_run(&s, &o, 0, &ref);
			assert_non_null(ref.json);
			if (strstr(ref.json, needle) == NULL) {
				print_error("%s bdat=%d: %s\nwant %s\n",
					paths[i], bdat, ref.json, needle);
				fail();
			}
			assert_int_equal(ref.complete, 1);
			assert_int_equal(ref.order_err, 0);
			if (ref.session_peak > peak_ref)
				peak_ref = ref.session_peak;
			for (unsigned int k = 0; k < seeds; k++) {
				o.isn_c = (uint32_t)h_rand(&rs);
				o.isn_s = (uint32_t)(0xffffffffu -
					(h_rand(&rs) % 4096));
				h_run(&s, &o, h_rand(&rs) | 1, &out);
				if (out.json == NULL ||
					strcmp(out.json, ref.json) != 0) {
					print_error("%s bdat=%d run %u:\n got "
						    "%s\nwant %s\n",
						paths[i], bdat, k,
						out.json ? out.json : "-",
						ref.json);
					fail();
				}
				assert_int_equal(out.order_err, 0);
				assert_int_equal(out.drops, 0);
				assert_int_equal(out.data_bytes, clen);
				if (out.session_peak > peak_rand)
					peak_rand = out.session_peak;
				h_out_free(&out);
				runs++;
			}
			h_out_free(&ref);
			h_script_free(&s);
		}
		msgs++;
		free(msg);
		free(wire);
		free(crlf);
		free(paths[i]);
	}
	print_message("property: %u messages, %u random segmentations; "
		      "session memory %lu bytes at most in order, %lu "
		      "randomly cut\n", msgs, runs, (unsigned long)peak_ref,
		(unsigned long)peak_rand);
	assert_true(runs >= 500);
}

/* Run a transcript given as text once, in order. */
static void
run_text(const char *text, const struct h_opts *o, struct h_out *out)
{
	struct h_script s = { 0 };

	assert_int_equal(h_script_parse(&s, text, strlen(text)), 0);
	h_run(&s, o, 0, out);
	h_script_free(&s);
}

static const char *const simple_txn =
	"S: 220 mx\n"
	"C: EHLO c\n"
	"S: 250-mx\\r\\n250 STARTTLS\n"
	"C: MAIL FROM:<a@b>\n"
	"S: 250 ok\n"
	"C: RCPT TO:<c@d>\n"
	"S: 250 ok\n"
	"C: DATA\n"
	"S: 354 go\n"
	"C: hi\\r\\n.\n"
	"S: 250 ok\n";

static void
test_starttls_stops(void **state)
{
	struct h_opts o = { .isn_c = 1, .isn_s = 2 };
	struct h_out out;
	char text[2048];

	(void)state;
	snprintf(text, sizeof(text), "%s%s", simple_txn,
		"C: STARTTLS\nS: 220 go ahead\nC: \\x16\\x03\\x01garbage\n");
	run_text(text, &o, &out);
	assert_int_equal(out.complete, 1);
	assert_int_equal(out.inspected, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_starttls], 1);
	h_out_free(&out);

	/* Refused STARTTLS: stay in plain text. */
	snprintf(text, sizeof(text), "%s%s%s", "S: 220 mx\nC: EHLO c\n"
		"S: 250 mx\nC: STARTTLS\nS: 454 TLS not available\n",
		simple_txn + strlen("S: 220 mx\nC: EHLO c\n"
			"S: 250-mx\\r\\n250 STARTTLS\n"), "");
	run_text(text, &o, &out);
	assert_int_equal(out.complete, 1);
	assert_int_equal(out.inspected, 1);
	h_out_free(&out);
}

static void
test_midstream_uninspected(void **state)
{
	struct h_opts o = { .isn_c = 1, .isn_s = 2, .no_handshake = 1 };
	struct h_out out;

	(void)state;
	run_text("C: MAIL FROM:<a@b>\nS: 250 ok\n", &o, &out);
	assert_int_equal(out.inspected, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_midstream], 1);
	assert_int_equal(out.begins, 0);
	h_out_free(&out);
}

static void
test_desync_bare_lf_end(void **state)
{
	struct h_opts o = { .isn_c = 1, .isn_s = 2 };
	struct h_out out;
	char text[2048];

	(void)state;
	/* A server that took LF.LF as the end replies inside our DATA. */
	snprintf(text, sizeof(text), "%.*s%s",
		(int)(strstr(simple_txn, "C: hi") - simple_txn), simple_txn,
		"C: hi\\n.\\nMAIL FROM:<x@y>\\r\\n\\!\nS: 250 ok\n");
	run_text(text, &o, &out);
	assert_int_equal(out.inspected, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_desync], 1);
	assert_true(out.cnt.v[BS_CNT_smtp_data_ambiguous_end] >= 1);
	assert_true(out.cnt.v[BS_CNT_smtp_bare_lf] >= 2);
	assert_int_equal(out.complete, 0);
	h_out_free(&out);
}

static void
test_long_lines_and_rcpt_cap(void **state)
{
	struct bs_smtp_params p;
	struct h_opts o = { .isn_c = 1, .isn_s = 2, .params = &p };
	struct h_script s = { 0 };
	struct h_out out;
	char line[4096];

	(void)state;
	bs_smtp_params_default(&p);
	p.smtp_rcpt_max = 3;
	h_script_str(&s, 1, "220 mx\r\n");
	h_script_str(&s, 0, "HELO c\r\n");
	h_script_str(&s, 1, "250 mx\r\n");
	memset(line, 'x', sizeof(line));
	memcpy(line, "MAIL FROM:<long@x> ", 19);
	memcpy(line + 2000, "\r\n", 3);
	h_script_str(&s, 0, line);
	h_script_str(&s, 1, "250 ok\r\n");
	for (int i = 0; i < 5; i++) {
		snprintf(line, sizeof(line), "RCPT TO:<r%d@x>\r\n", i);
		h_script_str(&s, 0, line);
		h_script_str(&s, 1, "250 ok\r\n");
	}
	h_script_str(&s, 0, "DATA\r\n");
	h_script_str(&s, 1, "354 go\r\n");
	memset(line, 'y', 3000);
	memcpy(line + 3000, "\r\n.\r\n", 6);
	h_script_str(&s, 0, line);
	h_script_str(&s, 1, "250 ok\r\n");
	for (uint32_t seg = 0; seg < 2; seg++) {
		o.maxseg = seg ? 7 : 0;
		h_run(&s, &o, 0, &out);
		assert_int_equal(out.complete, 1);
		assert_non_null(strstr(out.json, "\"mail_from\":\"long@x\""));
		assert_non_null(strstr(out.json,
			"\"rcpt\":[\"r0@x\",\"r1@x\",\"r2@x\"],\"size\":3002"));
		assert_int_equal(out.cnt.v[BS_CNT_smtp_line_too_long], 1);
		assert_int_equal(out.cnt.v[BS_CNT_smtp_rcpt_over_cap], 2);
		assert_int_equal(out.cnt.v[BS_CNT_smtp_data_line_long], 1);
		h_out_free(&out);
	}
	h_script_free(&s);
}

/*
 * Evasion at the TCP level, seen through the engine: a retransmission
 * that rewrites MAIL FROM is dropped and the record keeps the first
 * bytes; an urgent byte does not enter the command.
 */
static struct h_out ev_out;

static void
ev_end(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *r)
{
	char buf[BS_SMTP_JSON_MAX(8)];
	int n;

	(void)arg;
	(void)f;
	n = bs_smtp_record_json(r, buf, sizeof(buf));
	assert_true(n > 0);
	free(ev_out.json);
	ev_out.json = strdup(buf);
	ev_out.complete += r->complete;
}

struct drv {
	struct bs_counters cnt;
	struct bs_smtp_ctx *ctx;
	struct bs_smtp_flow *f;
	uint32_t nxt[2];
};

static void
drv_init(struct drv *d)
{
	static const struct bs_smtp_events ev = { .on_txn_end = ev_end };
	struct bs_smtp_params p;
	struct bs_smtp_endpoints ep = { .l3 = BS_L3_IPV6, .cport = 1234,
		.sport = 587 };

	memset(d, 0, sizeof(*d));
	ep.client[15] = 1;
	ep.client[0] = 0x20;
	ep.client[1] = 0x01;
	ep.server[15] = 2;
	bs_smtp_params_default(&p);
	d->ctx = bs_smtp_ctx_create(&p, &ev, NULL, &d->cnt);
	d->f = bs_smtp_flow_new(d->ctx, &ep);
	d->nxt[0] = 0xfffffff0u; /* client stream wraps during the test */
	d->nxt[1] = 5000;
	memset(&ev_out, 0, sizeof(ev_out));
}

static enum bs_seg_verdict
drv_send(struct drv *d, int dir, uint32_t off, const char *data,
	uint8_t flags, uint16_t urg, int advance)
{
	struct bs_seg s = { .data = (const uint8_t *)data,
		.len = (uint32_t)strlen(data), .seq = d->nxt[dir] + off,
		.ack = d->nxt[!dir], .win = 65535,
		.flags = (uint8_t)(BS_TCP_ACK | flags), .urg = urg,
		.to_server = dir == 0 };
	enum bs_seg_verdict v = bs_smtp_flow_input(d->ctx, d->f, &s, 1000);

	if (advance)
		d->nxt[dir] += s.len;
	return v;
}

static void
drv_hs(struct drv *d)
{
	struct bs_seg s = { .seq = d->nxt[0] - 1, .flags = BS_TCP_SYN,
		.to_server = 1 };

	bs_smtp_flow_input(d->ctx, d->f, &s, 0);
	s.seq = d->nxt[1] - 1;
	s.ack = d->nxt[0];
	s.flags = BS_TCP_SYN | BS_TCP_ACK;
	s.to_server = 0;
	bs_smtp_flow_input(d->ctx, d->f, &s, 0);
}

static void
test_evasion_conflict_urgent(void **state)
{
	struct drv d;

	(void)state;
	drv_init(&d);
	drv_hs(&d);
	drv_send(&d, 1, 0, "220 mx\r\n", 0, 0, 1);
	drv_send(&d, 0, 0, "HELO c\r\n", 0, 0, 1);
	drv_send(&d, 1, 0, "250 mx\r\n", 0, 0, 1);
	/* Held out of order, then rewritten: the rewrite is dropped. */
	drv_send(&d, 0, 10, "<real@x>\r\n", 0, 0, 0);
	assert_int_equal(drv_send(&d, 0, 10, "<>\r\nRCPT T", 0, 0, 0),
		BS_SEG_DROP);
	drv_send(&d, 0, 0, "MAIL FROM:", 0, 0, 0);
	d.nxt[0] += 20;
	/* The same rewrite once delivered: dropped too. */
	assert_int_equal(drv_send(&d, 0, (uint32_t)-10, "<>\r\nRCPT T", 0,
				 0, 0), BS_SEG_DROP);
	drv_send(&d, 1, 0, "250 ok\r\n", 0, 0, 1);
	/* Urgent byte inside RCPT: removed, as the server's recv() does. */
	drv_send(&d, 0, 0, "RCPT TO:<uXs@x>\r\n", BS_TCP_URG, 11, 1);
	drv_send(&d, 1, 0, "250 ok\r\n", 0, 0, 1);
	drv_send(&d, 0, 0, "DATA\r\n", 0, 0, 1);
	drv_send(&d, 1, 0, "354 go\r\n", 0, 0, 1);
	drv_send(&d, 0, 0, "x\r\n.\r\n", 0, 0, 1);
	drv_send(&d, 1, 0, "250 ok\r\n", 0, 0, 1);
	assert_int_equal(d.cnt.v[BS_CNT_reasm_overlap_conflict], 2);
	assert_int_equal(d.cnt.v[BS_CNT_reasm_urgent], 1);
	assert_int_equal(ev_out.complete, 1);
	assert_non_null(ev_out.json);
	assert_non_null(strstr(ev_out.json, "\"src\":\"2001::1\",\"sport\":1234,"
					    "\"dst\":\"::2\",\"dport\":587"));
	assert_non_null(strstr(ev_out.json,
		"\"mail_from\":\"real@x\",\"rcpt\":[\"us@x\"],\"size\":3"));
	assert_true(bs_smtp_flow_inspected(d.f));
	bs_smtp_flow_free(d.ctx, d.f, 0);
	bs_smtp_ctx_free(d.ctx);
	free(ev_out.json);
}

static void
test_tiny_segments_pipeline_overflow(void **state)
{
	struct bs_smtp_params p;
	struct h_opts o = { .isn_c = 1, .isn_s = 2, .params = &p, .maxseg = 1 };
	struct h_script s = { 0 };
	struct h_out out;

	(void)state;
	bs_smtp_params_default(&p);
	p.smtp_pipeline_max = 8;
	h_script_str(&s, 1, "220 mx\r\n");
	for (int i = 0; i < 9; i++)
		h_script_str(&s, 0, "NOOP\r\n");
	h_run(&s, &o, 0, &out);
	assert_int_equal(out.inspected, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_pipeline_overflow], 1);
	h_out_free(&out);
	h_script_free(&s);

	/* Overflow on the MAIL itself: begin and end still pair up. */
	h_script_str(&s, 1, "220 mx\r\n");
	for (int i = 0; i < 8; i++)
		h_script_str(&s, 0, "NOOP\r\n");
	h_script_str(&s, 0, "MAIL FROM:<>\r\n");
	h_run(&s, &o, 0, &out);
	assert_int_equal(out.inspected, 0);
	assert_int_equal(out.order_err, 0);
	assert_int_equal(out.begins, 1);
	assert_int_equal(out.ends, 1);
	h_out_free(&out);
	h_script_free(&s);
}

static void
test_bdat_without_chunking_and_hold_cap(void **state)
{
	struct bs_smtp_params p;
	struct h_opts o = { .isn_c = 1, .isn_s = 2, .params = &p };
	struct h_out out;

	(void)state;
	bs_smtp_params_default(&p);
	/* No CHUNKING offered: BDAT is refused, its "chunk" read as
	 * commands, exactly as the server reads it. */
	run_text("S: 220 mx\nC: EHLO c\nS: 250 mx\n"
		 "C: MAIL FROM:<a@b>\\r\\nBDAT 6\\r\\nRSET\\r\\nMAIL FROM:<c@d>\n"
		 "S: 250 ok\\r\\n502 no\\r\\n250 ok\\r\\n250 ok\n", &o, &out);
	assert_int_equal(out.begins, 2);
	assert_int_equal(out.ends, 2);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_bdat], 0);
	assert_int_equal(out.inspected, 1);
	h_out_free(&out);

	/* More than smtp.wait_hold_bytes sent before the 354. */
	p.smtp_wait_hold_bytes = 16;
	run_text("S: 220 mx\nC: HELO c\nS: 250 mx\nC: MAIL FROM:<a@b>\n"
		 "S: 250 ok\nC: RCPT TO:<c@d>\nS: 250 ok\n"
		 "C: DATA\\r\\nSubject: too early for the hold\n",
		&o, &out);
	assert_int_equal(out.inspected, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_wait_overflow], 1);
	assert_int_equal(out.begins, out.ends);
	h_out_free(&out);
}

static void
test_reply_lines_cap_and_unsolicited(void **state)
{
	struct bs_smtp_params p;
	struct h_opts o = { .isn_c = 1, .isn_s = 2, .params = &p };
	struct h_out out;

	(void)state;
	bs_smtp_params_default(&p);
	p.smtp_reply_lines_max = 2;
	run_text("S: 220 mx\nC: EHLO c\n"
		 "S: 250-mx\\r\\n250-SIZE\\r\\n250-CHUNKING\\r\\n250 STARTTLS\n"
		 "S: 421 going away\n", &o, &out);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_reply_lines_over], 1);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_reply_unsolicited], 1);
	assert_int_equal(out.inspected, 1);
	h_out_free(&out);
}

/*
 * Replies that cannot answer their command: the engine's view and the
 * server's differ, so the flow is passed uninspected and counted.
 */
static void
test_reply_desync(void **state)
{
	static const char *const hello =
		"S: 220 mx\nC: EHLO c\n"
		"S: 250-mx\\r\\n250-PIPELINING\\r\\n250 CHUNKING\n";
	static const char *const cases[] = {
		/* 2xx to DATA */
		"C: MAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\nDATA\n"
		"S: 250 ok\\r\\n250 ok\\r\\n250 ok\n",
		/* 354 to RCPT */
		"C: MAIL FROM:<a@b>\nS: 250 ok\nC: RCPT TO:<c@d>\nS: 354 go\n",
		/* 354 to NOOP */
		"C: NOOP\nS: 354 go\n",
		/* 334 to MAIL */
		"C: MAIL FROM:<a@b>\nS: 334 VXNlcm5hbWU6\n",
		/* 334 to RCPT */
		"C: MAIL FROM:<a@b>\nS: 250 ok\nC: RCPT TO:<c@d>\n"
		"S: 334 x\n",
		/* 354 to HELO */
		"C: HELO x\nS: 354 go\n",
		/* 3xx to STARTTLS */
		"C: STARTTLS\nS: 354 go\n",
		/* a reply with no command waiting (not 421) */
		"S: 250 ok\n",
		/* a nested MAIL accepted */
		"C: MAIL FROM:<a@b>\nS: 250 ok\nC: MAIL FROM:<e@f>\n"
		"S: 250 ok\n",
		/* RCPT accepted with no transaction */
		"C: RCPT TO:<c@d>\nS: 250 ok\n",
		/* 354 with no accepted recipient */
		"C: MAIL FROM:<a@b>\nS: 250 ok\nC: RCPT TO:<c@d>\n"
		"S: 550 no\nC: DATA\nS: 354 go\n",
		/* the reply to a BDAT before its chunk is complete */
		"C: MAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\nBDAT 10\\r\\n"
		"abc\\!\nS: 250 ok\\r\\n250 ok\\r\\n250 ok\n",
		/* BDAT taken as an unknown command: the chunk was commands */
		"C: MAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\nBDAT 3 LAST"
		"\\r\\nabc\\!\nS: 250 ok\\r\\n250 ok\\r\\n"
		"500 5.5.2 Error: command not recognized\n",
	};
	struct h_opts o = { .isn_c = 1, .isn_s = 2 };
	struct h_out out;
	char text[2048];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s%s", hello, cases[i]);
		run_text(text, &o, &out);
		if (out.inspected != 0 || out.cnt.v[BS_CNT_smtp_desync] != 1) {
			print_error("case %zu: inspected %d desync %lu\n%s", i,
				out.inspected,
				(unsigned long)out.cnt.v[BS_CNT_smtp_desync],
				cases[i]);
			fail();
		}
		assert_int_equal(out.cnt.v[BS_CNT_smtp_desync_reply], 1);
		assert_int_equal(out.begins, out.ends);
		assert_int_equal(out.order_err, 0);
		h_out_free(&out);
	}

	/* The server read a BDAT chunk after an EHLO without CHUNKING:
	 * we read those bytes as commands, so its 250 is a desync. */
	run_text("S: 220 mx\nC: EHLO c\nS: 250-mx\\r\\n250 PIPELINING\n"
		 "C: MAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\nBDAT 6 LAST\\r\\n"
		 "NOOP\\r\\n\\!\nS: 250 ok\\r\\n250 ok\\r\\n250 ok\n", &o,
		&out);
	assert_int_equal(out.inspected, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_desync], 1);
	h_out_free(&out);

	/* Not a desync: a 421 with no command waiting (the server is
	 * going away), 4xx/5xx to anything. */
	run_text("S: 220 mx\nC: EHLO c\nS: 250 mx\nC: MAIL FROM:<a@b>\n"
		 "S: 451 try later\nC: RCPT TO:<c@d>\nS: 503 need MAIL\n"
		 "C: DATA\nS: 503 need RCPT\nS: 421 bye\n", &o, &out);
	assert_int_equal(out.inspected, 1);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_desync], 0);
	h_out_free(&out);
}

/*
 * Postfix hangs up after "521" to BDAT (CHUNKING discarded, or a
 * malformed BDAT): the bytes after it are never read by the server, so
 * they start nothing here either.
 */
static void
test_bdat_521_hangup(void **state)
{
	struct h_opts o = { .isn_c = 1, .isn_s = 2 };
	struct h_out out;

	(void)state;
	run_text("S: 220 mx\nC: EHLO c\nS: 250-mx\\r\\n250 PIPELINING\n"
		 "C: BDAT 6\nS: 521 5.5.1 Error: command not implemented\n"
		 "C: MAIL FROM:<a@b>\\r\\nRCPT TO:<c@d>\\r\\nDATA\n",
		&o, &out);
	assert_int_equal(out.inspected, 1);
	assert_int_equal(out.begins, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_desync], 0);
	h_out_free(&out);

	run_text("S: 220 mx\nC: EHLO c\n"
		 "S: 250-mx\\r\\n250-PIPELINING\\r\\n250 CHUNKING\n"
		 "C: BDAT x\nS: 521 5.5.4 Syntax: BDAT count [LAST]\n"
		 "C: MAIL FROM:<a@b>\n", &o, &out);
	assert_int_equal(out.inspected, 1);
	assert_int_equal(out.begins, 0);
	assert_int_equal(out.cnt.v[BS_CNT_smtp_desync], 0);
	h_out_free(&out);

	/* Malformed as Postfix sees it (one word "5LAST", a size past
	 * 2^63, a word after LAST): no chunk is read, the next line is a
	 * command. */
	static const char *const bad[] = { "BDAT 5LAST",
		"BDAT 9223372036854775808", "BDAT 5 LAST x", "BDAT 5 FOO",
		"BDAT", "BDAT -1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[512];

		snprintf(text, sizeof(text), "S: 220 mx\nC: EHLO c\n"
			 "S: 250-mx\\r\\n250 CHUNKING\n"
			 "C: %s\\r\\nMAIL FROM:<a@b>\n", bad[i]);
		run_text(text, &o, &out);
		assert_int_equal(out.cnt.v[BS_CNT_smtp_bdat_unannounced], 1);
		assert_int_equal(out.cnt.v[BS_CNT_smtp_bdat], 0);
		assert_int_equal(out.begins, 1);
		h_out_free(&out);
	}
}

/* One flow of a flood: its own sequence numbers, fed by hand. */
struct fl {
	struct bs_smtp_flow *f;
	uint32_t nxt[2];
};

static void
fl_send(struct bs_smtp_ctx *ctx, struct fl *x, int dir, const char *data)
{
	struct bs_seg s = { .data = (const uint8_t *)data,
		.len = (uint32_t)strlen(data), .seq = x->nxt[dir],
		.ack = x->nxt[!dir], .win = 65535,
		.flags = BS_TCP_ACK | BS_TCP_PSH, .to_server = dir == 0 };

	bs_smtp_flow_input(ctx, x->f, &s, 1000);
	x->nxt[dir] += s.len;
}

static void
fl_open(struct bs_smtp_ctx *ctx, struct fl *x, uint16_t cport)
{
	struct bs_smtp_endpoints ep = { .l3 = BS_L3_IPV4, .cport = cport,
		.sport = 25 };
	struct bs_seg s = { .seq = 100, .flags = BS_TCP_SYN, .to_server = 1,
		.win = 65535 };

	x->nxt[0] = 101;
	x->nxt[1] = 5001;
	x->f = bs_smtp_flow_new(ctx, &ep);
	if (x->f == NULL)
		return;
	bs_smtp_flow_input(ctx, x->f, &s, 0);
	s.seq = 5000;
	s.ack = 101;
	s.flags = BS_TCP_SYN | BS_TCP_ACK;
	s.to_server = 0;
	bs_smtp_flow_input(ctx, x->f, &s, 0);
	fl_send(ctx, x, 1, "220 mx\r\n");
	fl_send(ctx, x, 0, "EHLO c\r\n");
	fl_send(ctx, x, 1, "250-mx\r\n250 PIPELINING\r\n");
}

/*
 * Between two exchanges an established session holds nothing but its
 * flow and the HELO name: the history rings go back once the receiver
 * has acknowledged their bytes, the pending-command ring once every reply
 * is in, a line cut across segments once it is parsed (issue 11, memory
 * per flow).  The next exchange gets them again and is followed as
 * before.
 */
static void
test_idle_flow_holds_nothing(void **state)
{
	struct bs_counters cnt;
	struct bs_smtp_params p;
	struct bs_smtp_ctx *ctx;
	struct fl x;
	uint64_t idle = bs_smtp_flow_size() + 2; /* "EHLO c": "c" and NUL */

	(void)state;
	memset(&cnt, 0, sizeof(cnt));
	bs_smtp_params_default(&p);
	ctx = bs_smtp_ctx_create(&p, NULL, NULL, &cnt);
	assert_non_null(ctx);
	fl_open(ctx, &x, 1000);
	assert_non_null(x.f);
	for (int round = 0; round < 3; round++) {
		fl_send(ctx, &x, 0, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@x>"
			"\r\nDA");
		/* Replies and a line cut across segments are under way. */
		assert_true(bs_smtp_ctx_session_bytes(ctx) > idle);
		fl_send(ctx, &x, 0, "TA\r\n");
		fl_send(ctx, &x, 1, "250 ok\r\n250 ok\r\n354 go\r\n");
		fl_send(ctx, &x, 0, "hello\r\n.\r\n");
		fl_send(ctx, &x, 1, "250 queued\r\n");
		/* The client's ACK of "250 queued". */
		fl_send(ctx, &x, 0, "");
		assert_true(bs_smtp_flow_inspected(x.f));
		assert_int_equal(cnt.v[BS_CNT_smtp_txn_done], round + 1);
		assert_int_equal(bs_smtp_ctx_session_bytes(ctx), idle);
	}
	bs_smtp_flow_free(ctx, x.f, 2000);
	assert_int_equal(bs_smtp_ctx_session_bytes(ctx), 0);
	bs_smtp_ctx_free(ctx);
}

/*
 * A flood of sessions that each hold memory (a transaction with many
 * pipelined recipients, a command line cut across segments) reaches
 * smtp.session_budget_bytes: the flows past it are uninspected or not
 * followed at all, and counted; ordinary sessions before the flood were
 * followed whole; when every flow ends the accounting is back to zero.
 */
static void
test_session_budget(void **state)
{
	enum { NFLOWS = 400 };
	static struct fl fl[NFLOWS];
	struct bs_counters cnt;
	struct bs_smtp_params p;
	struct bs_smtp_ctx *ctx;
	unsigned int followed = 0, refused = 0, uninspected = 0;
	uint64_t peak = 0;
	char line[128];

	(void)state;
	memset(&cnt, 0, sizeof(cnt));
	bs_smtp_params_default(&p);
	p.smtp_session_budget_bytes = 256 << 10;
	ctx = bs_smtp_ctx_create(&p, NULL, NULL, &cnt);
	assert_non_null(ctx);

	/* An ordinary session fits and is followed to its end. */
	fl_open(ctx, &fl[0], 1000);
	assert_non_null(fl[0].f);
	fl_send(ctx, &fl[0], 0, "MAIL FROM:<>\r\nRCPT TO:<u@x>\r\nDATA\r\n");
	fl_send(ctx, &fl[0], 1, "250 ok\r\n250 ok\r\n354 go\r\n");
	fl_send(ctx, &fl[0], 0, "hello\r\n.\r\n");
	fl_send(ctx, &fl[0], 1, "250 queued\r\n");
	assert_true(bs_smtp_flow_inspected(fl[0].f));
	assert_int_equal(cnt.v[BS_CNT_smtp_txn_done], 1);
	assert_true(bs_smtp_ctx_session_bytes(ctx) >= bs_smtp_flow_size());

	for (unsigned int i = 1; i < NFLOWS; i++) {
		fl_open(ctx, &fl[i], (uint16_t)(1000 + i));
		if (fl[i].f == NULL) {
			refused++;
			continue;
		}
		fl_send(ctx, &fl[i], 0, "MAIL FROM:<a@b>\r\n");
		for (int k = 0; k < 100; k++) {
			snprintf(line, sizeof(line),
				"RCPT TO:<recipient-%03d@flood.example>\r\n", k);
			fl_send(ctx, &fl[i], 0, line);
		}
		fl_send(ctx, &fl[i], 0, "NOOP and a line cut in t");
		if (bs_smtp_flow_inspected(fl[i].f))
			followed++;
		else
			uninspected++;
		if (bs_smtp_ctx_session_bytes(ctx) > peak)
			peak = bs_smtp_ctx_session_bytes(ctx);
		assert_true(bs_smtp_ctx_session_bytes(ctx) <=
			p.smtp_session_budget_bytes);
		assert_int_equal(cnt.v[BS_CNT_smtp_session_bytes],
			bs_smtp_ctx_session_bytes(ctx));
	}
	print_message("budget: %u followed, %u uninspected, %u not "
		      "followed, peak %lu bytes\n", followed, uninspected,
		refused, (unsigned long)peak);
	assert_true(followed > 0);
	assert_true(uninspected > 0);
	assert_int_equal(cnt.v[BS_CNT_smtp_session_budget],
		uninspected + refused);
	assert_true(peak > p.smtp_session_budget_bytes / 2);

	for (unsigned int i = 0; i < NFLOWS; i++)
		bs_smtp_flow_free(ctx, fl[i].f, 2000);
	assert_int_equal(bs_smtp_ctx_session_bytes(ctx), 0);
	assert_int_equal(cnt.v[BS_CNT_smtp_session_bytes], 0);
	assert_int_equal(bs_smtp_ctx_held(ctx), 0);
	bs_smtp_ctx_free(ctx);
}

static void
test_json_escape(void **state)
{
	struct bs_smtp_record r;
	struct bs_smtp_rcpt rc[2];
	char buf[BS_SMTP_JSON_MAX(2)];
	int n;

	(void)state;
	memset(&r, 0, sizeof(r));
	memset(rc, 0, sizeof(rc));
	r.ep.l3 = BS_L3_IPV4;
	r.ts_ms = 1700000000123ULL;
	memcpy(r.helo, "a\"b\\c\n\x7f\xff\xc3\xa9\xed\xa0\x80", 13);
	r.helo_len = 13;
	r.rcpt = rc;
	r.nrcpt = 2;
	memcpy(rc[0].addr, "x@y", 4);
	rc[0].len = 3;
	rc[0].reply = 250;
	rc[1].reply = 550;
	n = bs_smtp_record_json(&r, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	assert_non_null(strstr(buf, "\"ts\":\"2023-11-14T22:13:20.123Z\""));
	assert_non_null(strstr(buf, "\"helo\":\"a\\\"b\\\\c\\u000a\\u007f"
				    "\\u00ff\xc3\xa9\\u00ed\\u00a0\\u0080\""));
	assert_non_null(strstr(buf, "\"rcpt\":[\"x@y\"]"));
	assert_null(strstr(buf, "sha256"));
	assert_int_equal(bs_smtp_record_json(&r, buf, 20), -ENOSPC);

	/* Worst case: every byte of helo and mail_from escaped. */
	memset(r.helo, 0x01, BS_SMTP_HELO_MAX - 1);
	r.helo_len = BS_SMTP_HELO_MAX - 1;
	memset(r.mail_from, 0xff, BS_SMTP_ADDR_MAX - 1);
	r.mail_from_len = BS_SMTP_ADDR_MAX - 1;
	memset(rc[0].addr, 0x80, BS_SMTP_ADDR_MAX - 1);
	rc[0].len = BS_SMTP_ADDR_MAX - 1;
	r.has_sha256 = 1;
	r.ep.l3 = BS_L3_IPV6;
	memset(r.ep.client, 0xab, 16);
	memset(r.ep.server, 0xcd, 16);
	r.ep.cport = r.ep.sport = 65535;
	r.size = UINT64_MAX;
	r.ts_ms = UINT64_MAX / 1000000;
	assert_true(bs_smtp_record_json(&r, buf, BS_SMTP_JSON_MAX(1)) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_basic),
		cmocka_unit_test(test_golden_pipelining_multi),
		cmocka_unit_test(test_golden_bdat),
		cmocka_unit_test(test_golden_auth_starttls),
		cmocka_unit_test(test_golden_early_data),
		cmocka_unit_test(test_golden_lenient),
		cmocka_unit_test(test_golden_rset_arg),
		cmocka_unit_test(test_golden_ehlo_refused),
		cmocka_unit_test(test_golden_data_refused),
		cmocka_unit_test(test_golden_mail_retry),
		cmocka_unit_test(test_golden_bdat_states),
		cmocka_unit_test(test_golden_blanks),
		cmocka_unit_test(test_property_corpus),
		cmocka_unit_test(test_starttls_stops),
		cmocka_unit_test(test_midstream_uninspected),
		cmocka_unit_test(test_desync_bare_lf_end),
		cmocka_unit_test(test_long_lines_and_rcpt_cap),
		cmocka_unit_test(test_evasion_conflict_urgent),
		cmocka_unit_test(test_tiny_segments_pipeline_overflow),
		cmocka_unit_test(test_bdat_without_chunking_and_hold_cap),
		cmocka_unit_test(test_reply_lines_cap_and_unsolicited),
		cmocka_unit_test(test_reply_desync),
		cmocka_unit_test(test_bdat_521_hangup),
		cmocka_unit_test(test_session_budget),
		cmocka_unit_test(test_idle_flow_holds_nothing),
		cmocka_unit_test(test_json_escape),
	};

	if (getenv("BS_SMTP_GOLDEN") != NULL)
		golden_dir = getenv("BS_SMTP_GOLDEN");
	if (getenv("BS_CORPUS") != NULL)
		corpus_dir = getenv("BS_CORPUS");
	return cmocka_run_group_tests_name("smtp", tests, NULL, NULL);
}
