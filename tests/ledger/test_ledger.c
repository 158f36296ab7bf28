/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the outbound ledger (ledger.h): Message-ID normalisation
 * and the References walk; record, lookup, TTL, renewal, eviction of the
 * oldest, full rings, warm-up; snapshots: round trip, what a restart
 * after a crash or a long pause does to the warm-up, a crash in the
 * middle of a save (a real one: the child process is killed by SIGXFSZ
 * while writing), a failed save, and every kind of corrupt or foreign
 * file refused with a reason; the writer thread and `ledger save`.
 *
 * Time is virtual (the writer steps are called with it) except in the
 * thread test.  Each test registers with liburcu-qsbr itself, because
 * the crash test forks and its child registers anew.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <urcu-qsbr.h>

#include "backstop/counters.h"
#include "backstop/ledger.h"

#define T0 1700000000ull

/* ---- helpers ---- */

static char logbuf[16384];

static void
capture(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	size_t n = strlen(logbuf);
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static void
params(struct bs_ledger_params *p, uint32_t max, uint32_t ttl)
{
	bs_ledger_params_default(p);
	p->max_entries = max;
	p->ttl_s = ttl;
	p->log = capture;
	logbuf[0] = '\0';
}

static struct bs_ledger *
mk(const struct bs_ledger_params *p, uint64_t now)
{
	char err[256];
	struct bs_ledger *l = bs_ledger_create(p, now, err, sizeof(err));
	if (l == NULL)
		fail_msg("create: %s", err);
	return l;
}

static int
rec(struct bs_ledger *l, unsigned int part, const char *id, uint64_t now)
{
	return bs_ledger_record(bs_ledger_part(l, part), id, strlen(id), now);
}

static enum bs_ledger_answer
look(const struct bs_ledger *l, const char *id, uint64_t now)
{
	return bs_ledger_lookup(l, id, strlen(id), now);
}

static void
idn(char *b, size_t n, const char *tag, unsigned int i)
{
	snprintf(b, n, "<%s.%u.%08x@mail.Example.COM>", tag, i, i * 2654435761u);
}

static char dir[64];

static void
mkdir_tmp(void)
{
	snprintf(dir, sizeof(dir), "/tmp/bs-ledger-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void
rm_tmp(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n + 1);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void
spit(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	fclose(f);
}

/* Recompute the trailing SHA-256, as a forger who knows the format would. */
static void
reseal(uint8_t *b, size_t len)
{
	unsigned int n = 0;
	assert_int_equal(EVP_Digest(b, len - 32, b + len - 32, &n, EVP_sha256(),
		NULL), 1);
}

static bool
exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ---- normalisation ---- */

static void
test_normalise(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out; /* out NULL: -EINVAL */
	} t[] = {
		{ "<abc@Example.COM>", "abc@example.com" },
		{ "  <ABC.Def@example.com>  ", "ABC.Def@example.com" },
		{ "(comment) <a@b.c> (trailing)", "a@b.c" },
		{ "((nested) (two)) <a@b.c>", "a@b.c" },
		{ "(a \\) still comment) <a@B.c>", "a@b.c" },
		{ "<a.very.long.left\r\n .part@Host.Example>",
			"a.very.long.left.part@host.example" },
		{ "\r\n\t<x@y>", "x@y" },
		{ "bare@EXAMPLE.com", "bare@example.com" },
		{ "bare@EXAMPLE.com trailing junk", "bare@example.com" },
		{ "<\"quo@ted\"@Dom.Example>", "\"quo@ted\"@dom.example" },
		{ "<12345.ABC>", "12345.ABC" },
		{ "<Unclosed@Example.ORG", "Unclosed@example.org" },
		{ "<a@b> <c@d>", "a@b" },
		{ "", NULL },
		{ "<>", NULL },
		{ "< \t>", NULL },
		{ "   ", NULL },
		{ "(only a comment)", NULL },
		{ "(unclosed comment <a@b>", NULL },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char out[BS_MSGID_MAX];
		int n = bs_msgid_normalise(t[i].in, strlen(t[i].in), out,
			sizeof(out));
		if (t[i].out == NULL) {
			if (n != -EINVAL)
				fail_msg("%s: %d, want -EINVAL", t[i].in, n);
			continue;
		}
		if (n < 0 || (size_t)n != strlen(t[i].out) ||
				memcmp(out, t[i].out, (size_t)n) != 0)
			fail_msg("%s: got %.*s (%d), want %s", t[i].in,
				n < 0 ? 0 : n, out, n, t[i].out);
	}
	/* The cap: 998 bytes fit, 999 do not; len bounds every read. */
	char big[1100];
	big[0] = '<';
	memset(big + 1, 'a', 998);
	big[999] = '>';
	char out[BS_MSGID_MAX];
	assert_int_equal(bs_msgid_normalise(big, 1000, out, sizeof(out)), 998);
	memset(big + 1, 'a', 999);
	big[1000] = '>';
	assert_int_equal(bs_msgid_normalise(big, 1001, out, sizeof(out)),
		-E2BIG);
	assert_int_equal(bs_msgid_normalise("<a@b>", 3, out, sizeof(out)), 2);
	assert_memory_equal(out, "a@", 2);
}

static void
test_msgid_next(void **state)
{
	(void)state;
	const char *refs = "<a@b>\r\n <c@D> (comment) junk <e@f>";
	const char *want[] = { "<a@b>", "<c@D>", "<e@f>" };
	size_t off = 0, n = 0, len;
	const char *id;
	while (bs_msgid_next(refs, strlen(refs), &off, &id, &len)) {
		assert_true(n < 3);
		assert_int_equal(len, strlen(want[n]));
		assert_memory_equal(id, want[n], len);
		n++;
	}
	assert_int_equal(n, 3);

	off = 0;
	assert_true(bs_msgid_next(" bare@x ", 8, &off, &id, &len));
	assert_int_equal(len, 7); /* trimmed in front; normalise trims */
	assert_false(bs_msgid_next(" bare@x ", 8, &off, &id, &len));

	off = 0;
	assert_false(bs_msgid_next("", 0, &off, &id, &len));
	off = 0;
	assert_false(bs_msgid_next("  ", 2, &off, &id, &len));

	/* An unclosed '<' ends at the next '<'. */
	const char *broken = "<a@b<c@d>";
	off = 0;
	assert_true(bs_msgid_next(broken, strlen(broken), &off, &id, &len));
	assert_int_equal(len, 4);
	assert_true(bs_msgid_next(broken, strlen(broken), &off, &id, &len));
	assert_int_equal(len, 5);
	assert_memory_equal(id, "<c@d>", 5);
	assert_false(bs_msgid_next(broken, strlen(broken), &off, &id, &len));
}

/* ---- record, lookup, TTL, warm-up ---- */

static void
test_record_lookup(void **state)
{
	(void)state;
	struct bs_ledger_params p;
	params(&p, 1024, 1000);
	p.n_parts = 2;
	struct bs_ledger *l = mk(&p, T0);

	assert_int_equal(look(NULL, "<a@b>", T0), BS_LEDGER_OFF);
	assert_int_equal(rec(l, 0, "<Out.1@Example.COM>", T0), 0);
	assert_int_equal(rec(l, 1, "<out.2@example.com>", T0), 0);
	/* Not visible before the writer's step. */
	assert_int_equal(look(l, "<Out.1@example.com>", T0), BS_LEDGER_WARMING);
	assert_int_equal(bs_ledger_tick(l, T0), 0);

	/* Domain case-insensitive, local part case-sensitive, found from
	 * either worker's record, whatever the wrapping. */
	assert_int_equal(look(l, "<Out.1@example.com>", T0 + 1), BS_LEDGER_HIT);
	assert_int_equal(look(l, " (x) <Out.1@EXAMPLE.com>", T0 + 1),
		BS_LEDGER_HIT);
	assert_int_equal(look(l, "Out.1@example.com", T0 + 1), BS_LEDGER_HIT);
	assert_int_equal(look(l, "<out.2@EXAMPLE.COM>", T0 + 1), BS_LEDGER_HIT);
	assert_int_equal(look(l, "<out.1@example.com>", T0 + 1),
		BS_LEDGER_WARMING);

	/* Warm-up: a miss is no evidence until a TTL has passed. */
	assert_int_equal(look(l, "<never@example.com>", T0 + 999),
		BS_LEDGER_WARMING);
	assert_int_equal(look(l, "<never@example.com>", T0 + 1000),
		BS_LEDGER_MISS);
	/* Nothing to look up: no evidence either way. */
	assert_int_equal(look(l, "<>", T0 + 1000), BS_LEDGER_OFF);
	assert_int_equal(look(l, "", T0 + 1000), BS_LEDGER_OFF);

	/* Unusable ids are not recorded, and counted. */
	assert_int_equal(rec(l, 0, "<>", T0), -EINVAL);
	assert_int_equal(rec(l, 0, "  ", T0), -EINVAL);

	struct bs_ledger_stats st;
	bs_ledger_stats(l, T0 + 1, &st);
	assert_int_equal(st.recorded, 2);
	assert_int_equal(st.bad_msgid, 2);
	assert_int_equal(st.inserts, 2);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.capacity, 1024);
	assert_true(st.warming);
	bs_ledger_stats(l, T0 + 1000, &st);
	assert_false(st.warming);

	struct bs_counters c;
	memset(&c, 0, sizeof(c));
	bs_ledger_counters(l, T0 + 1, &c);
	assert_int_equal(c.v[BS_CNT_ledger_recorded], 2);
	assert_int_equal(c.v[BS_CNT_ledger_bad_msgid], 2);
	assert_int_equal(c.v[BS_CNT_ledger_entries], 2);
	assert_int_equal(c.v[BS_CNT_ledger_warming], 1);
	bs_ledger_destroy(l);
}

static void
test_ttl_refresh(void **state)
{
	(void)state;
	struct bs_ledger_params p;
	params(&p, 1024, 1000);
	struct bs_ledger *l = mk(&p, T0);
	rec(l, 0, "<a@x>", T0);
	rec(l, 0, "<b@x>", T0 + 100);
	bs_ledger_tick(l, T0 + 100);
	/* Exact at the reader: answers for ttl seconds, not one more. */
	assert_int_equal(look(l, "<a@x>", T0 + 1000), BS_LEDGER_HIT);
	assert_int_equal(look(l, "<a@x>", T0 + 1001), BS_LEDGER_MISS);
	/* The writer removes it at its next step. */
	bs_ledger_tick(l, T0 + 1001);
	struct bs_ledger_stats st;
	bs_ledger_stats(l, T0 + 1001, &st);
	assert_int_equal(st.expirations, 1);
	assert_int_equal(st.entries, 1);

	/* Recording again renews: b lives ttl after its last sighting. */
	rec(l, 0, "<b@x>", T0 + 900);
	bs_ledger_tick(l, T0 + 1001);
	assert_int_equal(look(l, "<b@x>", T0 + 1800), BS_LEDGER_HIT);
	bs_ledger_tick(l, T0 + 1200);
	assert_int_equal(look(l, "<b@x>", T0 + 1200), BS_LEDGER_HIT);
	bs_ledger_stats(l, T0 + 1200, &st);
	assert_int_equal(st.refreshes, 1);
	assert_int_equal(st.inserts, 2);
	bs_ledger_tick(l, T0 + 1901);
	assert_int_equal(look(l, "<b@x>", T0 + 1901), BS_LEDGER_MISS);
	bs_ledger_stats(l, T0 + 1901, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.expirations, 2);

	/* A record already older than the TTL when it arrives is dropped. */
	rec(l, 0, "<stale@x>", T0);
	bs_ledger_tick(l, T0 + 1901);
	assert_int_equal(look(l, "<stale@x>", T0 + 1901), BS_LEDGER_MISS);
	bs_ledger_destroy(l);
}

static void
test_eviction(void **state)
{
	(void)state;
	struct bs_ledger_params p;
	params(&p, 16, 100000);
	p.ring_size = 1 << 16;
	struct bs_ledger *l = mk(&p, T0);
	char id[64];
	for (unsigned int i = 0; i < 20; i++) {
		idn(id, sizeof(id), "ev", i);
		assert_int_equal(rec(l, 0, id, T0 + i), 0);
	}
	bs_ledger_tick(l, T0 + 20);
	struct bs_ledger_stats st;
	bs_ledger_stats(l, T0 + 20, &st);
	assert_int_equal(st.entries, 16);
	assert_int_equal(st.evictions, 4);
	for (unsigned int i = 0; i < 20; i++) {
		idn(id, sizeof(id), "ev", i);
		assert_int_equal(look(l, id, T0 + 20),
			i < 4 ? BS_LEDGER_WARMING : BS_LEDGER_HIT);
	}
	/* Many more than the slack in one step: deleted entries are
	 * recycled through grace periods, the newest 16 stay. */
	for (unsigned int i = 0; i < 50000; i++) {
		idn(id, sizeof(id), "flood", i);
		assert_int_equal(rec(l, 0, id, T0 + 30), 0);
	}
	bs_ledger_tick(l, T0 + 30);
	bs_ledger_stats(l, T0 + 30, &st);
	assert_int_equal(st.entries, 16);
	assert_int_equal(st.evictions, 4 + 16 + 50000 - 16);
	for (unsigned int i = 50000 - 16; i < 50000; i++) {
		idn(id, sizeof(id), "flood", i);
		assert_int_equal(look(l, id, T0 + 30), BS_LEDGER_HIT);
	}
	idn(id, sizeof(id), "flood", 50000 - 17);
	assert_int_equal(look(l, id, T0 + 30), BS_LEDGER_WARMING);
	bs_ledger_destroy(l);
}

static void
test_ring_full(void **state)
{
	(void)state;
	struct bs_ledger_params p;
	params(&p, 1024, 1000);
	p.ring_size = 4;
	struct bs_ledger *l = mk(&p, T0);
	char id[64];
	for (unsigned int i = 0; i < 5; i++) {
		idn(id, sizeof(id), "r", i);
		assert_int_equal(rec(l, 0, id, T0), i < 4 ? 0 : -ENOSPC);
	}
	bs_ledger_tick(l, T0);
	for (unsigned int i = 0; i < 5; i++) {
		idn(id, sizeof(id), "r", i);
		assert_int_equal(look(l, id, T0), i < 4 ? BS_LEDGER_HIT :
			BS_LEDGER_WARMING);
	}
	/* Drained: room again. */
	idn(id, sizeof(id), "r", 4);
	assert_int_equal(rec(l, 0, id, T0), 0);
	struct bs_ledger_stats st;
	bs_ledger_stats(l, T0, &st);
	assert_int_equal(st.ring_dropped, 1);
	assert_int_equal(st.recorded, 5);
	bs_ledger_destroy(l);

	char err[128];
	p.ring_size = 6;
	assert_null(bs_ledger_create(&p, T0, err, sizeof(err)));
	p.ring_size = 4;
	p.max_entries = 8;
	assert_null(bs_ledger_create(&p, T0, err, sizeof(err)));
	assert_non_null(strstr(err, "max_entries"));
}

/* ---- snapshots ---- */

static void
fill(struct bs_ledger *l, const char *tag, unsigned int n, uint64_t t)
{
	char id[64];
	for (unsigned int i = 0; i < n; i++) {
		idn(id, sizeof(id), tag, i);
		assert_int_equal(rec(l, 0, id, t + i / 100), 0);
	}
	bs_ledger_tick(l, t + n / 100);
}

static void
expect(const struct bs_ledger *l, const char *tag, unsigned int n,
	uint64_t now, enum bs_ledger_answer want)
{
	char id[64];
	for (unsigned int i = 0; i < n; i++) {
		idn(id, sizeof(id), tag, i);
		if (look(l, id, now) != want)
			fail_msg("%s %u: %d, want %d", tag, i, look(l, id, now),
				want);
	}
}

static void
test_snapshot_round_trip(void **state)
{
	(void)state;
	mkdir_tmp();
	char path[128];
	snprintf(path, sizeof(path), "%s/ledger", dir);
	struct bs_ledger_params p;
	params(&p, 4096, 100000);
	p.ring_size = 4096;
	p.snapshot_path = path;
	struct bs_ledger *l = mk(&p, T0);
	assert_non_null(strstr(logbuf, "no snapshot"));
	fill(l, "rt", 3000, T0);
	bs_ledger_stop(l); /* no thread: the clean final save */
	struct bs_ledger_stats st;
	bs_ledger_stats(l, T0 + 30, &st);
	assert_int_equal(st.snapshot_saves, 1);
	assert_int_equal(st.snapshot_age_s, 0);
	bs_ledger_destroy(l);

	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600); /* it holds the secret */
	assert_int_equal(sb.st_size, 64 + 3000 * 16 + 32);

	/* A clean restart soon after keeps the entries, the secret (they
	 * are found) and the start of watching. */
	struct bs_ledger *l2 = mk(&p, T0 + 35);
	assert_non_null(strstr(logbuf, "3000 entries loaded"));
	char id[64];
	idn(id, sizeof(id), "rt", 0);
	/* Loaded entries appear at the writer's first step. */
	assert_int_equal(look(l2, id, T0 + 35), BS_LEDGER_WARMING);
	bs_ledger_tick(l2, T0 + 35);
	expect(l2, "rt", 3000, T0 + 35, BS_LEDGER_HIT);
	bs_ledger_stats(l2, T0 + 40, &st);
	assert_int_equal(st.warm_since_s, T0);
	assert_int_equal(st.entries, 3000);
	assert_int_equal(st.snapshot_age_s, 5);
	assert_true(st.warming);
	assert_int_equal(look(l2, "<never@x>", T0 + 99999), BS_LEDGER_WARMING);
	assert_int_equal(look(l2, "<never@x>", T0 + 100000), BS_LEDGER_MISS);
	bs_ledger_destroy(l2);

	/* A smaller ledger keeps the newest entries of a bigger snapshot. */
	struct bs_ledger_params p3 = p;
	p3.max_entries = 1000;
	struct bs_ledger *l3 = mk(&p3, T0 + 36);
	bs_ledger_tick(l3, T0 + 36);
	bs_ledger_stats(l3, T0 + 36, &st);
	assert_int_equal(st.entries, 1000);
	assert_int_equal(st.evictions, 2000);
	idn(id, sizeof(id), "rt", 2999);
	assert_int_equal(look(l3, id, T0 + 36), BS_LEDGER_HIT);
	idn(id, sizeof(id), "rt", 1999);
	assert_int_equal(look(l3, id, T0 + 36), BS_LEDGER_WARMING);
	bs_ledger_destroy(l3);
	rm_tmp();
}

static void
test_snapshot_warmup_restarts(void **state)
{
	(void)state;
	mkdir_tmp();
	char path[128];
	snprintf(path, sizeof(path), "%s/ledger", dir);
	struct bs_ledger_params p;
	params(&p, 1024, 1000);
	p.snapshot_path = path;
	p.max_gap_s = 600;

	/* A periodic save (not a clean stop), then a "crash": what was
	 * recorded after the save is lost, so a miss is no evidence for
	 * a whole TTL again.  The saved entries still answer. */
	struct bs_ledger *l = mk(&p, T0);
	fill(l, "c", 10, T0);
	char err[256];
	assert_int_equal(bs_ledger_save(l, err, sizeof(err)), 0);
	bs_ledger_destroy(l);
	uint64_t t2 = T0 + 500;
	l = mk(&p, t2);
	assert_non_null(strstr(logbuf, "did not stop cleanly"));
	bs_ledger_tick(l, t2);
	expect(l, "c", 10, t2, BS_LEDGER_HIT);
	struct bs_ledger_stats st;
	bs_ledger_stats(l, t2, &st);
	assert_int_equal(st.warm_since_s, t2);
	assert_int_equal(look(l, "<never@x>", T0 + 1000), BS_LEDGER_WARMING);
	assert_int_equal(look(l, "<never@x>", t2 + 1000), BS_LEDGER_MISS);
	bs_ledger_stop(l); /* clean, stamped t2 */
	bs_ledger_destroy(l);

	/* A clean stop and a short pause: the warm-up goes on from t2. */
	logbuf[0] = '\0';
	l = mk(&p, t2 + 100);
	assert_null(strstr(logbuf, "warm-up starts again"));
	bs_ledger_stats(l, t2 + 100, &st);
	assert_int_equal(st.warm_since_s, t2);
	bs_ledger_destroy(l);

	/* A clean stop and a pause longer than max_gap_s: restarts. */
	logbuf[0] = '\0';
	l = mk(&p, t2 + 601);
	assert_non_null(strstr(logbuf, "max_gap_s"));
	bs_ledger_stats(l, t2 + 601, &st);
	assert_int_equal(st.warm_since_s, t2 + 601);
	bs_ledger_destroy(l);
	rm_tmp();
}

/*
 * A crash in the middle of writing a snapshot: a child loads the old
 * snapshot, records more, and is killed by SIGXFSZ (RLIMIT_FSIZE) while
 * it writes the new one.  The old snapshot must be intact and load.
 */
static void
test_snapshot_crash_mid_write(void **state)
{
	(void)state;
	mkdir_tmp();
	char path[128], tmp[160];
	snprintf(path, sizeof(path), "%s/ledger", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	struct bs_ledger_params p;
	params(&p, 65536, 100000);
	p.ring_size = 1 << 16;
	p.snapshot_path = path;

	rcu_register_thread();
	struct bs_ledger *l = mk(&p, T0);
	fill(l, "old", 10, T0);
	bs_ledger_stop(l);
	bs_ledger_destroy(l);
	rcu_unregister_thread();
	size_t old_len;
	uint8_t *old = slurp(path, &old_len);
	assert_non_null(old);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		rcu_register_thread();
		struct bs_ledger *c = bs_ledger_create(&p, T0 + 1, NULL, 0);
		if (c == NULL)
			_exit(2);
		fill(c, "new", 20000, T0 + 1);
		struct rlimit core = { 0, 0 }, fsz = { 8192, 8192 };
		setrlimit(RLIMIT_CORE, &core);
		signal(SIGXFSZ, SIG_DFL);
		setrlimit(RLIMIT_FSIZE, &fsz);
		char err[256];
		bs_ledger_save(c, err, sizeof(err));
		_exit(3); /* not reached: the write kills us */
	}
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFSIGNALED(ws));
	assert_int_equal(WTERMSIG(ws), SIGXFSZ);

	/* Died mid-write: a partial temporary file, the old one intact. */
	struct stat sb;
	assert_int_equal(stat(tmp, &sb), 0);
	assert_true(sb.st_size > 0 && sb.st_size < 64 + 20010 * 16 + 32);
	size_t now_len;
	uint8_t *now = slurp(path, &now_len);
	assert_int_equal(now_len, old_len);
	assert_memory_equal(now, old, old_len);

	rcu_register_thread();
	l = mk(&p, T0 + 2);
	assert_non_null(strstr(logbuf, "10 entries loaded"));
	bs_ledger_tick(l, T0 + 2);
	expect(l, "old", 10, T0 + 2, BS_LEDGER_HIT);
	expect(l, "new", 5, T0 + 2, BS_LEDGER_WARMING);
	/* The next save replaces the leftover. */
	char err[256];
	assert_int_equal(bs_ledger_save(l, err, sizeof(err)), 0);
	assert_false(exists(tmp));
	bs_ledger_destroy(l);
	rcu_unregister_thread();
	free(old);
	free(now);
	rm_tmp();
}

/* A save that fails (file too large, ignored signal: EFBIG; no such
 * directory) keeps the old snapshot, says why and counts. */
static void
test_snapshot_save_fails(void **state)
{
	(void)state;
	mkdir_tmp();
	char path[128], tmp[160];
	snprintf(path, sizeof(path), "%s/ledger", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	struct bs_ledger_params p;
	params(&p, 65536, 100000);
	p.ring_size = 1 << 16;
	p.snapshot_path = path;
	struct bs_ledger *l = mk(&p, T0);
	fill(l, "old", 10, T0);
	char err[256];
	assert_int_equal(bs_ledger_save(l, err, sizeof(err)), 0);
	size_t old_len;
	uint8_t *old = slurp(path, &old_len);
	fill(l, "more", 20000, T0 + 1);

	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit fsz = { 8192, 8192 };
		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &fsz);
		int rc = bs_ledger_save(l, err, sizeof(err));
		struct bs_ledger_stats st;
		bs_ledger_stats(l, T0, &st);
		_exit(rc == -EFBIG && strstr(err, "write") != NULL &&
				strstr(err, "previous snapshot is kept") &&
				st.snapshot_failures == 1 && !exists(tmp) ? 0 : 1);
	}
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	size_t now_len;
	uint8_t *now = slurp(path, &now_len);
	assert_int_equal(now_len, old_len);
	assert_memory_equal(now, old, old_len);
	bs_ledger_destroy(l);

	char bad[160];
	snprintf(bad, sizeof(bad), "%s/no/such/dir/ledger", dir);
	p.snapshot_path = bad;
	l = mk(&p, T0);
	assert_int_equal(bs_ledger_save(l, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "open"));
	struct bs_ledger_stats st;
	bs_ledger_stats(l, T0, &st);
	assert_int_equal(st.snapshot_failures, 1);
	bs_ledger_destroy(l);

	p.snapshot_path = NULL;
	l = mk(&p, T0);
	assert_int_equal(bs_ledger_save(l, err, sizeof(err)), -ENOENT);
	bs_ledger_destroy(l);
	free(old);
	free(now);
	rm_tmp();
}

/* Each damaged file is refused with its reason, kept aside, and the
 * ledger starts empty and warming. */
static void
test_snapshot_refused(void **state)
{
	(void)state;
	mkdir_tmp();
	char path[128], kept[160];
	snprintf(path, sizeof(path), "%s/ledger", dir);
	snprintf(kept, sizeof(kept), "%s.refused", path);
	struct bs_ledger_params p;
	params(&p, 1024, 1000);
	p.snapshot_path = path;
	uint64_t now = T0 + 10;
	struct bs_ledger *l = mk(&p, T0);
	fill(l, "good", 50, T0);
	bs_ledger_stop(l);
	bs_ledger_destroy(l);
	size_t len;
	uint8_t *good = slurp(path, &len);
	assert_int_equal(len, 64 + 50 * 16 + 32);

	enum { FLIP, FOREIGN, VERSION, TRUNC, EXTEND, EMPTY, ORDER, LAYOUT,
		FLAGS, N_CASES };
	static const char *why[N_CASES] = {
		[FLIP] = "checksum mismatch",
		[FOREIGN] = "foreign file",
		[VERSION] = "format version 2",
		[TRUNC] = "truncated or extended",
		[EXTEND] = "truncated or extended",
		[EMPTY] = "truncated (0 bytes)",
		[ORDER] = "out of order",
		[LAYOUT] = "foreign layout",
		[FLAGS] = "unknown flags",
	};
	for (int k = 0; k < N_CASES; k++) {
		uint8_t *b = malloc(len + 64);
		memcpy(b, good, len);
		size_t n = len;
		switch (k) {
		case FLIP:
			b[64 + 7 * 16 + 3] ^= 0x20;
			break;
		case FOREIGN:
			memcpy(b, "#!/bin/sh\nrm -rf /\n", 19);
			break;
		case VERSION:
			b[8] = 2;
			reseal(b, n);
			break;
		case TRUNC:
			n -= 10;
			break;
		case EXTEND:
			memset(b + n, 0, 16);
			n += 16;
			break;
		case EMPTY:
			n = 0;
			break;
		case ORDER: /* the last entry older than the one before */
			b[64 + 49 * 16 + 8] -= 1;
			reseal(b, n);
			break;
		case LAYOUT:
			b[16] = 24;
			reseal(b, n);
			break;
		case FLAGS:
			b[20] |= 0x80;
			reseal(b, n);
			break;
		}
		spit(path, b, n);
		unlink(kept);
		logbuf[0] = '\0';
		l = mk(&p, now);
		if (strstr(logbuf, why[k]) == NULL)
			fail_msg("case %d: log lacks \"%s\": %s", k, why[k],
				logbuf);
		assert_non_null(strstr(logbuf, "refused"));
		assert_non_null(strstr(logbuf, "starts empty"));
		assert_true(exists(kept));
		assert_false(exists(path));
		bs_ledger_tick(l, now);
		struct bs_ledger_stats st;
		bs_ledger_stats(l, now, &st);
		assert_int_equal(st.entries, 0);
		assert_int_equal(st.warm_since_s, now);
		expect(l, "good", 50, now, BS_LEDGER_WARMING);
		bs_ledger_destroy(l);
		free(b);
	}
	/* The untouched file still loads (the cases above are real). */
	spit(path, good, len);
	l = mk(&p, now);
	bs_ledger_tick(l, now);
	expect(l, "good", 50, now, BS_LEDGER_HIT);
	bs_ledger_destroy(l);
	free(good);
	rm_tmp();
}

/* ---- the writer thread ---- */

static void
test_writer_thread(void **state)
{
	(void)state;
	mkdir_tmp();
	char path[128];
	snprintf(path, sizeof(path), "%s/ledger", dir);
	struct bs_ledger_params p;
	params(&p, 4096, 100000);
	p.snapshot_path = path;
	p.drain_ms = 5;
	p.n_parts = 2;
	uint64_t now = (uint64_t)time(NULL);
	struct bs_ledger *l = mk(&p, now);
	assert_int_equal(bs_ledger_start(l), 0);
	assert_int_equal(bs_ledger_start(l), -EALREADY);
	char id[64];
	for (unsigned int i = 0; i < 1000; i++) {
		idn(id, sizeof(id), "th", i);
		assert_int_equal(rec(l, i & 1, id, now), 0);
	}
	/* The writer drains on its own; readers see every record. */
	for (unsigned int i = 0; i < 1000; i++) {
		idn(id, sizeof(id), "th", i);
		int tries = 0;
		while (look(l, id, now) != BS_LEDGER_HIT && tries++ < 2000) {
			rcu_thread_offline();
			usleep(1000);
			rcu_thread_online();
		}
		assert_int_equal(look(l, id, now), BS_LEDGER_HIT);
		rcu_quiescent_state();
	}
	/* `ledger save` while running: done by the writer, not clean. */
	char err[256];
	assert_int_equal(bs_ledger_save(l, err, sizeof(err)), 0);
	size_t len;
	uint8_t *b = slurp(path, &len);
	assert_int_equal(len, 64 + 1000 * 16 + 32);
	assert_int_equal(b[20], 0);
	free(b);
	/* Stopping waits for the last drain and marks the file clean. */
	for (unsigned int i = 1000; i < 1100; i++) {
		idn(id, sizeof(id), "th", i);
		assert_int_equal(rec(l, 0, id, now), 0);
	}
	rcu_thread_offline();
	bs_ledger_stop(l);
	rcu_thread_online();
	b = slurp(path, &len);
	assert_int_equal(len, 64 + 1100 * 16 + 32);
	assert_int_equal(b[20], 1);
	free(b);
	struct bs_ledger_stats st;
	bs_ledger_stats(l, now, &st);
	assert_int_equal(st.snapshot_saves, 2);
	assert_int_equal(st.inserts, 1100);
	bs_ledger_destroy(l);
	rm_tmp();
}


/*
 * Two programs share one ledger (docs/MILTER.md): each writes its own
 * snapshot, keyed by the same ledger.secret_file, and merges the other's.
 * A record in A is a hit in B after A saves and B's next import; a peer
 * keyed otherwise is refused and counted; two writers of one snapshot
 * are refused; B's start of watching becomes the later of the two; a
 * peer that stops saving restarts B's warm-up (its mail may pass unseen).
 */
static void
test_shared_import(void **state)
{
	(void)state;
	mkdir_tmp();
	char pa[128], pb[128], key[128], key2[128], err[256];
	snprintf(pa, sizeof(pa), "%s/appliance.ledger", dir);
	snprintf(pb, sizeof(pb), "%s/milter.ledger", dir);
	snprintf(key, sizeof(key), "%s/ledger.key", dir);
	snprintf(key2, sizeof(key2), "%s/other.key", dir);
	spit(key, (const uint8_t *)"0123456789abcdef-shared", 23);
	spit(key2, (const uint8_t *)"fedcba9876543210-foreign", 24);

	struct bs_ledger_params a, b;
	params(&a, 1024, 1000);
	a.snapshot_path = pa;
	a.secret_file = key;
	a.max_gap_s = 600;
	b = a;
	b.snapshot_path = pb;
	b.import_path = pa;
	b.import_period_s = 5;

	/* Sharing without a common key is refused at creation. */
	struct bs_ledger_params nokey = b;
	nokey.secret_file = NULL;
	assert_null(bs_ledger_create(&nokey, T0, err, sizeof(err)));
	assert_non_null(strstr(err, "secret_file"));
	/* A secret file too short to be a key. */
	char shortk[128];
	snprintf(shortk, sizeof(shortk), "%s/short.key", dir);
	spit(shortk, (const uint8_t *)"short", 5);
	nokey.secret_file = shortk;
	assert_null(bs_ledger_create(&nokey, T0, err, sizeof(err)));
	assert_non_null(strstr(err, "at least 16"));

	struct bs_ledger *la = mk(&a, T0 + 50);
	/* One snapshot, one writer. */
	assert_null(bs_ledger_create(&a, T0 + 50, err, sizeof(err)));
	assert_non_null(strstr(err, "written by another program"));

	struct bs_ledger *lb = mk(&b, T0);
	assert_int_equal(rec(la, 0, "<out.1@Example.COM>", T0 + 60), 0);
	bs_ledger_tick(la, T0 + 60);
	assert_int_equal(look(la, "<out.1@example.com>", T0 + 60),
		BS_LEDGER_HIT);
	/* Not in B before A saves. */
	bs_ledger_tick(lb, T0 + 60);
	assert_int_equal(look(lb, "<out.1@example.com>", T0 + 61),
		BS_LEDGER_WARMING);
	assert_int_equal(bs_ledger_save(la, err, sizeof(err)), 0);
	bs_ledger_tick(lb, T0 + 61); /* within the import period: not yet */
	assert_int_equal(look(lb, "<out.1@example.com>", T0 + 61),
		BS_LEDGER_WARMING);
	bs_ledger_tick(lb, T0 + 66);
	assert_int_equal(look(lb, "<out.1@example.com>", T0 + 66),
		BS_LEDGER_HIT);
	struct bs_ledger_stats st;
	bs_ledger_stats(lb, T0 + 66, &st);
	assert_int_equal(st.imported, 1);
	assert_int_equal(st.import_failures, 0);
	/* B started at T0, A at T0 + 50: the union is watched since the
	 * later one. */
	assert_int_equal(st.warm_since_s, T0 + 50);
	assert_false(st.peer_stale);
	/* Unchanged file: nothing merged again. */
	bs_ledger_tick(lb, T0 + 72);
	bs_ledger_stats(lb, T0 + 72, &st);
	assert_int_equal(st.imported, 1);
	/* Only entries as new as the last merged are merged at the next
	 * save: out.2, and out.1 again (same second as the mark: an entry
	 * recorded in that second after the save must not be missed). */
	assert_int_equal(rec(la, 0, "<out.2@example.com>", T0 + 80), 0);
	bs_ledger_tick(la, T0 + 80);
	assert_int_equal(bs_ledger_save(la, err, sizeof(err)), 0);
	bs_ledger_tick(lb, T0 + 90);
	bs_ledger_stats(lb, T0 + 90, &st);
	assert_int_equal(st.imported, 3);
	assert_int_equal(look(lb, "<out.2@example.com>", T0 + 90),
		BS_LEDGER_HIT);
	/* Once warm (ttl 1000 from T0 + 50), a miss is a miss... */
	bs_ledger_tick(lb, T0 + 300);
	assert_int_equal(look(lb, "<never@example.com>", T0 + 1060),
		BS_LEDGER_MISS);
	/* ...until the peer stops saving for more than max_gap_s: its
	 * mail may pass unseen, so B warms up again. */
	bs_ledger_tick(lb, T0 + 80 + 601 + 5);
	bs_ledger_stats(lb, T0 + 690, &st);
	assert_true(st.peer_stale);
	assert_non_null(strstr(logbuf, "not saved for more than 600 s"));
	assert_int_equal(look(lb, "<never@example.com>", T0 + 1060),
		BS_LEDGER_WARMING);
	assert_int_equal(look(lb, "<out.1@example.com>", T0 + 690),
		BS_LEDGER_HIT);
	struct bs_counters c;
	memset(&c, 0, sizeof(c));
	bs_ledger_counters(lb, T0 + 690, &c);
	assert_int_equal(c.v[BS_CNT_ledger_imported], 3);
	assert_int_equal(c.v[BS_CNT_ledger_peer_stale], 1);
	bs_ledger_destroy(lb);

	/* A peer keyed with another secret is refused, counted, logged. */
	struct bs_ledger_params f = b;
	f.secret_file = key2;
	char pf[128];
	snprintf(pf, sizeof(pf), "%s/foreign.ledger", dir);
	f.snapshot_path = pf;
	logbuf[0] = '\0';
	struct bs_ledger *lf = mk(&f, T0 + 100);
	bs_ledger_tick(lf, T0 + 100);
	bs_ledger_stats(lf, T0 + 100, &st);
	assert_int_equal(st.imported, 0);
	assert_int_equal(st.import_failures, 1);
	assert_non_null(strstr(logbuf, "another secret"));
	assert_int_equal(look(lf, "<out.1@example.com>", T0 + 100),
		BS_LEDGER_WARMING);
	bs_ledger_stop(lf); /* writes its snapshot, keyed by key2 */
	bs_ledger_destroy(lf);
	/* Its own snapshot, keyed by key2, is refused under key. */
	f.secret_file = key;
	f.import_path = NULL;
	logbuf[0] = '\0';
	lf = mk(&f, T0 + 200);
	assert_non_null(strstr(logbuf, "another secret than"));
	bs_ledger_destroy(lf);
	bs_ledger_destroy(la);
	rm_tmp();
}

/* Every test but the forking one runs as a registered QSBR thread; the
 * teardown unregisters it even when the test failed. */
static int
reg(void **state)
{
	(void)state;
	rcu_register_thread();
	return 0;
}

static int
unreg(void **state)
{
	(void)state;
	rcu_unregister_thread();
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, reg, unreg)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalise),
		cmocka_unit_test(test_msgid_next),
		T(test_record_lookup),
		T(test_ttl_refresh),
		T(test_eviction),
		T(test_ring_full),
		T(test_snapshot_round_trip),
		T(test_snapshot_warmup_restarts),
		cmocka_unit_test(test_snapshot_crash_mid_write),
		T(test_snapshot_save_fails),
		T(test_snapshot_refused),
		T(test_writer_thread),
		T(test_shared_import),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
