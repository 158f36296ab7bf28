/* SPDX-License-Identifier: BSD-3-Clause */
/* The rule set object, shared by rules.c (builds it) and detect.c (uses it). */
#ifndef BACKSTOP_RULES_PRIV_H
#define BACKSTOP_RULES_PRIV_H

#include <stdbool.h>

#include <hs/hs.h>

#include "backstop/detect.h"
#include "backstop/mime.h"
#include "backstop/rules.h"

/*
 * The databases the detector scans a candidate with, one stream each
 * (docs/DETECTION.md, "Databases"):
 *  - HDR: every rule naming header, subject or from, over the top-level
 *    header lines, white space runs folded to one space, lines kept;
 *  - TEXT: rules without flag m naming body, dsn, arf or original, over
 *    the running text of those targets with every white space run (line
 *    ends included) folded to one space, so that "mail system" is one
 *    literal that Hyperscan finds fast, even across a wrapped line;
 *  - LINE: rules with flag m naming those targets, over their lines
 *    (white space runs folded, line ends kept: "^" means a line start).
 * NULL where no rule belongs.  Rule i has Hyperscan id i in each.
 */
enum { BS_DB_HDR, BS_DB_TEXT, BS_DB_LINE, BS_DB__N };
_Static_assert(BS_DB__N == BS_DETECT_STREAMS_MAX, "one stream per database");

/* Targets of the header channel; the others are the body's. */
#define BS_TGT_HDR_CHANNEL (BS_TGT_HEADER | BS_TGT_SUBJECT | BS_TGT_FROM)

struct bs_ruleset {
	hs_database_t *dbs[BS_DB__N];
	uint32_t db_targets[BS_DB__N]; /* targets each database serves */
	unsigned int n;
	uint32_t targets;      /* union of rules[].targets */
	struct bs_rule *rules; /* n entries; Hyperscan id = index */
	/*
	 * The candidate gate's header signatures: the dsn rules that name
	 * the subject or from target, compiled again in block mode (one
	 * line each, before the message is a candidate), with leftmost
	 * start of match where Hyperscan supports it for every one of them
	 * (gate_som).  Ids are rule indexes too.  NULL if no such rule.
	 */
	hs_database_t *gate_db;
	bool gate_som;
	unsigned int n_gate;
	/* The expressions and Hyperscan flags as compiled (tools that
	 * compile the whole pack themselves: bs_ruleset_expr()). */
	char **expr;
	unsigned int *hsflags;
};

#endif /* BACKSTOP_RULES_PRIV_H */
