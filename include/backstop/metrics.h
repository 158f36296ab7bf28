/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Prometheus text exposition (format 0.0.4) of everything backstop
 * counts, written from the counter table (counters.h) with no per-counter
 * code: each row becomes backstop_<name>_total (counters) or
 * backstop_<name> (gauges), one sample per worker ({worker="N"}), or one
 * sample without labels for the process-wide rows (ledger, storm); per-port
 * figures carry {port="N",name="..."}; control-plane figures (rule-set
 * generation, reloads, compile time) follow.  Names use base units
 * (bytes, seconds) as Prometheus' conventions ask; `promtool check
 * metrics` passes (tests/integration/test_metrics.py).
 *
 * No EAL: the daemon fills a struct bs_metrics_src from its workers and
 * ports; tests fill it by hand.
 */
#ifndef BACKSTOP_METRICS_H
#define BACKSTOP_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backstop/counters.h"

/* Per-port figures: the workers' view and the PMD's. */
struct bs_metrics_port {
	uint16_t id;
	const char *name;
	/* Per worker: packets received, sent, refused by TX (n_workers). */
	const uint64_t *rx, *tx, *tx_dropped;
	/* The PMD's (rte_eth_stats). */
	uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors,
		oerrors, rx_nombuf;
};

struct bs_metrics_src {
	const char *program;      /* build_info's program label; NULL: backstop */
	const char *version;
	unsigned int n_workers;
	const struct bs_counters *const *workers; /* n_workers blocks */
	/* The process-wide rows (bs_counter_process[]): the ledger's and
	 * the storm detector's, one sample each; NULL: none running. */
	const struct bs_counters *process;
	const uint32_t *flow_capacity;            /* per worker, or NULL */
	unsigned int n_ports;
	const struct bs_metrics_port *ports;
	double start_time;        /* Unix time of start */
	uint64_t generation;      /* current rule set */
	uint32_t rules;           /* rules in it */
	double compile_seconds;   /* of the current set */
	unsigned int retired;     /* old sets waiting for their messages */
	uint64_t reloads_ok[2], reloads_failed[2]; /* [0] rules, [1] config */
	uint64_t ctl_requests, ctl_denied;
	/* Verdict latency (verdict stage); NULL until it exists. */
};

/* Write the whole exposition to f.  Returns 0 or -EIO. */
int bs_metrics_write(FILE *f, const struct bs_metrics_src *s);

/* The whole exposition in a malloc'd buffer the caller frees (its length
 * in *len), or NULL (out of memory). */
char *bs_metrics_text(const struct bs_metrics_src *s, size_t *len);

/*
 * ---- the HTTP endpoint (control/metrics_http.c) ----
 *
 * libmicrohttpd on a thread of its own: GET or HEAD /metrics answers
 * fn(ctx, &len) (a malloc'd exposition, bs_metrics_text(), freed after
 * sending; NULL: the connection is closed), any other path 404, any
 * other method 405.  fn runs on libmicrohttpd's thread, concurrently
 * with the program's writers: it may only read (counter blocks summed by
 * the reader, figures published with atomic stores).  Linked into the
 * programs that serve metrics (backstop, backstop-milter), not into the
 * engine: the engine does not depend on libmicrohttpd.
 */
typedef char *(*bs_metrics_text_fn)(void *ctx, size_t *len);
struct bs_metrics_http;

/*
 * Listen on listen ("127.0.0.1:9469", "[::1]:9469": numeric ADDR:PORT,
 * the metrics.listen setting).  program names the server in its 404
 * text.  Returns NULL with a one-line reason in err.  Start-up.
 */
struct bs_metrics_http *bs_metrics_http_start(const char *listen,
	const char *program, bs_metrics_text_fn fn, void *ctx, char *err,
	size_t errlen);
/* Stop serving (waits for a scrape in progress).  NULL is fine. */
void bs_metrics_http_stop(struct bs_metrics_http *h);

#endif /* BACKSTOP_METRICS_H */
