/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backstop-milter's control plane (mf_control.h): the appliance's
 * control protocol and socket server (ctl.h, control/ctl_server.c) with
 * the commands that make sense for a milter, and the appliance's
 * Prometheus exposition (metrics.h) over the milter's counters.
 *
 * The command bodies are the appliance's (control/ctl_ops.c): stats,
 * config show, ledger stats, ledger save and verdict test take the
 * milter's counter sum, settings, ledger, rules and policy; only status
 * is the milter's own (it has no workers or ports, but a role, a listen
 * spec and a slot pool).  The milter loads its rules and settings once
 * and never republishes them, so rules reload, config reload and flows
 * top (the appliance's workers' flow tables) are left NULL in the table
 * and answer "unavailable"; its generation is always 1.
 *
 * Threads: one control thread serves the socket (the ctl_server poll
 * loop); libmicrohttpd serves /metrics on its own.  Both only read: the
 * counter blocks the MTA's threads write (summed by bs_mf_counters(), the
 * reader), the immutable rule set and policy, and the ledger through its
 * own thread-safe calls.  No command waits for a libmilter thread, and no
 * libmilter thread waits for a command.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backstop/counters.h"
#include "backstop/ctl.h"
#include "backstop/metrics.h"
#include "mf_control.h"

/* How often the control thread wakes with nothing to do (publishes its
 * request counts for /metrics, notices a stop). */
#define MF_CTL_TICK_MS 100
/* The milter publishes its settings and rules once. */
#define MF_GENERATION 1

struct mf_control {
	struct mf_control_params p;
	struct bs_ctl_server *srv;
	struct bs_metrics_http *http;
	pthread_t thread;
	bool thread_up;
	int wake[2];
	bool stop;           /* atomic */
	double start_time;   /* Unix time */
	uint64_t start_ns;   /* monotonic */
	/* Written by the control thread, read by /metrics. */
	uint64_t ctl_requests, ctl_denied;
};

/* ---- command handlers ---- */

static void
fill_status(struct mf_control *c, json_t *r, const struct bs_counters *sum)
{
	const struct mf_control_params *p = &c->p;
	json_object_set_new(r, "program", json_string("backstop-milter"));
	json_object_set_new(r, "version", json_string(p->version));
	json_object_set_new(r, "pid", json_integer(getpid()));
	json_object_set_new(r, "generation", json_integer(MF_GENERATION));
	json_object_set_new(r, "uptime_s",
		json_real((double)(bs_mono_ns() - c->start_ns) / 1e9));
	json_object_set_new(r, "config_file", p->config_path
		? json_string(p->config_path) : json_null());
	json_object_set_new(r, "listen", json_string(p->listen));
	json_object_set_new(r, "role", json_string(p->role));
	json_object_set_new(r, "rules", json_pack("{s:b,s:b,s:s,s:I,s:f}",
		"enabled", p->cfg->detect_enabled,
		"loaded", p->rules != NULL,
		"file", p->rules_path ? p->rules_path : "",
		"count", (json_int_t)(p->rules ? bs_ruleset_count(p->rules)
					       : 0),
		"compile_ms", (double)p->compile_ns / 1e6));
	json_object_set_new(r, "messages", json_pack("{s:I,s:I,s:I,s:I}",
		"max", (json_int_t)bs_mf_slots(p->cfg),
		"in_flight", (json_int_t)sum->v[BS_CNT_milter_in_flight],
		"judged", (json_int_t)sum->v[BS_CNT_milter_judged],
		"refused", (json_int_t)sum->v[BS_CNT_milter_refused]));
	json_object_set_new(r, "connections", json_pack("{s:I,s:I}",
		"total", (json_int_t)sum->v[BS_CNT_milter_connections],
		"counter_blocks", (json_int_t)bs_mf_counter_blocks(p->core)));
	json_object_set_new(r, "ledger", json_boolean(p->ledger != NULL));
	json_object_set_new(r, "control", json_pack("{s:I,s:I}",
		"clients", (json_int_t)bs_ctl_server_clients(c->srv),
		"denied", (json_int_t)bs_ctl_server_denied(c->srv)));
}

static int
h_status(void *arg, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	struct mf_control *c = arg;
	struct bs_counters *sum = malloc(sizeof(*sum));
	(void)args;
	if (sum == NULL)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "out of memory");
	bs_mf_counters(c->p.core, sum);
	fill_status(c, result, sum);
	free(sum);
	return 0;
}

/* stats: the milter is one block (its threads' blocks summed), as in
 * /metrics; --per-worker shows it as worker 0. */
static int
h_stats(void *arg, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	struct mf_control *c = arg;
	struct bs_counters *sum = malloc(sizeof(*sum));
	if (sum == NULL)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "out of memory");
	bs_mf_counters(c->p.core, sum);
	const struct bs_counters *blk[1] = { sum };
	int rc = bs_ctl_stats(args, result, MF_GENERATION, blk, 1, sum, e);
	free(sum);
	return rc;
}

static int
h_config_show(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct mf_control *c = arg;
	(void)args;
	(void)e;
	/* Nothing is live: the milter reads its settings once. */
	bs_ctl_config_show(c->p.cfg, MF_GENERATION, NULL, 0, result);
	return 0;
}

#define NO_LEDGER "ledger.learn_outbound is false"

static int
h_ledger_stats(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct mf_control *c = arg;
	(void)args;
	return bs_ctl_ledger_stats(c->p.ledger, NO_LEDGER, result, e);
}

static int
h_ledger_save(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct mf_control *c = arg;
	(void)args;
	return bs_ctl_ledger_save(c->p.ledger, NO_LEDGER, result, e);
}

static int
h_verdict_test(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct mf_control *c = arg;
	return bs_ctl_verdict_test(c->p.rules, c->p.pol, MF_GENERATION, args,
		result, e);
}

/* ---- the control thread ---- */

static void *
control_main(void *arg)
{
	struct mf_control *c = arg;
	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		if (bs_ctl_server_poll(c->srv, MF_CTL_TICK_MS, c->wake[0])) {
			char buf[64];
			while (read(c->wake[0], buf, sizeof(buf)) > 0)
				;
		}
		__atomic_store_n(&c->ctl_requests,
			bs_ctl_server_requests(c->srv), __ATOMIC_RELAXED);
		__atomic_store_n(&c->ctl_denied,
			bs_ctl_server_denied(c->srv), __ATOMIC_RELAXED);
	}
	return NULL;
}

/* ---- /metrics ---- */

/*
 * The appliance's exposition over one block: the sum of the milter's
 * blocks (slots, connections, ledger, storm), read now.  Same families
 * and labels as the appliance's, so one dashboard serves both; the
 * program label of backstop_build_info (or the scrape job) tells them
 * apart (docs/MILTER.md).
 */
static char *
metrics_text(void *arg, size_t *len)
{
	struct mf_control *c = arg;
	struct bs_counters *sum = malloc(sizeof(*sum));
	if (sum == NULL)
		return NULL;
	bs_mf_counters(c->p.core, sum);
	const struct bs_counters *blk[1] = { sum };
	struct bs_metrics_src src = {
		.program = "backstop-milter",
		.version = c->p.version,
		.n_workers = 1,
		.workers = blk,
		/* The ledger's and storm's rows, summed into the same block
		 * by bs_mf_counters(): one sample each, no worker label, as
		 * in the appliance. */
		.process = sum,
		.flow_capacity = NULL,
		.n_ports = 0,
		.ports = NULL,
		.start_time = c->start_time,
		.generation = MF_GENERATION,
		.rules = c->p.rules ? bs_ruleset_count(c->p.rules) : 0,
		.compile_seconds = (double)c->p.compile_ns / 1e9,
		.ctl_requests = __atomic_load_n(&c->ctl_requests,
			__ATOMIC_RELAXED),
		.ctl_denied = __atomic_load_n(&c->ctl_denied,
			__ATOMIC_RELAXED),
	};
	char *text = bs_metrics_text(&src, len);
	free(sum);
	return text;
}

/* ---- start and stop ---- */

struct mf_control *
mf_control_start(const struct mf_control_params *p, char *err,
	size_t errlen)
{
	struct mf_control *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->p = *p;
	c->wake[0] = c->wake[1] = -1;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	c->start_ns = bs_mono_ns();

	struct bs_ctl_handlers h = { .ctx = c, .program = "backstop-milter" };
	h.fn[BS_CTL_STATUS] = h_status;
	h.fn[BS_CTL_STATS] = h_stats;
	h.fn[BS_CTL_CONFIG_SHOW] = h_config_show;
	h.fn[BS_CTL_LEDGER_STATS] = h_ledger_stats;
	h.fn[BS_CTL_LEDGER_SAVE] = h_ledger_save;
	h.fn[BS_CTL_VERDICT_TEST] = h_verdict_test;
	/* rules reload, config reload, flows top: NULL, "unavailable". */
	if (bs_ctl_server_open(p->cfg, &h, &c->srv, err, errlen) < 0)
		goto fail;
	const char *ml = p->cfg->metrics_listen;
	if (ml != NULL && ml[0] != '\0') {
		c->http = bs_metrics_http_start(ml, "backstop-milter",
			metrics_text, c, err, errlen);
		if (c->http == NULL)
			goto fail;
	}
	if (c->srv != NULL) {
		if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) < 0) {
			snprintf(err, errlen, "pipe: %s", strerror(errno));
			goto fail;
		}
		int rc = pthread_create(&c->thread, NULL, control_main, c);
		if (rc != 0) {
			snprintf(err, errlen, "control thread: %s",
				strerror(rc));
			goto fail;
		}
		c->thread_up = true;
	}
	return c;
fail:
	mf_control_stop(c);
	return NULL;
}

void
mf_control_stop(struct mf_control *c)
{
	if (c == NULL)
		return;
	__atomic_store_n(&c->stop, true, __ATOMIC_RELEASE);
	if (c->thread_up) {
		char b = 's';
		ssize_t n = write(c->wake[1], &b, 1);
		(void)n;
		pthread_join(c->thread, NULL);
	}
	bs_metrics_http_stop(c->http);
	bs_ctl_server_free(c->srv);
	if (c->wake[0] >= 0) {
		close(c->wake[0]);
		close(c->wake[1]);
	}
	free(c);
}
