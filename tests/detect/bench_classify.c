/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Classification throughput beside a raw Hyperscan scan of the same bytes
 * with the same database (driven by scripts/bench_classify.sh).
 *
 *   bench_classify RULES_FILE MIN_MB RUNS FILE...
 *
 * The messages are repeated until at least MIN_MB megabytes, then fed in
 * 1460-byte chunks (one TCP segment of payload) three ways:
 *  - classify: the detector with the envelope unknown (gating on content),
 *  - classify_null: the detector with MAIL FROM:<> (every message scanned),
 *  - hs_raw: one Hyperscan stream per message over the raw bytes, with
 *    the whole pack in one database (compile_pack()),
 *  - hs_one_literal: the same with a one-literal database (caseless
 *    "mailer-daemon"): what Hyperscan costs when it has almost nothing
 *    to do (mostly the per-call cost), the floor the pack is measured
 *    against (ratio_hs_pack_vs_one_literal),
 *  - hs_factors: the same with a literal-only database of one literal
 *    per rule, its longest literal run (with the rule's caselessness;
 *    compile_factors()): less than any correct prefilter in front of the
 *    pack would match (it needs a factor per alternative), so a floor of
 *    what such a prefilter costs on these bytes
 *    (ratio_hs_factors_vs_one_literal),
 * and the files under a "not-ndr" folder alone (ordinary mail) with an
 * ordinary envelope sender, as most of a gateway's mail arrives:
 *  - classify_ordinary: what the candidate gate costs a message that is
 *    no bounce (its header parsed, its Subject and From lines checked for
 *    signatures, its body skipped), in ns per message, and how many of
 *    them the gate let in.
 * Each is run RUNS times; the median is printed as "name: value" lines.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hs/hs.h>

#include "backstop/detect.h"
#include "backstop/rules.h"

#define SEG 1460

struct msgbuf {
	uint8_t *p;
	size_t n;
};

static struct msgbuf *msgs;
static size_t n_msgs;
static bool *ordinary; /* under a not-ndr folder */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
nop_match(unsigned int id, unsigned long long from, unsigned long long to,
        unsigned int flags, void *ctx)
{
	(void)id;
	(void)from;
	(void)to;
	(void)flags;
	(*(unsigned long *)ctx)++;
	return 0;
}

static double
run_classify(struct bs_detect_ctx *ctx, const char *from, size_t reps,
        unsigned long *bounces)
{
	double t0 = now();

	*bounces = 0;
	for (size_t r = 0; r < reps; r++)
		for (size_t i = 0; i < n_msgs; i++) {
			struct bs_msg *m = bs_msg_begin(ctx, from, NULL, 0);
			struct bs_detect_result res;

			for (size_t off = 0; off < msgs[i].n; off += SEG) {
				size_t k = msgs[i].n - off < SEG
				                   ? msgs[i].n - off
				                   : SEG;

				bs_msg_feed(m, msgs[i].p + off, k);
			}
			bs_msg_end(m, &res);
			*bounces += res.cls == BS_CLASS_DSN;
		}
	return now() - t0;
}

/* Ordinary mail only, ordinary sender: time, candidates, messages. */
static double
run_ordinary(struct bs_detect_ctx *ctx, size_t reps, unsigned long *cand,
        unsigned long *n)
{
	double t0 = now();

	*cand = *n = 0;
	for (size_t r = 0; r < reps; r++)
		for (size_t i = 0; i < n_msgs; i++) {
			struct bs_msg *m;
			struct bs_detect_result res;

			if (!ordinary[i])
				continue;
			m = bs_msg_begin(ctx, "sender@example.org", NULL, 0);
			for (size_t off = 0; off < msgs[i].n; off += SEG) {
				size_t k = msgs[i].n - off < SEG
				                   ? msgs[i].n - off
				                   : SEG;

				bs_msg_feed(m, msgs[i].p + off, k);
			}
			bs_msg_end(m, &res);
			*cand += res.candidate;
			(*n)++;
		}
	return now() - t0;
}

static double
run_raw(const hs_database_t *db, hs_scratch_t *scratch, size_t reps,
        unsigned long *matches)
{
	double t0 = now();

	*matches = 0;
	for (size_t r = 0; r < reps; r++)
		for (size_t i = 0; i < n_msgs; i++) {
			hs_stream_t *s;

			if (hs_open_stream(db, 0, &s) != HS_SUCCESS)
				exit(2);
			for (size_t off = 0; off < msgs[i].n; off += SEG) {
				size_t k = msgs[i].n - off < SEG
				                   ? msgs[i].n - off
				                   : SEG;

				hs_scan_stream(s, (const char *)msgs[i].p + off,
				        (unsigned int)k, 0, scratch, nop_match,
				        matches);
			}
			hs_close_stream(s, scratch, nop_match, matches);
		}
	return now() - t0;
}

/*
 * The whole pack in one streaming database, every rule as the detector
 * compiles it: what "raw Hyperscan with the rule pack" means here (the
 * detector splits the pack by channel and scans less; this is the cost
 * of running every rule over every byte).
 */
static hs_database_t *
compile_pack(const struct bs_ruleset *rs)
{
	unsigned int n = bs_ruleset_count(rs);
	const char **ex = calloc(n + 1, sizeof(*ex));
	unsigned int *fl = calloc(n + 1, sizeof(*fl));
	unsigned int *ids = calloc(n + 1, sizeof(*ids));
	hs_database_t *db = NULL;
	hs_compile_error_t *ce = NULL;

	for (unsigned int i = 0; i < n; i++) {
		ex[i] = bs_ruleset_expr(rs, i, &fl[i]);
		ids[i] = i;
	}
	if (hs_compile_multi(ex, fl, ids, n, HS_MODE_STREAM, NULL, &db, &ce) !=
	        HS_SUCCESS) {
		fprintf(stderr, "pack: %s\n", ce ? ce->message : "error");
		hs_free_compile_error(ce);
		db = NULL;
	}
	free(ex);
	free(fl);
	free(ids);
	return db;
}

/*
 * The literal runs of an expression: maximal runs of bytes that match
 * only themselves (letters, digits, space, punctuation, UTF-8, escaped
 * metacharacters), cut at every metacharacter and class; a byte made
 * optional or repeatable by ?, * or {...} is dropped from its run.  Runs
 * of fewer than 3 bytes are left out (a prefilter would not use them).
 * Appends copies to out[*n] (caller frees).
 */
static void
literal_runs(const char *ex, unsigned int fl, char **out, unsigned int *ofl,
        size_t *olen, unsigned int *n, unsigned int cap)
{
	char run[256];
	size_t k = 0;

	for (const char *p = ex;; p++) {
		int lit = -1;

		if (*p == '\\' && p[1] != '\0' &&
		        strchr("().[]{}?*+|^$\\/-", p[1]) != NULL) {
			lit = (unsigned char)*++p;
		} else if (*p != '\0' && *p != '\\' &&
		        strchr("()[]{}?*+|^$.", *p) == NULL) {
			lit = (unsigned char)*p;
		} else if ((*p == '?' || *p == '*' || *p == '{') && k > 0) {
			k--; /* the byte before is optional */
		}
		if (lit >= 0 && k < sizeof(run)) {
			run[k++] = (char)lit;
			continue;
		}
		if (k >= 3 && *n < cap) {
			out[*n] = malloc(k);
			memcpy(out[*n], run, k);
			olen[*n] = k;
			ofl[*n] = fl & HS_FLAG_CASELESS;
			(*n)++;
		}
		k = 0;
		if (*p == '\\' && p[1] != '\0') {
			p++; /* \s, \S, \d, ...: a class */
		} else if (*p == '[') {
			while (p[1] != '\0' && *++p != ']')
				if (*p == '\\' && p[1] != '\0')
					p++;
		} else if (*p == '{') {
			while (p[1] != '\0' && *++p != '}')
				;
		}
		if (*p == '\0')
			break;
	}
}

static hs_database_t *
compile_factors(const struct bs_ruleset *rs, unsigned int *nlit)
{
	unsigned int n = bs_ruleset_count(rs), cap = 64 * n + 64, k = 0;
	char **lit = calloc(cap, sizeof(*lit));
	unsigned int *fl = calloc(cap, sizeof(*fl)), *ids = calloc(cap,
	        sizeof(*ids));
	size_t *len = calloc(cap, sizeof(*len));
	hs_database_t *db = NULL;
	hs_compile_error_t *ce = NULL;

	for (unsigned int i = 0; i < n; i++) {
		unsigned int f, k0 = k, best = k;
		const char *ex = bs_ruleset_expr(rs, i, &f);

		literal_runs(ex, f, lit, fl, len, &k, cap);
		/* The longest run only: one literal per rule is less than any
		 * correct prefilter needs (one per alternative), so this is a
		 * floor of what a prefilter costs, not a design. */
		for (unsigned int j = k0; j < k; j++)
			if (len[j] > len[best])
				best = j;
		if (k > k0) {
			char *keep = lit[best];
			size_t kl = len[best];
			unsigned int kf = fl[best];

			for (unsigned int j = k0; j < k; j++)
				if (j != best)
					free(lit[j]);
			lit[k0] = keep;
			len[k0] = kl;
			fl[k0] = kf;
			k = k0 + 1;
		}
	}
	for (unsigned int i = 0; i < k; i++)
		ids[i] = i;
	if (hs_compile_lit_multi((const char *const *)lit, fl, ids, len, k,
	            HS_MODE_STREAM, NULL, &db, &ce) != HS_SUCCESS) {
		fprintf(stderr, "factors: %s\n", ce ? ce->message : "error");
		hs_free_compile_error(ce);
		db = NULL;
	}
	for (unsigned int i = 0; i < k; i++)
		free(lit[i]);
	free(lit);
	free(fl);
	free(ids);
	free(len);
	*nlit = k;
	return db;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	char err[512];
	struct bs_ruleset *rs;
	struct bs_detect_ctx *ctx;
	hs_database_t *db;
	hs_scratch_t *scratch = NULL;
	size_t total = 0, reps, min_mb;
	int runs;
	double tc[32], tn[32], th[32], tl[32], tf[32];
	hs_database_t *lit_db = NULL, *fac_db;
	hs_scratch_t *lit_scratch = NULL, *fac_scratch = NULL;
	unsigned long ml = 0, mf = 0;
	unsigned int n_fac = 0;
	unsigned long b1 = 0, b2 = 0, mt = 0;

	if (argc < 5) {
		fprintf(stderr,
		        "usage: bench_classify RULES MIN_MB RUNS FILE...\n");
		return 2;
	}
	rs = bs_ruleset_load(argv[1], err, sizeof(err));
	if (!rs) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	min_mb = strtoul(argv[2], NULL, 10);
	runs = atoi(argv[3]);
	if (runs < 1 || runs > 32)
		runs = 5;
	ctx = bs_detect_ctx_create(rs);
	db = compile_pack(rs);
	if (!ctx || !db || hs_alloc_scratch(db, &scratch) != HS_SUCCESS)
		return 2;
	{
		hs_compile_error_t *ce = NULL;

		if (hs_compile("mailer-daemon", HS_FLAG_CASELESS, HS_MODE_STREAM,
		            NULL, &lit_db, &ce) != HS_SUCCESS ||
		        hs_alloc_scratch(lit_db, &lit_scratch) != HS_SUCCESS)
			return 2;
	}
	fac_db = compile_factors(rs, &n_fac);
	if (fac_db == NULL ||
	        hs_alloc_scratch(fac_db, &fac_scratch) != HS_SUCCESS)
		return 2;
	msgs = calloc((size_t)argc, sizeof(*msgs));
	ordinary = calloc((size_t)argc, sizeof(*ordinary));
	for (int a = 4; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		size_t cap = 1 << 16, n = 0, k;
		uint8_t *p = malloc(cap);

		if (!f)
			continue;
		while ((k = fread(p + n, 1, cap - n, f)) > 0) {
			n += k;
			if (n == cap)
				p = realloc(p, cap *= 2);
		}
		fclose(f);
		ordinary[n_msgs] = strstr(argv[a], "/not-ndr/") != NULL;
		msgs[n_msgs].p = p;
		msgs[n_msgs++].n = n;
		total += n;
	}
	if (total == 0)
		return 2;
	reps = (min_mb << 20) / total + 1;
	double to[32];
	unsigned long ocand = 0, on = 0;

	for (int r = 0; r < runs; r++) {
		tc[r] = run_classify(ctx, NULL, reps, &b1);
		tn[r] = run_classify(ctx, "", reps, &b2);
		th[r] = run_raw(db, scratch, reps, &mt);
		tl[r] = run_raw(lit_db, lit_scratch, reps, &ml);
		tf[r] = run_raw(fac_db, fac_scratch, reps, &mf);
		/* Ordinary mail is small: repeat it 20 times as often. */
		to[r] = run_ordinary(ctx, reps * 20, &ocand, &on);
	}
	double mb = (double)total * reps / 1e6;
	double c = mb / median(tc, runs), n = mb / median(tn, runs),
	       h = mb / median(th, runs);

	printf("rules: %u\n", bs_ruleset_count(rs));
	printf("messages: %zu\n", n_msgs);
	printf("corpus_bytes: %zu\n", total);
	printf("repeats: %zu\n", reps);
	printf("bytes_per_run: %.0f\n", (double)total * reps);
	printf("runs: %d\n", runs);
	printf("classify_mbps: %.1f\n", c);
	printf("classify_null_sender_mbps: %.1f\n", n);
	printf("hs_raw_mbps: %.1f\n", h);
	printf("ratio_classify_vs_raw: %.3f\n", c / h);
	printf("hs_one_literal_mbps: %.1f\n", mb / median(tl, runs));
	printf("ratio_hs_pack_vs_one_literal: %.4f\n",
	        h / (mb / median(tl, runs)));
	printf("hs_factors_literals: %u\n", n_fac);
	printf("hs_factors_mbps: %.1f\n", mb / median(tf, runs));
	printf("hs_factors_matches_per_mb: %.0f\n", (double)mf / mb);
	printf("ratio_hs_factors_vs_one_literal: %.4f\n",
	        (mb / median(tf, runs)) / (mb / median(tl, runs)));
	printf("ratio_classify_null_sender_vs_raw: %.3f\n", n / h);
	{
		/* What a stream per target would add: state and open/close. */
		size_t ss = 0;
		hs_stream_t *st;
		double t0 = now();
		unsigned int k;

		hs_stream_size(db, &ss);
		for (k = 0; k < 100000; k++) {
			if (hs_open_stream(db, 0, &st) != HS_SUCCESS)
				return 2;
			hs_close_stream(st, scratch, NULL, NULL);
		}
		printf("hs_stream_state_bytes: %zu\n", ss);
		printf("hs_open_close_ns: %.0f\n", (now() - t0) / k * 1e9);
		printf("classify_ns_per_message: %.0f\n",
		        median(tc, runs) / (double)(n_msgs * reps) * 1e9);
	}
#ifdef BS_ORIG_HDR_RAW_MAX
	{
		/*
		 * What a result costs to copy (contract 3 made it 16 KiB
		 * larger): the whole struct, against the bytes that hold
		 * its value (bs_mime_info_used(), what bs_msg_end() copies)
		 * for the corpus messages' own results.
		 */
		static struct bs_detect_result res, dst;
		size_t used = 0, k = 0;
		double t_full, t_used, t0;
		const size_t loops = 200;

		for (size_t i = 0; i < n_msgs; i++) {
			struct bs_msg *m = bs_msg_begin(ctx, "", NULL, 0);

			bs_msg_feed(m, msgs[i].p, msgs[i].n);
			bs_msg_end(m, &res);
			used += offsetof(struct bs_detect_result, mime) +
			        bs_mime_info_used(&res.mime);
		}
		used /= n_msgs;
		t0 = now();
		for (k = 0; k < loops * n_msgs; k++) {
			memcpy(&dst, &res, sizeof(res));
			__asm__ volatile("" : : "r"(&dst) : "memory");
		}
		t_full = (now() - t0) / (double)k * 1e9;
		t0 = now();
		for (k = 0; k < loops * n_msgs; k++) {
			memcpy(&dst, &res, used);
			__asm__ volatile("" : : "r"(&dst) : "memory");
		}
		t_used = (now() - t0) / (double)k * 1e9;
		printf("result_struct_bytes: %zu\n", sizeof(res));
		printf("result_used_bytes_mean: %zu\n", used);
		printf("result_copy_full_ns: %.0f\n", t_full);
		printf("result_copy_used_ns: %.0f\n", t_used);
		printf("msg_bytes: %zu\n", bs_msg_size(ctx));
	}
#endif
	if (on > 0) {
		printf("ordinary_messages_per_run: %lu\n", on);
		printf("ordinary_candidates_per_run: %lu\n", ocand);
		printf("classify_ordinary_ns_per_message: %.0f\n",
		        median(to, runs) / (double)on * 1e9);
	}
	printf("bounces_per_run: %lu\n", b1);
	printf("raw_matches_per_run: %lu\n", mt);
	hs_free_scratch(scratch);
	hs_free_scratch(lit_scratch);
	hs_free_database(lit_db);
	hs_free_database(db);
	bs_detect_ctx_free(ctx);
	bs_ruleset_free(rs);
	return 0;
}
