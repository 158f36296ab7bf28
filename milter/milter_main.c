/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backstop-milter: Backstop's verdict for mail the wire cannot see (inside
 * STARTTLS), as a mail filter for Postfix and Sendmail.
 *
 *   backstop-milter [--config FILE] --listen SPEC [--role ROLE]
 *                   [--rules FILE] [--socket-mode OCTAL] [--debug N]
 *                   [--event-log FILE]
 *
 * SPEC is libmilter's: unix:/path (or local:/path), inet:PORT@HOST,
 * inet6:PORT@HOST.  ROLE is inbound (default: judge every message),
 * outbound (learn the Message-IDs of the protected domains' mail for the
 * ledger, judge nothing) or both (outbound when the client authenticated
 * or came through milter.outbound_daemon_name, inbound otherwise).  It
 * runs in the foreground; SIGTERM or SIGINT stop it (libmilter's signal
 * thread), SIGUSR1 prints every counter ("name value" lines, as the
 * appliance's report) to standard output, and so does the exit.
 * control.socket and metrics.listen, when set, serve the appliance's
 * control protocol (backstopctl) and /metrics over the same counters
 * (mf_control.c).  --event-log appends one JSON line per message that
 * reached its end: envelope, class, and the verdict with its reasons.
 *
 * This file is the libmilter glue only: the protocol is libmilter's
 * (Debian's libmilter-dev), the message handling and the verdict are
 * milter/mf_core.c over the engine, the control plane mf_control.c.  The
 * MTA's part of fail-open is its milter_default_action = accept
 * (docs/MILTER.md).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "backstop/config.h"
#include "backstop/milter.h"
#include "backstop/rules.h"
#include "mf_control.h"

#ifndef BS_VERSION
#define BS_VERSION "0.1.0"
#endif

static struct bs_mf *core;
static const struct bs_config *mcfg;
/* Per connection: the transaction and what negotiation granted. */
struct conn {
	struct bs_mf_txn *t;
	unsigned long proto; /* SMFIP_* granted */
};

static FILE *event_log;
static pthread_mutex_t event_mu = PTHREAD_MUTEX_INITIALIZER;

/* One JSON line per message that reached its end (--event-log). */
static void
log_event(const struct conn *c, const struct bs_mf_answer *ans)
{
	char line[8192];
	if (event_log == NULL)
		return;
	size_t n = bs_mf_txn_json(c->t, ans, line, sizeof(line));
	if (n >= sizeof(line))
		return; /* a record cut is not written (many recipients) */
	pthread_mutex_lock(&event_mu);
	fprintf(event_log, "%s\n", line);
	fflush(event_log);
	pthread_mutex_unlock(&event_mu);
}


/* What we ask the MTA for: the header value as it was (leading space
 * kept), no HELO/DATA/unknown-command events, and no replies awaited for
 * events whose answer is always "go on" (each is a round trip saved). */
#define MF_WANT                                                              \
	(SMFIP_HDR_LEADSPC | SMFIP_NOHELO | SMFIP_NOUNKNOWN | SMFIP_NODATA | \
		SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_HDR |                \
		SMFIP_NR_UNKN | SMFIP_NR_DATA)

static struct conn *
conn_of(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	if (c == NULL) {
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			return NULL;
		smfi_setpriv(ctx, c);
	}
	if (c->t == NULL)
		c->t = bs_mf_txn_new(core);
	return c->t != NULL ? c : NULL;
}

/* A "go on" for an event we asked not to be answered. */
static sfsistat
go_on(const struct conn *c, unsigned long nr)
{
	return c != NULL && (c->proto & nr) ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat
answer(const struct conn *c, enum bs_mf_act a, unsigned long nr)
{
	if (a == BS_MF_ACCEPT)
		return (c->proto & nr) ? SMFIS_NOREPLY : SMFIS_ACCEPT;
	return go_on(c, nr);
}

static sfsistat
mf_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
	unsigned long f2, unsigned long f3, unsigned long *pf0,
	unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	(void)f0;
	(void)f2;
	(void)f3;
	struct conn *c = conn_of(ctx);
	*pf0 = 0; /* no actions: a reply needs none */
	*pf1 = f1 & MF_WANT;
	*pf2 = 0;
	*pf3 = 0;
	if (c != NULL)
		c->proto = *pf1;
	return SMFIS_CONTINUE;
}

static sfsistat
mf_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	(void)host;
	(void)sa;
	struct conn *c = conn_of(ctx);
	if (c != NULL)
		bs_mf_connection(c->t);
	else
		bs_mf_inc(core, BS_CNT_milter_connections);
	return go_on(c, SMFIP_NR_CONN);
}

static sfsistat
mf_envfrom(SMFICTX *ctx, char **argv)
{
	struct conn *c = conn_of(ctx);
	if (c == NULL) {
		/* No memory for the connection: this message unjudged. */
		bs_mf_inc(core, BS_CNT_milter_nomem);
		return SMFIS_ACCEPT;
	}
	const char *auth = smfi_getsymval(ctx, (char *)"{auth_authen}");
	const char *dn = smfi_getsymval(ctx, (char *)"{daemon_name}");
	const char *want = mcfg->milter_outbound_daemon_name;
	bool orig = (auth != NULL && auth[0] != '\0') ||
		(dn != NULL && want != NULL && want[0] != '\0' &&
			strcmp(dn, want) == 0);
	bs_mf_txn_mail(c->t, argv != NULL ? argv[0] : NULL, orig);
	return SMFIS_CONTINUE;
}

static sfsistat
mf_envrcpt(SMFICTX *ctx, char **argv)
{
	struct conn *c = conn_of(ctx);
	if (c != NULL && argv != NULL && argv[0] != NULL)
		bs_mf_txn_rcpt(c->t, argv[0]);
	return go_on(c, SMFIP_NR_RCPT);
}

static sfsistat
mf_header(SMFICTX *ctx, char *name, char *value)
{
	struct conn *c = conn_of(ctx);
	if (c == NULL)
		return SMFIS_ACCEPT;
	enum bs_mf_act a = bs_mf_txn_header(c->t, name, strlen(name),
		value, strlen(value), (c->proto & SMFIP_HDR_LEADSPC) != 0);
	return answer(c, a, SMFIP_NR_HDR);
}

static sfsistat
mf_eoh(SMFICTX *ctx)
{
	struct conn *c = conn_of(ctx);
	if (c == NULL)
		return SMFIS_ACCEPT;
	return answer(c, bs_mf_txn_eoh(c->t), SMFIP_NR_EOH);
}

static sfsistat
mf_body(SMFICTX *ctx, unsigned char *buf, size_t len)
{
	struct conn *c = conn_of(ctx);
	if (c == NULL)
		return SMFIS_ACCEPT;
	return answer(c, bs_mf_txn_body(c->t, buf, len), SMFIP_NR_BODY);
}

static sfsistat
mf_eom(SMFICTX *ctx)
{
	struct conn *c = conn_of(ctx);
	struct bs_mf_answer ans;
	if (c == NULL)
		return SMFIS_ACCEPT;
	enum bs_mf_act a = bs_mf_txn_eom(c->t, &ans);
	log_event(c, &ans);
	if (a != BS_MF_REJECT)
		return SMFIS_CONTINUE; /* at eom: accept as is */
	if (smfi_setreply(ctx, (char *)"550", (char *)"5.7.1", ans.reply) !=
			MI_SUCCESS) {
		/* The MTA then answers with its own 5xx text. */
		bs_mf_txn_inc(c->t, BS_CNT_milter_reply_failed);
	}
	return SMFIS_REJECT;
}

static sfsistat
mf_abort(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	if (c != NULL && c->t != NULL)
		bs_mf_txn_abort(c->t);
	return SMFIS_CONTINUE;
}

static sfsistat
mf_close(SMFICTX *ctx)
{
	struct conn *c = smfi_getpriv(ctx);
	if (c != NULL) {
		bs_mf_txn_free(c->t);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

static struct smfiDesc desc = {
	.xxfi_name = (char *)"backstop-milter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_NONE,
	.xxfi_connect = mf_connect,
	.xxfi_envfrom = mf_envfrom,
	.xxfi_envrcpt = mf_envrcpt,
	.xxfi_header = mf_header,
	.xxfi_eoh = mf_eoh,
	.xxfi_body = mf_body,
	.xxfi_eom = mf_eom,
	.xxfi_abort = mf_abort,
	.xxfi_close = mf_close,
	.xxfi_negotiate = mf_negotiate,
};

/* ---- counters: SIGUSR1 and exit ---- */

static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;

static void
print_counters(void)
{
	static struct bs_counters sum;
	pthread_mutex_lock(&print_mu);
	bs_mf_counters(core, &sum);
	bs_counters_print(stdout, &sum);
	fflush(stdout);
	pthread_mutex_unlock(&print_mu);
}

static void *
usr1_main(void *arg)
{
	sigset_t *set = arg;
	for (;;) {
		int sig;
		if (sigwait(set, &sig) == 0 && sig == SIGUSR1)
			print_counters();
	}
	return NULL;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: backstop-milter [--config FILE] --listen SPEC "
		"[--role inbound|outbound|both]\n"
		"         [--rules FILE] [--socket-mode OCTAL] [--debug N] "
		"[--event-log FILE]\n"
		"  SPEC: unix:/path, inet:PORT@HOST, inet6:PORT@HOST\n");
}

static const char *
rules_path(const char *rules)
{
#ifdef BS_DATA_DIR
	/* As backstop does: a relative path not found here is looked up
	 * in the source/data directory. */
	static char path[4096];
	if (rules[0] != '/' && access(rules, R_OK) != 0) {
		snprintf(path, sizeof(path), "%s/%s", BS_DATA_DIR, rules);
		return path;
	}
#endif
	return rules;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"role", required_argument, NULL, 'R'},
		{"rules", required_argument, NULL, 'r'},
		{"socket-mode", required_argument, NULL, 'm'},
		{"debug", required_argument, NULL, 'd'},
		{"event-log", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL, *listen = NULL, *rules = NULL;
	enum bs_mf_role role = BS_MF_INBOUND;
	long sock_mode = 0660;
	int debug = 0, c;
	static struct bs_config cfg;
	char err[512];

	while ((c = getopt_long(argc, argv, "c:l:R:r:m:d:e:h", opts, NULL)) !=
			-1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'R':
			if (strcmp(optarg, "inbound") == 0)
				role = BS_MF_INBOUND;
			else if (strcmp(optarg, "outbound") == 0)
				role = BS_MF_OUTBOUND;
			else if (strcmp(optarg, "both") == 0)
				role = BS_MF_BOTH;
			else {
				fprintf(stderr, "--role: inbound, outbound or "
					"both\n");
				return 2;
			}
			break;
		case 'r':
			rules = optarg;
			break;
		case 'm': {
			char *end;
			sock_mode = strtol(optarg, &end, 8);
			if (*end || sock_mode < 0 || sock_mode > 0777) {
				fprintf(stderr, "--socket-mode: octal\n");
				return 2;
			}
			break;
		}
		case 'd':
			debug = atoi(optarg);
			break;
		case 'e':
			event_log = fopen(optarg, "a");
			if (event_log == NULL) {
				fprintf(stderr, "--event-log %s: %s\n", optarg,
					strerror(errno));
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (listen == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (bs_config_defaults(&cfg) < 0)
		return 2;
	if (config != NULL && bs_config_load(&cfg, config, err,
			sizeof(err)) < 0) {
		fprintf(stderr, "backstop-milter: %s\n", err);
		return 2;
	}
	mcfg = &cfg;

	/* The rule set: a missing or broken one is fail-open (every message
	 * accepted unjudged, counted milter_no_rules), not a refusal to
	 * start: the MTA would then apply its default action to all mail. */
	struct bs_ruleset *rs = NULL;
	const char *rp = NULL;
	uint64_t compile_ns = 0;
	if (cfg.detect_enabled) {
		rp = rules_path(rules != NULL ? rules : cfg.detect_rules_file);
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rs = bs_ruleset_load(rp, err, sizeof(err));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		compile_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
			(uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
		if (rs == NULL)
			fprintf(stderr, "backstop-milter: rules: %s: every "
				"message is accepted unjudged\n", err);
	}
	struct bs_verdict_policy *pol = bs_verdict_policy_build(&cfg, err,
		sizeof(err));
	if (pol == NULL) {
		fprintf(stderr, "backstop-milter: %s\n", err);
		return 2;
	}

	/* Every thread inherits this mask: libmilter's signal thread takes
	 * SIGTERM/SIGINT/SIGHUP, ours SIGUSR1; no other thread may. */
	static sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	unsigned int n_slots = bs_mf_slots(&cfg);
	uint64_t now = (uint64_t)time(NULL);
	struct bs_ledger *led = NULL;
	struct bs_storm *storm = NULL;
	if (cfg.ledger_learn_outbound) {
		struct bs_ledger_params lp;
		bs_verdict_ledger_params(&cfg, n_slots, &lp);
		/* Side by side with the appliance, each program writes its
		 * own snapshot and merges the other's (docs/MILTER.md). */
		if (cfg.milter_ledger_snapshot != NULL &&
				cfg.milter_ledger_snapshot[0] != '\0') {
			lp.import_path = lp.snapshot_path;
			lp.snapshot_path = cfg.milter_ledger_snapshot;
		} else {
			lp.import_path = NULL;
		}
		led = bs_ledger_create(&lp, now, err, sizeof(err));
		if (led == NULL) {
			fprintf(stderr, "backstop-milter: ledger: %s\n", err);
			return 2;
		}
	}
	if (cfg.storm_enabled) {
		struct bs_storm_params sp;
		bs_verdict_storm_params(&cfg, n_slots, &sp);
		storm = bs_storm_create(&sp, err, sizeof(err));
		if (storm == NULL) {
			fprintf(stderr, "backstop-milter: storm: %s\n", err);
			return 2;
		}
	}
	struct bs_mf_params mp = {
		.cfg = &cfg, .rules = rs, .pol = pol, .ledger = led,
		.storm = storm, .role = role,
	};
	core = bs_mf_create(&mp, err, sizeof(err));
	if (core == NULL) {
		fprintf(stderr, "backstop-milter: %s\n", err);
		return 2;
	}
	if ((led != NULL && bs_ledger_start(led) < 0) ||
			(storm != NULL && bs_storm_start(storm) < 0)) {
		fprintf(stderr, "backstop-milter: cannot start threads\n");
		return 2;
	}
	pthread_t usr1;
	static sigset_t uset;
	sigemptyset(&uset);
	sigaddset(&uset, SIGUSR1);
	pthread_create(&usr1, NULL, usr1_main, &uset);

	if (debug > 0)
		smfi_setdbg(debug);
	char *conn_spec = strdup(listen); /* libmilter keeps the pointer */
	if (conn_spec == NULL || smfi_setconn(conn_spec) != MI_SUCCESS ||
			smfi_settimeout((int)cfg.milter_timeout_s) !=
				MI_SUCCESS ||
			smfi_register(desc) != MI_SUCCESS) {
		fprintf(stderr, "backstop-milter: bad --listen %s\n", listen);
		return 2;
	}
	if (smfi_opensocket(true) != MI_SUCCESS) {
		fprintf(stderr, "backstop-milter: cannot listen on %s\n",
			listen);
		return 1;
	}
	const char *path = NULL;
	if (strncmp(listen, "unix:", 5) == 0)
		path = listen + 5;
	else if (strncmp(listen, "local:", 6) == 0)
		path = listen + 6;
	else if (strchr(listen, ':') == NULL)
		path = listen;
	if (path != NULL && chmod(path, (mode_t)sock_mode) < 0)
		fprintf(stderr, "backstop-milter: chmod %s: %s\n", path,
			strerror(errno));
	/* The control socket and /metrics (control.socket*, metrics.listen,
	 * as the appliance's): up before the "listening" line. */
	const char *role_name = role == BS_MF_INBOUND ? "inbound" :
		role == BS_MF_OUTBOUND ? "outbound" : "both";
	struct mf_control_params cp = {
		.cfg = &cfg, .config_path = config, .listen = listen,
		.role = role_name, .core = core, .rules = rs, .rules_path = rp,
		.compile_ns = compile_ns, .pol = pol, .ledger = led,
		.version = BS_VERSION,
	};
	struct mf_control *ctl = mf_control_start(&cp, err, sizeof(err));
	if (ctl == NULL) {
		fprintf(stderr, "backstop-milter: %s\n", err);
		return 2;
	}
	if (cfg.control_socket[0] != '\0')
		fprintf(stderr, "backstop-milter: control socket: %s\n",
			cfg.control_socket);
	if (cfg.metrics_listen[0] != '\0')
		fprintf(stderr, "backstop-milter: metrics: http://%s/metrics\n",
			cfg.metrics_listen);
	fprintf(stderr, "backstop-milter: listening on %s (role %s, %u "
		"messages at once%s)\n", listen,
		role_name, n_slots,
		rs == NULL ? ", NO RULES: accepting everything" : "");

	int rc = smfi_main();

	print_counters();
	mf_control_stop(ctl); /* before the core and ledger it reads */
	if (led != NULL)
		bs_ledger_stop(led);
	if (storm != NULL)
		bs_storm_stop(storm);
	pthread_mutex_lock(&print_mu); /* no SIGUSR1 print after this */
	bs_mf_free(core);
	bs_ledger_destroy(led);
	bs_storm_destroy(storm);
	bs_verdict_policy_free(pol);
	bs_ruleset_free(rs);
	bs_config_free(&cfg);
	return rc == MI_SUCCESS ? 0 : 1;
}
