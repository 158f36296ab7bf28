/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private contract between the backstop program's start-up (main.c) and
 * its control plane (control.c): the control thread (socket, reloads,
 * reclamation of retired rule sets), the Prometheus endpoint and the DPDK
 * telemetry commands.  None of it runs on a worker lcore; the workers
 * only read what the control plane publishes (pubcfg.h).
 */
#ifndef BACKSTOP_CONTROL_H
#define BACKSTOP_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backstop/evring.h"
#include "backstop/pubcfg.h"

struct bs_app;
struct bs_control;

/*
 * Where a rule file is: as given, or, for a relative path that does not
 * exist from the working directory, under the directory the build was
 * configured with (BS_DATA_DIR).  Returns buf.
 */
const char *bs_rules_path(const char *path, char *buf, size_t len);

/*
 * Build generation 1 from app->cfg (rules compiled, one scratch per
 * worker for n_workers) and publish it in a new publisher.  Returns the
 * publisher, or NULL after printing why.  Start-up, before the workers.
 */
struct bs_pub *bs_control_first_publish(const struct bs_config *cfg,
	unsigned int n_workers);

/*
 * Start the control plane for a running app: the control socket
 * (control.socket), the metrics endpoint (metrics.listen), the telemetry
 * commands, and the control thread.  config_path is the file `config
 * reload` and SIGHUP re-read (NULL: defaults only).  With want_events,
 * reloads are also logged as event lines (bs_control_events()).  Returns
 * NULL after printing why (a start-up error).  After the workers are
 * created.
 */
struct bs_control *bs_control_start(struct bs_app *app, struct bs_pub *pub,
	const char *config_path, bool want_events);

/* The outbound ledger `ledger stats` and `ledger save` act on (NULL:
 * none; those commands answer "unavailable").  Before clients connect. */
struct bs_ledger;
void bs_control_set_ledger(struct bs_control *ctl, struct bs_ledger *l);

/* The storm detector whose counters stats and /metrics export with the
 * ledger's (NULL: none).  Before clients connect. */
struct bs_storm;
void bs_control_set_storm(struct bs_control *ctl, struct bs_storm *s);

/* Ask for a `config reload` (async-signal-safe: SIGHUP handler). */
void bs_control_sighup(struct bs_control *ctl);

/* Ring of control-plane events (reloads) for the event log; drained by
 * the main lcore like the workers' rings. */
struct bs_evring *bs_control_events(struct bs_control *ctl);

/* Stop the thread and the endpoints, remove the socket, write the
 * control events still queued to drain_to (NULL: drop them).  NULL ctl
 * is fine.  Before the workers' state is freed. */
void bs_control_stop(struct bs_control *ctl, FILE *drain_to);

#endif /* BACKSTOP_CONTROL_H */
