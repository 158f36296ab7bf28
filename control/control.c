/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control plane of the backstop program (see control.h): the control
 * thread, the command handlers behind the control socket, reloads, the
 * Prometheus endpoint and the DPDK telemetry commands.
 *
 * Threads, and why: the control thread (a DPDK control thread, so never
 * on a worker's core) serves the socket, runs reloads (a rule compile
 * takes milliseconds to seconds: never on the main lcore, which drains
 * the event rings, nor on a worker) and frees retired rule sets once
 * their last message ended.  libmicrohttpd serves /metrics on its own
 * thread and DPDK's telemetry thread answers the /backstop/ commands: both
 * only read (counter blocks, the publisher's generation, figures this
 * file publishes with atomic stores), so neither waits for a compile.
 *
 * Each operation is one function here (reload_rules(), reload_config(),
 * fill_status(), ...); the socket handlers, SIGHUP and the telemetry
 * commands are thin callers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_telemetry.h>

#include "../dataplane/dataplane.h"
#include "backstop/counters.h"
#include "backstop/ctl.h"
#include "backstop/ledger.h"
#include "backstop/storm.h"
#include "backstop/verdict.h"
#include "backstop/metrics.h"
#include "backstop/pubcfg.h"
#include "control.h"

#define RTE_LOGTYPE_BACKSTOP RTE_LOGTYPE_USER1

#ifndef BS_VERSION
#define BS_VERSION "0.1.0"
#endif

_Static_assert(BS_MAX_WORKERS <= BS_PUB_WORKERS_MAX,
	"a publication has a pin and a scratch per worker");

/* How often the control thread wakes with nothing to do: reclaims
 * retired sets and notices stop requests this often. */
#define CTL_TICK_MS 100
/* Bytes of the control plane's own event ring (reload lines). */
#define CTL_EVRING_SIZE (64u << 10)

/*
 * Settings a reload applies while running; every other setting needs a
 * restart (their values are copied into per-worker state at start-up:
 * table sizes, rings, pools, the SMTP engine's caps).  Workers read
 * these through the published configuration: the packet path re-reads
 * its settings pointer after every quiescent state, messages read the
 * set they pinned.
 */
static const char *const live_keys[] = {
	"smtp.ports",
	"smtp.inspect",
	"detect.rules",
	"detect.enabled",
	"detect.inflight_max",
	"mode",
	/* The verdict policy: built into every published set from its
	 * settings (pubcfg.c), so a message is judged by the policy of the
	 * set it pinned.  The ledger and the storm detector are started
	 * once: their own settings need a restart. */
	"protected_domains",
	"domains",
	"batv.enforce",
	"batv.keys",
	"batv.lifetime_days",
	"batv.exempt_destinations",
	"relays",
	"dkim_keys",
	"verdict.unknown",
	"verdict.judge_feedback",
	"verdict.dkim_checks_per_s",
	"ledger.authoritative",
};

enum { K_RULES = 0, K_CONFIG = 1 };

struct bs_control {
	struct bs_app *app;
	struct bs_pub *pub;
	struct bs_ledger *ledger;   /* NULL: no ledger in this process */
	struct bs_storm *storm;     /* NULL: no storm detector */
	const char *config_path;
	struct bs_ctl_server *srv;
	struct bs_metrics_http *http;
	struct bs_evring *events;
	pthread_t thread;
	bool thread_up;
	volatile bool stop;
	int wake[2];            /* SIGHUP and stop write a byte here */
	volatile sig_atomic_t hup;
	double start_time;      /* Unix time */
	uint64_t start_tsc;
	/* Written by the control thread, read by metrics and telemetry
	 * (atomic loads and stores of aligned words). */
	uint64_t reloads_ok[2], reloads_failed[2];
	uint64_t cur_rules, cur_compile_ns, retired;
	uint64_t ctl_requests, ctl_denied;
	/* Control thread only. */
	char last_error[512];
	uint64_t last_reload_ns;
};

static inline void
st(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t
ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

const char *
bs_rules_path(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s", path);
	if (path[0] != '/' && access(path, R_OK) != 0)
		snprintf(buf, len, "%s/%s", BS_DATA_DIR, path);
	return buf;
}

/* Build a set from cfg, rules resolved; NULL with err. */
static struct bs_pubcfg *
build(const struct bs_config *cfg, unsigned int n_workers, char *err,
	size_t errlen)
{
	char path[PATH_MAX];
	const char *rp = NULL;
	if (cfg->detect_enabled)
		rp = bs_rules_path(cfg->detect_rules_file, path, sizeof(path));
	return bs_pubcfg_build(cfg, rp, n_workers, err, errlen);
}

struct bs_pub *
bs_control_first_publish(const struct bs_config *cfg, unsigned int n_workers)
{
	char err[512];
	struct bs_pub *pub = bs_pub_create(n_workers);
	if (pub == NULL) {
		fprintf(stderr, "backstop: out of memory\n");
		return NULL;
	}
	struct bs_pubcfg *pc = build(cfg, n_workers, err, sizeof(err));
	if (pc == NULL) {
		fprintf(stderr, "backstop: rules: %s\n", err);
		bs_pub_free(pub);
		return NULL;
	}
	if (pc->rules != NULL)
		RTE_LOG(INFO, BACKSTOP, "rules: %s (%u rules, %.1f ms)\n",
			pc->rules_path, bs_ruleset_count(pc->rules),
			(double)pc->compile_ns / 1e6);
	bs_pub_publish(pub, pc);
	return pub;
}

/* ---- reading the workers ---- */

/*
 * The workers' blocks summed, plus the process-wide rows (the ledger's
 * and the storm detector's, counters.h BS_COUNTERS_PROCESS) when they
 * run: what `stats`, /metrics and telemetry export.
 */
static void
process_counters(const struct bs_control *ctl, struct bs_counters *out)
{
	struct bs_ledger *l = __atomic_load_n(&ctl->ledger, __ATOMIC_ACQUIRE);
	struct bs_storm *s = __atomic_load_n(&ctl->storm, __ATOMIC_ACQUIRE);
	memset(out, 0, sizeof(*out));
	bs_ledger_counters(l, (uint64_t)time(NULL), out);
	bs_storm_counters(s, out);
}

static void
sum_all(const struct bs_control *ctl, struct bs_counters *out)
{
	struct bs_counters p;
	bs_app_counters(ctl->app, out);
	process_counters(ctl, &p);
	for (unsigned int i = 0; i < BS_CNT__MAX; i++)
		if (bs_counter_process[i])
			out->v[i] = p.v[i];
}

static const char *
rss_name(uint8_t s)
{
	static const char *const n[] = {
		[BS_RSS_OFF] = "off", [BS_RSS_VERIFIED] = "verified",
		[BS_RSS_FLOW] = "rte_flow", [BS_RSS_UNVERIFIED] = "unverified",
	};
	return s < RTE_DIM(n) ? n[s] : "?";
}

/* ---- event log lines of the control plane ---- */

static void
event(struct bs_control *ctl, json_t *ev)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	json_object_set_new(ev, "ts", json_integer((json_int_t)ts.tv_sec *
		1000 + ts.tv_nsec / 1000000));
	char *s = json_dumps(ev, JSON_COMPACT | JSON_ENSURE_ASCII |
		JSON_PRESERVE_ORDER);
	json_decref(ev);
	if (s == NULL || ctl->events == NULL) {
		free(s);
		return;
	}
	size_t n = strlen(s);
	s[n] = '\n'; /* replaces the NUL: put() takes a length */
	if (bs_evring_put(ctl->events, s, n + 1) < 0)
		RTE_LOG(WARNING, BACKSTOP, "control event lost: ring full\n");
	free(s);
}

/* ---- operations ---- */

static void
publish_facts(struct bs_control *ctl)
{
	const struct bs_pubcfg *pc = bs_pub_current(ctl->pub);
	st(&ctl->cur_rules, pc->rules ? bs_ruleset_count(pc->rules) : 0);
	st(&ctl->cur_compile_ns, pc->compile_ns);
	st(&ctl->retired, bs_pub_retired(ctl->pub));
}

/*
 * Publish pc as a reload of kind k; result gets the figures.  The
 * latency measured is the operator's: request to every worker starting
 * its new messages on the new set (compile, scratch, swap, grace period).
 */
static void
publish(struct bs_control *ctl, struct bs_pubcfg *pc, int k, uint64_t t0,
	json_t *result)
{
	uint64_t t1 = bs_mono_ns();
	uint64_t gen = bs_pub_publish(ctl->pub, pc);
	uint64_t t2 = bs_mono_ns();
	st(&ctl->reloads_ok[k], ctl->reloads_ok[k] + 1);
	ctl->last_reload_ns = t2 - t0;
	ctl->last_error[0] = '\0';
	publish_facts(ctl);
	json_t *r = json_pack("{s:I,s:I,s:s,s:f,s:f,s:f}",
		"generation", (json_int_t)gen,
		"rules", (json_int_t)ld(&ctl->cur_rules),
		"rules_file", pc->rules_path,
		"compile_ms", (double)pc->compile_ns / 1e6,
		"publish_ms", (double)(t2 - t1) / 1e6,
		"total_ms", (double)(t2 - t0) / 1e6);
	json_object_update(result, r);
	json_decref(r);
	json_t *ev = json_pack("{s:s,s:s,s:I,s:I,s:f}", "event", "reload",
		"kind", k == K_RULES ? "rules" : "config",
		"generation", (json_int_t)gen,
		"rules", (json_int_t)ld(&ctl->cur_rules),
		"total_ms", (double)(t2 - t0) / 1e6);
	event(ctl, ev);
	RTE_LOG(INFO, BACKSTOP, "%s reload: generation %" PRIu64 ", %" PRIu64
		" rules, %.1f ms\n", k == K_RULES ? "rules" : "config", gen,
		ld(&ctl->cur_rules), (double)(t2 - t0) / 1e6);
}

static int
reload_failed(struct bs_control *ctl, int k, const char *why,
	struct bs_ctl_err *e)
{
	st(&ctl->reloads_failed[k], ctl->reloads_failed[k] + 1);
	snprintf(ctl->last_error, sizeof(ctl->last_error), "%s", why);
	json_t *ev = json_pack("{s:s,s:s,s:b,s:s,s:I}", "event", "reload",
		"kind", k == K_RULES ? "rules" : "config", "ok", 0,
		"error", why, "generation",
		(json_int_t)bs_pub_generation(ctl->pub));
	event(ctl, ev);
	RTE_LOG(ERR, BACKSTOP, "%s reload failed: %s; generation %" PRIu64
		" keeps running\n", k == K_RULES ? "rules" : "config", why,
		bs_pub_generation(ctl->pub));
	return bs_ctl_fail(e, BS_CTL_E_FAILED, "%s; generation %" PRIu64
		" keeps running", why, bs_pub_generation(ctl->pub));
}

/* Compile the rule file (file, or the running detect.rules) and publish
 * it with the running settings. */
static int
reload_rules(struct bs_control *ctl, const char *file, json_t *result,
	struct bs_ctl_err *e)
{
	uint64_t t0 = bs_mono_ns();
	const struct bs_pubcfg *cur = bs_pub_current(ctl->pub);
	struct bs_config cfg;
	char err[512];
	if (!cur->cfg.detect_enabled)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "detection is off "
			"(detect.enabled: false): no rules to reload");
	if (bs_config_copy(&cfg, &cur->cfg) < 0)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "out of memory");
	if (file != NULL && bs_config_set(&cfg, "detect.rules", file, err,
			sizeof(err)) < 0) {
		bs_config_free(&cfg);
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG, "%s", err);
	}
	struct bs_pubcfg *pc = build(&cfg, cur->n_workers, err, sizeof(err));
	bs_config_free(&cfg);
	if (pc == NULL)
		return reload_failed(ctl, K_RULES, err, e);
	publish(ctl, pc, K_RULES, t0, result);
	return 0;
}

static bool
is_live(const char *key)
{
	return bs_ctl_key_in(key, live_keys, RTE_DIM(live_keys));
}

/*
 * Re-read the configuration file over the defaults; settings that can
 * change while running take their new values, the others keep the
 * running ones and are listed as needing a restart; then the rules are
 * recompiled and everything is published as one new generation.
 */
static int
reload_config(struct bs_control *ctl, json_t *result, struct bs_ctl_err *e)
{
	uint64_t t0 = bs_mono_ns();
	const struct bs_pubcfg *cur = bs_pub_current(ctl->pub);
	struct bs_config nc;
	char err[512];

	if (bs_config_defaults(&nc) < 0)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "bad built-in default");
	if (ctl->config_path != NULL &&
			bs_config_load(&nc, ctl->config_path, err,
				sizeof(err)) < 0) {
		bs_config_free(&nc);
		return reload_failed(ctl, K_CONFIG, err, e);
	}
	/* Options given on the command line win over the file, as at
	 * start (--event-digest). */
	if (ctl->app->cfg.smtp_event_digest)
		nc.smtp_event_digest = true;
	json_t *changed = json_array(), *restart = json_array();
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		const struct bs_cfg_desc *d = &bs_cfg_desc[i];
		if (bs_config_value_equal(&nc, &cur->cfg, d) == 1)
			continue;
		if (is_live(d->key)) {
			json_array_append_new(changed, json_string(d->key));
			continue;
		}
		json_array_append_new(restart, json_string(d->key));
		/* Keep the running value. */
		if (bs_config_keep(&nc, &cur->cfg, d) < 0) {
			snprintf(err, sizeof(err), "out of memory keeping %s",
				d->key);
			json_decref(changed);
			json_decref(restart);
			bs_config_free(&nc);
			return reload_failed(ctl, K_CONFIG, err, e);
		}
	}
	struct bs_pubcfg *pc = build(&nc, cur->n_workers, err, sizeof(err));
	bs_config_free(&nc);
	if (pc == NULL) {
		json_decref(changed);
		json_decref(restart);
		return reload_failed(ctl, K_CONFIG, err, e);
	}
	publish(ctl, pc, K_CONFIG, t0, result);
	json_object_set_new(result, "changed", changed);
	json_object_set_new(result, "restart_needed", restart);
	if (json_array_size(restart) > 0)
		RTE_LOG(NOTICE, BACKSTOP, "config reload: %zu changed "
			"setting(s) need a restart; running values kept\n",
			json_array_size(restart));
	return 0;
}

static void
fill_status(struct bs_control *ctl, json_t *r)
{
	const struct bs_app *app = ctl->app;
	const struct bs_pubcfg *cur = bs_pub_current(ctl->pub);
	uint64_t hz = rte_get_tsc_hz();
	json_object_set_new(r, "version", json_string(BS_VERSION));
	json_object_set_new(r, "pid", json_integer(getpid()));
	json_object_set_new(r, "generation",
		json_integer((json_int_t)cur->gen));
	json_object_set_new(r, "uptime_s", json_real(
		(double)(rte_rdtsc() - ctl->start_tsc) / (double)hz));
	json_object_set_new(r, "config_file", ctl->config_path
		? json_string(ctl->config_path) : json_null());
	json_t *rules = json_pack("{s:b,s:s,s:I,s:f,s:I,s:I}",
		"enabled", cur->cfg.detect_enabled,
		"file", cur->rules_path,
		"count", (json_int_t)(cur->rules ? bs_ruleset_count(cur->rules)
						 : 0),
		"compile_ms", (double)cur->compile_ns / 1e6,
		"retired_sets", (json_int_t)bs_pub_retired(ctl->pub),
		"messages_pinned", (json_int_t)bs_pubcfg_pinned(cur));
	json_object_set_new(r, "rules", rules);
	json_t *rl = json_pack("{s:I,s:I,s:I,s:I,s:f}",
		"rules_ok", (json_int_t)ctl->reloads_ok[K_RULES],
		"rules_failed", (json_int_t)ctl->reloads_failed[K_RULES],
		"config_ok", (json_int_t)ctl->reloads_ok[K_CONFIG],
		"config_failed", (json_int_t)ctl->reloads_failed[K_CONFIG],
		"last_ms", (double)ctl->last_reload_ns / 1e6);
	json_object_set_new(rl, "last_error", ctl->last_error[0]
		? json_string(ctl->last_error) : json_null());
	json_object_set_new(r, "reloads", rl);
	json_t *ws = json_array();
	for (unsigned int i = 0; i < app->n_workers; i++) {
		const struct bs_worker *w = app->worker[i];
		json_array_append_new(ws, json_pack("{s:I,s:I,s:b,s:I,s:I}",
			"worker", (json_int_t)i, "lcore", (json_int_t)w->lcore,
			"running", w->running,
			"flows", (json_int_t)w->cnt.v[BS_CNT_flow_active],
			"flow_capacity", (json_int_t)app->cfg.flow_table_size));
	}
	json_object_set_new(r, "workers", ws);
	json_t *ps = json_array();
	for (uint16_t i = 0; i < app->n_ports; i++) {
		const struct bs_port *p = &app->port[i];
		uint64_t rx = 0, tx = 0, dr = 0;
		for (unsigned int w = 0; w < app->n_workers; w++) {
			rx += app->worker[w]->port_cnt[p->id].rx;
			tx += app->worker[w]->port_cnt[p->id].tx;
			dr += app->worker[w]->port_cnt[p->id].tx_drop;
		}
		json_array_append_new(ps, json_pack(
			"{s:I,s:s,s:s,s:I,s:I,s:s,s:I,s:I,s:I}",
			"port", (json_int_t)p->id, "name", p->name,
			"driver", p->driver, "peer", (json_int_t)p->peer,
			"queues", (json_int_t)p->nb_queues,
			"rss", rss_name(p->rss_state), "rx", (json_int_t)rx,
			"tx", (json_int_t)tx, "tx_dropped", (json_int_t)dr));
	}
	json_object_set_new(r, "ports", ps);
	json_object_set_new(r, "control", json_pack("{s:I,s:I}",
		"clients", (json_int_t)bs_ctl_server_clients(ctl->srv),
		"denied", (json_int_t)bs_ctl_server_denied(ctl->srv)));
}

/* ---- socket handlers (thin callers) ---- */

static int
h_status(void *arg, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	(void)args;
	(void)e;
	fill_status(arg, result);
	return 0;
}

static int
h_stats(void *arg, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	struct bs_control *ctl = arg;
	const struct bs_counters *blk[BS_MAX_WORKERS];
	struct bs_counters proc;
	for (unsigned int i = 0; i < ctl->app->n_workers; i++)
		blk[i] = &ctl->app->worker[i]->cnt;
	process_counters(ctl, &proc);
	return bs_ctl_stats(args, result, bs_pub_generation(ctl->pub), blk,
		ctl->app->n_workers, &proc, e);
}

static int
h_rules_reload(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	const json_t *f = json_object_get(args, "file");
	if (f != NULL && (!json_is_string(f) || json_string_length(f) == 0 ||
			strlen(json_string_value(f)) != json_string_length(f)))
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG,
			"rules reload: file must be a non-empty path");
	return reload_rules(arg, f ? json_string_value(f) : NULL, result, e);
}

static int
h_config_reload(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	(void)args;
	return reload_config(arg, result, e);
}

static int
h_config_show(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct bs_control *ctl = arg;
	const struct bs_pubcfg *cur = bs_pub_current(ctl->pub);
	(void)args;
	(void)e;
	bs_ctl_config_show(&cur->cfg, cur->gen, live_keys, RTE_DIM(live_keys),
		result);
	return 0;
}

/* Default and largest N of flows top. */
#define FLOWS_TOP_DEFAULT 10
/* How long a worker may take to walk its table for a snapshot. */
#define SNAP_WAIT_MS 2000

static json_t *
flow_json(unsigned int w, const struct bs_flow_snap_ent *e)
{
	char a[2][INET6_ADDRSTRLEN];
	int af = e->key.l3 == BS_L3_IPV6 ? AF_INET6 : AF_INET;
	for (int i = 0; i < 2; i++)
		if (inet_ntop(af, e->key.addr[i], a[i], sizeof(a[i])) == NULL)
			snprintf(a[i], sizeof(a[i]), "?");
	unsigned int sv = e->server_side, cl = 1 - sv;
	return json_pack("{s:I,s:s,s:I,s:s,s:I,s:I,s:I,s:s}",
		"worker", (json_int_t)w,
		"client", a[cl], "cport", (json_int_t)e->key.port[cl],
		"server", a[sv], "sport", (json_int_t)e->key.port[sv],
		"bytes", (json_int_t)e->bytes,
		"idle_ms", (json_int_t)e->idle_ms,
		"state", e->closed || e->fin_seen ? "closing"
			: e->inspected ? "followed" : "uninspected");
}

/* Each worker snapshots its own table (flowsnap.c); merge the lists. */
static int
h_flows_top(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct bs_control *ctl = arg;
	const struct bs_app *app = ctl->app;
	const json_t *jn = json_object_get(args, "n");
	json_int_t n = FLOWS_TOP_DEFAULT;
	if (jn != NULL) {
		if (!json_is_integer(jn) || json_integer_value(jn) < 1 ||
				json_integer_value(jn) > BS_SNAP_MAX)
			return bs_ctl_fail(e, BS_CTL_E_BAD_ARG,
				"flows top: N must be 1..%d", BS_SNAP_MAX);
		n = json_integer_value(jn);
	}
	struct bs_flow_snap *snap[BS_MAX_WORKERS] = { NULL };
	for (unsigned int w = 0; w < app->n_workers; w++) {
		if (!app->worker[w]->running)
			continue;
		snap[w] = calloc(1, sizeof(*snap[w]));
		if (snap[w] == NULL)
			continue;
		snap[w]->want = (uint32_t)n;
		__atomic_store_n(&app->worker[w]->snap, snap[w],
			__ATOMIC_RELEASE);
	}
	uint64_t deadline = bs_mono_ns() + SNAP_WAIT_MS * 1000000ull;
	json_t *all = json_array();
	bool partial = false;
	for (unsigned int w = 0; w < app->n_workers; w++) {
		if (snap[w] == NULL)
			continue;
		while (!__atomic_load_n(&snap[w]->done, __ATOMIC_ACQUIRE) &&
				bs_mono_ns() < deadline)
			usleep(1000);
		if (!__atomic_load_n(&snap[w]->done, __ATOMIC_ACQUIRE)) {
			/* The worker may still write it: leave it (a worker
			 * that does not loop is stopping anyway). */
			partial = true;
			continue;
		}
		for (uint32_t i = 0; i < snap[w]->n; i++)
			json_array_append_new(all, flow_json(w, &snap[w]->ent[i]));
		free(snap[w]);
	}
	/* Largest first over all workers, then the first n. */
	size_t m = json_array_size(all);
	for (size_t i = 1; i < m; i++)
		for (size_t j = i; j > 0; j--) {
			json_t *x = json_array_get(all, j - 1);
			json_t *y = json_array_get(all, j);
			if (json_integer_value(json_object_get(x, "bytes")) >=
					json_integer_value(json_object_get(y, "bytes")))
				break;
			json_incref(x);
			json_array_set(all, j - 1, y);
			json_array_set_new(all, j, x);
		}
	while (json_array_size(all) > (size_t)n)
		json_array_remove(all, json_array_size(all) - 1);
	struct bs_counters c;
	bs_app_counters(app, &c);
	json_object_set_new(result, "flows_active",
		json_integer((json_int_t)c.v[BS_CNT_flow_active]));
	json_object_set_new(result, "partial", json_boolean(partial));
	json_object_set_new(result, "flows", all);
	return 0;
}

/* ledger stats / ledger save: the outbound ledger, when the process runs
 * one (bs_control_set_ledger()). */
#define NO_LEDGER "no protected_domains, or ledger.learn_outbound is false"

static int
h_ledger_stats(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct bs_control *ctl = arg;
	(void)args;
	return bs_ctl_ledger_stats(ctl->ledger, NO_LEDGER, result, e);
}

static int
h_ledger_save(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct bs_control *ctl = arg;
	(void)args;
	return bs_ctl_ledger_save(ctl->ledger, NO_LEDGER, result, e);
}

/*
 * verdict test FILE: classify and judge a message file with the running
 * generation's rules and policy, on the control thread with contexts of
 * its own (the per-worker ones belong to the workers), counting nothing.
 */
static int
h_verdict_test(void *arg, const json_t *args, json_t *result,
	struct bs_ctl_err *e)
{
	struct bs_control *ctl = arg;
	struct bs_pubcfg *cur = bs_pub_current(ctl->pub);
	return bs_ctl_verdict_test(cur->rules, cur->policy, cur->gen, args,
		result, e);
}

/* ---- the control thread ---- */

static void *
control_main(void *arg)
{
	struct bs_control *ctl = arg;
	while (!ctl->stop) {
		int woke;
		if (ctl->srv != NULL) {
			woke = bs_ctl_server_poll(ctl->srv, CTL_TICK_MS,
				ctl->wake[0]);
		} else {
			struct pollfd pf = { .fd = ctl->wake[0], .events = POLLIN };
			woke = poll(&pf, 1, CTL_TICK_MS) > 0;
		}
		if (woke) {
			char buf[64];
			while (read(ctl->wake[0], buf, sizeof(buf)) > 0)
				;
		}
		if (ctl->hup) {
			ctl->hup = 0;
			json_t *r = json_object();
			struct bs_ctl_err e;
			if (reload_config(ctl, r, &e) == 0)
				RTE_LOG(INFO, BACKSTOP, "SIGHUP: configuration "
					"reloaded\n");
			json_decref(r);
		}
		bs_pub_reclaim(ctl->pub);
		st(&ctl->retired, bs_pub_retired(ctl->pub));
		if (ctl->srv != NULL) {
			st(&ctl->ctl_requests, bs_ctl_server_requests(ctl->srv));
			st(&ctl->ctl_denied, bs_ctl_server_denied(ctl->srv));
		}
	}
	return NULL;
}

/* ---- Prometheus endpoint ---- */

static char *
metrics_text(void *arg, size_t *len)
{
	struct bs_control *ctl = arg;
	const struct bs_app *app = ctl->app;
	const struct bs_counters *blk[BS_MAX_WORKERS];
	uint32_t cap[BS_MAX_WORKERS];
	uint64_t prx[BS_MAX_PORTS][BS_MAX_WORKERS];
	uint64_t ptx[BS_MAX_PORTS][BS_MAX_WORKERS];
	uint64_t pdr[BS_MAX_PORTS][BS_MAX_WORKERS];
	struct bs_metrics_port mp[BS_MAX_PORTS];

	for (unsigned int w = 0; w < app->n_workers; w++) {
		blk[w] = &app->worker[w]->cnt;
		cap[w] = app->cfg.flow_table_size;
	}
	for (uint16_t i = 0; i < app->n_ports; i++) {
		const struct bs_port *p = &app->port[i];
		struct rte_eth_stats es;
		memset(&es, 0, sizeof(es));
		rte_eth_stats_get(p->id, &es);
		for (unsigned int w = 0; w < app->n_workers; w++) {
			prx[i][w] = app->worker[w]->port_cnt[p->id].rx;
			ptx[i][w] = app->worker[w]->port_cnt[p->id].tx;
			pdr[i][w] = app->worker[w]->port_cnt[p->id].tx_drop;
		}
		mp[i] = (struct bs_metrics_port){
			.id = p->id, .name = p->name,
			.rx = prx[i], .tx = ptx[i], .tx_dropped = pdr[i],
			.ipackets = es.ipackets, .opackets = es.opackets,
			.ibytes = es.ibytes, .obytes = es.obytes,
			.imissed = es.imissed, .ierrors = es.ierrors,
			.oerrors = es.oerrors, .rx_nombuf = es.rx_nombuf,
		};
	}
	struct bs_counters proc;
	process_counters(ctl, &proc);
	struct bs_metrics_src src = {
		.program = "backstop",
		.version = BS_VERSION,
		.n_workers = app->n_workers,
		.workers = blk,
		.process = &proc,
		.flow_capacity = cap,
		.n_ports = app->n_ports,
		.ports = mp,
		.start_time = ctl->start_time,
		.generation = bs_pub_generation(ctl->pub),
		.rules = (uint32_t)ld(&ctl->cur_rules),
		.compile_seconds = (double)ld(&ctl->cur_compile_ns) / 1e9,
		.retired = (unsigned int)ld(&ctl->retired),
		.reloads_ok = { ld(&ctl->reloads_ok[0]),
			ld(&ctl->reloads_ok[1]) },
		.reloads_failed = { ld(&ctl->reloads_failed[0]),
			ld(&ctl->reloads_failed[1]) },
		.ctl_requests = ld(&ctl->ctl_requests),
		.ctl_denied = ld(&ctl->ctl_denied),
	};
	return bs_metrics_text(&src, len);
}

static int
metrics_start(struct bs_control *ctl, const char *listen)
{
	char err[256];
	ctl->http = bs_metrics_http_start(listen, "backstop", metrics_text,
		ctl, err, sizeof(err));
	if (ctl->http == NULL) {
		fprintf(stderr, "backstop: %s\n", err);
		return -1;
	}
	RTE_LOG(INFO, BACKSTOP, "metrics: http://%s/metrics\n", listen);
	return 0;
}

/* ---- DPDK telemetry ---- */

static struct bs_control *tel_ctl;

static int
tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct bs_counters c;
	if (tel_ctl == NULL)
		return -ENODEV;
	const struct bs_app *app = tel_ctl->app;
	(void)cmd;
	if (params != NULL && *params != '\0') {
		char *end;
		unsigned long w = strtoul(params, &end, 10);
		if (*end != '\0' || w >= app->n_workers)
			return -EINVAL;
		c = app->worker[w]->cnt;
	} else {
		sum_all(tel_ctl, &c);
	}
	rte_tel_data_start_dict(d);
	for (unsigned int i = 0; i < BS_CNT__MAX; i++)
		rte_tel_data_add_dict_u64(d, bs_counter_desc[i].name, c.v[i]);
	return 0;
}

static int
tel_status(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct bs_control *ctl = tel_ctl;
	(void)cmd;
	(void)params;
	if (ctl == NULL)
		return -ENODEV;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "generation",
		bs_pub_generation(ctl->pub));
	rte_tel_data_add_dict_u64(d, "workers", ctl->app->n_workers);
	rte_tel_data_add_dict_u64(d, "rules", ld(&ctl->cur_rules));
	rte_tel_data_add_dict_u64(d, "uptime_s", (rte_rdtsc() -
		ctl->start_tsc) / rte_get_tsc_hz());
	rte_tel_data_add_dict_u64(d, "reloads_ok", ld(&ctl->reloads_ok[0]) +
		ld(&ctl->reloads_ok[1]));
	rte_tel_data_add_dict_u64(d, "reloads_failed",
		ld(&ctl->reloads_failed[0]) + ld(&ctl->reloads_failed[1]));
	return 0;
}

static void
telemetry_register(struct bs_control *ctl)
{
	_Static_assert(BS_CNT__MAX <= RTE_TEL_MAX_DICT_ENTRIES,
		"every counter fits one telemetry dict");
	tel_ctl = ctl;
	rte_telemetry_register_cmd("/backstop/stats", tel_stats,
		"Every backstop counter, summed over workers. Parameter: a "
		"worker index for that worker's block");
	rte_telemetry_register_cmd("/backstop/status", tel_status,
		"Rule-set generation, workers, rules, uptime, reloads");
}

/* ---- start and stop ---- */

struct bs_control *
bs_control_start(struct bs_app *app, struct bs_pub *pub,
	const char *config_path, bool want_events)
{
	struct bs_control *ctl = calloc(1, sizeof(*ctl));
	char err[512];
	if (ctl == NULL)
		return NULL;
	ctl->app = app;
	ctl->pub = pub;
	ctl->config_path = config_path;
	ctl->wake[0] = ctl->wake[1] = -1;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ctl->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	ctl->start_tsc = rte_rdtsc();
	if (want_events &&
			(ctl->events = bs_evring_create(CTL_EVRING_SIZE)) == NULL)
		goto fail;
	if (pipe2(ctl->wake, O_NONBLOCK | O_CLOEXEC) < 0)
		goto fail;
	publish_facts(ctl);
	telemetry_register(ctl);

	const struct bs_config *cfg = &app->cfg;
	struct bs_ctl_handlers h = { .ctx = ctl };
	h.fn[BS_CTL_STATUS] = h_status;
	h.fn[BS_CTL_STATS] = h_stats;
	h.fn[BS_CTL_RULES_RELOAD] = h_rules_reload;
	h.fn[BS_CTL_CONFIG_RELOAD] = h_config_reload;
	h.fn[BS_CTL_CONFIG_SHOW] = h_config_show;
	h.fn[BS_CTL_FLOWS_TOP] = h_flows_top;
	h.fn[BS_CTL_LEDGER_STATS] = h_ledger_stats;
	h.fn[BS_CTL_LEDGER_SAVE] = h_ledger_save;
	h.fn[BS_CTL_VERDICT_TEST] = h_verdict_test;
	if (bs_ctl_server_open(cfg, &h, &ctl->srv, err, sizeof(err)) < 0) {
		fprintf(stderr, "backstop: %s\n", err);
		goto fail;
	}
	if (ctl->srv != NULL)
		RTE_LOG(INFO, BACKSTOP, "control socket: %s\n",
			cfg->control_socket);
	if (cfg->metrics_listen != NULL && cfg->metrics_listen[0] != '\0' &&
			metrics_start(ctl, cfg->metrics_listen) < 0)
		goto fail;
	if (rte_ctrl_thread_create(&ctl->thread, "bs-control", NULL,
			control_main, ctl) != 0) {
		fprintf(stderr, "backstop: cannot start the control thread\n");
		goto fail;
	}
	ctl->thread_up = true;
	return ctl;
fail:
	bs_control_stop(ctl, NULL);
	return NULL;
}

void
bs_control_sighup(struct bs_control *ctl)
{
	if (ctl == NULL)
		return;
	ctl->hup = 1;
	char b = 'h';
	ssize_t n = write(ctl->wake[1], &b, 1);
	(void)n;
}

void
bs_control_set_ledger(struct bs_control *ctl, struct bs_ledger *l)
{
	__atomic_store_n(&ctl->ledger, l, __ATOMIC_RELEASE);
}

void
bs_control_set_storm(struct bs_control *ctl, struct bs_storm *s)
{
	__atomic_store_n(&ctl->storm, s, __ATOMIC_RELEASE);
}

struct bs_evring *
bs_control_events(struct bs_control *ctl)
{
	return ctl != NULL ? ctl->events : NULL;
}

void
bs_control_stop(struct bs_control *ctl, FILE *drain_to)
{
	if (ctl == NULL)
		return;
	ctl->stop = true;
	if (ctl->thread_up) {
		char b = 's';
		ssize_t n = write(ctl->wake[1], &b, 1);
		(void)n;
		pthread_join(ctl->thread, NULL);
	}
	bs_metrics_http_stop(ctl->http);
	bs_ctl_server_free(ctl->srv);
	/* A reload that ended while stopping has its line in the ring. */
	if (drain_to != NULL && ctl->events != NULL &&
			bs_evring_drain(ctl->events, drain_to) > 0)
		fflush(drain_to);
	bs_evring_free(ctl->events);
	if (ctl->wake[0] >= 0) {
		close(ctl->wake[0]);
		close(ctl->wake[1]);
	}
	if (tel_ctl == ctl)
		tel_ctl = NULL;
	free(ctl);
}
