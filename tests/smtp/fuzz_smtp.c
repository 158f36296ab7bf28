/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the SMTP engine over reassembly.
 *
 * Input: one option byte (bit 0 digests, bit 1 FIN at the end, bit 2
 * small caps), then turns separated by 0xff bytes,
 * alternating server, client, server...  Each input runs twice: once in
 * order and once cut, reordered, duplicated and overlapped (seeded by
 * the option byte).  Besides memory errors (ASan/UBSan) the oracle is
 * the engine's contract: both runs must give the same records, the same
 * event order (begin, message begin, data, end of message, end: every
 * message begun is ended or aborted by its transaction's end, checked by
 * the harness) and the same inspected/uninspected outcome, and after the
 * flow is freed every out-of-order and every session byte is returned.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h_script s = { 0 };
	struct h_opts o = { .isn_c = 0xfffffff0u, .isn_s = 12345 };
	struct h_out a, b;
	struct bs_smtp_params p;
	size_t i = 1, start = 1;
	int dir = 1;
	uint8_t opt;

	if (size < 1)
		return 0;
	opt = data[0];
	o.digest = opt & 1;
	o.fin = (opt >> 1) & 1;
	if (opt & 4) {
		/* Small caps, to reach every limit; none depends on how the
		 * stream is cut, so the oracle still holds. */
		bs_smtp_params_default(&p);
		p.smtp_ooo_flow_bytes = 1 << 24;
		p.smtp_ooo_global_bytes = 1 << 26;
		p.smtp_cmd_line_max = 64;
		p.smtp_reply_line_max = 64;
		p.smtp_text_line_max = 64;
		p.smtp_reply_lines_max = 2;
		p.smtp_rcpt_max = 2;
		p.smtp_pipeline_max = 8;
		p.smtp_wait_hold_bytes = 32;
		p.smtp_history_bytes = 16;
		o.params = &p;
	}
	for (; i <= size; i++) {
		if (i == size || data[i] == 0xff) {
			if (i > start)
				h_script_add(&s, dir, data + start, i - start);
			dir = !dir;
			start = i + 1;
		}
	}
	if (s.n == 0) {
		h_script_free(&s);
		return 0;
	}
	h_run(&s, &o, 0, &a);
	h_run(&s, &o, 0x9e3779b97f4a7c15ULL * (opt + 1), &b);
	if (a.order_err || b.order_err) {
		fprintf(stderr, "event order error %d %d\n", a.order_err,
			b.order_err);
		abort();
	}
	if (a.inspected != b.inspected || a.begins != b.begins ||
		a.ends != b.ends || a.complete != b.complete ||
		a.data_bytes != b.data_bytes ||
		(a.json == NULL) != (b.json == NULL) ||
		(a.json != NULL && strcmp(a.json, b.json) != 0) ||
		(a.trace == NULL) != (b.trace == NULL) ||
		(a.trace != NULL && strcmp(a.trace, b.trace) != 0)) {
		fprintf(stderr, "segmentation changed the outcome:\n%s\n--\n%s\n"
				"inspected %d/%d\n",
			a.json ? a.json : "-", b.json ? b.json : "-",
			a.inspected, b.inspected);
		abort();
	}
	h_out_free(&a);
	h_out_free(&b);
	h_script_free(&s);
	return 0;
}
