/* SPDX-License-Identifier: BSD-3-Clause */
/* The rule set object, shared by rules.c (builds it) and detect.c (uses it). */
#ifndef BACKSTOP_RULES_PRIV_H
#define BACKSTOP_RULES_PRIV_H

#include <stdbool.h>

#include <hs/hs.h>

#include "backstop/rules.h"

struct bs_ruleset {
	hs_database_t *db; /* NULL when the file holds no rule */
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
};

#endif /* BACKSTOP_RULES_PRIV_H */
