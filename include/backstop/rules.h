/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NDR signature rules: the rule file (docs/RULES.md) compiled once into a
 * Hyperscan streaming database.
 *
 * A struct bs_ruleset is immutable once bs_ruleset_load() returns: the
 * workers share it read-only (each with its own scratch, see detect.h), and
 * the control plane publishes a new one by RCU and frees the old with
 * bs_ruleset_free() when no worker and no message in flight uses it.
 */
#ifndef BACKSTOP_RULES_H
#define BACKSTOP_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps of the rule file: a rule pack is written by people, not attackers,
 * but a typo must give an error, not a huge allocation. */
#define BS_RULES_MAX 4096
#define BS_RULE_LINE_MAX 4096
#define BS_RULE_DESC_MAX 200

/* Classes, from "nothing" to the most specific. */
enum bs_class {
	BS_CLASS_NONE,
	BS_CLASS_DSN,       /* non-delivery or delay report: a bounce */
	BS_CLASS_AUTOREPLY, /* RFC 3834 automatic reply (vacation, ...) */
	BS_CLASS_FEEDBACK,  /* RFC 5965 abuse/feedback report */
	BS_CLASS_CHALLENGE, /* challenge-response ("confirm you are human") */
	BS_CLASS__MAX
};

/* "none", "dsn", ...: the names used in rule files and JSON. */
const char *bs_class_name(enum bs_class c);

struct bs_rule {
	uint32_t id;      /* unique in the set, from the file */
	uint8_t cls;      /* enum bs_class */
	bool weak;        /* needs corroboration (flag 'w') */
	uint32_t targets; /* enum bs_target bits */
	uint32_t line;    /* line in the rule file */
	char desc[BS_RULE_DESC_MAX];
};

struct bs_ruleset;

/*
 * Read and compile the rule file at path.  Returns the rule set, or NULL
 * with a one-line message in err ("file:line: rule ID: reason") for I/O,
 * syntax and Hyperscan compile errors.  Slow (milliseconds to seconds):
 * control thread or start-up only.  The caller owns the result.
 */
struct bs_ruleset *bs_ruleset_load(const char *path, char *err, size_t errlen);

/* Same, from rule text in memory (tests); name is used in messages. */
struct bs_ruleset *bs_ruleset_parse(const char *text, size_t len,
        const char *name, char *err, size_t errlen);

/* Free a rule set no worker uses any more.  NULL is fine. */
void bs_ruleset_free(struct bs_ruleset *rs);

/* Number of rules, and rule i (0 <= i < count).  Any thread. */
unsigned int bs_ruleset_count(const struct bs_ruleset *rs);
const struct bs_rule *bs_ruleset_rule(
        const struct bs_ruleset *rs, unsigned int i);

/* Rule i's expression and Hyperscan flags as compiled (NULL if i is out of
 * range), for tools that compile the whole pack into one database to
 * compare with a raw scan (scripts/bench_classify.sh).  Read-only. */
const char *bs_ruleset_expr(const struct bs_ruleset *rs, unsigned int i,
        unsigned int *hs_flags);

/* Union of the targets of all rules (what is worth scanning). */
uint32_t bs_ruleset_targets(const struct bs_ruleset *rs);

#endif /* BACKSTOP_RULES_H */
