/* SPDX-License-Identifier: BSD-3-Clause */
/* The rule set object, shared by rules.c (builds it) and detect.c (uses it). */
#ifndef BACKSTOP_RULES_PRIV_H
#define BACKSTOP_RULES_PRIV_H

#include <hs/hs.h>

#include "backstop/rules.h"

struct bs_ruleset {
	hs_database_t *db; /* NULL when the file holds no rule */
	unsigned int n;
	uint32_t targets;      /* union of rules[].targets */
	struct bs_rule *rules; /* n entries; Hyperscan id = index */
};

#endif /* BACKSTOP_RULES_PRIV_H */
