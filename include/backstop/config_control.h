/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Setting rows of the control plane (see config.h and docs/OPERATIONS.md):
 * the control socket and the Prometheus endpoint.  Both are off unless
 * set: two daemons (or two test runs) on one machine must not fight over
 * one socket path or TCP port by default.  They are read at start-up; a
 * change needs a restart (config reload says so).
 */
#ifndef BACKSTOP_CONFIG_CONTROL_H
#define BACKSTOP_CONFIG_CONTROL_H

#define BS_CFG_CONTROL(X)                                                    \
	X(control_socket, "control.socket", STR, "", 0, 0,                   \
		"UNIX socket of the control protocol and backstopctl "       \
		"(e.g. /run/backstop/control.sock); empty: none")            \
	X(control_socket_mode, "control.socket_mode", STR, "0600", 0, 0,     \
		"Permission bits of the control socket, octal (0600: owner " \
		"only; 0660 with control.socket_group)")                     \
	X(control_socket_group, "control.socket_group", STR, "", 0, 0,       \
		"Group that owns the control socket; its members (primary "  \
		"group of the client) may use it too. Empty: the daemon's")  \
	X(metrics_listen, "metrics.listen", STR, "", 0, 0,                   \
		"ADDR:PORT of the Prometheus /metrics endpoint (e.g. "       \
		"127.0.0.1:9469, [::1]:9469); empty: none")

#endif
