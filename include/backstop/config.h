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
#include "backstop/config_control.h"
#include "backstop/config_verdict.h"
#include "backstop/config_action.h"
#include "backstop/config_milter.h"

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

/*
 * Lists and maps (verdict settings).  Every item remembers the line of the
 * file it came from, so checks that span settings (a per-domain entry for
 * a domain that is not protected) still name file and line.  All memory
 * is owned by the struct bs_config and released by bs_config_free().
 */
/* DOMAINS (lower case, no trailing dot) and RELAYS (validated text). */
struct bs_cfg_list {
	uint32_t n;
	char **item;
	uint32_t *line; /* 0: from a default or bs_config_set() */
};

/* Most BATV keys: the tag's key digit is 0..9. */
#define BS_CFG_BATV_KEYS_MAX 10
/* Longest BATV secret, in bytes. */
#define BS_CFG_SECRET_MAX 256

struct bs_cfg_batv_key {
	uint8_t id;
	uint16_t len;
	uint8_t secret[BS_CFG_SECRET_MAX];
	uint32_t line;
};

/* BATVKEYS: secrets, never printed. */
struct bs_cfg_batv_keys {
	uint32_t n;
	struct bs_cfg_batv_key key[BS_CFG_BATV_KEYS_MAX];
};

/* DKIM key algorithms (the DNS record's k= tag). */
enum bs_cfg_dkim_alg { BS_DKIM_ALG_RSA = 1, BS_DKIM_ALG_ED25519 = 2 };

/* Most DKIM keys configured; longest public key (decoded DER, RSA-8192). */
#define BS_CFG_DKIM_KEYS_MAX 256
#define BS_CFG_DKIM_DER_MAX 1100

struct bs_cfg_dkim_key {
	char *domain;   /* lower case */
	char *selector; /* as configured */
	uint8_t alg;    /* enum bs_cfg_dkim_alg */
	uint16_t der_len;
	uint8_t *der;   /* RSA: SubjectPublicKeyInfo; Ed25519: 32 raw bytes */
	uint32_t line;
};

/* DKIMKEYS: parsed and checked at load (OpenSSL), kept as bytes. */
struct bs_cfg_dkim_keys {
	uint32_t n;
	struct bs_cfg_dkim_key *key;
};

/* ACTION values. */
enum bs_cfg_action { BS_ACTION_DELIVER = 0, BS_ACTION_REFUSE = 1 };

/* MODE values (the `mode` setting, config_action.h). */
enum bs_cfg_mode { BS_MODE_INLINE = 0, BS_MODE_MONITOR = 1, BS_MODE_TAP = 2 };

/* Most per-domain entries. */
#define BS_CFG_DOMAINS_MAX 4096

/* Types: U32 and U64 (bounded integers), BOOL, STR, PORTS (list of TCP
 * ports), DOMAINS (list of domain names), RELAYS (list of host names,
 * globs and CIDR networks), BATVKEYS, DKIMKEYS (lists of mappings),
 * ACTION (deliver or refuse), DOMAINMAP (per-domain settings), MODE
 * (inline, monitor or tap). */
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
	BS_CFG_DETECT(X)                                                     \
	BS_CFG_VERDICT(X)                                                    \
	BS_CFG_INLINE(X)                                                     \
	BS_CFG_CONTROL(X)                                                    \
	BS_CFG_MILTER(X)

#define BS_CFG_CTYPE_U32 uint32_t
#define BS_CFG_CTYPE_U64 uint64_t
#define BS_CFG_CTYPE_BOOL bool
#define BS_CFG_CTYPE_STR char *
#define BS_CFG_CTYPE_PORTS struct bs_cfg_ports
#define BS_CFG_CTYPE_DOMAINS struct bs_cfg_list
#define BS_CFG_CTYPE_RELAYS struct bs_cfg_list
#define BS_CFG_CTYPE_BATVKEYS struct bs_cfg_batv_keys
#define BS_CFG_CTYPE_DKIMKEYS struct bs_cfg_dkim_keys
#define BS_CFG_CTYPE_ACTION uint8_t
#define BS_CFG_CTYPE_MODE uint8_t
#define BS_CFG_CTYPE_DOMAINMAP struct bs_cfg_domains

/* One domain's own settings: the rows of BS_CFG_VERDICT_PD. */
struct bs_cfg_domain {
	char *name; /* lower case */
	uint32_t line;
	uint32_t set; /* bit i: row i of BS_CFG_VERDICT_PD is set */
#define BS_CFG_PD_FIELD_(field, key, type, def, lo, hi, help)                \
	BS_CFG_CTYPE_##type field;
	BS_CFG_VERDICT_PD(BS_CFG_PD_FIELD_)
#undef BS_CFG_PD_FIELD_
};

struct bs_cfg_domains {
	uint32_t n;
	struct bs_cfg_domain *d;
};

/* Row numbers of the per-domain settings (bits of bs_cfg_domain.set). */
enum bs_cfg_pd_row {
#define BS_CFG_PD_ENUM_(field, key, type, def, lo, hi, help) BS_CFG_PD_##field,
	BS_CFG_VERDICT_PD(BS_CFG_PD_ENUM_)
#undef BS_CFG_PD_ENUM_
	BS_CFG_PD__MAX
};

struct bs_config {
#define BS_CFG_FIELD_(field, key, type, def, lo, hi, help)                   \
	BS_CFG_CTYPE_##type field;
	BS_CFG_TABLE(BS_CFG_FIELD_)
#undef BS_CFG_FIELD_
	/* Name of the file loaded last (for messages of later checks). */
	char source[BS_CFG_STR_MAX];
};

enum bs_cfg_type {
	BS_CFG_U32, BS_CFG_U64, BS_CFG_BOOL, BS_CFG_STR, BS_CFG_PORTS,
	BS_CFG_DOMAINS, BS_CFG_RELAYS, BS_CFG_BATVKEYS, BS_CFG_DKIMKEYS,
	BS_CFG_ACTION, BS_CFG_DOMAINMAP, BS_CFG_MODE,
};

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
/* The per-domain rows, offsets into struct bs_cfg_domain. */
extern const struct bs_cfg_desc bs_cfg_pd_desc[BS_CFG_PD__MAX];

/* "inline", "monitor" or "tap" (enum bs_cfg_mode). */
const char *bs_config_mode_name(unsigned int mode);

/* "integer", "boolean", "list of domains", ...: for docs and messages. */
const char *bs_cfg_type_name(enum bs_cfg_type t);

/*
 * Print the settings reference (Markdown tables: every setting, then the
 * per-domain ones) for docs/CONFIG.md.
 */
void bs_config_reference(FILE *f);

/*
 * The settings of domain (lower case, len bytes) that differ from the
 * global ones, or NULL when it has none of its own.  Start-up and control
 * thread (the verdict policy copies what it needs).
 */
const struct bs_cfg_domain *bs_config_domain(const struct bs_config *cfg,
	const char *domain, size_t len);

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

/* One setting's value as bs_config_show() writes it (BATV secrets never
 * shown), in a malloc'd string the caller frees; NULL: out of memory. */
char *bs_config_value_text(const struct bs_config *cfg,
	const struct bs_cfg_desc *d);

/* Give dst the value src has for setting d (a deep copy; dst's old value
 * released).  0 or -ENOMEM (dst's value is then empty). */
int bs_config_keep(struct bs_config *dst, const struct bs_config *src,
	const struct bs_cfg_desc *d);

/* 1 when the setting d has the same value in a and b (BATV secrets
 * compared too), 0 when not, -ENOMEM. */
int bs_config_value_equal(const struct bs_config *a,
	const struct bs_config *b, const struct bs_cfg_desc *d);

/*
 * Deep copy of *src into *dst (strings duplicated; free dst with
 * bs_config_free()).  Returns 0 or -ENOMEM (then dst holds nothing to
 * free).  Any thread; src must not change meanwhile.
 */
int bs_config_copy(struct bs_config *dst, const struct bs_config *src);

/* Release strings, lists and keys held by *cfg (secrets are wiped). */
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
