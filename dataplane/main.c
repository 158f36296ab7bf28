/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backstop: start-up, the main lcore's supervision loop, and shutdown.
 *
 *   backstop [EAL options] -- [--config FILE] [--idle-exit MS]
 *            [--duration S] [--stats-period S] [--show-config]
 *
 * The main lcore does no packet work: it launches one worker per worker
 * lcore (as many as the ports have queues), watches for signals, idle
 * queues and the run time, prints periodic rates, and on exit stops the
 * workers, closes the ports (so net_pcap writes complete files) and
 * prints per-port figures and every counter.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_random.h>

#include "dataplane.h"
#include "../control/control.h"

#define RTE_LOGTYPE_BACKSTOP RTE_LOGTYPE_USER1

/* mbufs each lcore keeps in its mempool cache. */
#define BS_MBUF_CACHE 256

volatile bool bs_running = true;
/* Set by SIGHUP: reopen the event log (after logrotate moved it). */
static volatile sig_atomic_t reopen_log;
/* SIGHUP also reloads the configuration (on the control thread). */
static struct bs_control *control;

struct opts {
	const char *config;
	uint64_t idle_exit_ms;
	uint64_t duration_s;
	uint64_t stats_period_s;
	const char *event_log;
	bool event_digest;
	bool show_config;
};

static void
on_signal(int sig)
{
	if (sig == SIGHUP) {
		reopen_log = 1;
		bs_control_sighup(control);
	} else
		bs_running = false;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: backstop [EAL options] -- [options]\n"
		"  --config FILE       YAML configuration (docs/CONFIG.md)\n"
		"  --idle-exit MS      exit once every RX queue has been idle MS ms\n"
		"  --duration S        exit after S seconds of forwarding\n"
		"  --stats-period S    print packet rates every S seconds\n"
		"  --event-log FILE    append one JSON line per SMTP transaction\n"
		"                      (SIGHUP reopens it, for log rotation)\n"
		"  --event-digest      add the SHA-256 of each message to the log\n"
		"  --show-config       print the effective configuration and exit\n"
		"  --list-settings     print the settings reference (Markdown)\n"
		"  --list-counters     print the counters reference (Markdown)\n"
		"  --help              this text\n");
}

static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "idle-exit", required_argument, NULL, 'i' },
		{ "duration", required_argument, NULL, 'd' },
		{ "stats-period", required_argument, NULL, 's' },
		{ "show-config", no_argument, NULL, 'S' },
		{ "event-log", required_argument, NULL, 'e' },
		{ "event-digest", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		uint64_t *dst = NULL;
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'i':
			dst = &o->idle_exit_ms;
			break;
		case 'd':
			dst = &o->duration_s;
			break;
		case 's':
			dst = &o->stats_period_s;
			break;
		case 'S':
			o->show_config = true;
			break;
		case 'e':
			o->event_log = optarg;
			break;
		case 'D':
			o->event_digest = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (dst != NULL && parse_u64(optarg, dst) < 0) {
			fprintf(stderr, "backstop: bad number '%.32s'\n", optarg);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "backstop: unexpected argument '%.64s'\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

/*
 * Reference tables for docs/CONFIG.md and docs/METRICS.md, printed from
 * the same tables the code uses (scripts/gen_docs.py pastes them in; a
 * test checks the docs are current).  Needs no EAL.
 */
static void
print_reference(const char *what)
{
	if (strcmp(what, "settings") == 0) {
		bs_config_reference(stdout);
	} else {
		printf("| counter | kind | meaning |\n|---|---|---|\n");
		for (unsigned int i = 0; i < BS_CNT__MAX; i++)
			printf("| `%s` | %s%s | %s |\n", bs_counter_desc[i].name,
				bs_counter_desc[i].kind == BS_CNT_KIND_GAUGE
					? "gauge"
				: bs_counter_desc[i].kind == BS_CNT_KIND_HIST
					? "histogram part" : "counter",
				bs_counter_process[i] ? " (process)" : "",
				bs_counter_desc[i].help);
	}
}

/* Every worker's counter block summed (any thread). */
void
bs_app_counters(const struct bs_app *app, struct bs_counters *out)
{
	const struct bs_counters *blk[BS_MAX_WORKERS];
	for (unsigned int i = 0; i < app->n_workers; i++)
		blk[i] = &app->worker[i]->cnt;
	bs_counters_sum(out, blk, app->n_workers);
}

/* The workers' blocks and the process-wide rows (ledger, storm). */
static void
sum_all(const struct bs_app *app, struct bs_counters *c)
{
	bs_app_counters(app, c);
	bs_ledger_counters(app->ledger, (uint64_t)time(NULL), c);
	bs_storm_counters(app->storm, c);
}

/*
 * Wall clock minus the workers' clock (TSC ms, as bs_worker_main computes
 * it).  Records, BATV day stamps, the ledger's TTL and storm windows read
 * the wall clock on the workers as TSC + this offset; the main lcore
 * refreshes it every loop so that TSC drift and NTP adjustments never
 * accumulate, whatever the uptime.
 */
static int64_t
wall_offset_ms(uint64_t tsc_per_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t tsc = rte_rdtsc();
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 -
		(int64_t)(tsc / tsc_per_ms);
}

static void
clock_refresh(struct bs_app *app, uint64_t tsc_per_ms)
{
	int64_t off = wall_offset_ms(tsc_per_ms);
	int64_t cur = __atomic_load_n(&app->clock_offset_ms, __ATOMIC_RELAXED);
	/* The two reads straddle a millisecond now and then: a 1 ms
	 * difference is that jitter, not drift; only larger ones move the
	 * clock, so record timestamps do not flicker. */
	if (off - cur > 1 || cur - off > 1)
		__atomic_store_n(&app->clock_offset_ms, off, __ATOMIC_RELAXED);
}

static void
report(const struct bs_app *app, double secs)
{
	struct bs_counters c;

	for (uint16_t i = 0; i < app->n_ports; i++) {
		const struct bs_port *p = &app->port[i];
		struct bs_port_cnt pc = { 0 };
		struct rte_eth_stats st;
		memset(&st, 0, sizeof(st));
		for (unsigned int w = 0; w < app->n_workers; w++) {
			pc.rx += app->worker[w]->port_cnt[p->id].rx;
			pc.tx += app->worker[w]->port_cnt[p->id].tx;
			pc.tx_drop += app->worker[w]->port_cnt[p->id].tx_drop;
		}
		rte_eth_stats_get(p->id, &st);
		printf("port %u (%s): rx %" PRIu64 " tx %" PRIu64
		       " tx_dropped %" PRIu64 " imissed %" PRIu64
		       " ierrors %" PRIu64 " rx_nombuf %" PRIu64 "\n",
			p->id, p->name, pc.rx, pc.tx, pc.tx_drop, st.imissed,
			st.ierrors, st.rx_nombuf);
	}
	sum_all(app, &c);
	printf("elapsed_s %.3f\n", secs);
	printf("workers %u\n", app->n_workers);
	bs_counters_print(stdout, &c);
	/* Coverage per protected server: what the wire could not see. */
	static struct bs_cov cov;
	const struct bs_cov *tabs[BS_MAX_WORKERS];
	for (unsigned int w = 0; w < app->n_workers; w++)
		tabs[w] = &app->worker[w]->cov;
	bs_cov_sum(&cov, tabs, app->n_workers);
	bs_cov_print(stdout, &cov);
	/* How long segments stayed in the workers (ns): those that ended a
	 * message (held for the verdict), the others, the refusal path. */
	static const char *const hn[] = { "hold", "other", "refuse" };
	for (unsigned int k = 0; k < 3; k++) {
		static struct bs_lat_hist h;
		memset(&h, 0, sizeof(h));
		for (unsigned int w = 0; w < app->n_workers; w++) {
			const struct bs_act_worker *a = &app->worker[w]->act;
			bs_lat_sum(&h, k == 0 ? &a->hold : k == 1 ? &a->other
								 : &a->refuse);
		}
		printf("latency_%s_n %" PRIu64 "\n", hn[k], h.count);
		printf("latency_%s_p50_ns %" PRIu64 "\n", hn[k],
			bs_lat_quantile(&h, 0.5));
		printf("latency_%s_p99_ns %" PRIu64 "\n", hn[k],
			bs_lat_quantile(&h, 0.99));
		printf("latency_%s_max_ns %" PRIu64 "\n", hn[k], h.max_ns);
		printf("latency_%s_mean_ns %" PRIu64 "\n", hn[k],
			h.count ? h.sum_ns / h.count : 0);
	}
	fflush(stdout);
}

static struct bs_worker *
worker_create(struct bs_app *app, unsigned int lcore, unsigned int idx,
	struct bs_pub *pub, bool want_events,
	int64_t clock_offset_ms)
{
	struct bs_worker *w = rte_zmalloc_socket("worker", sizeof(*w),
		RTE_CACHE_LINE_SIZE, (int)rte_lcore_to_socket_id(lcore));
	if (w == NULL)
		return NULL;
	const uint64_t tmo[BS_FLOW_TMO__MAX] = {
		[BS_FLOW_TMO_LONG] = app->cfg.flow_timeout_ms,
		[BS_FLOW_TMO_SHORT] = app->cfg.flow_closed_timeout_ms,
		[BS_FLOW_TMO_SYN] = app->cfg.flow_closed_timeout_ms,
	};
	if (bs_txn_init(&w->txn, &app->cfg, pub, idx, &w->cnt, want_events,
			clock_offset_ms) < 0) {
		bs_txn_fini(&w->txn);
		rte_free(w);
		return NULL;
	}
	w->flows = bs_flow_table_create(app->cfg.flow_table_size, tmo,
		bs_worker_flow_release, w, rte_rand());
	w->fix = rte_malloc_socket("fix", BS_SEG_FIX_MAX, 0,
		(int)rte_lcore_to_socket_id(lcore));
	if (w->flows == NULL || w->fix == NULL) {
		bs_flow_table_free(w->flows);
		rte_free(w->fix);
		bs_txn_fini(&w->txn);
		rte_free(w);
		return NULL;
	}
	if (bs_act_init(w, &app->cfg, app->inject_pool,
			(int)rte_lcore_to_socket_id(lcore)) < 0) {
		bs_flow_table_free(w->flows);
		rte_free(w->fix);
		bs_txn_fini(&w->txn);
		rte_free(w);
		return NULL;
	}
	bs_pub_set_counters(pub, idx, &w->cnt);
	w->lcore = lcore;
	w->idx = idx;
	w->pub = pub;
	w->cfg = &bs_pub_current(pub)->cfg;
	w->txn.cfg = w->cfg;
	w->tsc_per_ms = rte_get_tsc_hz() / 1000;
	if (w->tsc_per_ms == 0)
		w->tsc_per_ms = 1;
	w->clock_offset_ms = &app->clock_offset_ms;
	bs_txn_set_shared(&w->txn, app->ledger, app->storm);
	/*
	 * Ports pair up 0<->1, 2<->3 (port.c); dataplane.inside_port says
	 * which of a pair faces the protected servers.  A lone last port
	 * reflects onto itself: both sides share it, so it has none.
	 */
	for (uint16_t i = 0; i < app->n_ports; i++) {
		uint8_t inside = BS_SIDE_UNKNOWN;
		if (app->port[i].peer != app->port[i].id &&
				app->cfg.inside_port < 2)
			inside = (i % 2 == app->cfg.inside_port) ?
				BS_SIDE_INSIDE : BS_SIDE_OUTSIDE;
		w->rxq[w->n_rxq++] = (struct bs_rxq){
			.port = app->port[i].id,
			.queue = (uint16_t)idx,
			.peer = app->port[i].peer,
			.link = (uint8_t)(i / 2),
			.inside = inside,
		};
	}
	return w;
}

/* Move every worker's (and the control plane's) queued event lines to
 * the log file. */
static void
drain_events(const struct bs_app *app, FILE *f)
{
	long n = 0;
	if (bs_control_events(control) != NULL) {
		long r = bs_evring_drain(bs_control_events(control), f);
		n += r > 0 ? r : 0;
	}
	for (unsigned int i = 0; i < app->n_workers; i++) {
		long r = bs_evring_drain(app->worker[i]->txn.events, f);
		if (r < 0) {
			static bool warned;
			if (!warned)
				RTE_LOG(ERR, BACKSTOP, "event log: write error\n");
			warned = true;
		} else {
			n += r;
		}
	}
	if (n > 0)
		fflush(f);
}

static unsigned int
pool_size_needed(const struct bs_app *app, unsigned int nq, uint16_t nports)
{
	/* Every RX and TX ring full, plus per lcore a cache and the mbufs
	 * a worker holds: two bursts in its pipeline, among them the
	 * segments held for their verdict (never beyond the call that
	 * judges them: see action.c). */
	uint64_t n = (uint64_t)nports * nq *
		(app->cfg.rx_ring_size + app->cfg.tx_ring_size);
	n += (uint64_t)rte_lcore_count() * (2 * BS_MAX_BURST + BS_MBUF_CACHE);
	return n > UINT32_MAX ? UINT32_MAX : (unsigned int)n;
}

int
main(int argc, char **argv)
{
	static struct bs_app app;
	struct opts o = { 0 };
	char err[512];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--list-settings") == 0 ||
				strcmp(argv[i], "--list-counters") == 0) {
			print_reference(argv[i] + 7);
			return 0;
		}
	}

	int n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "backstop: EAL init failed: %s\n",
			rte_strerror(rte_errno));
		return 1;
	}
	argc -= n;
	argv += n;
	argv[0] = (char *)"backstop";
	if (parse_opts(argc, argv, &o) < 0)
		goto fail;
	if (bs_config_defaults(&app.cfg) < 0)
		goto fail;
	if (o.config != NULL &&
			bs_config_load(&app.cfg, o.config, err, sizeof(err)) < 0) {
		fprintf(stderr, "backstop: config: %s\n", err);
		goto fail;
	}
	if (o.event_digest)
		app.cfg.smtp_event_digest = true;
	if (o.show_config) {
		bs_config_show(stdout, &app.cfg);
		bs_config_free(&app.cfg);
		rte_eal_cleanup();
		return 0;
	}
	app.verdict = bs_verdict_policy_build(&app.cfg, err, sizeof(err));
	if (app.verdict == NULL) {
		fprintf(stderr, "backstop: config: %s\n", err);
		goto fail;
	}

	unsigned int n_lcores = rte_lcore_count() - 1;
	if (n_lcores == 0) {
		fprintf(stderr, "backstop: no worker lcore: give EAL at least "
				"two lcores (e.g. -l 0-1)\n");
		goto fail;
	}
	if (n_lcores > BS_MAX_WORKERS)
		n_lcores = BS_MAX_WORKERS;

	/* Ports first say how many queues they take and whether they can
	 * scatter; the pool is sized for their rings and its mbufs for the
	 * MTU's frames. */
	int nq = bs_ports_probe(&app, n_lcores);
	if (nq < 0)
		goto fail;
	unsigned int psize = pool_size_needed(&app, (unsigned int)nq,
		app.n_ports);
	if (psize < app.cfg.mbuf_pool_size)
		psize = app.cfg.mbuf_pool_size;
	uint32_t room = RTE_MBUF_DEFAULT_DATAROOM;
	if (!app.rx_scatter && bs_frame_max(app.cfg.mtu) > room)
		room = RTE_ALIGN_CEIL(bs_frame_max(app.cfg.mtu), 1024);
	app.pool = rte_pktmbuf_pool_create("bs_mbufs", psize, BS_MBUF_CACHE,
		0, (uint16_t)(room + RTE_PKTMBUF_HEADROOM),
		(int)rte_socket_id());
	if (app.pool == NULL) {
		fprintf(stderr, "backstop: mbuf pool of %u x %u bytes: %s\n",
			psize, room, rte_strerror(rte_errno));
		goto fail;
	}
	if (bs_ports_init(&app, (unsigned int)nq) < 0)
		goto fail;
	/* Injected packets (RSTs, 550 replies, ACKs) have a pool of their
	 * own: a flood of refusals runs out of it, not of RX mbufs. */
	unsigned int isize = bs_act_pool_size(&app.cfg, (unsigned int)nq,
		app.n_ports, (unsigned int)nq);
	app.inject_pool = rte_pktmbuf_pool_create("bs_inject", isize, 32, 0,
		RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (app.inject_pool == NULL) {
		fprintf(stderr, "backstop: inject pool of %u mbufs: %s\n",
			isize, rte_strerror(rte_errno));
		goto fail;
	}

	/* Generation 1: settings and rules, one scratch per worker. */
	struct bs_pub *pub = bs_control_first_publish(&app.cfg,
		(unsigned int)nq);
	if (pub == NULL)
		goto fail;
	FILE *evlog = NULL;
	if (o.event_log != NULL) {
		evlog = fopen(o.event_log, "a");
		if (evlog == NULL) {
			fprintf(stderr, "backstop: event log %s: %s\n",
				o.event_log, strerror(errno));
			goto fail;
		}
	}
	/* Records carry wall-clock time: the workers' clock is the TSC. */
	uint64_t tsc_per_ms = rte_get_tsc_hz() / 1000;
	if (tsc_per_ms == 0)
		tsc_per_ms = 1;
	int64_t clock_offset_ms = wall_offset_ms(tsc_per_ms);
	app.clock_offset_ms = clock_offset_ms;

	/*
	 * The shared evidence, one part per worker: the outbound ledger
	 * (loaded from its snapshot) and the storm detector, each with its
	 * slow-path thread.  Only when there is a protected domain to learn
	 * for and judge: their memory is sized at creation (ledger.max_entries),
	 * and a reload cannot create them (a restart does).
	 */
	if (app.cfg.protected_domains.n > 0 && app.cfg.ledger_learn_outbound) {
		struct bs_ledger_params lp;
		bs_verdict_ledger_params(&app.cfg, (unsigned int)nq, &lp);
		app.ledger = bs_ledger_create(&lp, (uint64_t)time(NULL), err,
			sizeof(err));
		if (app.ledger == NULL) {
			fprintf(stderr, "backstop: ledger: %s\n", err);
			goto fail;
		}
		if (bs_ledger_start(app.ledger) < 0) {
			fprintf(stderr, "backstop: ledger: cannot start its "
					"writer thread\n");
			goto fail;
		}
	}
	if (app.cfg.protected_domains.n > 0 && app.cfg.storm_enabled) {
		struct bs_storm_params sp;
		bs_verdict_storm_params(&app.cfg, (unsigned int)nq, &sp);
		app.storm = bs_storm_create(&sp, err, sizeof(err));
		if (app.storm == NULL) {
			fprintf(stderr, "backstop: storm: %s\n", err);
			goto fail;
		}
		if (bs_storm_start(app.storm) < 0) {
			fprintf(stderr, "backstop: storm: cannot start its "
					"thread\n");
			goto fail;
		}
	}

	unsigned int lcore, idx = 0;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (idx == (unsigned int)nq)
			break;
		struct bs_worker *w = worker_create(&app, lcore, idx, pub,
			evlog != NULL, clock_offset_ms);
		if (w == NULL) {
			fprintf(stderr, "backstop: worker %u: out of memory "
					"(flow.table_size %u)\n", idx,
				app.cfg.flow_table_size);
			goto fail;
		}
		app.worker[idx++] = w;
	}
	app.n_workers = idx;
	if (app.n_workers < n_lcores)
		RTE_LOG(NOTICE, BACKSTOP, "%u of %u worker lcores used\n",
			app.n_workers, n_lcores);

	control = bs_control_start(&app, pub, o.config, evlog != NULL);
	if (control == NULL)
		goto fail;
	bs_control_set_ledger(control, app.ledger);
	bs_control_set_storm(control, app.storm);

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	for (unsigned int i = 0; i < app.n_workers; i++)
		rte_eal_remote_launch(bs_worker_main, app.worker[i],
			app.worker[i]->lcore);

	const uint64_t hz = rte_get_tsc_hz();
	const uint64_t start = rte_rdtsc();
	uint64_t last_stats = start;
	uint64_t last_rx = 0;
	while (bs_running) {
		usleep(10 * 1000);
		clock_refresh(&app, tsc_per_ms);
		if (evlog != NULL)
			drain_events(&app, evlog);
		if (reopen_log && evlog != NULL) {
			reopen_log = 0;
			FILE *nf = fopen(o.event_log, "a");
			if (nf == NULL) {
				RTE_LOG(ERR, BACKSTOP, "event log %s: reopen: %s; "
					"keeping the old file\n", o.event_log,
					strerror(errno));
			} else {
				fclose(evlog);
				evlog = nf;
				RTE_LOG(INFO, BACKSTOP, "event log reopened\n");
			}
		}
		uint64_t now = rte_rdtsc();
		if (o.duration_s && now - start >= o.duration_s * hz)
			bs_running = false;
		if (o.idle_exit_ms) {
			bool idle = true;
			for (unsigned int i = 0; i < app.n_workers; i++) {
				uint64_t l = app.worker[i]->last_rx_tsc;
				if (!app.worker[i]->running ||
						now < l ||
						(now - l) * 1000 <
							o.idle_exit_ms * hz)
					idle = false;
			}
			if (idle)
				bs_running = false;
		}
		if (o.stats_period_s &&
				now - last_stats >= o.stats_period_s * hz) {
			struct bs_counters c;
			bs_app_counters(&app, &c);
			double dt = (double)(now - last_stats) / (double)hz;
			uint64_t rx = c.v[BS_CNT_rx_packets];
			printf("stats: rx_pps %.0f flows %" PRIu64 "\n",
				(double)(rx - last_rx) / dt,
				c.v[BS_CNT_flow_active]);
			fflush(stdout);
			last_rx = rx;
			last_stats = now;
		}
	}
	rte_eal_mp_wait_lcore();
	/* The control thread reads the workers: it stops first. */
	if (evlog != NULL)
		drain_events(&app, evlog);
	struct bs_control *ctl = control;
	control = NULL;
	bs_control_stop(ctl, evlog);
	/* A worker's last settings pointer may name a set the control
	 * thread has freed since: what follows uses the current one. */
	for (unsigned int i = 0; i < app.n_workers; i++)
		app.worker[i]->cfg = app.worker[i]->txn.cfg =
			&bs_pub_current(pub)->cfg;
	double secs = (double)(rte_rdtsc() - start) / (double)hz;

	/* Ending the flows ends their open transactions (records).  The
	 * report keeps flow_active as the workers left it: the occupancy
	 * when forwarding stopped. */
	for (unsigned int i = 0; i < app.n_workers; i++) {
		struct bs_worker *w = app.worker[i];
		bs_flow_table_free(w->flows);
		w->flows = NULL;
	}
	if (evlog != NULL) {
		drain_events(&app, evlog);
		fclose(evlog);
	}
	/* Nothing records or notes any more: the ledger's last drain and
	 * its snapshot marked clean, then the storm thread. */
	if (app.ledger != NULL)
		bs_ledger_stop(app.ledger);
	if (app.storm != NULL)
		bs_storm_stop(app.storm);
	report(&app, secs);
	bs_ports_close(&app);
	for (unsigned int i = 0; i < app.n_workers; i++) {
		bs_act_fini(app.worker[i]);
		bs_txn_fini(&app.worker[i]->txn);
		rte_free(app.worker[i]->fix);
		rte_free(app.worker[i]);
	}
	bs_pub_free(pub);
	bs_ledger_destroy(app.ledger);
	bs_storm_destroy(app.storm);
	bs_verdict_policy_free(app.verdict);
	bs_config_free(&app.cfg);
	rte_mempool_free(app.pool);
	rte_mempool_free(app.inject_pool);
	rte_eal_cleanup();
	return 0;
fail:
	/* Start-up failed before any worker ran. */
	if (app.ledger != NULL) {
		bs_ledger_stop(app.ledger);
		bs_ledger_destroy(app.ledger);
	}
	if (app.storm != NULL) {
		bs_storm_stop(app.storm);
		bs_storm_destroy(app.storm);
	}
	bs_verdict_policy_free(app.verdict);
	bs_config_free(&app.cfg);
	rte_eal_cleanup();
	return 1;
}
