/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test and fuzz harness for reassembly and the SMTP engine: a session is
 * a script of turns (client or server bytes); the harness turns it into
 * TCP segments (whole, or cut, reordered, duplicated and overlapped by a
 * seeded generator), drives bs_smtp_flow_input() and collects the events
 * and the JSON lines of the finished transactions.
 */
#ifndef BS_TEST_SMTP_HARNESS_H
#define BS_TEST_SMTP_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "backstop/smtp.h"
#include "backstop/txn.h"

struct h_turn {
	int dir; /* 0 client, 1 server */
	uint8_t *data;
	size_t len;
};

struct h_script {
	struct h_turn *t;
	size_t n, cap;
};

void h_script_add(struct h_script *s, int dir, const void *p, size_t n);
void h_script_str(struct h_script *s, int dir, const char *str);
void h_script_free(struct h_script *s);
/* Parse "C: ..." / "S: ..." lines (C escapes, CRLF added unless \!). */
int h_script_parse(struct h_script *s, const char *text, size_t len);

struct h_out {
	char *json; /* JSON lines of complete transactions */
	size_t len, cap;
	char *trace; /* one line per event, for order checks */
	size_t tlen, tcap;
	unsigned int begins, ends, msg_begins, eoms, msg_aborts, complete;
	uint64_t data_bytes;
	int order_err;    /* an event came out of order */
	int inspected;    /* flow still inspected at the end */
	unsigned int drops; /* BS_SEG_DROP verdicts */
	uint64_t held_max;
	uint64_t session_bytes; /* charged to the budget before the free */
	uint64_t session_peak;  /* the most charged at once */
	struct bs_counters cnt;
};

struct h_opts {
	uint32_t isn_c, isn_s;
	int no_handshake; /* mid-stream: start with data */
	int digest;
	int fin;          /* end with FIN both ways */
	uint32_t maxseg;  /* whole mode: bytes per segment (0 = 1460) */
	const struct bs_smtp_params *params; /* NULL = defaults + big caps */
};

/* seed 0: in-order segments of maxseg bytes; else random segmentation. */
int h_run(const struct h_script *s, const struct h_opts *o, uint64_t seed,
	struct h_out *out);
/*
 * The same through a transaction stage (detection and event log): the
 * flow is made and freed by the stage; out->json gets the event log's
 * lines (records with class and detection), drained from the stage's
 * ring.  Event counts stay 0 (the stage owns the events).
 */
int h_run_txn(struct bs_txn_stage *st, const struct h_script *s,
	const struct h_opts *o, uint64_t seed, struct h_out *out);
void h_out_free(struct h_out *out);

/* Read a whole file; returns malloc'd buffer or NULL. */
uint8_t *h_read_file(const char *path, size_t *len);
/* LF -> CRLF and dot-stuffing of a message, as an SMTP client sends it. */
uint8_t *h_smtp_body(const uint8_t *msg, size_t len, size_t *outlen,
	uint8_t **crlf, size_t *crlf_len);

uint64_t h_rand(uint64_t *s);

/* SHA-256 of p[0..n) as 64 hex digits and a NUL. */
void h_sha256_hex(const uint8_t *p, size_t n, char hex[65]);

#endif
