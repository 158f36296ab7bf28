/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The engine and the transaction stage together: detection must see
 * every message from its first byte whatever command carried it.  The
 * same corpus message sent with DATA, with BDAT in one chunk (waiting
 * for the replies, or pipelined with the envelope in one segment), and
 * with BDAT in random chunks (random sizes, pipelined, randomly
 * segmented on the wire) must give the same event-log line from "size"
 * on: size, reply, digest, class and the whole detection result.
 *
 * Environment: BS_CORPUS (the shared mail corpus), set by meson; the
 * rule pack is BS_DATA_DIR/rules/default.rules.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backstop/rules.h"
#include "harness.h"

static const char *corpus_dir = "../../../shared/corpus";

static struct bs_config cfg;
static struct bs_pub *pub;
static struct bs_counters cnt;
static struct bs_txn_stage st;

static int
setup(void **state)
{
	char err[256], path[1024];

	(void)state;
	if (bs_config_defaults(&cfg) < 0)
		return -1;
	cfg.smtp_event_digest = true;
	/* Random segmentation reorders a whole turn: room to hold it. */
	cfg.smtp_ooo_flow_bytes = 16u << 20;
	cfg.smtp_ooo_global_bytes = 64u << 20;
	snprintf(path, sizeof(path), "%s/rules/default.rules", BS_DATA_DIR);
	/* Detection through a published set, as on a worker (slot 0). */
	pub = bs_pub_create(1);
	struct bs_pubcfg *pc = bs_pubcfg_build(&cfg, path, 1, err,
		sizeof(err));
	if (pub == NULL || pc == NULL) {
		fprintf(stderr, "%s: %s\n", path, err);
		return -1;
	}
	bs_pub_set_counters(pub, 0, &cnt);
	bs_pub_publish(pub, pc);
	if (bs_txn_init(&st, &cfg, pub, 0, &cnt, true, 0) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	bs_txn_fini(&st);
	bs_pub_free(pub);
	return 0;
}

static const char greet[] = "220 mx ESMTP\r\n";
static const char ehlo[] = "EHLO relay.example.org\r\n";
static const char ehlo_reply[] = "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
				 "250 SIZE 100000000\r\n";
static const char envelope[] = "MAIL FROM:<>\r\nRCPT TO:<u@example.net>\r\n";

static void
start(struct h_script *s)
{
	h_script_str(s, 1, greet);
	h_script_str(s, 0, ehlo);
	h_script_str(s, 1, ehlo_reply);
}

static void
end(struct h_script *s)
{
	h_script_str(s, 0, "QUIT\r\n");
	h_script_str(s, 1, "221 bye\r\n");
}

/* DATA, replies awaited as a non-pipelining client does. */
static void
by_data(struct h_script *s, const uint8_t *wire, size_t wlen)
{
	start(s);
	h_script_str(s, 0, "MAIL FROM:<>\r\n");
	h_script_str(s, 1, "250 ok\r\n");
	h_script_str(s, 0, "RCPT TO:<u@example.net>\r\n");
	h_script_str(s, 1, "250 ok\r\n");
	h_script_str(s, 0, "DATA\r\n");
	h_script_str(s, 1, "354 go\r\n");
	h_script_add(s, 0, wire, wlen);
	h_script_str(s, 0, ".\r\n");
	h_script_str(s, 1, "250 queued\r\n");
	end(s);
}

/* One BDAT LAST after the envelope's replies. */
static void
by_bdat_one(struct h_script *s, const uint8_t *raw, size_t rlen)
{
	char cmd[64];

	start(s);
	h_script_str(s, 0, "MAIL FROM:<>\r\n");
	h_script_str(s, 1, "250 ok\r\n");
	h_script_str(s, 0, "RCPT TO:<u@example.net>\r\n");
	h_script_str(s, 1, "250 ok\r\n");
	snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", rlen);
	h_script_str(s, 0, cmd);
	h_script_add(s, 0, raw, rlen);
	h_script_str(s, 1, "250 queued\r\n");
	end(s);
}

/*
 * The envelope and every chunk in one client turn (PIPELINING +
 * CHUNKING: the replies come after).  nchunks random sizes; with
 * zero_last the message ends with an extra "BDAT 0 LAST".
 */
static void
by_bdat_pipelined(struct h_script *s, const uint8_t *raw, size_t rlen,
	unsigned int nchunks, int zero_last, uint64_t *rs)
{
	char cmd[64];
	size_t off = 0;

	start(s);
	h_script_str(s, 0, envelope);
	for (unsigned int i = 0; i < nchunks; i++) {
		size_t left = rlen - off, k;
		int last = i + 1 == nchunks && !zero_last;

		if (last || left == 0)
			k = left;
		else
			k = (size_t)(h_rand(rs) % (left + 1));
		snprintf(cmd, sizeof(cmd), "BDAT %zu%s\r\n", k,
			last ? " LAST" : "");
		h_script_str(s, 0, cmd);
		h_script_add(s, 0, raw + off, k);
		off += k;
	}
	if (zero_last || off < rlen) {
		snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", rlen - off);
		h_script_str(s, 0, cmd);
		h_script_add(s, 0, raw + off, rlen - off);
		nchunks++;
	}
	h_script_str(s, 1, "250 ok\r\n250 ok\r\n");
	for (unsigned int i = 1; i < nchunks; i++)
		h_script_str(s, 1, "250 chunk ok\r\n");
	h_script_str(s, 1, "250 queued\r\n");
	end(s);
}

/* The event line from "size" on (ts differs with the number of turns). */
static const char *
tail(const char *json)
{
	const char *p = json != NULL ? strstr(json, "\"size\":") : NULL;

	return p != NULL ? p : "(no record)";
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

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

		if (l < 5 || strcmp(e->d_name + l - 4, ".eml") != 0)
			continue;
		paths[n] = malloc(strlen(dir) + l + 2);
		sprintf(paths[n], "%s/%s", dir, e->d_name);
		n++;
	}
	closedir(d);
	qsort(paths, n, sizeof(*paths), name_cmp);
	/* Spread the picks over the folder (many MTAs, not one). */
	if (n > max) {
		char **all = malloc(n * sizeof(*all));

		memcpy(all, paths, n * sizeof(*all));
		for (size_t j = 0, i = 0; i < n; i++) {
			if (j < max && i == j * n / max)
				paths[j++] = all[i];
			else
				free(all[i]);
		}
		free(all);
		n = max;
	}
	return n;
}

static void
check_same(const char *path, const char *what, const struct h_out *ref,
	const struct h_out *out)
{
	if (out->json == NULL || strcmp(tail(out->json), tail(ref->json))) {
		print_error("%s via %s: inspected %d, uninspected %lu, "
			    "desync %lu\n", path, what, out->inspected,
			(unsigned long)cnt.v[BS_CNT_smtp_uninspected],
			(unsigned long)cnt.v[BS_CNT_smtp_desync]);
		print_error(" got %s\nwant %s\n", tail(out->json),
			tail(ref->json));
		fail();
	}
	assert_int_equal(out->order_err, 0);
	assert_int_equal(out->inspected, 1);
}

static void
test_bdat_same_as_data(void **state)
{
	static const char *const subs[] = { "ndr/sisimai", "not-ndr/mail-gem",
		"not-ndr/sisimai", "autoreply/sisimai" };
	static const size_t per[] = { 120, 16, 8, 8 };
	char *paths[4096];
	size_t np = 0;
	unsigned int runs = 0, bounces = 0, ndr = 0;
	uint64_t rs = 7;

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		size_t k = list_eml(subs[i], paths + np, per[i]);

		if (i == 0)
			ndr = (unsigned int)k;
		np += k;
	}
	if (ndr == 0)
		fail_msg("no corpus bounces under %s", corpus_dir);
	for (size_t i = 0; i < np; i++) {
		size_t len = 0, wlen, clen;
		uint8_t *msg = h_read_file(paths[i], &len), *crlf, *wire;
		struct h_opts o = { .isn_c = 77, .isn_s = 99, .digest = 1,
			.fin = 1 };
		struct h_script s = { 0 };
		struct h_out ref, out;

		assert_non_null(msg);
		wire = h_smtp_body(msg, len, &wlen, &crlf, &clen);
		by_data(&s, wire, wlen);
		h_run_txn(&st, &s, &o, 0, &ref);
		h_script_free(&s);
		assert_non_null(ref.json);
		assert_int_equal(ref.order_err, 0);
		if (i < ndr && strstr(ref.json, "\"class\":\"none\"") == NULL)
			bounces++;

		by_bdat_one(&s, crlf, clen);
		h_run_txn(&st, &s, &o, 0, &out);
		h_script_free(&s);
		check_same(paths[i], "BDAT LAST", &ref, &out);
		h_out_free(&out);
		runs++;

		by_bdat_pipelined(&s, crlf, clen, 1, 0, &rs);
		h_run_txn(&st, &s, &o, 0, &out);
		h_script_free(&s);
		check_same(paths[i], "pipelined BDAT LAST", &ref, &out);
		h_out_free(&out);
		runs++;

		for (int k = 0; k < 6; k++) {
			unsigned int n = 2 + (unsigned int)(h_rand(&rs) % 6);

			/* Random cuts and reordering of the wire too, but not
			 * of large messages in 1-byte segments (slow, and
			 * the SMTP property test covers segmentation). */
			uint64_t seed = k >= 3 && clen < (16u << 10) ?
				h_rand(&rs) | 1 : 0;

			by_bdat_pipelined(&s, crlf, clen, n, k == 1, &rs);
			h_run_txn(&st, &s, &o, seed, &out);
			h_script_free(&s);
			check_same(paths[i], "BDAT chunks", &ref, &out);
			h_out_free(&out);
			runs++;
		}
		h_out_free(&ref);
		free(msg);
		free(wire);
		free(crlf);
		free(paths[i]);
	}
	print_message("bdat vs data: %zu messages, %u runs, %u of %u "
		      "bounces classed\n", np, runs, bounces, ndr);
	/* The rules find most corpus bounces through DATA: if they did
	 * not, the comparison above would prove little. */
	assert_true(bounces * 2 > ndr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bdat_same_as_data),
	};

	if (getenv("BS_CORPUS") != NULL)
		corpus_dir = getenv("BS_CORPUS");
	return cmocka_run_group_tests_name("txn", tests, setup, teardown);
}
