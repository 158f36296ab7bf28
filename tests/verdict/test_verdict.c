/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the verdict: BATV against tags Exim itself made (at
 * faked dates: expiry, the day counter's wrap, key rotation), the other
 * tag forms; Received parsing and relay matching (IPv4/IPv6 CIDR, globs,
 * a forged HELO, forwarding hops); DKIM signatures made by independent
 * signers (Mail::DKIM RSA, dkimpy Ed25519; tampering, replay, refolding,
 * budget, headers arriving quoted-printable); the policy table; a
 * callout that never reaches DATA is never judged.
 *
 *   test_verdict EXIM4 FAKETIME MAKE_DKIM_PY RULES
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/detect.h"
#include "backstop/pkt.h"
#include "backstop/rules.h"
#include "backstop/smtp.h"
#include "backstop/verdict.h"

static const char *exim_bin, *faketime_bin, *make_dkim, *rules_path;
static char tmpdir[256];

#define K0 "k0-secret"
#define K1 "k1-rotated-secret"

/* ---- helpers -------------------------------------------------------- */

static void
need(const char *path, const char *what)
{
	if (access(path, X_OK) != 0) {
		fprintf(stderr, "missing prerequisite: %s (%s); run "
			"scripts/setup.sh\n", what, path);
		fail();
	}
}

/* Evaluate an Exim expansion at wall-clock time at (seconds). */
static void
exim_eval(const char *expr, uint64_t at, char *out, size_t outlen)
{
	char conf[300], cmd[2048];
	need(exim_bin, "Exim's binary, extracted from exim4-daemon-light");
	need(faketime_bin, "faketime");
	snprintf(conf, sizeof(conf), "%s/exim.conf", tmpdir);
	if (access(conf, R_OK) != 0) {
		FILE *f = fopen(conf, "w");
		assert_non_null(f);
		fprintf(f, "spool_directory = %s/spool\n"
			"log_file_path = %s/%%slog\n", tmpdir, tmpdir);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "%s '@%llu' %s -C %s -be '%s' 2>&1",
		faketime_bin, (unsigned long long)at, exim_bin, conf, expr);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	pclose(p);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
}

/* A tag made by Exim's ${prvs} at time at. */
static void
exim_prvs(const char *addr, const char *secret, int key, uint64_t at,
	char *out, size_t outlen)
{
	char e[512];
	snprintf(e, sizeof(e), "${prvs{%s}{%s}{%d}}", addr, secret, key);
	exim_eval(e, at, out, outlen);
	assert_true(strncmp(out, "prvs=", 5) == 0);
}

/* Exim's ${prvscheck} of tag at time at: 1 valid, 0 not. */
static int
exim_prvscheck(const char *tag, uint64_t at)
{
	char e[600], out[256];
	snprintf(e, sizeof(e), "${prvscheck{%s}{${if eq{$prvscheck_keynum}"
		"{1}{" K1 "}{" K0 "}}}{${if eq{$prvscheck_result}{1}{valid}"
		"{invalid}}}}", tag);
	exim_eval(e, at, out, sizeof(out));
	if (strcmp(out, "valid") == 0)
		return 1;
	assert_string_equal(out, "invalid");
	return 0;
}

struct fx {
	struct bs_config cfg;
	struct bs_verdict_policy *p;
	struct bs_verdict_ctx *vc;
	struct bs_counters cnt;
};

static void
fx_load(struct fx *x, const char *yaml)
{
	char err[512];
	memset(x, 0, sizeof(*x));
	assert_int_equal(bs_config_defaults(&x->cfg), 0);
	int rc = bs_config_load_mem(&x->cfg, "t.yaml", (const uint8_t *)yaml,
		strlen(yaml), err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "config: %s\n", err);
	assert_int_equal(rc, 0);
	x->p = bs_verdict_policy_build(&x->cfg, err, sizeof(err));
	assert_non_null(x->p);
	x->vc = bs_verdict_ctx_create(x->p, &x->cnt);
	assert_non_null(x->vc);
}

static void
fx_free(struct fx *x)
{
	bs_verdict_ctx_free(x->vc);
	bs_verdict_policy_free(x->p);
	bs_config_free(&x->cfg);
}

static const char batv_yaml[] =
	"protected_domains: [example.com]\n"
	"batv: {enforce: true, keys: [{id: 0, secret: \"" K0 "\"}, "
	"{id: 1, secret: \"" K1 "\"}]}\n";

static enum bs_batv_status
our_check(struct fx *x, const char *tag, uint64_t at)
{
	struct bs_batv_tag t;
	assert_int_equal(bs_batv_parse(tag, strlen(tag), &t), BS_BATV_PRVS);
	return bs_batv_check(x->vc, &t, at);
}

/* First second of a day whose number mod 1000 is want. */
static uint64_t
day_with(unsigned int want)
{
	uint64_t d = 1900000000 / 86400;
	while (d % 1000 != want)
		d++;
	return d * 86400 + 3600;
}

/* ---- BATV ----------------------------------------------------------- */

/* Tags Exim made, checked day by day by Exim and by us. */
static void
test_batv_exim_expiry(void **state)
{
	(void)state;
	struct fx x;
	char tag[256];
	fx_load(&x, batv_yaml);
	uint64_t t0 = day_with(500);
	for (int key = 0; key <= 1; key++) {
		exim_prvs("alice@example.com", key ? K1 : K0, key, t0, tag,
			sizeof(tag));
		for (int k = 0; k <= 10; k++) {
			uint64_t at = t0 + (uint64_t)k * 86400;
			int ex = exim_prvscheck(tag, at);
			enum bs_batv_status st = our_check(&x, tag, at);
			assert_int_equal(ex, k <= 7);
			assert_int_equal(st, k <= 7 ? BS_BATV_ST_VALID
						    : BS_BATV_ST_EXPIRED);
		}
	}
	fx_free(&x);
}

/* The day counter wraps from 999 to 000. */
static void
test_batv_exim_wrap(void **state)
{
	(void)state;
	struct fx x;
	char tag[256];
	fx_load(&x, batv_yaml);
	/* Made on day 995: expires on day 1002, written 002. */
	uint64_t t0 = day_with(995);
	exim_prvs("alice@example.com", K0, 0, t0, tag, sizeof(tag));
	assert_memory_equal(tag + 6, "002", 3);
	for (int k = 0; k <= 7; k++) {
		uint64_t at = t0 + (uint64_t)k * 86400;
		assert_int_equal(exim_prvscheck(tag, at), 1);
		assert_int_equal(our_check(&x, tag, at), BS_BATV_ST_VALID);
	}
	for (int k = 8; k <= 12; k++) {
		uint64_t at = t0 + (uint64_t)k * 86400;
		assert_int_equal(exim_prvscheck(tag, at), 0);
		assert_int_equal(our_check(&x, tag, at), BS_BATV_ST_EXPIRED);
	}
	/*
	 * Exim's one known difference: a tag made on day 990 (expiry 997)
	 * checked on day 1002 (written 002) after the wrap: Exim compares
	 * 997 >= 2 and calls it valid; it expired five days ago.
	 */
	uint64_t t1 = day_with(990);
	exim_prvs("alice@example.com", K0, 0, t1, tag, sizeof(tag));
	uint64_t late = t1 + 12 * 86400;
	assert_int_equal(exim_prvscheck(tag, late), 1);
	assert_int_equal(our_check(&x, tag, late), BS_BATV_ST_EXPIRED);
	fx_free(&x);
}

static void
test_batv_keys_and_case(void **state)
{
	(void)state;
	struct fx x;
	char tag[256], t2[256];
	fx_load(&x, batv_yaml);
	uint64_t t0 = day_with(123);
	exim_prvs("Alice.Smith@example.com", K1, 1, t0, tag, sizeof(tag));
	assert_int_equal(our_check(&x, tag, t0), BS_BATV_ST_VALID);
	/* The tag's hex and prefix in upper case, the domain's case changed
	 * on the way back: still valid. */
	strcpy(t2, tag);
	for (char *c = t2; *c && *c != '='; c++)
		*c = (char)(*c - 32);
	for (char *c = t2 + 5; *c != '='; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 32);
	char *at = strchr(t2, '@');
	strcpy(at, "@EXAMPLE.Com");
	assert_int_equal(our_check(&x, t2, t0), BS_BATV_ST_VALID);
	/* The local part hashed as sent: "Alice.Smith". Another local part
	 * under the same tag is a forgery. */
	strcpy(t2, tag);
	at = strstr(t2, "=Alice") + 1;
	*at = 'B';
	assert_int_equal(our_check(&x, t2, t0), BS_BATV_ST_BAD);
	/* Key 2 is not configured. */
	exim_prvs("alice@example.com", "k2", 2, t0, tag, sizeof(tag));
	assert_int_equal(our_check(&x, tag, t0), BS_BATV_ST_BAD);
	/* Signed with key 0's secret but marked key 1. */
	exim_prvs("alice@example.com", K0, 1, t0, tag, sizeof(tag));
	assert_int_equal(our_check(&x, tag, t0), BS_BATV_ST_BAD);
	/* One hex digit off. */
	exim_prvs("alice@example.com", K0, 0, t0, tag, sizeof(tag));
	tag[12] = tag[12] == '0' ? '1' : '0';
	assert_int_equal(our_check(&x, tag, t0), BS_BATV_ST_BAD);
	fx_free(&x);
}

static void
check_form(const char *a, enum bs_batv_form f, const char *local,
	const char *dom)
{
	struct bs_batv_tag t;
	assert_int_equal(bs_batv_parse(a, strlen(a), &t), f);
	assert_int_equal(t.local_len, strlen(local));
	assert_memory_equal(t.local, local, t.local_len);
	assert_int_equal(t.domain_len, strlen(dom));
	assert_memory_equal(t.domain, dom, t.domain_len);
}

static void
test_batv_forms(void **state)
{
	(void)state;
	check_form("prvs=0997abcdef=alice@example.com", BS_BATV_PRVS, "alice",
		"example.com");
	check_form("PRVS=0997ABCDEF=alice@example.com", BS_BATV_PRVS, "alice",
		"example.com");
	check_form("prvs=alice=0997abcdef@example.com", BS_BATV_PRVS_CISCO,
		"alice", "example.com");
	check_form("btv1==7e3b1a2f0c==alice@example.com", BS_BATV_BTV1,
		"alice", "example.com");
	check_form("msprvs1=16925t6cbV8lN=bounces-12@example.com",
		BS_BATV_MSPRVS, "bounces-12", "example.com");
	check_form("SRS0=HHH=TT=orig.example=alice@example.com", BS_BATV_SRS,
		"alice", "orig.example");
	check_form("SRS1=HHH=fwd.example==HHH=TT=orig.example=bob@example.com",
		BS_BATV_SRS, "bob", "orig.example");
	/* Not tags. */
	check_form("alice@example.com", BS_BATV_NONE, "alice", "example.com");
	check_form("prvs=alice@example.com", BS_BATV_NONE, "prvs=alice",
		"example.com");
	check_form("prvs=0997abcdeg=alice@example.com", BS_BATV_NONE,
		"prvs=0997abcdeg=alice", "example.com");
	check_form("prvs=0997abcdef=@example.com", BS_BATV_NONE,
		"prvs=0997abcdef=", "example.com");
	check_form("srs0=x@example.com", BS_BATV_NONE, "srs0=x",
		"example.com");
}

/* ---- relays --------------------------------------------------------- */

static void
hop(const char *s, int fam, const char *ip, const char *by)
{
	struct bs_relay_hop h;
	uint8_t want[16] = { 0 };
	int rc = bs_relay_hop_parse(s, strlen(s), &h);
	assert_int_equal(rc, fam == 0 && by[0] == '\0' ? -1 : 0);
	assert_int_equal(h.fam, fam);
	if (fam != 0) {
		assert_int_equal(inet_pton(fam == 4 ? AF_INET : AF_INET6, ip,
			want), 1);
		assert_memory_equal(h.ip, want, fam == 4 ? 4 : 16);
	}
	assert_string_equal(h.by, by);
}

static void
test_relay_parse(void **state)
{
	(void)state;
	/* Postfix, Sendmail, Exim, qmail, Exchange, IPv6 literals. */
	hop("from mail.example.com (mail.example.com [192.0.2.5]) by "
		"mx.example.org (Postfix) with ESMTPS id 1; date", 4,
		"192.0.2.5", "mx.example.org");
	hop("from helo.example (rdns.example[198.51.100.7])\r\n\tby "
		"MX.Example.ORG. (8.15.2/8.15.2) with ESMTP", 4,
		"198.51.100.7", "mx.example.org");
	hop("from out1.example.com ([192.0.2.9]:41234 helo=x) by mx with "
		"esmtp", 4, "192.0.2.9", "mx");
	hop("from [192.0.2.10] (helo=evil.example) by exim.example.org "
		"with esmtp", 4, "192.0.2.10", "exim.example.org");
	hop("from unknown (HELO [192.0.2.11]) (203.0.113.5) by qmail.example "
		"with SMTP", 4, "203.0.113.5", "qmail.example");
	hop("from EX01.contoso.com (10.0.0.1) by EX02.contoso.com (10.0.0.2) "
		"with Microsoft SMTP Server", 4, "10.0.0.1",
		"ex02.contoso.com");
	hop("from x (x [IPv6:2001:db8::25]) by mx6.example.org", 6,
		"2001:db8::25", "mx6.example.org");
	hop("from x (x [::ffff:192.0.2.77]) by mx", 4, "192.0.2.77", "mx");
	/* The HELO names the relay, a bracketed HELO literal too: only the
	 * receiver's comment counts. */
	hop("from out1.example.com (evil.example [203.0.113.9]) by "
		"mx.victim.example", 4, "203.0.113.9", "mx.victim.example");
	hop("from [192.0.2.5] (unknown [203.0.113.9]) by mx.victim.example",
		4, "203.0.113.9", "mx.victim.example");
	/* "by" inside a comment is not the by clause. */
	hop("from a (b [203.0.113.1] (sent by x)) by real.example", 4,
		"203.0.113.1", "real.example");
	/* Internal hop: only by. */
	hop("by out1.example.com (Postfix, from userid 1000) id 55", 0, "",
		"out1.example.com");
	hop("garbage without landmarks", 0, "", "");
}

static const char relay_yaml[] =
	"protected_domains: [example.com, example.net]\n"
	"relays: [out1.example.com, \"*.out.example.com\", 192.0.2.0/24, "
	"\"2001:db8::/32\"]\n"
	"domains: {example.net: {relays: [198.51.100.64/26]}}\n";

static bool
match(struct fx *x, const char *dom, const char *rcvd)
{
	struct bs_relay_hop h;
	bs_relay_hop_parse(rcvd, strlen(rcvd), &h);
	return bs_relay_hop_match(x->p, dom, strlen(dom), &h);
}

static void
test_relay_match(void **state)
{
	(void)state;
	struct fx x;
	fx_load(&x, relay_yaml);
	const char *c = "example.com";
	assert_true(match(&x, c, "from a (a [192.0.2.200]) by mx.remote"));
	assert_false(match(&x, c, "from a (a [192.0.3.1]) by mx.remote"));
	assert_true(match(&x, c, "from a (a [IPv6:2001:db8:ffff::1]) by m"));
	assert_false(match(&x, c, "from a (a [IPv6:2001:db9::1]) by m"));
	assert_true(match(&x, c, "from internal by out1.example.com"));
	assert_true(match(&x, c, "from internal by OUT1.example.com."));
	assert_true(match(&x, c, "from i by relay7.out.example.com (Postfix)"));
	assert_true(match(&x, c, "from i by a.b.out.example.com"));
	assert_false(match(&x, c, "from i by out.example.com"));
	assert_false(match(&x, c, "from i by out1.example.com.evil.example"));
	/* A forged HELO naming the relay (name or address) is not a relay. */
	assert_false(match(&x, c, "from out1.example.com (evil.example "
		"[203.0.113.9]) by mx.victim.example"));
	assert_false(match(&x, c, "from [192.0.2.5] (unknown [203.0.113.9]) "
		"by mx.victim.example"));
	/* A reverse name the sender controls is not believed either. */
	assert_false(match(&x, c, "from x (out1.example.com [203.0.113.9]) "
		"by mx.victim.example"));
	/* example.net has its own list: the global one does not apply. */
	const char *n = "example.net";
	assert_false(match(&x, n, "from a (a [192.0.2.200]) by mx.remote"));
	assert_true(match(&x, n, "from a (a [198.51.100.100]) by mx.remote"));
	assert_false(match(&x, n, "from a (a [198.51.100.128]) by mx.remote"));
	fx_free(&x);
}

/* ---- DKIM ------------------------------------------------------------ */

static char dkim_dir[300];

static void
dkim_material(void)
{
	char cmd[800], p[400];
	if (dkim_dir[0] != '\0')
		return;
	snprintf(dkim_dir, sizeof(dkim_dir), "%s/dkim", tmpdir);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s >/dev/null",
		make_dkim, dkim_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "missing prerequisite: %s failed (needs "
			"libmail-dkim-perl, python3-dkim, python3-nacl, openssl;"
			" run scripts/setup.sh)\n", make_dkim);
		fail();
	}
	snprintf(p, sizeof(p), "%s/keys.yaml", dkim_dir);
	assert_int_equal(access(p, R_OK), 0);
}

static char *
slurp(const char *name, size_t *len)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", dkim_dir, name);
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	char *b = malloc(1 << 17);
	*len = fread(b, 1, (1 << 17) - 1, f);
	b[*len] = '\0';
	fclose(f);
	return b;
}

static void
fx_dkim(struct fx *x, const char *extra)
{
	char yaml[8192];
	size_t kl;
	dkim_material();
	char *keys = slurp("keys.yaml", &kl);
	snprintf(yaml, sizeof(yaml), "protected_domains: [example.com, "
		"example.net]\n%s%s", keys, extra);
	free(keys);
	fx_load(x, yaml);
}

static enum bs_dkim_status
verify(struct fx *x, const char *h, unsigned int *checks)
{
	unsigned int c;
	return bs_dkim_verify(x->vc, "example.com", 11, (const uint8_t *)h,
		strlen(h), 1900000000, checks ? checks : &c);
}

static const char *const hdrs[] = { "rsa_relaxed.hdr", "rsa_simple.hdr",
	"ed_relaxed.hdr", "ed_simple.hdr" };

/* Replace the first occurrence of a in s by b (same length or not). */
static void
subst(char *s, const char *a, const char *b)
{
	char *p = strstr(s, a);
	assert_non_null(p);
	size_t al = strlen(a), bl = strlen(b);
	memmove(p + bl, p + al, strlen(p + al) + 1);
	memcpy(p, b, bl);
}

static void
test_dkim_signers(void **state)
{
	(void)state;
	struct fx x;
	fx_dkim(&x, "");
	for (unsigned int i = 0; i < 4; i++) {
		size_t n;
		char *h = slurp(hdrs[i], &n);
		unsigned int checks = 0;
		assert_int_equal(verify(&x, h, &checks), BS_DKIM_ST_VALID);
		assert_int_equal(checks, 1);
		/* Another domain's block: no signature of example.net. */
		assert_int_equal(bs_dkim_verify(x.vc, "example.net", 11,
			(const uint8_t *)h, n, 1900000000, &checks),
			BS_DKIM_ST_NONE);
		/* A tampered signed header. */
		char *t = strdup(h);
		subst(t, "Quarterly", "Quarterlx");
		assert_int_equal(verify(&x, t, NULL), BS_DKIM_ST_FAIL);
		free(t);
		/* An unsigned header may change (Received is not in h=). */
		t = strdup(h);
		subst(t, "mua.example.com (mua", "other.example (mua");
		assert_int_equal(verify(&x, t, NULL), BS_DKIM_ST_VALID);
		free(t);
		/* A second From above the signed one: h= takes the last
		 * instance, which is still the signed one... */
		t = malloc(n + 64);
		snprintf(t, n + 64, "%sFrom: mallory@evil.example\r\n", h);
		/* ...appended at the bottom, it is the one taken: fail. */
		assert_int_equal(verify(&x, t, NULL), BS_DKIM_ST_FAIL);
		free(t);
		/* Whitespace refolded: relaxed survives, simple does not. */
		t = strdup(h);
		subst(t, "Quarterly   report,\r\n  second", "Quarterly report,"
			"\r\n\tsecond");
		assert_int_equal(verify(&x, t, NULL), strstr(hdrs[i], "relaxed")
			? BS_DKIM_ST_VALID : BS_DKIM_ST_FAIL);
		free(t);
		/* Header names change case: relaxed survives. */
		t = strdup(h);
		subst(t, "\r\nDate:", "\r\nDATE:");
		assert_int_equal(verify(&x, t, NULL), strstr(hdrs[i], "relaxed")
			? BS_DKIM_ST_VALID : BS_DKIM_ST_FAIL);
		free(t);
		free(h);
	}
	fx_free(&x);
}

/* A real signature copied onto a forger's headers. */
static void
test_dkim_replay(void **state)
{
	(void)state;
	struct fx x;
	fx_dkim(&x, "");
	for (unsigned int i = 0; i < 4; i++) {
		size_t n;
		char *h = slurp(hdrs[i], &n);
		char *t = strdup(h);
		subst(t, "Message-ID: <20300317174000.1@example.com>",
			"Message-ID: <forged.42@example.com>");
		assert_int_equal(verify(&x, t, NULL), BS_DKIM_ST_FAIL);
		free(t);
		t = strdup(h);
		subst(t, "From: Alice Example <alice@example.com>",
			"From: Alice Example <bob@example.com>");
		assert_int_equal(verify(&x, t, NULL), BS_DKIM_ST_FAIL);
		free(t);
		/* The signature field alone on other headers. */
		char *end = strstr(h, "\r\nReceived:");
		assert_non_null(end);
		end[2] = '\0';
		char buf[8192];
		snprintf(buf, sizeof(buf), "%sFrom: alice@example.com\r\n"
			"To: victim@example.org\r\nSubject: buy\r\n", h);
		assert_int_equal(verify(&x, buf, NULL), BS_DKIM_ST_FAIL);
		free(h);
	}
	fx_free(&x);
}

static void
test_dkim_keys_and_budget(void **state)
{
	(void)state;
	struct fx x;
	size_t n;
	fx_dkim(&x, "verdict.dkim_checks_per_s: 2\n");
	char *h = slurp("rsa_relaxed.hdr", &n);
	unsigned int c;
	assert_int_equal(bs_dkim_verify(x.vc, "example.com", 11,
		(const uint8_t *)h, n, 100, &c), BS_DKIM_ST_VALID);
	assert_int_equal(bs_dkim_verify(x.vc, "example.com", 11,
		(const uint8_t *)h, n, 100, &c), BS_DKIM_ST_VALID);
	/* Third in the same second: over budget, nothing verified. */
	assert_int_equal(bs_dkim_verify(x.vc, "example.com", 11,
		(const uint8_t *)h, n, 100, &c), BS_DKIM_ST_BUDGET);
	assert_int_equal(c, 0);
	assert_int_equal(bs_dkim_verify(x.vc, "example.com", 11,
		(const uint8_t *)h, n, 101, &c), BS_DKIM_ST_VALID);
	/* An unknown selector is not the domain's key. */
	char *t = strdup(h);
	subst(t, "rsa1;", "zzz1;");
	assert_int_equal(bs_dkim_verify(x.vc, "example.com", 11,
		(const uint8_t *)t, strlen(t), 102, &c), BS_DKIM_ST_FAIL);
	free(t);
	/* rsa-sha1 is not accepted (RFC 8301). */
	t = strdup(h);
	subst(t, "a=rsa-sha256", "a=rsa-sha1");
	assert_int_equal(bs_dkim_verify(x.vc, "example.com", 11,
		(const uint8_t *)t, strlen(t), 103, &c), BS_DKIM_ST_FAIL);
	free(t);
	/* LF line ends are CRLF lines. */
	t = strdup(h);
	for (char *r; (r = strstr(t, "\r\n")) != NULL;)
		memmove(r, r + 1, strlen(r));
	assert_int_equal(bs_dkim_verify(x.vc, "example.com", 11,
		(const uint8_t *)t, strlen(t), 104, &c), BS_DKIM_ST_VALID);
	free(t);
	free(h);
	fx_free(&x);
}

/* ---- configuration errors ------------------------------------------ */

static void
cfg_err(const char *yaml, const char *want)
{
	struct bs_config c;
	char err[512] = "";
	assert_int_equal(bs_config_defaults(&c), 0);
	int rc = bs_config_load_mem(&c, "v.yaml", (const uint8_t *)yaml,
		strlen(yaml), err, sizeof(err));
	if (rc == 0 || strstr(err, want) == NULL)
		fprintf(stderr, "want '%s', got rc %d '%s'\n", want, rc, err);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(err, want));
	bs_config_free(&c);
}

static void
test_config(void **state)
{
	(void)state;
	cfg_err("protected_domains: [example.com, \"bad domain\"]\n",
		"v.yaml:1: protected_domains: invalid domain name 'bad domain'");
	cfg_err("protected_domains: [a.example]\nrelays:\n  - ok.example\n"
		"  - 10.0.0.0/33\n", "v.yaml:4: relays: invalid relay");
	cfg_err("batv:\n  keys:\n    - {id: 10, secret: x}\n",
		"v.yaml:3: batv.keys: id must be 0..9");
	cfg_err("batv:\n  keys:\n    - {id: 1, secret: x}\n    - {id: 1, "
		"secret: y}\n", "v.yaml:4: batv.keys: id 1 given twice");
	cfg_err("batv: {keys: [{id: 1}]}\n", "needs both id and secret");
	cfg_err("batv: {keys: [{id: 1, secret: x, colour: red}]}\n",
		"unknown key 'colour'");
	cfg_err("protected_domains: [a.example]\nbatv: {enforce: true}\n",
		"batv.enforce: needs batv.keys");
	cfg_err("protected_domains: [a.example]\ndkim_keys:\n  - {domain: "
		"a.example, selector: s, public_key: \"bm90IGEga2V5\"}\n",
		"v.yaml:3: dkim_keys: s: public_key is not an RSA");
	cfg_err("protected_domains: [a.example]\ndkim_keys:\n  - {domain: "
		"b.example, selector: s, public_key: \"v=DKIM1; k=ed25519; "
		"p=BTwFA7HFRJR++s0/AAdo8pMriARdMbb9AKL4HN0ATTQ=\"}\n",
		"v.yaml:3: dkim_keys: b.example is not in protected_domains");
	cfg_err("protected_domains: [a.example]\ndomains:\n  b.example: "
		"{relays: []}\n", "v.yaml:3: domains: b.example is not in "
		"protected_domains");
	cfg_err("protected_domains: [a.example]\ndomains:\n  a.example:\n"
		"    batv.lifetime_days: 3\n",
		"v.yaml:4: domains.a.example: unknown setting "
		"'batv.lifetime_days'");
	/* Bare base64 that ends in "p=" is still base64, not a tag list. */
	{
		struct fx y;
		char yml[600];
		snprintf(yml, sizeof(yml), "protected_domains: [a.example]\n"
			"dkim_keys: [{domain: a.example, selector: s, "
			"public_key: \"%s\"}]\n",
			"MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZup=");
		/* (an SPKI-wrapped Ed25519 key is not an RSA key) */
		cfg_err(yml, "public_key is not an RSA");
		fx_load(&y, "protected_domains: [a.example]\ndkim_keys: [{domain:"
			" a.example, selector: s, public_key: \"BTwFA7HFRJR++s0/AAd"
			"o8pMriARdMbb9AKL4HN0ATTQ=\"}]\n");
		fx_free(&y);
	}
	cfg_err("verdict: {unknown: maybe}\n",
		"v.yaml:1: verdict.unknown: invalid value 'maybe' (deliver or "
		"refuse)");

	/* Per-domain values land in the domain's entry only. */
	struct fx x;
	fx_load(&x, "protected_domains: [a.example, b.example]\n"
		"verdict.unknown: refuse\n"
		"domains:\n  B.Example.:\n    verdict: {unknown: deliver}\n");
	const struct bs_cfg_domain *d = bs_config_domain(&x.cfg, "b.example", 9);
	assert_non_null(d);
	assert_int_equal(d->verdict_unknown, BS_ACTION_DELIVER);
	assert_int_equal(x.cfg.verdict_unknown, BS_ACTION_REFUSE);
	assert_null(bs_config_domain(&x.cfg, "a.example", 9));
	assert_true(bs_verdict_policy_protects(x.p, "A.EXAMPLE", 9));
	assert_false(bs_verdict_policy_protects(x.p, "c.example", 9));
	/* --show-config never prints a secret. */
	fx_free(&x);
	fx_load(&x, batv_yaml);
	char *buf = NULL;
	size_t bl = 0;
	FILE *f = open_memstream(&buf, &bl);
	bs_config_show(f, &x.cfg);
	fclose(f);
	assert_null(strstr(buf, K0));
	assert_null(strstr(buf, K1));
	assert_non_null(strstr(buf, "# batv.keys: ids [0, 1]"));
	free(buf);
	fx_free(&x);
}

/* ---- policy --------------------------------------------------------- */

/* Test environment: a ledger and storm answering as told. */
struct envst {
	enum bs_ledger_answer ans;
	const char *hit_id; /* HIT for this id only (else ans) */
	bool storm;
	unsigned int ledger_calls, storm_calls, bounces;
	char last_id[256], last_rcpt[256];
};

static enum bs_ledger_answer
env_ledger(void *arg, const char *id, size_t n)
{
	struct envst *e = arg;
	e->ledger_calls++;
	snprintf(e->last_id, sizeof(e->last_id), "%.*s", (int)n, id);
	if (e->hit_id != NULL)
		return strcmp(e->last_id, e->hit_id) == 0 ? BS_LEDGER_HIT
							  : e->ans;
	return e->ans;
}

static bool
env_storm(void *arg, const char *rcpt, size_t n)
{
	struct envst *e = arg;
	e->storm_calls++;
	snprintf(e->last_rcpt, sizeof(e->last_rcpt), "%.*s", (int)n, rcpt);
	return e->storm;
}

static void
env_bounce(void *arg, const char *rcpt, size_t n)
{
	struct envst *e = arg;
	(void)rcpt;
	(void)n;
	e->bounces++;
}

struct pcase {
	const char *name;
	uint8_t cls;
	const char *rcpt;
	bool orig;
	const char *from;       /* original's From */
	const char *rcvd;       /* one Received of the original, or NULL */
	const char *hdr;        /* DKIM header file, or NULL */
	enum bs_ledger_answer ledger;
	bool storm;
	uint8_t want;
	uint8_t want_action;
	uint64_t want_reasons; /* all must be present */
	uint64_t not_reasons;  /* none may be present */
	int edit; /* 1: drop the block's Received fields; 2: and tamper */
};

#define R(x) BS_VR_BIT(x)

static const char policy_yaml[] =
	"protected_domains: [example.com, free.example]\n"
	"batv: {keys: [{id: 0, secret: \"" K0 "\"}], "
	"exempt_destinations: [lists.example.org]}\n"
	"relays: [out1.example.com, 192.0.2.0/24]\n"
	"domains:\n"
	"  example.com: {batv: {enforce: true}}\n"
	"  free.example: {relays: [], verdict.unknown: refuse}\n";

static void
run_case(struct fx *x, const struct pcase *c, const char *tag)
{
	struct bs_detect_result det;
	struct bs_smtp_rcpt rc;
	struct bs_verdict_input in;
	struct bs_verdict_result out;
	struct envst es = { .ans = c->ledger, .storm = c->storm };
	struct bs_verdict_env env = { env_ledger, env_storm, env_bounce, &es };
	char *hbuf = NULL;
	size_t hl = 0;

	memset(&det, 0, sizeof(det));
	det.cls = c->cls;
	det.mime.orig.present = c->orig;
	if (c->orig)
		snprintf(det.mime.orig.message_id, BS_FIELD_MAX,
			"<20300317174000.1@Example.COM>");
	if (c->from)
		snprintf(det.mime.orig.from, BS_FIELD_MAX, "%s", c->from);
	if (c->rcvd) {
		det.mime.orig.n_received = det.mime.orig.n_received_seen = 1;
		snprintf(det.mime.orig.received[0].raw, BS_RECEIVED_RAW_MAX,
			"%s", c->rcvd);
	}
	memset(&rc, 0, sizeof(rc));
	snprintf(rc.addr, sizeof(rc.addr), "%s",
		strcmp(c->rcpt, "TAG") == 0 || strcmp(c->rcpt, "OLD") == 0
			? tag : c->rcpt);
	rc.len = (uint16_t)strlen(rc.addr);
	rc.reply = 250;
	bs_verdict_input_init(&in, NULL, &det, day_with(500));
	in.mail_from = "";
	in.rcpt = &rc;
	in.nrcpt = 1;
	if (c->hdr != NULL) {
		hbuf = slurp(c->hdr, &hl);
		if (c->edit >= 1) {
			char *r = strstr(hbuf, "Received:");
			char *e = strstr(hbuf, "\r\nFrom:");
			assert_true(r != NULL && e != NULL && r < e);
			memmove(r, e + 2, strlen(e + 2) + 1);
		}
		if (c->edit == 2)
			subst(hbuf, "Quarterly", "Quarterlx");
		hl = strlen(hbuf);
		in.hdr = (const uint8_t *)hbuf;
		in.hdr_len = hl;
	}
	bs_verdict_judge(x->vc, &env, &in, &out);
	char js[1024];
	bs_verdict_result_json(&out, js, sizeof(js));
	if (out.verdict != c->want || (out.reasons & c->want_reasons) !=
			c->want_reasons || (out.reasons & c->not_reasons) ||
			out.action != c->want_action)
		fprintf(stderr, "case %s: got %s\n", c->name, js);
	assert_int_equal(out.verdict, c->want);
	assert_int_equal(out.action, c->want_action);
	assert_true((out.reasons & c->want_reasons) == c->want_reasons);
	assert_true((out.reasons & c->not_reasons) == 0);
	free(hbuf);
}

static void
test_policy_table(void **state)
{
	(void)state;
	struct fx x;
	char tag[256], old[256];
	fx_dkim(&x, policy_yaml);
	uint64_t now = day_with(500);
	exim_prvs("alice@example.com", K0, 0, now - 86400, tag, sizeof(tag));
	exim_prvs("alice@example.com", K0, 0, now - 30 * 86400, old,
		sizeof(old));
	enum { D = BS_CLASS_DSN, A = BS_CLASS_AUTOREPLY, F = BS_CLASS_FEEDBACK,
		N = BS_CLASS_NONE };
	enum { L = BS_VERDICT_LEGIT, B = BS_VERDICT_BACKSCATTER,
		U = BS_VERDICT_UNKNOWN, NB = BS_VERDICT_NOT_BOUNCE };
	enum { DEL = BS_ACTION_DELIVER, REF = BS_ACTION_REFUSE };
	const char *me = "Alice <alice@example.com>";
	const char *viaok = "from a (a [192.0.2.7]) by mx.remote.example";
	const char *viabad = "from out1.example.com (x [203.0.113.9]) by "
		"mx.remote.example";
	const struct pcase cases[] = {
		{ "not a bounce", N, "alice@example.com", false, NULL, NULL,
			NULL, 0, 0, NB, DEL, R(not_bounce), 0 },
		{ "unprotected", D, "bob@other.example", true, me, viabad,
			NULL, 0, 0, NB, DEL, R(not_protected), R(relay_absent) },
		{ "arf not judged", F, "alice@example.com", true, me, viabad,
			NULL, 0, 0, NB, DEL, R(feedback_not_judged), 0 },
		{ "valid tag", D, "TAG", true, me, viabad, NULL, 0, 0, L, DEL,
			R(batv_valid), R(relay_absent) | R(dkim_fail) },
		{ "valid tag beats forged relays", D, "TAG", true, me, viabad,
			"rsa_relaxed.hdr", 0, 0, L, DEL, R(batv_valid), 0 },
		{ "untagged DSN under enforce, nothing else", D,
			"alice@example.com", false, NULL, NULL, NULL, 0, 0, B,
			REF, R(batv_missing) | R(no_original), 0 },
		{ "untagged auto-reply: enforce does not judge it", A,
			"alice@example.com", false, NULL, NULL, NULL, 0, 0, U,
			DEL, R(batv_missing), 0 },
		{ "expired tag under enforce", D, "OLD", false, NULL, NULL,
			NULL, 0, 0, B, REF, R(batv_expired), 0 },
		{ "ledger hit beats missing tag", D, "alice@example.com",
			true, me, viabad, NULL, BS_LEDGER_HIT, 0, L, DEL,
			R(ledger_hit) | R(batv_missing), 0 },
		{ "relay seen", A, "alice@example.com", true, me, viaok, NULL,
			BS_LEDGER_MISS, 0, L, DEL,
			R(relay_seen) | R(ledger_miss), 0 },
		{ "relay absent: forged", A, "alice@example.com", true, me,
			viabad, NULL, 0, 0, B, REF, R(relay_absent), 0 },
		{ "relay in the header block: DKIM not needed", A,
			"alice@example.com", true, me, viabad, "ed_simple.hdr",
			0, 0, L, DEL, R(relay_seen), R(dkim_valid) },
		{ "no chain, DKIM valid", A, "alice@example.com", true, me,
			viabad, "ed_simple.hdr", 0, 0, L, DEL,
			R(relay_unchecked) | R(dkim_valid) |
				R(dkim_body_unchecked), 0, 1 },
		{ "no chain, DKIM tampered: forged", A, "alice@example.com",
			true, me, viabad, "rsa_simple.hdr", 0, 0, B, REF,
			R(relay_unchecked) | R(dkim_fail), 0, 2 },
		{ "foreign original: absence proves nothing", A,
			"alice@example.com", true, "x@elsewhere.example",
			viabad, NULL, 0, 0, U, DEL,
			R(original_foreign) | R(relay_absent), 0 },
		{ "nothing checkable; the domain refuses unknown", A,
			"carol@free.example", true,
			"Carol <carol@free.example>", viabad, NULL, 0, 0, U, REF,
			0, R(relay_absent) },
		{ "ledger warming is not evidence", A, "alice@example.com",
			true, "x@elsewhere.example", NULL, NULL,
			BS_LEDGER_WARMING, 0, U, DEL, R(ledger_warming), 0 },
		{ "ledger miss is not proof by default", A,
			"alice@example.com", true, "x@elsewhere.example", NULL,
			NULL, BS_LEDGER_MISS, 0, U, DEL, R(ledger_miss), 0 },
		{ "storm turns unknown into backscatter", A,
			"alice@example.com", true, "x@elsewhere.example", NULL,
			NULL, 0, 1, B, REF, R(storm), 0 },
		{ "storm does not touch legit", D, "TAG", true, me, viabad,
			NULL, 0, 1, L, DEL, R(batv_valid), R(storm) },
		{ "domain refuses unknown", A, "carol@free.example", false,
			NULL, NULL, NULL, 0, 0, U, REF, R(no_original), 0 },
		{ "other tag form: stripped, no evidence", A,
			"btv1==abc==alice@example.com", false, NULL, NULL, NULL,
			0, 0, U, DEL, R(batv_other), R(batv_missing) },
		{ "no header block: DKIM unchecked", A, "alice@example.com",
			true, me, NULL, NULL, 0, 0, U, DEL, R(dkim_unchecked),
			R(dkim_fail) },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *c = &cases[i];
		run_case(&x, c, strcmp(c->rcpt, "OLD") == 0 ? old : tag);
	}
	fx_free(&x);
}

/* Exempt destinations, several recipients, counters, JSON. */
static void
test_policy_envelope(void **state)
{
	(void)state;
	struct fx x;
	fx_load(&x, policy_yaml);
	struct bs_detect_result det;
	struct bs_smtp_rcpt rc[3];
	struct bs_verdict_input in;
	struct bs_verdict_result out;
	struct envst es = { 0 };
	struct bs_verdict_env env = { env_ledger, env_storm, env_bounce, &es };

	memset(&det, 0, sizeof(det));
	memset(rc, 0, sizeof(rc));
	det.cls = BS_CLASS_DSN;
	snprintf(det.mime.dsn.final_recipient, BS_FIELD_MAX,
		"rfc822; list@lists.example.org");
	snprintf(rc[0].addr, sizeof(rc[0].addr), "alice@example.com");
	rc[0].len = 17;
	rc[0].reply = 0; /* pending (pipelined BDAT): counts */
	bs_verdict_input_init(&in, NULL, &det, day_with(500));
	in.rcpt = rc;
	in.nrcpt = 1;
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(out.verdict, BS_VERDICT_UNKNOWN);
	assert_true(out.reasons & R(batv_exempt));
	assert_false(out.reasons & R(batv_missing));
	assert_int_equal(es.bounces, 1);
	assert_string_equal(es.last_rcpt, "alice@example.com");

	/* Exempt by subdomain; not by a look-alike. */
	snprintf(det.mime.dsn.final_recipient, BS_FIELD_MAX,
		"rfc822; x@a.lists.example.org");
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_true(out.reasons & R(batv_exempt));
	snprintf(det.mime.dsn.final_recipient, BS_FIELD_MAX,
		"rfc822; x@badlists.example.org");
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(out.verdict, BS_VERDICT_BACKSCATTER);
	assert_true(out.reasons & R(batv_missing));

	/* A refused recipient does not count; an unprotected one keeps the
	 * message from being refused. */
	snprintf(rc[1].addr, sizeof(rc[1].addr), "bob@other.example");
	rc[1].len = 17;
	rc[1].reply = 550;
	in.nrcpt = 2;
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(out.verdict, BS_VERDICT_BACKSCATTER);
	rc[1].reply = 250;
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(out.verdict, BS_VERDICT_NOT_BOUNCE);
	assert_int_equal(out.action, BS_ACTION_DELIVER);
	assert_true(out.reasons & R(not_protected));
	/* No recipient at all. */
	in.nrcpt = 0;
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(out.verdict, BS_VERDICT_NOT_BOUNCE);
	assert_true(out.reasons & R(no_recipient));

	/* The ledger gets the addr-spec with the domain in lower case;
	 * auto-replies also look up In-Reply-To and References. */
	det.cls = BS_CLASS_AUTOREPLY;
	det.mime.orig.present = false;
	in.nrcpt = 1;
	in.in_reply_to = " <Reply.ID@Mail.Example.COM>";
	in.references = "<a@x.example> <b@x.example>\r\n <Last@X.Example>";
	es.hit_id = "b@x.example";
	es.ans = BS_LEDGER_MISS;
	es.ledger_calls = 0;
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(out.verdict, BS_VERDICT_LEGIT);
	assert_true(out.reasons & R(ledger_hit));
	/* In-Reply-To, then References from the last: Last, b (hit). */
	assert_int_equal(es.ledger_calls, 3);
	es.hit_id = "Reply.ID@mail.example.com";
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(out.verdict, BS_VERDICT_LEGIT);

	/* Forwarding: the relay is the third hop of the raw block's chain;
	 * the hops above it were added by two forwarders. */
	static const char fwd[] =
		"Received: from fwd2.example.org (fwd2.example.org "
		"[198.51.100.20])\r\n\tby mx.final.example (Postfix) id 1\r\n"
		"Received: from fwd1.example.org (fwd1.example.org "
		"[198.51.100.10])\r\n\tby fwd2.example.org id 2\r\n"
		"Received: from out1.example.com (out1.example.com "
		"[192.0.2.9])\r\n\tby fwd1.example.org id 3\r\n"
		"From: Alice <alice@example.com>\r\nMessage-ID: <f@example.com>"
		"\r\n";
	struct bs_detect_result fd;
	memset(&fd, 0, sizeof(fd));
	fd.cls = BS_CLASS_DSN;
	fd.mime.orig.present = true;
	snprintf(fd.mime.orig.from, BS_FIELD_MAX, "alice@example.com");
	struct bs_verdict_input fin = in;
	fin.det = &fd;
	fin.in_reply_to = fin.references = NULL;
	fin.hdr = (const uint8_t *)fwd;
	fin.hdr_len = sizeof(fwd) - 1;
	es.hit_id = NULL;
	es.ans = BS_LEDGER_OFF;
	snprintf(rc[0].addr, sizeof(rc[0].addr), "prvs=0123abcdef=alice@"
		"example.com");
	rc[0].len = (uint16_t)strlen(rc[0].addr);
	bs_verdict_judge(x.vc, &env, &fin, &out);
	assert_int_equal(out.verdict, BS_VERDICT_LEGIT);
	assert_true(out.reasons & R(relay_seen));
	assert_true(out.reasons & R(batv_bad)); /* not enforced: no proof */
	/* The same chain without the relay's hop: forged (DSN, enforce). */
	static const char fwd_cut[] =
		"Received: from fwd2.example.org (fwd2.example.org "
		"[198.51.100.20])\r\n\tby mx.final.example (Postfix) id 1\r\n"
		"Received: from out1.example.com (fwd1.example.org "
		"[198.51.100.10])\r\n\tby fwd2.example.org id 2\r\n"
		"From: Alice <alice@example.com>\r\n";
	fin.hdr = (const uint8_t *)fwd_cut;
	fin.hdr_len = sizeof(fwd_cut) - 1;
	bs_verdict_judge(x.vc, &env, &fin, &out);
	assert_int_equal(out.verdict, BS_VERDICT_BACKSCATTER);
	assert_true(out.reasons & R(relay_absent));
	/* Cut at its cap: the relay may be in the part lost. */
	fin.hdr_cut = true;
	bs_verdict_judge(x.vc, &env, &fin, &out);
	assert_true(out.reasons & R(relay_unchecked));
	assert_false(out.reasons & R(relay_absent));
	snprintf(rc[0].addr, sizeof(rc[0].addr), "alice@example.com");
	rc[0].len = 17;
	es.hit_id = "Reply.ID@mail.example.com";
	es.ans = BS_LEDGER_MISS;

	/* Counters per verdict and per reason; JSON. */
	struct bs_counters c0 = x.cnt;
	bs_verdict_judge(x.vc, &env, &in, &out);
	assert_int_equal(x.cnt.v[BS_CNT_verdict_legit],
		c0.v[BS_CNT_verdict_legit] + 1);
	assert_int_equal(x.cnt.v[BS_CNT_verdict_reason_ledger_hit],
		c0.v[BS_CNT_verdict_reason_ledger_hit] + 1);
	char js[512];
	bs_verdict_result_json(&out, js, sizeof(js));
	assert_string_equal(js, "\"verdict\":\"legit\",\"action\":\"deliver\","
		"\"reasons\":[\"no_original\",\"batv_missing\",\"ledger_hit\"],"
		"\"verdict_domain\":\"example.com\"");
	/* Cut output still says how much it needs. */
	char small[8];
	assert_int_equal(bs_verdict_result_json(&out, small, sizeof(small)),
		strlen(js));
	assert_int_equal(strlen(small), 7);
	fx_free(&x);
}

/* ---- through detection ---------------------------------------------- */

static void
detect_file(struct bs_detect_ctx *dc, const char *path,
	struct bs_detect_result *res)
{
	size_t n;
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	uint8_t *b = malloc(1 << 20);
	n = fread(b, 1, 1 << 20, f);
	fclose(f);
	struct bs_msg *m = bs_msg_begin(dc, "", NULL, 0);
	assert_non_null(m);
	bs_msg_feed(m, b, n);
	bs_msg_end(m, res);
	free(b);
}

/*
 * A bounce whose text/rfc822-headers part is quoted-printable: detection
 * decodes it into the original's raw header block (contract 3), and the
 * signature verifies.  Without that block (before contract 3 lands) the
 * verdict must say DKIM was not checked and take no side.
 */
static void
test_dkim_qp_pipeline(void **state)
{
	(void)state;
	struct fx x;
	char err[256], p[400];
	fx_dkim(&x, "");
	struct bs_ruleset *rs = bs_ruleset_load(rules_path, err, sizeof(err));
	assert_non_null(rs);
	struct bs_detect_ctx *dc = bs_detect_ctx_create(rs);
	assert_non_null(dc);
	struct bs_detect_result *res = malloc(sizeof(*res));
	snprintf(p, sizeof(p), "%s/qp_bounce.eml", dkim_dir);
	detect_file(dc, p, res);
	assert_int_equal(res->cls, BS_CLASS_DSN);
	assert_true(res->mime.orig.present);
	assert_string_equal(res->mime.orig.message_id,
		"<20300317174000.1@example.com>");
	struct bs_smtp_rcpt rc = { .addr = "alice@example.com", .len = 17,
		.reply = 250 };
	struct bs_verdict_input in;
	struct bs_verdict_result out;
	bs_verdict_input_init(&in, NULL, res, 1900000000);
	in.rcpt = &rc;
	in.nrcpt = 1;
	bs_verdict_judge(x.vc, NULL, &in, &out);
	assert_non_null(in.hdr);
	assert_int_equal(out.verdict, BS_VERDICT_LEGIT);
	assert_true(out.reasons & R(dkim_valid));
	free(res);
	bs_detect_ctx_free(dc);
	bs_ruleset_free(rs);
	fx_free(&x);
}

/* ---- a callout is never judged -------------------------------------- */

/*
 * The wiring the workers will use: detection from the message's first
 * byte (on_message_begin), the verdict at the end of the message and
 * nowhere else.  An address-verification
 * callout (MAIL FROM:<>, RCPT to an untagged address under enforce, QUIT)
 * ends without a message, so it is never judged and never refused;
 * the same envelope with DATA is judged backscatter.
 */
struct wire {
	struct bs_detect_ctx *dc;
	struct bs_verdict_ctx *vc;
	struct bs_msg *msg;
	unsigned int judged;
	struct bs_verdict_result last;
	int last_reply; /* first recipient's reply when judged */
};

static void
w_env(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec)
{
	struct wire *w = arg;
	(void)f;
	w->msg = bs_msg_begin(w->dc, rec->mail_from, NULL, 0);
}

static void
w_data(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec,
	const uint8_t *d, uint32_t n)
{
	struct wire *w = arg;
	(void)f;
	(void)rec;
	if (w->msg)
		bs_msg_feed(w->msg, d, n);
}

static void
w_eom(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec,
	void *pkt)
{
	struct wire *w = arg;
	struct bs_detect_result res;
	(void)f;
	(void)pkt;
	if (!w->msg)
		return;
	bs_msg_end(w->msg, &res);
	w->msg = NULL;
	bs_verdict_eom(w->vc, NULL, rec, &res, day_with(500), &w->last);
	w->last_reply = rec->nrcpt > 0 ? rec->rcpt[0].reply : -1;
	w->judged++;
}

static void
w_end(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *rec)
{
	struct wire *w = arg;
	(void)f;
	(void)rec;
	bs_msg_abort(w->msg);
	w->msg = NULL;
}

static void
run_session(struct wire *w, const char *const *turns, unsigned int n)
{
	static const struct bs_smtp_events ev = { .on_message_begin = w_env,
		.on_data = w_data, .on_end_of_message = w_eom,
		.on_txn_end = w_end };
	struct bs_smtp_params sp;
	struct bs_counters cnt;
	struct bs_smtp_endpoints ep = { .l3 = BS_L3_IPV4,
		.client = { 192, 0, 2, 1 }, .server = { 198, 51, 100, 25 },
		.cport = 40000, .sport = 25 };
	memset(&cnt, 0, sizeof(cnt));
	bs_smtp_params_default(&sp);
	struct bs_smtp_ctx *sc = bs_smtp_ctx_create(&sp, &ev, w, &cnt);
	assert_non_null(sc);
	struct bs_smtp_flow *f = bs_smtp_flow_new(sc, &ep);
	assert_non_null(f);
	uint32_t nxt[2] = { 1001, 5001 };
	struct bs_seg s;
	memset(&s, 0, sizeof(s));
	s.win = 65535;
	s.flags = BS_TCP_SYN;
	s.seq = 1000;
	s.to_server = 1;
	bs_smtp_flow_input(sc, f, &s, 1);
	s.flags = BS_TCP_SYN | BS_TCP_ACK;
	s.seq = 5000;
	s.ack = 1001;
	s.to_server = 0;
	bs_smtp_flow_input(sc, f, &s, 1);
	s.flags = BS_TCP_ACK;
	s.seq = 1001;
	s.ack = 5001;
	s.to_server = 1;
	bs_smtp_flow_input(sc, f, &s, 1);
	for (unsigned int i = 0; i < n; i++) {
		int d = turns[i][0] == 'S'; /* 1: server */
		s.data = (const uint8_t *)turns[i] + 3;
		s.len = (uint32_t)strlen(turns[i] + 3);
		s.seq = nxt[d];
		s.ack = nxt[!d];
		s.flags = BS_TCP_ACK | BS_TCP_PSH;
		s.to_server = !d;
		bs_smtp_flow_input(sc, f, &s, 2 + i);
		nxt[d] += s.len;
	}
	bs_smtp_flow_free(sc, f, 100);
	bs_smtp_ctx_free(sc);
}

static void
test_callout_not_judged(void **state)
{
	(void)state;
	struct fx x;
	char err[256];
	fx_load(&x, policy_yaml);
	struct bs_ruleset *rs = bs_ruleset_load(rules_path, err, sizeof(err));
	assert_non_null(rs);
	struct wire w = { .dc = bs_detect_ctx_create(rs), .vc = x.vc };
	assert_non_null(w.dc);
	static const char *const callout[] = {
		"S: 220 mx.example.com ESMTP\r\n",
		"C: EHLO verifier.example.org\r\n",
		"S: 250-mx.example.com\r\n250 PIPELINING\r\n",
		"C: MAIL FROM:<>\r\n",
		"S: 250 2.1.0 Ok\r\n",
		"C: RCPT TO:<alice@example.com>\r\n",
		"S: 250 2.1.5 Ok\r\n",
		"C: QUIT\r\n",
		"S: 221 2.0.0 Bye\r\n",
	};
	run_session(&w, callout, sizeof(callout) / sizeof(callout[0]));
	assert_int_equal(w.judged, 0);
	assert_int_equal(x.cnt.v[BS_CNT_verdict_backscatter], 0);
	assert_int_equal(x.cnt.v[BS_CNT_verdict_refuse], 0);

	static const char *const bounce[] = {
		"S: 220 mx.example.com ESMTP\r\n",
		"C: EHLO mx.remote.example\r\n",
		"S: 250-mx.example.com\r\n250 PIPELINING\r\n",
		"C: MAIL FROM:<>\r\n",
		"S: 250 2.1.0 Ok\r\n",
		"C: RCPT TO:<alice@example.com>\r\n",
		"S: 250 2.1.5 Ok\r\n",
		"C: DATA\r\n",
		"S: 354 End data with <CR><LF>.<CR><LF>\r\n",
		"C: From: MAILER-DAEMON@mx.remote.example\r\n"
		"To: alice@example.com\r\nSubject: Undelivered Mail Returned "
		"to Sender\r\nContent-Type: multipart/report; report-type="
		"delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: "
		"text/plain\r\n\r\nThis is the mail system at host "
		"mx.remote.example. I'm sorry to have to inform you that your "
		"message could not be delivered.\r\n--b\r\nContent-Type: "
		"message/delivery-status\r\n\r\nReporting-MTA: dns; "
		"mx.remote.example\r\n\r\nFinal-Recipient: rfc822; "
		"bob@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
		"\r\n--b--\r\n.\r\n",
		"S: 250 2.0.0 Ok: queued\r\n",
		"C: QUIT\r\n",
		"S: 221 2.0.0 Bye\r\n",
	};
	run_session(&w, bounce, sizeof(bounce) / sizeof(bounce[0]));
	assert_int_equal(w.judged, 1);
	assert_int_equal(w.last_reply, 250);
	assert_int_equal(w.last.verdict, BS_VERDICT_BACKSCATTER);
	assert_true(w.last.reasons & R(batv_missing));

	/* Pipelined BDAT: the whole message before any reply, so at its end
	 * the recipient's reply is still pending; pending counts as given. */
	static char bdat_cmd[2048];
	const char *body = bounce[9] + 3;
	size_t bl = strlen(body) - 3; /* no ".\r\n" in BDAT */
	snprintf(bdat_cmd, sizeof(bdat_cmd), "C: MAIL FROM:<>\r\nRCPT TO:"
		"<alice@example.com>\r\nBDAT %zu LAST\r\n%.*s", bl, (int)bl,
		body);
	const char *const bdat[] = {
		"S: 220 mx.example.com ESMTP\r\n",
		"C: EHLO mx.remote.example\r\n",
		"S: 250-mx.example.com\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
		bdat_cmd,
		"S: 250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued\r\n",
		"C: QUIT\r\n",
		"S: 221 2.0.0 Bye\r\n",
	};
	run_session(&w, bdat, sizeof(bdat) / sizeof(bdat[0]));
	assert_int_equal(w.judged, 2);
	assert_int_equal(w.last_reply, 0); /* pending when judged */
	assert_int_equal(w.last.verdict, BS_VERDICT_BACKSCATTER);
	assert_true(w.last.reasons & R(batv_missing));
	bs_detect_ctx_free(w.dc);
	bs_ruleset_free(rs);
	fx_free(&x);
}

int
main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: test_verdict EXIM4 FAKETIME MAKE_DKIM "
			"RULES\n");
		return 2;
	}
	exim_bin = argv[1];
	faketime_bin = argv[2];
	make_dkim = argv[3];
	rules_path = argv[4];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_verdict.%d", getpid());
	mkdir(tmpdir, 0700);
	char sp[300];
	snprintf(sp, sizeof(sp), "%s/spool", tmpdir);
	mkdir(sp, 0755);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batv_forms),
		cmocka_unit_test(test_batv_exim_expiry),
		cmocka_unit_test(test_batv_exim_wrap),
		cmocka_unit_test(test_batv_keys_and_case),
		cmocka_unit_test(test_relay_parse),
		cmocka_unit_test(test_relay_match),
		cmocka_unit_test(test_dkim_signers),
		cmocka_unit_test(test_dkim_replay),
		cmocka_unit_test(test_dkim_keys_and_budget),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_policy_table),
		cmocka_unit_test(test_policy_envelope),
		cmocka_unit_test(test_dkim_qp_pipeline),
		cmocka_unit_test(test_callout_not_judged),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return rc;
}
