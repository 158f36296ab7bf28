/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Coverage on the wire: per protected mail server, how many SMTP sessions
 * ended and how many of them the appliance could not inspect, and why
 * (STARTTLS above all: docs/TLS.md).  The operator reads the share each
 * server's mail escapes the wire, which is what backstop-milter on that
 * server covers (docs/MILTER.md).
 *
 * One table per worker, written by its owner when a flow ends (not per
 * packet), summed by the reader.  Bounded: BS_COV_SERVERS servers per
 * table; sessions of further servers go to one overflow row.  No EAL.
 */
#ifndef BACKSTOP_COVERAGE_H
#define BACKSTOP_COVERAGE_H

#include <stdint.h>
#include <stdio.h>

/* Servers tracked per table (a site's MX and submission hosts). */
#define BS_COV_SERVERS 64

/* Why a session went uninspected (columns of a row). */
enum bs_cov_reason {
	BS_COV_STARTTLS = 0, /* the session switched to TLS */
	BS_COV_MIDSTREAM,    /* picked up without its start */
	BS_COV_DESYNC,       /* server replies the engine could not explain */
	BS_COV_CAPS,         /* caps, memory, the session budget */
	BS_COV_REASM,        /* holes, unreliable TCP */
	BS_COV_UNFOLLOWED,   /* never followed (no engine state, bypass) */
	BS_COV__MAX
};

struct bs_cov_row {
	uint8_t l3;        /* BS_L3_IPV4 or BS_L3_IPV6 (pkt.h); 0 unused */
	uint8_t addr[16];  /* IPv4 in the first 4 bytes */
	uint64_t sessions; /* ended */
	uint64_t uninspected[BS_COV__MAX];
};

struct bs_cov {
	uint32_t n;
	struct bs_cov_row row[BS_COV_SERVERS];
	struct bs_cov_row other; /* servers past the table (l3 0) */
};

/* Column names, for reports and metrics labels. */
const char *bs_cov_reason_name(enum bs_cov_reason r);

/*
 * One session of server addr ended; reason < 0: it was inspected to the
 * end, else an enum bs_cov_reason.  Owner of c only.
 */
void bs_cov_count(struct bs_cov *c, uint8_t l3, const uint8_t *addr,
	int reason);

/* Add n tables into *out (zeroed first; rows merged by address). */
void bs_cov_sum(struct bs_cov *out, const struct bs_cov *const *in,
	unsigned int n);

/* Sessions uninspected in a row, all reasons. */
uint64_t bs_cov_uninspected(const struct bs_cov_row *r);

/* "coverage server ADDR sessions N uninspected M share P% starttls ..."
 * per row (and "coverage other_servers ..." when used). */
void bs_cov_print(FILE *f, const struct bs_cov *c);

#endif /* BACKSTOP_COVERAGE_H */
