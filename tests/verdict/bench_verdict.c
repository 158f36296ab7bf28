/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Cost of one verdict for each kind of evidence (docs/VERDICT.md): the
 * kinds run side by side, round after round, and each figure is the
 * median over rounds of the mean ns per verdict in a round, in the
 * thread's CPU time (the machine is shared and noisy: wall time would
 * count other processes' turns).  The ledger and storm are stubs answering at
 * once: the figures are the verdict's own cost.
 *
 *   bench_verdict MAKE_DKIM_PY [ROUNDS [ITERS]]
 */
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backstop/config.h"
#include "backstop/verdict.h"

#define NOW 1900000000ULL

static enum bs_ledger_answer
hit(void *arg, const char *id, size_t n)
{
	(void)arg;
	(void)id;
	(void)n;
	return BS_LEDGER_HIT;
}

static char *
slurp(const char *dir, const char *name)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "rb");
	if (f == NULL) {
		perror(p);
		exit(1);
	}
	char *b = calloc(1, 1 << 16);
	size_t n = fread(b, 1, (1 << 16) - 1, f);
	b[n] = '\0';
	fclose(f);
	return b;
}

struct kind {
	const char *name;
	uint8_t cls;
	const char *rcpt;
	bool orig, ledger;
	const char *rcvd[3];
	const char *hdr; /* file */
	uint8_t want;
	char *hbuf;
	struct bs_detect_result det;
	struct bs_smtp_rcpt rc;
	double ns[64];
};

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_verdict MAKE_DKIM_PY [ROUNDS "
			"[ITERS]]\n");
		return 2;
	}
	int rounds = argc > 2 ? atoi(argv[2]) : 9;
	int iters = argc > 3 ? atoi(argv[3]) : 2000;
	if (rounds < 1 || rounds > 64 || iters < 1)
		return 2;
	char dir[128], cmd[512];
	snprintf(dir, sizeof(dir), "/tmp/bench_verdict.%d", getpid());
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s >/dev/null",
		argv[1], dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "%s failed\n", argv[1]);
		return 1;
	}
	char *keys = slurp(dir, "keys.yaml");
	char yaml[8192], err[512];
	snprintf(yaml, sizeof(yaml), "protected_domains: [example.com]\n"
		"batv: {enforce: true, keys: [{id: 0, secret: bench-secret}]}\n"
		"relays: [out1.example.com, 192.0.2.0/24]\n"
		"verdict.dkim_checks_per_s: 10000000\n%s", keys);
	struct bs_config cfg;
	bs_config_defaults(&cfg);
	if (bs_config_load_mem(&cfg, "bench", (const uint8_t *)yaml,
			strlen(yaml), err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct bs_verdict_policy *p = bs_verdict_policy_build(&cfg, err,
		sizeof(err));
	struct bs_verdict_ctx *vc = p ? bs_verdict_ctx_create(p, NULL) : NULL;
	if (vc == NULL)
		return 1;

	/* A valid tag, made here as Exim makes it. */
	char tag[128];
	unsigned int day = (unsigned int)((NOW / 86400 + 7) % 1000);
	char src[64];
	int sl = snprintf(src, sizeof(src), "0%03ualice@example.com", day);
	unsigned char md[20];
	unsigned int ml;
	HMAC(EVP_sha1(), "bench-secret", 12, (unsigned char *)src, (size_t)sl,
		md, &ml);
	snprintf(tag, sizeof(tag), "prvs=0%03u%02x%02x%02x=alice@example.com",
		day, md[0], md[1], md[2]);

	const char *far = "from a.example (a.example [203.0.113.5]) by "
		"mx.remote.example (Postfix) with ESMTP id 1";
	const char *near = "from out1.example.com (out1.example.com "
		"[192.0.2.9]) by mx.remote.example (Postfix) with ESMTP id 2";
	struct kind k[] = {
		{ "not a bounce", BS_CLASS_NONE, "alice@example.com", false,
			false, { 0 }, NULL, BS_VERDICT_NOT_BOUNCE },
		{ "not protected", BS_CLASS_DSN, "bob@other.example", true,
			false, { far }, NULL, BS_VERDICT_NOT_BOUNCE },
		{ "batv valid", BS_CLASS_DSN, tag, true, false, { far }, NULL,
			BS_VERDICT_LEGIT },
		{ "batv missing (enforce)", BS_CLASS_DSN, "alice@example.com",
			false, false, { 0 }, NULL, BS_VERDICT_BACKSCATTER },
		{ "ledger hit", BS_CLASS_AUTOREPLY, "alice@example.com", true,
			true, { far }, NULL, BS_VERDICT_LEGIT },
		{ "relay seen (2nd hop)", BS_CLASS_AUTOREPLY,
			"alice@example.com", true, false, { far, near }, NULL,
			BS_VERDICT_LEGIT },
		{ "relay absent, no DKIM sig", BS_CLASS_AUTOREPLY,
			"alice@example.com", true, false, { far, far, far },
			NULL, BS_VERDICT_BACKSCATTER },
		{ "dkim rsa-2048 valid", BS_CLASS_AUTOREPLY,
			"alice@example.com", true, false, { 0 },
			"rsa_relaxed.hdr", BS_VERDICT_LEGIT },
		{ "dkim ed25519 valid", BS_CLASS_AUTOREPLY,
			"alice@example.com", true, false, { 0 },
			"ed_relaxed.hdr", BS_VERDICT_LEGIT },
	};
	unsigned int nk = sizeof(k) / sizeof(k[0]);
	for (unsigned int i = 0; i < nk; i++) {
		struct kind *x = &k[i];
		x->det.cls = x->cls;
		x->det.mime.orig.present = x->orig;
		snprintf(x->det.mime.orig.from, BS_FIELD_MAX,
			"Alice <alice@example.com>");
		snprintf(x->det.mime.orig.message_id, BS_FIELD_MAX,
			"<20300317.%u@example.com>", i);
		for (int j = 0; j < 3 && x->rcvd[j]; j++) {
			snprintf(x->det.mime.orig.received[j].raw,
				BS_RECEIVED_RAW_MAX, "%s", x->rcvd[j]);
			x->det.mime.orig.n_received++;
			x->det.mime.orig.n_received_seen++;
		}
		snprintf(x->rc.addr, sizeof(x->rc.addr), "%s", x->rcpt);
		x->rc.len = (uint16_t)strlen(x->rcpt);
		x->rc.reply = 250;
		if (x->hdr) {
			x->hbuf = slurp(dir, x->hdr);
			/* Without its Received fields, so DKIM decides. */
			char *r = strstr(x->hbuf, "Received:");
			char *e = strstr(x->hbuf, "\r\nFrom:");
			if (r && e)
				memmove(r, e + 2, strlen(e + 2) + 1);
		}
	}
	struct bs_verdict_env env_hit = { hit, NULL, NULL, NULL };
	for (int r = 0; r < rounds; r++) {
		for (unsigned int i = 0; i < nk; i++) {
			struct kind *x = &k[i];
			struct bs_verdict_input in;
			struct bs_verdict_result out;
			struct timespec a, b;
			bs_verdict_input_init(&in, NULL, &x->det, NOW);
			in.rcpt = &x->rc;
			in.nrcpt = 1;
			if (x->hbuf) {
				in.hdr = (const uint8_t *)x->hbuf;
				in.hdr_len = strlen(x->hbuf);
			}
			clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
			for (int it = 0; it < iters; it++)
				bs_verdict_judge(vc, x->ledger ? &env_hit : NULL,
					&in, &out);
			clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
			if (out.verdict != x->want) {
				fprintf(stderr, "%s: verdict %s\n", x->name,
					bs_verdict_name(out.verdict));
				return 1;
			}
			x->ns[r] = ((double)(b.tv_sec - a.tv_sec) * 1e9 +
				(double)(b.tv_nsec - a.tv_nsec)) / iters;
		}
	}
	printf("| evidence | median ns per verdict |\n|---|---|\n");
	for (unsigned int i = 0; i < nk; i++) {
		qsort(k[i].ns, (size_t)rounds, sizeof(double), cmp);
		printf("| %s | %.0f |\n", k[i].name, k[i].ns[rounds / 2]);
		free(k[i].hbuf);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	free(keys);
	bs_verdict_ctx_free(vc);
	bs_verdict_policy_free(p);
	bs_config_free(&cfg);
	return 0;
}
