/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DATA content against a reference model, the whole stream at once: the
 * end of data (the first CRLF "." CRLF, the DATA command's CRLF counting
 * as the first), dot-unstuffing, and the counters smtp_bare_lf,
 * smtp_data_ambiguous_end and smtp_data_line_long.  Random content
 * (ordinary lines, runs of hundreds of bytes, lone CR, bare LF, dots at
 * line starts and after bare LFs, ".\r" and ".\n", CRLF "." CRLF
 * lookalikes) goes through the engine cut into segments at random points
 * (fixed sizes from 1 byte up, and the harness's random cuts, reordering
 * and overlaps), so every state of the DATA reader meets a segment
 * boundary; the record's size and SHA-256 must be those of the model's
 * unstuffed content, and the counters the model's counts.
 *
 * The model is written from the rules, not from the engine's code: a
 * line is the content delivered between two CRLFs (a bare LF does not
 * end it), its length counts its CRLF and not a removed dot, and a line
 * longer than smtp.text_line_max is counted; a '.' right after a bare LF,
 * or a line of "." ended by a bare LF, is counted as an ambiguous end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define LINE_MAX_T 80 /* smtp.text_line_max for this test */

struct model {
	uint8_t *out; /* unstuffed content */
	size_t olen;
	size_t wire; /* bytes of the input up to the end of data */
	uint64_t bare_lf, ambiguous, line_long;
	int ended;
};

static void
model_run(const uint8_t *p, size_t n, struct model *m)
{
	size_t linelen = 0;
	int bol = 1, prev_cr = 0, after_bare_lf = 0;

	memset(m, 0, sizeof(*m));
	m->out = malloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (bol && c == '.') {
			if (i + 2 < n + 0 && p[i + 1] == '\r' && p[i + 2] == '\n') {
				m->wire = i + 3;
				m->ended = 1;
				return;
			}
			/* the dot is removed; ".\n" looks like an end */
			if (i + 1 < n && p[i + 1] == '\n')
				m->ambiguous++;
			bol = 0;
			continue;
		}
		bol = 0;
		if (after_bare_lf && c == '.')
			m->ambiguous++;
		after_bare_lf = 0;
		m->out[m->olen++] = c;
		if (c == '\n' && prev_cr) {
			if (linelen + 1 > LINE_MAX_T)
				m->line_long++;
			linelen = 0;
			bol = 1;
			prev_cr = 0;
			continue;
		}
		if (c == '\n') {
			m->bare_lf++;
			after_bare_lf = 1;
		}
		prev_cr = c == '\r';
		linelen++;
	}
	m->wire = n;
}

static uint64_t rs = 0x51f15e;
/* What the random runs exercised, all messages together. */
static uint64_t seen_bare_lf, seen_ambiguous, seen_long, seen_early_end;

static uint32_t
rnd(uint32_t n)
{
	return (uint32_t)(h_rand(&rs) % n);
}

/* Random content of about len bytes, ended by CRLF "." CRLF. */
static uint8_t *
gen(size_t len, size_t *outlen)
{
	static const char *const bits[] = { "\r\n", "\n", "\r", ".", "\r\n.",
		"\n.", "..", ".\r", ".\n", "\r\n.\r", "\r\r\n", "\n.\n",
		"\r\n..\r\n" };
	size_t cap = len + 4096, n = 0;
	uint8_t *b = malloc(cap);
	/* Mostly ordinary mail (lines of text and CRLF) with some oddities,
	 * or mostly oddities: the ratio is per message. */
	uint32_t odd = 1 + rnd(40);

	while (n < len) {
		uint32_t r = rnd(100);

		if (r < odd) {
			const char *s = bits[rnd(sizeof(bits) / sizeof(bits[0]))];
			memcpy(b + n, s, strlen(s));
			n += strlen(s);
		} else if (r < 55) {
			/* a line of text: mostly short, sometimes past the cap,
			 * sometimes longer than a segment */
			uint32_t l = rnd(10) == 0 ? rnd(3000) : rnd(LINE_MAX_T);
			for (uint32_t k = 0; k < l; k++)
				b[n + k] = (uint8_t)('a' + rnd(26));
			n += l;
		} else {
			memcpy(b + n, "\r\n", 2);
			n += 2;
		}
	}
	memcpy(b + n, "\r\n.\r\n", 5);
	*outlen = n + 5;
	return b;
}

static void
one(const uint8_t *content, size_t clen, uint32_t maxseg, uint64_t seed)
{
	struct bs_smtp_params p;
	struct h_opts o = { .isn_c = 77, .isn_s = 0xfffffff0u, .digest = 1,
		.params = &p, .maxseg = maxseg };
	struct h_script s = { 0 };
	struct h_out out;
	struct model m;
	char want[128], hex[65];

	bs_smtp_params_default(&p);
	p.smtp_ooo_flow_bytes = 16 << 20;
	p.smtp_ooo_global_bytes = 64 << 20;
	p.smtp_text_line_max = LINE_MAX_T;
	model_run(content, clen, &m);
	assert_true(m.ended);
	seen_bare_lf += m.bare_lf;
	seen_ambiguous += m.ambiguous;
	seen_long += m.line_long;
	seen_early_end += m.wire < clen;
	h_script_str(&s, 1, "220 mx\r\n");
	h_script_str(&s, 0, "HELO c\r\n");
	h_script_str(&s, 1, "250 mx\r\n");
	h_script_str(&s, 0, "MAIL FROM:<>\r\n");
	h_script_str(&s, 1, "250 ok\r\n");
	h_script_str(&s, 0, "RCPT TO:<u@example.net>\r\n");
	h_script_str(&s, 1, "250 ok\r\n");
	h_script_str(&s, 0, "DATA\r\n");
	h_script_str(&s, 1, "354 go\r\n");
	h_script_add(&s, 0, content, m.wire);
	h_script_str(&s, 1, "250 queued\r\n");
	h_script_str(&s, 0, "QUIT\r\n");
	h_script_str(&s, 1, "221 bye\r\n");
	h_run(&s, &o, seed, &out);

	h_sha256_hex(m.out, m.olen, hex);
	snprintf(want, sizeof(want), "\"size\":%zu", m.olen);
	if (out.complete != 1 || out.json == NULL ||
		strstr(out.json, want) == NULL || strstr(out.json, hex) == NULL ||
		out.cnt.v[BS_CNT_smtp_bare_lf] != m.bare_lf ||
		out.cnt.v[BS_CNT_smtp_data_ambiguous_end] != m.ambiguous ||
		out.cnt.v[BS_CNT_smtp_data_line_long] != m.line_long ||
		out.order_err != 0) {
		FILE *f = fopen("data_end_fail.bin", "wb");
		if (f != NULL) {
			fwrite(content, 1, m.wire, f);
			fclose(f);
		}
		fail_msg("maxseg %u seed %lu: %zu content bytes; model size %zu "
			 "bare_lf %lu ambiguous %lu long %lu; engine complete %u "
			 "bare_lf %lu ambiguous %lu long %lu order_err %d\n"
			 "json %s\nwant %s (input in data_end_fail.bin)",
			maxseg, (unsigned long)seed, m.wire, m.olen,
			(unsigned long)m.bare_lf, (unsigned long)m.ambiguous,
			(unsigned long)m.line_long, out.complete,
			(unsigned long)out.cnt.v[BS_CNT_smtp_bare_lf],
			(unsigned long)out.cnt.v[BS_CNT_smtp_data_ambiguous_end],
			(unsigned long)out.cnt.v[BS_CNT_smtp_data_line_long],
			out.order_err, out.json ? out.json : "(none)", hex);
	}
	h_out_free(&out);
	h_script_free(&s);
	free(m.out);
}

/* The model itself, on hand-checked cases. */
static void
test_model(void **state)
{
	struct model m;

	(void)state;
	model_run((const uint8_t *)".\r\n", 3, &m);
	assert_true(m.ended && m.olen == 0 && m.wire == 3);
	model_run((const uint8_t *)"a\nb\r\n..x\r\n.\n\r\n.\r\n", 17, &m);
	assert_true(m.ended);
	assert_int_equal(m.olen, 12);
	assert_memory_equal(m.out, "a\nb\r\n.x\r\n\n\r\n", 12);
	assert_int_equal(m.bare_lf, 2);
	assert_int_equal(m.ambiguous, 1);
	free(m.out);
	model_run((const uint8_t *)"x\n.\r\n", 5, &m);
	assert_false(m.ended); /* a bare LF does not end a line */
	assert_int_equal(m.ambiguous, 1);
	free(m.out);
}

static void
test_random_content(void **state)
{
	static const uint32_t sizes[] = { 1, 2, 3, 7, 16, 17, 63, 100, 536,
		1460, 4000 };

	(void)state;
	for (int k = 0; k < 600; k++) {
		size_t clen;
		uint8_t *c = gen(rnd(6) == 0 ? 20000 : 1 + rnd(3000), &clen);

		/* fixed segment sizes, then random cuts/reordering */
		one(c, clen, sizes[rnd(sizeof(sizes) / sizeof(sizes[0]))], 0);
		one(c, clen, 0, 1 + h_rand(&rs));
		free(c);
	}
	/* every rule was met many times (an end inside the content: a
	 * CRLF "." CRLF made by the random pieces) */
	assert_true(seen_bare_lf > 1000 && seen_ambiguous > 100 &&
		seen_long > 1000 && seen_early_end > 10);
}

/* Ordinary mail: long runs of CRLF lines, the common case. */
static void
test_ordinary_runs(void **state)
{
	(void)state;
	for (int k = 0; k < 100; k++) {
		size_t n = 0, len = 500 + rnd(20000);
		uint8_t *b = malloc(len + 200);

		while (n < len) {
			uint32_t l = rnd(LINE_MAX_T + 2);
			for (uint32_t j = 0; j < l; j++)
				b[n + j] = (uint8_t)(' ' + rnd(90));
			/* a dot may open a line: stuffed as a client does */
			if (l > 0 && b[n] == '.')
				b[n] = '-';
			n += l;
			memcpy(b + n, "\r\n", 2);
			n += 2;
		}
		memcpy(b + n, ".\r\n", 3);
		one(b, n + 3, 1 + rnd(1600), 0);
		free(b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_random_content),
		cmocka_unit_test(test_ordinary_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
