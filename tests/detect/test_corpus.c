/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Corpus test: classify every message of ../shared/corpus with the default
 * rule pack, as backstop-classify does (envelope unknown, content only).
 *
 *   test_corpus CORPUS_DIR RULES_FILE
 *
 * Asserts: at least 99% of ndr/ is classed dsn (a bounce), and the misses
 * are listed with their class and evidence; every autoreply/ message is
 * classed autoreply and every feedback/ message feedback; nothing under
 * not-ndr/ is classed a bounce; and each message gives byte-identical JSON
 * when fed whole, in random chunks of 1..1500 bytes, and in 1-byte chunks,
 * and the same class with LF turned into CRLF.  The embedded original's
 * raw header block is byte-identical across chunkings and with CRLF, is
 * made of CRLF-terminated lines, and holds every DKIM-Signature kept.
 * rb-issue-368-bug.eml (an MTA's "automatic bounce notification", once
 * filed under not-ndr/) must be a bounce.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backstop/detect.h"
#include "backstop/rules.h"

#define JSON_MAX (1 << 17)

static struct bs_detect_ctx *ctx;
static unsigned int failures;
static bool rb368_seen;

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* chunk: 0 = whole, SIZE_MAX = random (seed), else fixed. */
static void
classify(const uint8_t *buf, size_t len, size_t chunk, uint64_t seed,
        struct bs_detect_result *res)
{
	struct bs_msg *m = bs_msg_begin(ctx, NULL, NULL, 0);
	size_t off = 0;

	if (!m) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	while (off < len) {
		size_t n = chunk == 0 ? len
		           : chunk == SIZE_MAX
		                   ? (size_t)(xorshift(&seed) % 1500) + 1
		                   : chunk;

		if (n > len - off)
			n = len - off;
		bs_msg_feed(m, buf + off, n);
		off += n;
	}
	bs_msg_end(m, res);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	uint8_t *b;

	if (!f || fstat(fileno(f), &st) < 0) {
		if (f)
			fclose(f);
		return NULL;
	}
	b = malloc((size_t)st.st_size + 1);
	*len = fread(b, 1, (size_t)st.st_size, f);
	fclose(f);
	return b;
}

struct tally {
	unsigned int n, cls[BS_CLASS__MAX];
};

/* Raw header blocks seen (ndr/): count, bytes, largest, cuts. */
static unsigned int raw_n, raw_cut, raw_max;
static unsigned long long raw_bytes;

static bool
same_raw(const struct bs_detect_result *a, const struct bs_detect_result *b)
{
	return a->mime.orig.hdr_raw_len == b->mime.orig.hdr_raw_len &&
	       a->mime.orig.hdr_raw_cut == b->mime.orig.hdr_raw_cut &&
	       memcmp(a->mime.orig.hdr_raw, b->mime.orig.hdr_raw,
	               a->mime.orig.hdr_raw_len) == 0;
}

/* Lines end in CRLF, no bare LF; every kept DKIM value is in it. */
static const char *
raw_problem(const struct bs_original *o)
{
	const uint8_t *p = o->hdr_raw;
	uint32_t n = o->hdr_raw_len;

	if (n > BS_ORIG_HDR_RAW_MAX)
		return "longer than the cap";
	if (n > 0 && (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n'))
		return "does not end in CRLF";
	for (uint32_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return "bare LF";
		if (p[i] == '\n' && i + 2 < n && p[i + 1] == '\r' &&
		        p[i + 2] == '\n')
			return "blank line inside";
	}
	for (unsigned int k = 0; k < o->n_dkim; k++) {
		size_t dl = strlen(o->dkim[k]);
		bool found = false;

		for (uint32_t i = 0; !found && i + dl <= n; i++)
			found = memcmp(p + i, o->dkim[k], dl) == 0;
		if (!found && dl < BS_DKIM_RAW_MAX - 1)
			return "a DKIM-Signature value is not in it";
	}
	return NULL;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
one_file(const char *path, const char *folder, struct tally *t)
{
	static char j0[JSON_MAX], j1[JSON_MAX];
	static struct bs_detect_result r0, r1;
	const char *why;
	size_t len, o = 0;
	uint8_t *buf = slurp(path, &len), *crlf;
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	bool want_bounce = strcmp(folder, "ndr") == 0;

	if (!buf) {
		printf("FAIL %s: cannot read\n", path);
		failures++;
		return;
	}
	classify(buf, len, 0, 0, &r0);
	bs_detect_result_json(&r0, NULL, j0, sizeof(j0));
	for (uint64_t seed = 1; seed <= 3; seed++) {
		classify(buf, len, SIZE_MAX, seed * 0x9e3779b97f4a7c15ull, &r1);
		bs_detect_result_json(&r1, NULL, j1, sizeof(j1));
		if (strcmp(j0, j1) != 0 || !same_raw(&r0, &r1)) {
			printf("FAIL %s: result differs with random chunks "
			       "(seed %llu)\n",
			        name, (unsigned long long)seed);
			failures++;
		}
	}
	classify(buf, len, 1, 0, &r1);
	bs_detect_result_json(&r1, NULL, j1, sizeof(j1));
	if (strcmp(j0, j1) != 0 || !same_raw(&r0, &r1)) {
		printf("FAIL %s: result differs with 1-byte chunks\n", name);
		failures++;
	}
	if ((why = raw_problem(&r0.mime.orig)) != NULL) {
		printf("FAIL %s: original's raw header: %s\n", name, why);
		failures++;
	}
	if (want_bounce && r0.mime.orig.hdr_raw_len > 0) {
		raw_n++;
		raw_bytes += r0.mime.orig.hdr_raw_len;
		raw_cut += r0.mime.orig.hdr_raw_cut;
		if (r0.mime.orig.hdr_raw_len > raw_max)
			raw_max = r0.mime.orig.hdr_raw_len;
	}
	crlf = malloc(len * 2 + 1);
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			crlf[o++] = '\r';
		crlf[o++] = buf[i];
	}
	classify(crlf, o, SIZE_MAX, 7, &r1);
	if (r1.cls != r0.cls || r1.n_rules != r0.n_rules ||
	        !same_raw(&r0, &r1)) {
		printf("FAIL %s: CRLF gives %s, LF %s\n", name,
		        bs_class_name(r1.cls), bs_class_name(r0.cls));
		failures++;
	}
	free(crlf);
	free(buf);

	t->n++;
	t->cls[r0.cls]++;
	if (strcmp(name, "rb-issue-368-bug.eml") == 0) {
		rb368_seen = true;
		if (!bs_class_is_bounce(r0.cls) || !want_bounce) {
			printf("FAIL %s/%s: an automatic bounce notification, "
			       "must be under ndr/ and a bounce (class %s)\n",
			        folder, name, bs_class_name(r0.cls));
			failures++;
		}
	}
	if (want_bounce && !bs_class_is_bounce(r0.cls))
		printf("miss %s/%s: class %s, %s\n", folder, name,
		        bs_class_name(r0.cls), j0);
	else if (strcmp(folder, "not-ndr") == 0 && bs_class_is_bounce(r0.cls))
		printf("FALSE POSITIVE %s: %s\n", name, j0);
	else if ((strcmp(folder, "autoreply") == 0 &&
	                 r0.cls != BS_CLASS_AUTOREPLY) ||
	         (strcmp(folder, "feedback") == 0 &&
	                 r0.cls != BS_CLASS_FEEDBACK))
		printf("wrong class %s/%s: %s\n", folder, name, j0);
}

/* All *.eml under dir (two levels: folder/source/file), sorted. */
static void
walk(const char *dir, const char *folder, struct tally *t)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	char path[4096];
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d) {
		printf("FAIL cannot open %s\n", dir);
		failures++;
		return;
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (!S_ISDIR(st.st_mode) &&
		        (strlen(e->d_name) < 4 ||
		                strcmp(e->d_name + strlen(e->d_name) - 4,
		                        ".eml") != 0))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			names = realloc(names, cap * sizeof(*names));
		}
		names[n++] = strdup(path);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (stat(names[i], &st) == 0 && S_ISDIR(st.st_mode))
			walk(names[i], folder, t);
		else
			one_file(names[i], folder, t);
		free(names[i]);
	}
	free(names);
}

static void
report(const char *folder, const struct tally *t)
{
	printf("%s: %u messages:", folder, t->n);
	for (int c = 0; c < BS_CLASS__MAX; c++)
		printf(" %s %u", bs_class_name(c), t->cls[c]);
	printf("\n");
}

int
main(int argc, char **argv)
{
	struct tally ndr = {0}, ar = {0}, fb = {0}, nn = {0};
	char err[512], dir[4096];
	struct bs_ruleset *rs;
	double pct;

	if (argc != 3) {
		fprintf(stderr, "usage: test_corpus CORPUS_DIR RULES_FILE\n");
		return 2;
	}
	rs = bs_ruleset_load(argv[2], err, sizeof(err));
	if (!rs) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	ctx = bs_detect_ctx_create(rs);
	snprintf(dir, sizeof(dir), "%s/ndr", argv[1]);
	walk(dir, "ndr", &ndr);
	snprintf(dir, sizeof(dir), "%s/autoreply", argv[1]);
	walk(dir, "autoreply", &ar);
	snprintf(dir, sizeof(dir), "%s/feedback", argv[1]);
	walk(dir, "feedback", &fb);
	snprintf(dir, sizeof(dir), "%s/not-ndr", argv[1]);
	walk(dir, "not-ndr", &nn);

	report("ndr", &ndr);
	report("autoreply", &ar);
	report("feedback", &fb);
	report("not-ndr", &nn);
	pct = ndr.n ? 100.0 * ndr.cls[BS_CLASS_DSN] / ndr.n : 0;
	printf("ndr classed as bounce: %.2f%% (%u of %u)\n", pct,
	        ndr.cls[BS_CLASS_DSN], ndr.n);
	printf("ndr originals with a raw header block: %u, %llu bytes on "
	       "average, largest %u, cut %u\n",
	        raw_n, raw_n ? raw_bytes / raw_n : 0, raw_max, raw_cut);
	if (!rb368_seen) {
		printf("FAIL rb-issue-368-bug.eml not found\n");
		failures++;
	}
	if (ndr.n == 0 || ndr.cls[BS_CLASS_DSN] * 100 < ndr.n * 99) {
		printf("FAIL ndr bounce rate under 99%%\n");
		failures++;
	}
	if (ar.cls[BS_CLASS_AUTOREPLY] != ar.n) {
		printf("FAIL autoreply: %u of %u\n", ar.cls[BS_CLASS_AUTOREPLY],
		        ar.n);
		failures++;
	}
	if (fb.cls[BS_CLASS_FEEDBACK] != fb.n) {
		printf("FAIL feedback: %u of %u\n", fb.cls[BS_CLASS_FEEDBACK],
		        fb.n);
		failures++;
	}
	if (nn.cls[BS_CLASS_DSN] != 0) {
		printf("FAIL not-ndr: %u classed as bounce\n",
		        nn.cls[BS_CLASS_DSN]);
		failures++;
	}
	bs_detect_ctx_free(ctx);
	bs_ruleset_free(rs);
	printf("%s (%u failures)\n", failures ? "FAILED" : "OK", failures);
	return failures ? 1 : 0;
}
