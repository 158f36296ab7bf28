/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the MIME/DSN parser and the detector around it.
 *
 * The first input byte picks the chunking (so the fuzzer explores line
 * and piece boundaries); the rest is the message.  Each input is parsed
 * twice, whole and chunked, and the results must be identical: a
 * difference is a state-machine bug even when nothing crashes.  The
 * detector runs with a small built-in rule set so the Hyperscan stream
 * path (hold buffer, gating, targets) is exercised as well: ended with a
 * null and an unknown sender, and aborted at a point the input picks
 * (parser and detector) with an ordinary sender.  After each input
 * nothing may be live: no message or stream held, at most the one spare
 * message and stream per context, and no more charset converters than
 * the thread's cache holds (LeakSanitizer checks the rest, per input).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/detect.h"
#include "backstop/mime.h"
#include "backstop/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_rules[] = "1 dsn subject i /undeliver/ s\n"
                                 "2 dsn body iw /user\\s+unknown/ b\n"
                                 "3 dsn dsn,header im /^status:\\s*5/ d\n"
                                 "4 autoreply any i /out of office/ a\n"
                                 "5 dsn original - /Message-ID/ o\n"
                                 "6 dsn from iw /daemon|admin/ f\n"
                                 "7 dsn subject iw /fail(ure|ed)/ w\n";

static struct bs_detect_ctx *ctx;

static void
sink(void *arg, uint32_t tgt, const uint8_t *p, size_t n)
{
	uint32_t *h = arg;

	/* Touch every byte so ASan sees out-of-bounds reads. */
	for (size_t i = 0; i < n; i++)
		*h = (*h * 31u) ^ p[i] ^ tgt;
}

static void
feed(struct bs_mime *m, const uint8_t *d, size_t n, size_t chunk)
{
	for (size_t off = 0; off < n;) {
		size_t k = chunk < n - off ? chunk : n - off;

		bs_mime_feed(m, d + off, k);
		off += k;
	}
	bs_mime_end(m);
}

/*
 * The original's raw header block (contract 3): within the cap, lines
 * ending in CRLF with no bare LF, no blank line inside (a CR inside a
 * line is kept as carried).
 */
static void
check_raw(const struct bs_original *o)
{
	const uint8_t *p = o->hdr_raw;
	uint32_t n = o->hdr_raw_len;

	if (n > BS_ORIG_HDR_RAW_MAX || (o->hdr_raw_cut && !o->present))
		abort();
	if (n > 0 && (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n'))
		abort();
	for (uint32_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			abort();
		if (p[i] == '\n' && i + 2 < n && p[i + 1] == '\r' &&
		        p[i + 2] == '\n')
			abort();
	}
}

static void
assert_nothing_live(void)
{
	struct bs_detect_live l;
	struct bs_mime_charset_stats cs;

	bs_detect_ctx_live(ctx, &l);
	bs_mime_charset_stats(&cs);
	if (l.msgs != 0 || l.streams != 0 || l.msgs_alloc > 1 ||
	        l.streams_alloc > BS_DETECT_STREAMS_MAX ||
	        cs.cached > BS_MIME_CHARSET_CACHE)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bs_mime m1, m2;
	static struct bs_mime_info i1, i2;
	static struct bs_detect_result r1, r2;
	uint32_t h1 = 0, h2 = 0;
	size_t chunk;

	if (size < 1)
		return 0;
	if (!ctx) {
		char err[256];
		struct bs_ruleset *rs = bs_ruleset_parse(fuzz_rules,
		        strlen(fuzz_rules), "fuzz", err, sizeof(err));

		if (!rs || !(ctx = bs_detect_ctx_create(rs)))
			abort();
	}
	chunk = (size_t)data[0] % 64 + 1;
	data++;
	size--;

	bs_mime_init(&m1, &i1, sink, NULL, &h1, BS_TGT_ALL);
	feed(&m1, data, size, size ? size : 1);
	bs_mime_init(&m2, &i2, sink, NULL, &h2, BS_TGT_ALL);
	feed(&m2, data, size, chunk);
	if (bs_mime_info_used(&i1) != bs_mime_info_used(&i2) ||
	        !bs_mime_info_same(&i1, &i2) || h1 != h2)
		abort();
	check_raw(&i1.orig);

	/* Unknown and null sender; then an ordinary and a daemon sender
	 * (the signature gate, the daemon mark). */
	static const char *const senders[] = {NULL, "", "a@b",
	        "prvs=0123456789=MAILER-DAEMON@x"};
	for (int pass = 0; pass < 4; pass++) {
		struct bs_msg *msg = bs_msg_begin(ctx, senders[pass], NULL, 0);
		struct bs_detect_result *r = pass == 1 ? &r2 : &r1;
		char json[1 << 15];

		if (!msg)
			return 0;
		for (size_t off = 0; off < size;) {
			size_t k = chunk < size - off ? chunk : size - off;

			bs_msg_feed(msg, data + off, k);
			off += k;
		}
		bs_msg_end(msg, r);
		bs_detect_result_json(r, NULL, json, sizeof(json));
		check_raw(&r->mime.orig);
	}
	/* With a null sender (always a candidate, parsed to the end; the
	 * rule set names every target) the detector's result carries the
	 * block exactly as the parser alone built it. */
	if (r2.mime.orig.hdr_raw_len != i1.orig.hdr_raw_len ||
	        memcmp(r2.mime.orig.hdr_raw, i1.orig.hdr_raw,
	                i1.orig.hdr_raw_len) != 0)
		abort();
	assert_nothing_live();

	/* Aborted where the input says (a hash of it), parser and detector. */
	{
		uint32_t hash = 2166136261u;
		size_t cut;
		const char *from[] = {"", NULL, "a@b"};

		for (size_t i = 0; i < size; i++)
			hash = (hash ^ data[i]) * 16777619u;
		cut = size ? hash % (size + 1) : 0;
		bs_mime_init(&m1, &i1, sink, NULL, &h1, BS_TGT_ALL);
		for (size_t off = 0; off < cut;) {
			size_t k = chunk < cut - off ? chunk : cut - off;

			bs_mime_feed(&m1, data + off, k);
			off += k;
		}
		bs_mime_abort(&m1);
		struct bs_msg *msg = bs_msg_begin(ctx, from[hash % 3], NULL, 0);

		if (!msg)
			return 0;
		for (size_t off = 0; off < cut;) {
			size_t k = chunk < cut - off ? chunk : cut - off;

			bs_msg_feed(msg, data + off, k);
			off += k;
		}
		bs_msg_abort(msg);
	}
	assert_nothing_live();
	return 0;
}
