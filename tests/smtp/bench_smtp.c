/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Throughput of reassembly + the SMTP engine, without EAL or NIC.
 *
 * Builds SMTP sessions around messages of the shared corpus (greeting,
 * EHLO, pipelined envelope, DATA, QUIT, FIN), cuts them into 1460-byte
 * segments and interleaves FLOWS sessions round-robin, as a worker sees
 * many connections at once.  All segments are prepared first; the timed
 * loop only calls bs_smtp_flow_input().  Prints segments/s, payload
 * bytes/s and the per-flow memory; scripts/bench.sh can relate them to
 * the pass-through rate of the same machine.
 *
 * Usage: bench_smtp [corpus_dir] [flows] [rounds]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backstop/pkt.h"
#include "harness.h"

struct bseg {
	uint32_t flow;
	struct bs_seg s;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static unsigned int eoms;

static void
on_eom(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *r,
	void *pkt)
{
	(void)arg;
	(void)f;
	(void)r;
	(void)pkt;
	eoms++;
}

/* Segments of one session, in order, appended to *out. */
static void
session_segs(const struct h_script *s, uint32_t flow, struct bseg **out,
	size_t *n, size_t *cap)
{
	uint32_t nxt[2] = { 1000 + flow, 5000000 + flow };
	struct bs_seg sg;

	memset(&sg, 0, sizeof(sg));
	sg.win = 65535;
#define PUSH()                                                               \
	do {                                                                 \
		if (*n == *cap) {                                            \
			*cap = *cap ? *cap * 2 : 1024;                       \
			*out = realloc(*out, *cap * sizeof(**out));          \
		}                                                            \
		(*out)[*n].flow = flow;                                      \
		(*out)[*n].s = sg;                                           \
		(*n)++;                                                      \
	} while (0)
	sg.flags = BS_TCP_SYN;
	sg.seq = nxt[0] - 1;
	sg.to_server = 1;
	PUSH();
	sg.flags = BS_TCP_SYN | BS_TCP_ACK;
	sg.seq = nxt[1] - 1;
	sg.ack = nxt[0];
	sg.to_server = 0;
	PUSH();
	for (size_t i = 0; i < s->n; i++) {
		const struct h_turn *t = &s->t[i];
		int d = t->dir;

		for (size_t off = 0; off < t->len; off += 1460) {
			sg.data = t->data + off;
			sg.len = (uint32_t)(t->len - off < 1460 ? t->len - off
								: 1460);
			sg.seq = nxt[d] + (uint32_t)off;
			sg.ack = nxt[!d];
			sg.flags = BS_TCP_ACK | BS_TCP_PSH;
			sg.to_server = d == 0;
			PUSH();
		}
		nxt[d] += (uint32_t)t->len;
	}
	sg.data = NULL;
	sg.len = 0;
	for (int d = 0; d < 2; d++) {
		sg.seq = nxt[d];
		sg.ack = nxt[!d] + (d == 1);
		sg.flags = BS_TCP_ACK | BS_TCP_FIN;
		sg.to_server = d == 0;
		PUSH();
	}
#undef PUSH
}

int
main(int argc, char **argv)
{
	const char *corpus = argc > 1 ? argv[1] : getenv("BS_CORPUS");
	unsigned int flows = argc > 2 ? (unsigned int)atoi(argv[2]) : 1000;
	unsigned int rounds = argc > 3 ? (unsigned int)atoi(argv[3]) : 5;
	static const struct bs_smtp_events ev = { .on_end_of_message = on_eom };
	struct h_script *scripts = NULL;
	size_t nscripts = 0;
	char dir[1024];
	DIR *dp;
	struct dirent *e;
	struct bseg **per = NULL;
	size_t *pern = NULL, *perpos = NULL;
	struct bseg *all = NULL;
	size_t nall = 0, allcap = 0;
	uint64_t bytes = 0, t0, t1, best = UINT64_MAX;
	struct bs_counters cnt;
	struct bs_smtp_params p;

	if (corpus == NULL || flows == 0) {
		fprintf(stderr, "usage: bench_smtp corpus_dir [flows] [rounds]\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/ndr/sisimai", corpus);
	dp = opendir(dir);
	if (dp == NULL) {
		perror(dir);
		return 1;
	}
	while ((e = readdir(dp)) != NULL && nscripts < 256) {
		char path[2048];
		size_t len, wlen, clen;
		uint8_t *msg, *wire, *crlf;
		struct h_script *s;

		if (strstr(e->d_name, ".eml") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		msg = h_read_file(path, &len);
		if (msg == NULL)
			continue;
		wire = h_smtp_body(msg, len, &wlen, &crlf, &clen);
		scripts = realloc(scripts, (nscripts + 1) * sizeof(*scripts));
		s = &scripts[nscripts++];
		memset(s, 0, sizeof(*s));
		h_script_str(s, 1, "220 mx ESMTP\r\n");
		h_script_str(s, 0, "EHLO relay.example.org\r\n");
		h_script_str(s, 1, "250-mx\r\n250-PIPELINING\r\n250 SIZE\r\n");
		h_script_str(s, 0, "MAIL FROM:<>\r\nRCPT TO:<u@example.net>\r\n"
				   "DATA\r\n");
		h_script_str(s, 1, "250 ok\r\n250 ok\r\n354 go\r\n");
		h_script_add(s, 0, wire, wlen);
		h_script_str(s, 0, ".\r\n");
		h_script_str(s, 1, "250 queued\r\n");
		h_script_str(s, 0, "QUIT\r\n");
		h_script_str(s, 1, "221 bye\r\n");
		free(msg);
		free(wire);
		free(crlf);
	}
	closedir(dp);
	if (nscripts == 0) {
		fprintf(stderr, "no messages in %s\n", dir);
		return 1;
	}
	/* Interleave: one segment per flow per round-robin pass. */
	per = calloc(flows, sizeof(*per));
	pern = calloc(flows, sizeof(*pern));
	perpos = calloc(flows, sizeof(*perpos));
	for (unsigned int f = 0; f < flows; f++) {
		size_t cap = 0;

		session_segs(&scripts[f % nscripts], f, &per[f], &pern[f], &cap);
	}
	for (int more = 1; more;) {
		more = 0;
		for (unsigned int f = 0; f < flows; f++) {
			if (perpos[f] == pern[f])
				continue;
			more = 1;
			if (nall == allcap) {
				allcap = allcap ? allcap * 2 : 4096;
				all = realloc(all, allcap * sizeof(*all));
			}
			all[nall++] = per[f][perpos[f]++];
			bytes += all[nall - 1].s.len;
		}
	}
	bs_smtp_params_default(&p);
	for (unsigned int r = 0; r < rounds; r++) {
		struct bs_smtp_ctx *ctx;
		struct bs_smtp_flow **fl = calloc(flows, sizeof(*fl));

		memset(&cnt, 0, sizeof(cnt));
		eoms = 0;
		ctx = bs_smtp_ctx_create(&p, &ev, NULL, &cnt);
		t0 = now_ns();
		for (size_t i = 0; i < nall; i++) {
			uint32_t f = all[i].flow;

			if (fl[f] == NULL)
				fl[f] = bs_smtp_flow_new(ctx, NULL);
			bs_smtp_flow_input(ctx, fl[f], &all[i].s, 0);
		}
		t1 = now_ns();
		for (unsigned int f = 0; f < flows; f++)
			bs_smtp_flow_free(ctx, fl[f], 0);
		bs_smtp_ctx_free(ctx);
		free(fl);
		if (eoms != flows) {
			fprintf(stderr, "only %u of %u messages seen\n", eoms,
				flows);
			return 1;
		}
		if (t1 - t0 < best)
			best = t1 - t0;
	}
	printf("flows %u, segments %zu, payload bytes %llu, best of %u: "
	       "%.3f ms\n", flows, nall, (unsigned long long)bytes, rounds,
		best / 1e6);
	printf("segments/s %.0f  payload Gbit/s %.2f  ns/segment %.1f\n",
		nall / (best / 1e9), bytes * 8 / (double)best,
		(double)best / nall);
	printf("per-flow state %zu bytes (+ on demand: out-of-order data, "
	       "history %u x 2, line buffers, records)\n",
		bs_smtp_flow_size(), p.smtp_history_bytes);
	for (unsigned int f = 0; f < flows; f++)
		free(per[f]);
	free(per);
	free(pern);
	free(perpos);
	free(all);
	for (size_t i = 0; i < nscripts; i++)
		h_script_free(&scripts[i]);
	free(scripts);
	return 0;
}
