/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target of backstop-milter's message input (milter.h): the
 * events an MTA sends through the milter protocol, in any order and with
 * any bytes (MAIL, RCPT, header fields, end of header, body chunks, end
 * of message, abort), reassembled and judged by the engine's detection
 * and verdict with a policy that has every kind of evidence (BATV keys,
 * relays, the ledger), in each role.  Under ASan/UBSan: no crash, no
 * leak, no read past a buffer; a refusal only at the end of a message.
 *
 * Input: byte 0 picks the role; then records of one op byte and a
 * 2-byte length, the payload (a header is "name:value").  The fuzzer
 * shares the verdict fuzzer's dictionary.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/milter.h"

static struct bs_config cfg;
static struct bs_ruleset *rs;
static struct bs_verdict_policy *pol;
static struct bs_ledger *led;
static struct bs_mf *mf[3];

static const char yaml[] =
	"protected_domains: [example.com, example.net]\n"
	"batv: {enforce: true, keys: [{id: 4, secret: fuzz-secret}]}\n"
	"relays: [out.example.com, 192.0.2.0/24]\n"
	"milter: {max_messages: 2, max_scan_bytes: 65536}\n"
	"domains: {example.net: {verdict.unknown: refuse}}\n";

static void
setup(void)
{
	char err[512];
	if (bs_config_defaults(&cfg) < 0 ||
			bs_config_load_mem(&cfg, "fuzz", (const uint8_t *)yaml,
				sizeof(yaml) - 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "config: %s\n", err);
		abort();
	}
	rs = bs_ruleset_load(BS_DATA_DIR "/rules/default.rules", err,
		sizeof(err));
	pol = bs_verdict_policy_build(&cfg, err, sizeof(err));
	if (rs == NULL || pol == NULL) {
		fprintf(stderr, "setup: %s\n", err);
		abort();
	}
	struct bs_ledger_params lp;
	bs_verdict_ledger_params(&cfg, bs_mf_slots(&cfg), &lp);
	lp.max_entries = 1024;
	led = bs_ledger_create(&lp, 1900000000, err, sizeof(err));
	if (led == NULL)
		abort();
	for (int r = 0; r < 3; r++) {
		struct bs_mf_params p = {
			.cfg = &cfg, .rules = rs, .pol = pol, .ledger = led,
			.role = (enum bs_mf_role)(r + 1), .now_s = 1900000000,
		};
		mf[r] = bs_mf_create(&p, err, sizeof(err));
		if (mf[r] == NULL)
			abort();
	}
	/* As a libmilter thread: registered once, offline but for the
	 * verdict. */
	bs_mf_thread_rcu();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1)
		return 0;
	struct bs_mf_txn *t = bs_mf_txn_new(mf[data[0] % 3]);
	if (t == NULL)
		return 0;
	size_t off = 1;
	char buf[65536 + 1];
	while (off + 3 <= size) {
		uint8_t op = data[off];
		size_t n = (size_t)data[off + 1] | ((size_t)data[off + 2] << 8);
		off += 3;
		if (n > size - off)
			n = size - off;
		memcpy(buf, data + off, n);
		buf[n] = '\0';
		off += n;
		struct bs_mf_answer a;
		switch (op % 8) {
		case 0:
			bs_mf_txn_mail(t, buf, (op & 8) != 0);
			break;
		case 1:
			bs_mf_txn_rcpt(t, buf);
			break;
		case 2: {
			/* As libmilter passes them: NUL-free strings. */
			size_t sl = strlen(buf);
			char *colon = memchr(buf, ':', sl);
			size_t nl = colon != NULL ? (size_t)(colon - buf) : sl;
			const char *v = colon != NULL ? colon + 1 : "";
			bs_mf_txn_header(t, buf, nl, v, strlen(v),
				(op & 8) != 0);
			break;
		}
		case 3:
			bs_mf_txn_eoh(t);
			break;
		case 4:
		case 5:
			bs_mf_txn_body(t, (const uint8_t *)buf, n);
			break;
		case 6:
			if (bs_mf_txn_eom(t, &a) == BS_MF_REJECT &&
					(a.reply[0] == '\0' || !a.judged))
				abort(); /* a refusal always has a verdict */
			char line[8192];
			bs_mf_txn_json(t, &a, line, sizeof(line));
			break;
		default:
			bs_mf_txn_abort(t);
			break;
		}
	}
	bs_mf_txn_free(t);
	return 0;
}
