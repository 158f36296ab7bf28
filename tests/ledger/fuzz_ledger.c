/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: what the ledger takes from outside.  The first byte
 * picks one of:
 *   0  Message-ID normalisation and the References walk on arbitrary
 *      bytes: bounded output, no white space, a lower-case domain, the
 *      same answer under a smaller cap or -E2BIG; and what is recorded
 *      is found again (record -> writer step -> hit);
 *   1  snapshot loading of arbitrary bytes;
 *   2  the same behind the right magic, resealed (the checksum passes,
 *      so the structural checks are what is fuzzed);
 *   3  a well-formed header around fuzzed fields and entries, resealed:
 *      loaded, inserted by a writer step, looked up.
 * A refusal must say why; nothing may crash, leak or read out of bounds.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ledger_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bs_ledger *rec_ledger;

static void
quiet(void *arg, int level, const char *msg)
{
	(void)arg;
	(void)level;
	(void)msg;
}

static struct bs_ledger *
mk(uint32_t max)
{
	struct bs_ledger_params p;
	bs_ledger_params_default(&p);
	p.max_entries = max;
	p.ttl_s = 1000;
	p.ring_size = 16;
	p.log = quiet;
	char err[128];
	struct bs_ledger *l = bs_ledger_create(&p, 1700000000, err,
		sizeof(err));
	if (l == NULL)
		abort();
	return l;
}

static void
msgid(const uint8_t *d, size_t n)
{
	const char *in = (const char *)d;
	char out[BS_MSGID_MAX], small[16];
	int r = bs_msgid_normalise(in, n, out, sizeof(out));
	if (r == -EINVAL || r == -E2BIG)
		return;
	if (r <= 0 || (size_t)r > n || r > BS_MSGID_MAX)
		abort();
	size_t at = SIZE_MAX;
	for (int i = 0; i < r; i++) {
		if (out[i] == ' ' || out[i] == '\t' || out[i] == '\r' ||
				out[i] == '\n')
			abort();
		if (out[i] == '@')
			at = (size_t)i;
	}
	if (at != SIZE_MAX)
		for (int i = (int)at + 1; i < r; i++)
			if (out[i] >= 'A' && out[i] <= 'Z')
				abort();
	int r2 = bs_msgid_normalise(in, n, small, sizeof(small));
	if (r <= (int)sizeof(small) ?
			(r2 != r || memcmp(small, out, (size_t)r) != 0) :
			r2 != -E2BIG)
		abort();

	/* Recorded, then found: the two sides normalise alike. */
	if (bs_ledger_record(bs_ledger_part(rec_ledger, 0), in, n,
			1700000000) != 0)
		abort();
	bs_ledger_tick(rec_ledger, 1700000000);
	if (bs_ledger_lookup(rec_ledger, in, n, 1700000000) != BS_LEDGER_HIT)
		abort();
}

static void
walk(const uint8_t *d, size_t n)
{
	size_t off = 0, prev = 0, count = 0;
	const char *id;
	size_t len;
	while (bs_msgid_next((const char *)d, n, &off, &id, &len)) {
		if (id < (const char *)d || id + len > (const char *)d + n ||
				off <= prev || off > n || len == 0)
			abort();
		prev = off;
		if (++count > n)
			abort();
	}
}

static void
reseal(uint8_t *b, size_t len)
{
	unsigned int n = 0;
	EVP_Digest(b, len - 32, b + len - 32, &n, EVP_sha256(), NULL);
}

static void
parse(uint8_t *b, size_t len, bool step)
{
	struct bs_ledger *l = mk(64);
	char err[256] = "";
	long r = bs_ledger_snapshot_parse(l, b, len, 1700000500, err,
		sizeof(err));
	if (r < 0 && err[0] == '\0')
		abort(); /* every refusal explains itself */
	if (r > 64)
		abort();
	if (r >= 0 && step) {
		bs_ledger_tick(l, 1700000500);
		struct bs_ledger_stats st;
		bs_ledger_stats(l, 1700000500, &st);
		if (st.entries > 64)
			abort();
		bs_ledger_lookup(l, "<a@b>", 5, 1700000500);
	}
	bs_ledger_destroy(l);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (rec_ledger == NULL) {
		rcu_register_thread();
		rec_ledger = mk(1024);
	}
	if (size == 0)
		return 0;
	const uint8_t *d = data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0:
		msgid(d, n);
		walk(d, n);
		break;
	case 1: {
		uint8_t *b = malloc(n + 1);
		memcpy(b, d, n);
		parse(b, n, true);
		free(b);
		break;
	}
	case 2: {
		size_t len = n + 8 + 32;
		uint8_t *b = malloc(len);
		memcpy(b, "BSLEDGER", 8);
		memcpy(b + 8, d, n);
		reseal(b, len);
		parse(b, len, true);
		free(b);
		break;
	}
	case 3: {
		/* flags(1) saved(8) warm(8) secret(16) entries(rest/16) */
		if (n < 33)
			break;
		size_t ents = (n - 33) / 16;
		size_t len = 64 + ents * 16 + 32;
		uint8_t *b = calloc(1, len);
		memcpy(b, "BSLEDGER", 8);
		b[8] = 1;
		b[12] = 64;
		b[16] = 16;
		b[20] = d[0] & 0x81;
		memcpy(b + 24, d + 1, 16);
		for (int i = 0; i < 8; i++)
			b[40 + i] = (uint8_t)((uint64_t)ents >> (8 * i));
		memcpy(b + 48, d + 17, 16);
		memcpy(b + 64, d + 33, ents * 16);
		reseal(b, len);
		parse(b, len, true);
		free(b);
		break;
	}
	}
	return 0;
}
