/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the verdict on hostile input.  One input is a control
 * byte (class, which header source), a recipient (BATV and other tags),
 * and an embedded header block (Received lines, DKIM-Signature fields,
 * anything).  The block goes through the Received parser and relay
 * matcher line by line, the DKIM verifier (real keys, so signatures reach
 * OpenSSL), and the whole policy both as a raw block and as the parsed
 * fields detection would give.  Nothing may crash, hang or read past a
 * buffer; results must be one of the defined values.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/config.h"
#include "backstop/verdict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] =
	"protected_domains: [example.com, example.net]\n"
	"batv: {enforce: true, lifetime_days: 7, keys: [{id: 0, secret: k0},"
	" {id: 5, secret: k5}], exempt_destinations: [lists.example.org]}\n"
	"relays: [out1.example.com, \"*.out.example.com\", 192.0.2.0/24, "
	"\"2001:db8::/32\"]\n"
	"dkim_keys:\n"
	"  - {domain: example.com, selector: rsa1, public_key: \"MIGfMA0GCSqG"
	"SIb3DQEBAQUAA4GNADCBiQKBgQDMRbH8zeqrXYXM/cbCeok0VuJUYUuZfC7ApppYOQqi"
	"9+hrydmV7NMMuk5A+9WJB6zJOS5N+X2tJrxxOQRf8Y+2eKezwAQrcgZwe5tAlowaVbVm"
	"Namf7iWLHrTyroJAaJf8tX92L+ZX/1kZe0oMdjWVCtFw0P8xo8DtqPtJlSAh8wIDAQAB"
	"\"}\n"
	"  - {domain: example.com, selector: ed1, public_key: \"v=DKIM1; "
	"k=ed25519; p=BTwFA7HFRJR++s0/AAdo8pMriARdMbb9AKL4HN0ATTQ=\"}\n"
	"verdict.dkim_checks_per_s: 10000000\n"
	"domains: {example.net: {relays: []}}\n";

static struct bs_config cfg;
static struct bs_verdict_policy *pol;
static struct bs_verdict_ctx *vc;
static struct bs_counters cnt;

static enum bs_ledger_answer
f_ledger(void *arg, const char *id, size_t n)
{
	(void)arg;
	if (strnlen(id, n + 1) != n)
		abort(); /* ids are NUL-terminated at n */
	return (enum bs_ledger_answer)(n % 4);
}

static bool
f_storm(void *arg, const char *r, size_t n)
{
	(void)arg;
	return n > 0 && r[0] == 's';
}

static void
setup(void)
{
	char err[512];
	if (bs_config_defaults(&cfg) < 0 ||
			bs_config_load_mem(&cfg, "fuzz", (const uint8_t *)yaml,
				sizeof(yaml) - 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	pol = bs_verdict_policy_build(&cfg, err, sizeof(err));
	vc = pol ? bs_verdict_ctx_create(pol, &cnt) : NULL;
	if (vc == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (vc == NULL)
		setup();
	if (size < 2)
		return 0;
	uint8_t ctl = data[0];
	size_t rl = data[1] % 128;
	data += 2;
	size -= 2;
	if (rl > size)
		rl = size;
	struct bs_smtp_rcpt rc;
	memset(&rc, 0, sizeof(rc));
	memcpy(rc.addr, data, rl);
	rc.len = (uint16_t)rl;
	rc.reply = ctl & 0x80 ? 0 : 250;
	const uint8_t *hdr = data + rl;
	size_t hl = size - rl;
	/* An exact-size copy so reads past the end are caught. */
	uint8_t *h = malloc(hl ? hl : 1);
	if (h == NULL)
		return 0;
	memcpy(h, hdr, hl);

	struct bs_batv_tag t;
	enum bs_batv_form form = bs_batv_parse(rc.addr, rl, &t);
	if (form > BS_BATV_SRS)
		abort();
	if (t.local_len > rl || t.domain_len > rl)
		abort();
	enum bs_batv_status bst = bs_batv_check(vc, &t, 1900000000);
	if (bst > BS_BATV_ST_BAD)
		abort();

	struct bs_detect_result *det = calloc(1, sizeof(*det));
	if (det == NULL) {
		free(h);
		return 0;
	}
	det->cls = (uint8_t)(ctl % BS_CLASS__MAX);
	det->mime.orig.present = (ctl & 0x10) != 0;
	snprintf(det->mime.orig.from, BS_FIELD_MAX, "%s",
		ctl & 0x20 ? "a@example.com" : "b@elsewhere.example");
	snprintf(det->mime.orig.message_id, BS_FIELD_MAX, "<id%u@Example.com>",
		ctl);
	/* Each line: a hop for the relay matcher and a parsed Received. */
	for (size_t i = 0; i < hl;) {
		size_t e = i;
		while (e < hl && h[e] != '\n')
			e++;
		struct bs_relay_hop hop;
		if (bs_relay_hop_parse((const char *)h + i, e - i, &hop) == 0) {
			if (hop.fam != 0 && hop.fam != 4 && hop.fam != 6)
				abort();
			bs_relay_hop_match(pol, "example.com", 11, &hop);
			bs_relay_hop_match(pol, "example.net", 11, &hop);
		}
		struct bs_original *o = &det->mime.orig;
		if (o->n_received < BS_RECEIVED_MAX) {
			size_t n = e - i < BS_RECEIVED_RAW_MAX - 1
				? e - i : BS_RECEIVED_RAW_MAX - 1;
			memcpy(o->received[o->n_received].raw, h + i, n);
			o->received[o->n_received].raw[n] = '\0';
			o->n_received++;
		}
		o->n_received_seen++;
		i = e + 1;
	}
	unsigned int checks;
	enum bs_dkim_status dst = bs_dkim_verify(vc, "example.com", 11, h, hl,
		1900000000, &checks);
	if (dst > BS_DKIM_ST_UNCHECKED || checks > 4)
		abort();

	struct bs_verdict_env env = { f_ledger, f_storm, NULL, NULL };
	struct bs_verdict_input in;
	struct bs_verdict_result out;
	char js[2048];
	bs_verdict_input_init(&in, NULL, det, 1900000000 + ctl * 86400ULL);
	in.rcpt = &rc;
	in.nrcpt = 1;
	in.in_reply_to = "<x@example.com>";
	in.references = "<a@b> <c@d";
	if (ctl & 0x40) {
		in.hdr = h;
		in.hdr_len = hl;
		in.hdr_cut = (ctl & 8) != 0;
	}
	bs_verdict_judge(vc, &env, &in, &out);
	if (out.verdict > BS_VERDICT_UNKNOWN || out.action > BS_ACTION_REFUSE ||
			(out.reasons >> BS_VR__MAX) != 0)
		abort();
	if (out.verdict == BS_VERDICT_BACKSCATTER &&
			out.action != BS_ACTION_REFUSE)
		abort();
	size_t need = bs_verdict_result_json(&out, js, sizeof(js));
	if (need >= sizeof(js) || strlen(js) != need)
		abort();
	free(det);
	free(h);
	return 0;
}
