/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backstop-classify: the offline classifier.
 *
 *   backstop-classify [--config FILE] [--rules FILE] [--mail-from ADDR]
 *                     [--rcpt ADDR]... [--chunk N | --random-chunks SEED]
 *                     [--crlf] [--now EPOCH] FILE...
 *
 * Reads each FILE as a message appears in DATA (LF or CRLF line ends),
 * feeds it in chunks to exactly the detection code the workers run, and
 * prints one JSON object per line per file: file, class, matched rule ids,
 * evidence, DSN fields and the fields of the embedded original.  Operators
 * use it to test rules; the tests use it on the corpus.
 *
 * Without --mail-from the envelope is unknown and the message is classified
 * on its content alone (the corpus comes without envelopes); --mail-from ""
 * is the null sender.  --chunk N feeds N bytes at a time (default 4096);
 * --random-chunks SEED feeds chunks of 1..1500 bytes from a seeded PRNG, to
 * show that the result does not depend on how TCP cut the message.
 *
 * Each line also carries the verdict (verdict, action, reasons,
 * verdict_domain), taken by the same code the workers run at the end of a
 * message, with the policy of --config (protected_domains, batv, relays,
 * dkim_keys, ...) and the envelope of --mail-from and --rcpt (each
 * recipient as accepted).  There is no ledger and no storm offline.
 * --now EPOCH sets the wall clock (BATV day stamps; default: now).
 * Exit status: 0, 1 if a file could not be read, 2 on usage or rule errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backstop/config.h"
#include "backstop/detect.h"
#include "backstop/rules.h"
#include "backstop/verdict.h"

#define CLASSIFY_RCPT_MAX 64
/* A message bigger than this is read in part (SMTP SIZE limits are far
 * below; the classifier is not the place to hold gigabytes). */
#define CLASSIFY_FILE_MAX (64u << 20)

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: backstop-classify [--config FILE] [--rules FILE] "
	        "[--mail-from ADDR]\n"
	        "         [--rcpt ADDR]... [--chunk N | --random-chunks SEED] "
	        "[--crlf] [--now EPOCH] FILE...\n");
}

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

/* Read a whole file; LF -> CRLF if crlf.  Returns a malloc'd buffer. */
static uint8_t *
read_file(const char *path, bool crlf, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL, *out;
	size_t len = 0, cap = 0, n, lf = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			uint8_t *nb;

			if (ncap > CLASSIFY_FILE_MAX)
				break;
			nb = realloc(buf, ncap);
			if (!nb)
				break;
			buf = nb;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	if (!buf)
		buf = malloc(1);
	if (!buf || !crlf) {
		*lenp = len;
		return buf;
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			lf++;
	out = malloc(len + lf + 1);
	if (!out) {
		free(buf);
		return NULL;
	}
	n = 0;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			out[n++] = '\r';
		out[n++] = buf[i];
	}
	free(buf);
	*lenp = n;
	return out;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"rules", required_argument, NULL, 'r'},
	        {"mail-from", required_argument, NULL, 'f'},
	        {"rcpt", required_argument, NULL, 't'},
	        {"chunk", required_argument, NULL, 'n'},
	        {"random-chunks", required_argument, NULL, 'R'},
	        {"crlf", no_argument, NULL, 'C'},
	        {"now", required_argument, NULL, 'N'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *rules = NULL, *mail_from = NULL;
	const char *rcpts[CLASSIFY_RCPT_MAX];
	unsigned int n_rcpts = 0;
	unsigned long chunk = 4096;
	uint64_t seed = 0;
	bool random_chunks = false, crlf = false;
	struct bs_config cfg;
	struct bs_ruleset *rs;
	struct bs_detect_ctx *ctx;
	struct bs_verdict_policy *pol;
	struct bs_verdict_ctx *vc;
	static struct bs_smtp_rcpt rcpt_v[CLASSIFY_RCPT_MAX];
	uint64_t now_s = (uint64_t)time(NULL);
	char err[512];
	int c, rc = 0;
	size_t jcap = 1 << 16;
	char *json = malloc(jcap);

	while ((c = getopt_long(argc, argv, "c:r:f:t:n:R:CN:h", opts, NULL)) !=
	        -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'r':
			rules = optarg;
			break;
		case 'f':
			mail_from = optarg;
			/* Accept "<>" and "<a@b>" as written in MAIL FROM. */
			if (strcmp(mail_from, "<>") == 0)
				mail_from = "";
			break;
		case 't':
			if (n_rcpts == CLASSIFY_RCPT_MAX) {
				fprintf(stderr, "at most %u --rcpt\n",
				        CLASSIFY_RCPT_MAX);
				return 2;
			}
			rcpts[n_rcpts++] = optarg;
			break;
		case 'n': {
			char *end;

			errno = 0;
			chunk = strtoul(optarg, &end, 10);
			if (errno || *end || chunk == 0 || chunk > (1u << 30)) {
				fprintf(stderr, "--chunk: 1..2^30\n");
				return 2;
			}
			break;
		}
		case 'R':
			random_chunks = true;
			seed = strtoull(optarg, NULL, 10) * 2654435761u + 1;
			break;
		case 'C':
			crlf = true;
			break;
		case 'N': {
			char *end;

			errno = 0;
			now_s = strtoull(optarg, &end, 10);
			if (errno || *end || optarg[0] == '\0') {
				fprintf(stderr, "--now: seconds since 1970\n");
				return 2;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || !json) {
		usage(stderr);
		return 2;
	}
	if (bs_config_defaults(&cfg) < 0)
		return 2;
	if (config && bs_config_load(&cfg, config, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (!rules) {
		rules = cfg.detect_rules_file;
#ifdef BS_DATA_DIR
		/* As backstop does: a relative path not found here is looked
		 * up in the source/data directory. */
		static char path[4096];

		if (rules[0] != '/' && access(rules, R_OK) != 0) {
			snprintf(path, sizeof(path), "%s/%s", BS_DATA_DIR,
			        rules);
			rules = path;
		}
#endif
	}
	rs = bs_ruleset_load(rules, err, sizeof(err));
	if (!rs) {
		fprintf(stderr, "%s\n", err);
		bs_config_free(&cfg);
		return 2;
	}
	ctx = bs_detect_ctx_create(rs);
	if (!ctx) {
		fprintf(stderr, "out of memory (scratch)\n");
		return 2;
	}
	pol = bs_verdict_policy_build(&cfg, err, sizeof(err));
	vc = pol ? bs_verdict_ctx_create(pol, NULL) : NULL;
	if (!vc) {
		fprintf(stderr, "%s\n", pol ? "out of memory (verdict)" : err);
		return 2;
	}
	for (unsigned int i = 0; i < n_rcpts; i++) {
		/* Strip <> as written in RCPT TO; each counts as accepted. */
		const char *r = rcpts[i];
		size_t l = strlen(r);

		if (l >= 2 && r[0] == '<' && r[l - 1] == '>') {
			r++;
			l -= 2;
		}
		if (l >= BS_SMTP_ADDR_MAX)
			l = BS_SMTP_ADDR_MAX - 1;
		memcpy(rcpt_v[i].addr, r, l);
		rcpt_v[i].addr[l] = '\0';
		rcpt_v[i].len = (uint16_t)l;
		rcpt_v[i].reply = 250;
	}

	for (int a = optind; a < argc; a++) {
		struct bs_detect_result res;
		struct bs_msg *msg;
		size_t len, off = 0, need;
		uint8_t *buf = read_file(argv[a], crlf, &len);
		char extra[4200];
		size_t el;

		if (!buf) {
			fprintf(stderr, "%s: %s\n", argv[a], strerror(errno));
			rc = 1;
			continue;
		}
		msg = bs_msg_begin(ctx, mail_from, rcpts, n_rcpts);
		if (!msg) {
			fprintf(stderr, "%s: out of memory\n", argv[a]);
			free(buf);
			rc = 1;
			continue;
		}
		while (off < len) {
			size_t n =
			        random_chunks
			                ? (size_t)(xorshift(&seed) % 1500) + 1
			                : chunk;

			if (n > len - off)
				n = len - off;
			bs_msg_feed(msg, buf + off, n);
			off += n;
		}
		bs_msg_end(msg, &res);
		free(buf);

		struct bs_verdict_input vin;
		struct bs_verdict_result vr;
		char vjson[2048];

		bs_verdict_input_init(&vin, NULL, &res, now_s);
		vin.mail_from = mail_from;
		vin.rcpt = rcpt_v;
		vin.nrcpt = n_rcpts;
		bs_verdict_judge(vc, NULL, &vin, &vr);
		bs_verdict_result_json(&vr, vjson, sizeof(vjson));

		memcpy(extra, "\"file\":", 7);
		el = 7 + bs_json_string(extra + 7, sizeof(extra) - 8, argv[a],
		                 strlen(argv[a]));
		if (el + 2 > sizeof(extra))
			el = sizeof(extra) - 2;
		extra[el++] = ',';
		extra[el] = '\0';
		need = bs_detect_result_json(&res, extra, json, jcap);
		if (need >= jcap) {
			char *nj = realloc(json, need + 1);

			if (!nj) {
				fprintf(stderr, "out of memory\n");
				return 2;
			}
			json = nj;
			jcap = need + 1;
			bs_detect_result_json(&res, extra, json, jcap);
		}
		/* The verdict's members go last, before the closing brace. */
		need = strlen(json);
		if (need > 0 && json[need - 1] == '}') {
			json[need - 1] = '\0';
			printf("%s,%s}\n", json, vjson);
		} else {
			puts(json);
		}
	}
	free(json);
	bs_verdict_ctx_free(vc);
	bs_verdict_policy_free(pol);
	bs_detect_ctx_free(ctx);
	bs_ruleset_free(rs);
	bs_config_free(&cfg);
	return rc;
}
