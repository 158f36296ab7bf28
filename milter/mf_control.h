/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private contract between backstop-milter's start-up (milter_main.c)
 * and its control plane (mf_control.c): the control socket
 * (control.socket*, the appliance's protocol and server) and the
 * Prometheus endpoint (metrics.listen, the appliance's exposition), both
 * over the milter's own objects.  Neither ever blocks a libmilter thread:
 * they read the counter blocks the MTA's threads write (milter.h) and
 * the immutable rule set and policy.
 */
#ifndef BACKSTOP_MF_CONTROL_H
#define BACKSTOP_MF_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "backstop/milter.h"

struct mf_control_params {
	const struct bs_config *cfg;      /* outlives the control plane */
	const char *config_path;          /* --config; NULL: defaults */
	const char *listen;               /* the milter's --listen SPEC */
	const char *role;                 /* "inbound", "outbound", "both" */
	struct bs_mf *core;
	const struct bs_ruleset *rules;   /* NULL: none loaded */
	const char *rules_path;           /* as loaded; NULL: detection off */
	uint64_t compile_ns;              /* the rule set's load time */
	const struct bs_verdict_policy *pol;
	struct bs_ledger *ledger;         /* NULL: none */
	const char *version;
};

struct mf_control;

/*
 * Open the control socket and the metrics endpoint the settings ask for
 * (either may be off), and start the control thread when there is a
 * socket.  Returns NULL with a one-line reason in err.  Start-up, after
 * the signal mask is set (the threads inherit it) and the core exists.
 */
struct mf_control *mf_control_start(const struct mf_control_params *p,
	char *err, size_t errlen);

/* Stop the thread and the endpoints, remove the socket.  NULL is fine.
 * Before the core is freed. */
void mf_control_stop(struct mf_control *c);

#endif /* BACKSTOP_MF_CONTROL_H */
