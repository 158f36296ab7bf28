/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Configuration, declared once.
 *
 * Every setting is one row of an X-macro table: C field, YAML key, type,
 * default (as text, parsed by the same code as the file so a bad default
 * fails the same way), bounds and help.  The table drives the struct, the
 * YAML loader, validation, `--show-config` and docs/CONFIG.md.
 *
 * YAML nesting maps to dotted keys: `flow: {table_size: 4096}` and a
 * top-level `flow.table_size: 4096` are the same setting.  A sequence of
 * scalars is a list value.  Unknown keys are errors: a typo must not
 * silently leave a default in force in front of real mail.
 *
 * Modules keep their rows in their own headers (BS_CFG_<MODULE>).
 */
#ifndef BACKSTOP_CONFIG_H
#define BACKSTOP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backstop/config_smtp.h"
#include "backstop/config_detect.h"

/* Most SMTP ports one may list. */
#define BS_CFG_MAX_PORTS 16
/* Longest string setting, including the NUL. */
#define BS_CFG_STR_MAX 256

struct bs_cfg_ports {
	uint16_t n;
	uint16_t port[BS_CFG_MAX_PORTS];
	/* One bit per TCP port, derived from port[]: a per-packet test is
	 * one load, whatever the list's length. */
	uint64_t bitmap[65536 / 64];
};

/* Types: U32 and U64 (bounded integers), BOOL, STR, PORTS (list of TCP ports). */
#define BS_CFG_CORE(X)                                                       \
	X(smtp_ports, "smtp.ports", PORTS, "25,587", 1, 65535,               \
		"TCP ports followed as SMTP (server side)")                  \
	X(smtp_inspect, "smtp.inspect", BOOL, "true", 0, 1,                  \
		"Follow SMTP sessions (reassembly, SMTP, detection); false " \
		"only tracks their flows and forwards everything (bypass)")  \
	X(flow_table_size, "flow.table_size", U32, "65536", 64, 16777216,    \
		"SMTP flows tracked per worker; when full, new flows pass "  \
		"untracked")                                                 \
	X(flow_timeout_ms, "flow.timeout_ms", U32, "300000", 1000, 86400000, \
		"Idle time after which an established SMTP flow is "         \
		"forgotten (RFC 5321 4.5.3.2 allows 5 min per command)")    \
	X(flow_closed_timeout_ms, "flow.closed_timeout_ms", U32, "10000",    \
		100, 600000,                                                 \
		"Idle time after which a flow that saw FIN, RST or only a "  \
		"handshake (half-open) is forgotten")                        \
	X(inside_port, "dataplane.inside_port", U32, "1", 0, 2,             \
		"Which port of each inline pair (0<->1, 2<->3, ...) faces "  \
		"the protected mail servers: 1 the odd one, 0 the even "     \
		"one, 2 not known (direction by addresses only). A lone "    \
		"last port reflects and has no side")                        \
	X(burst_size, "dataplane.burst_size", U32, "32", 1, 512,             \
		"Packets per rte_eth_rx_burst call")                         \
	X(rx_ring_size, "dataplane.rx_ring_size", U32, "1024", 64, 32768,   \
		"RX descriptors per queue")                                  \
	X(tx_ring_size, "dataplane.tx_ring_size", U32, "1024", 64, 32768,   \
		"TX descriptors per queue")                                  \
	X(mbuf_pool_size, "dataplane.mbuf_pool_size", U32, "16383", 1023,    \
		4194303, "mbufs in the pool shared by all ports")            \
	X(mtu, "dataplane.mtu", U32, "1500", 68, 16000,                      \
		"IP MTU set on every port (jumbo frames: e.g. 9000). Frames "\
		"longer than an mbuf arrive as chains (RX scatter) where the "\
		"PMD offers it; otherwise mbufs are made large enough")      \
	X(detect_inflight_max, "detect.inflight_max", U32, "4096", 1,        \
		1048576,                                                     \
		"Messages one worker scans at once; more pass unscanned "    \
		"(counted): bounds detection memory")

#define BS_CFG_TABLE(X)                                                      \
	BS_CFG_CORE(X)                                                       \
	BS_CFG_SMTP(X)                                                       \
	BS_CFG_DETECT(X)

#define BS_CFG_CTYPE_U32 uint32_t
#define BS_CFG_CTYPE_U64 uint64_t
#define BS_CFG_CTYPE_BOOL bool
#define BS_CFG_CTYPE_STR char *
#define BS_CFG_CTYPE_PORTS struct bs_cfg_ports

struct bs_config {
#define BS_CFG_FIELD_(field, key, type, def, lo, hi, help)                   \
	BS_CFG_CTYPE_##type field;
	BS_CFG_TABLE(BS_CFG_FIELD_)
#undef BS_CFG_FIELD_
};

enum bs_cfg_type { BS_CFG_U32, BS_CFG_U64, BS_CFG_BOOL, BS_CFG_STR, BS_CFG_PORTS };

struct bs_cfg_desc {
	const char *key;
	enum bs_cfg_type type;
	const char *def;
	uint64_t lo, hi;
	const char *help;
	size_t offset;
};

extern const struct bs_cfg_desc bs_cfg_desc[];
extern const unsigned int bs_cfg_count;

/*
 * Fill *cfg with the defaults.  Returns 0, or -EINVAL if a default does
 * not parse (a build error, reported on stderr).
 */
int bs_config_defaults(struct bs_config *cfg);

/*
 * Load a YAML file over *cfg (which should hold the defaults).  On error
 * returns -EINVAL (or -errno for I/O) and writes a one-line message naming
 * the file, line and key into err.  *cfg may be partly updated on error;
 * callers discard it.  Start-up and control thread only.
 */
int bs_config_load(struct bs_config *cfg, const char *path, char *err,
	size_t errlen);

/*
 * bs_config_load() from memory: len bytes of YAML named name in messages.
 * Documents over 1 MiB are refused.
 */
int bs_config_load_mem(struct bs_config *cfg, const char *name,
	const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Set one setting from text (as in YAML); same errors as bs_config_load. */
int bs_config_set(struct bs_config *cfg, const char *key, const char *val,
	char *err, size_t errlen);

/* Write every setting as "key: value" YAML, in table order. */
void bs_config_show(FILE *f, const struct bs_config *cfg);

/* Release strings held by *cfg. */
void bs_config_free(struct bs_config *cfg);

/* True if port is one of the configured SMTP ports. */
static inline bool
bs_config_is_smtp_port(const struct bs_config *cfg, uint16_t port)
{
	const struct bs_cfg_ports *sp = &cfg->smtp_ports;
	/*
	 * Short lists (the usual 25, 587) are compared in place: n and the
	 * first ports share one hot cache line, while a bitmap word is a
	 * cache miss whenever packet copies have evicted it.
	 */
	if (sp->n <= 4) {
		for (unsigned int i = 0; i < sp->n; i++)
			if (sp->port[i] == port)
				return true;
		return false;
	}
	return (sp->bitmap[port >> 6] >> (port & 63)) & 1;
}

#endif /* BACKSTOP_CONFIG_H */
