/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Rule file parser and Hyperscan compiler.
 *
 * One rule per line (docs/RULES.md):
 *
 *     id  class  targets  flags  /expression/  description
 *
 * e.g.  1101 dsn body i /this is the mail system at host/ Postfix preamble
 *
 * '#' starts a comment line; blank lines are ignored.  The expression is
 * delimited by the first '/' and the next unescaped '/' that is followed by
 * white space or the line end, so it may contain '/' freely except before
 * a space (write "\/ " there) and the description may contain anything.  The
 * rules compile into three streaming databases by channel and kind (header
 * lines, folded body text, body lines: rules_priv.h) and a block database
 * for the gate; the Hyperscan id of a rule is its index in each, so the
 * match callback finds the rule without a lookup.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

#include "backstop/mime.h"
#include "backstop/rules.h"
#include "rules_priv.h"

static const char *const class_names[BS_CLASS__MAX] = {
        [BS_CLASS_NONE] = "none",
        [BS_CLASS_DSN] = "dsn",
        [BS_CLASS_AUTOREPLY] = "autoreply",
        [BS_CLASS_FEEDBACK] = "feedback",
        [BS_CLASS_CHALLENGE] = "challenge",
};

const char *
bs_class_name(enum bs_class c)
{
	return (unsigned int)c < BS_CLASS__MAX ? class_names[c] : "none";
}

static const struct {
	const char *name;
	uint32_t bits;
} target_names[] = {
        {"header", BS_TGT_HEADER},
        {"subject", BS_TGT_SUBJECT},
        {"from", BS_TGT_FROM},
        {"body", BS_TGT_BODY},
        {"dsn", BS_TGT_DSN},
        {"arf", BS_TGT_ARF},
        {"original", BS_TGT_ORIGINAL},
        {"any", BS_TGT_ALL},
};

/* Next white-space separated word of s (NUL-terminated); NULL at end. */
static char *
word(char **s)
{
	char *p = *s, *w;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return NULL;
	w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return w;
}

static int
parse_targets(char *w, uint32_t *out)
{
	uint32_t bits = 0;
	char *save = NULL;

	for (char *t = strtok_r(w, ",", &save); t;
	        t = strtok_r(NULL, ",", &save)) {
		unsigned int k;

		for (k = 0; k < sizeof(target_names) / sizeof(target_names[0]);
		        k++)
			if (strcmp(t, target_names[k].name) == 0)
				break;
		if (k == sizeof(target_names) / sizeof(target_names[0]))
			return -1;
		bits |= target_names[k].bits;
	}
	*out = bits;
	return bits ? 0 : -1;
}

struct builder {
	struct bs_rule *rules;
	char **expr;
	unsigned int *hsflags;
	unsigned int n;
};

static void
builder_free(struct builder *b)
{
	for (unsigned int i = 0; i < b->n; i++)
		free(b->expr[i]);
	free(b->expr);
	free(b->hsflags);
	free(b->rules);
}

/* Parse one non-comment line into b; 0 or -1 with err set. */
static int
parse_line(struct builder *b, char *s, unsigned int lineno, const char *name,
        char *err, size_t errlen)
{
	struct bs_rule r;
	char *w, *end, *e, *close = NULL;
	unsigned long id;
	unsigned int fl = 0;
	int c;

	memset(&r, 0, sizeof(r));
	r.line = lineno;
	w = word(&s);
	errno = 0;
	id = w ? strtoul(w, &end, 10) : 0;
	if (!w || *end || errno || id == 0 || id > UINT32_MAX) {
		snprintf(err, errlen, "%s:%u: bad rule id '%s'", name, lineno,
		        w ? w : "");
		return -1;
	}
	r.id = (uint32_t)id;
	for (unsigned int i = 0; i < b->n; i++)
		if (b->rules[i].id == r.id) {
			snprintf(err, errlen,
			        "%s:%u: rule %u: id already used on line %u",
			        name, lineno, r.id, b->rules[i].line);
			return -1;
		}
	w = word(&s);
	for (c = 1; w && c < BS_CLASS__MAX; c++)
		if (strcmp(w, class_names[c]) == 0)
			break;
	if (!w || c == BS_CLASS__MAX) {
		snprintf(err, errlen,
		        "%s:%u: rule %u: class must be dsn, autoreply, "
		        "feedback or challenge",
		        name, lineno, r.id);
		return -1;
	}
	r.cls = (uint8_t)c;
	w = word(&s);
	if (!w || parse_targets(w, &r.targets) < 0) {
		snprintf(err, errlen,
		        "%s:%u: rule %u: bad target (header, subject, from, "
		        "body, dsn, arf, original, any; comma-separated)",
		        name, lineno, r.id);
		return -1;
	}
	w = word(&s);
	if (!w) {
		snprintf(err, errlen, "%s:%u: rule %u: missing flags", name,
		        lineno, r.id);
		return -1;
	}
	for (char *f = w; *f; f++) {
		switch (*f) {
		case '-':
			break;
		case 'i':
			fl |= HS_FLAG_CASELESS;
			break;
		case 's':
			fl |= HS_FLAG_DOTALL;
			break;
		case 'm':
			fl |= HS_FLAG_MULTILINE;
			break;
		case 'u':
			fl |= HS_FLAG_UTF8 | HS_FLAG_UCP;
			break;
		case 'w':
			r.weak = true;
			break;
		default:
			snprintf(err, errlen,
			        "%s:%u: rule %u: unknown flag '%c' (i s m u w "
			        "-)",
			        name, lineno, r.id, *f);
			return -1;
		}
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s != '/') {
		snprintf(err, errlen,
		        "%s:%u: rule %u: expression must be /.../", name,
		        lineno, r.id);
		return -1;
	}
	e = s + 1;
	for (char *p = e; *p && !close; p++)
		if (*p == '/' && p[-1] != '\\' &&
		        (p[1] == '\0' || p[1] == ' ' || p[1] == '\t'))
			close = p;
	if (!close || close == e) {
		snprintf(err, errlen,
		        "%s:%u: rule %u: expression not closed by '/'", name,
		        lineno, r.id);
		return -1;
	}
	*close = '\0';
	s = close + 1;
	while (*s == ' ' || *s == '\t')
		s++;
	snprintf(r.desc, sizeof(r.desc), "%s", s);
	if (b->n == BS_RULES_MAX) {
		snprintf(err, errlen, "%s:%u: more than %u rules", name, lineno,
		        BS_RULES_MAX);
		return -1;
	}
	b->expr[b->n] = strdup(e);
	if (!b->expr[b->n]) {
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	b->hsflags[b->n] = fl;
	b->rules[b->n++] = r;
	return 0;
}

/*
 * The channel databases (rules_priv.h): each rule goes into every
 * database whose targets it names and whose kind it is (flag m: a line
 * rule).  A compile error names the rule, whichever database met it.
 */
static int
channels_compile(struct bs_ruleset *rs, const struct builder *b,
        const char *name, char *err, size_t errlen)
{
	const char **expr = calloc(b->n, sizeof(*expr));
	unsigned int *fl = calloc(b->n, sizeof(*fl));
	unsigned int *ids = calloc(b->n, sizeof(*ids));
	int rc = -1;

	if (!expr || !fl || !ids) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	for (unsigned int d = 0; d < BS_DB__N; d++) {
		hs_compile_error_t *ce = NULL;
		unsigned int n = 0;
		uint32_t served = 0;

		for (unsigned int k = 0; k < b->n; k++) {
			const struct bs_rule *r = &b->rules[k];
			bool line = (b->hsflags[k] & HS_FLAG_MULTILINE) != 0;
			uint32_t t;

			if (d == BS_DB_HDR)
				t = r->targets & BS_TGT_HDR_CHANNEL;
			else if ((d == BS_DB_LINE) == line)
				t = r->targets & ~(uint32_t)BS_TGT_HDR_CHANNEL;
			else
				t = 0;
			if (!t)
				continue;
			served |= t;
			expr[n] = b->expr[k];
			fl[n] = b->hsflags[k];
			ids[n++] = k;
		}
		if (n == 0)
			continue;
		if (hs_compile_multi(expr, fl, ids, n, HS_MODE_STREAM, NULL,
		            &rs->dbs[d], &ce) != HS_SUCCESS) {
			if (ce && ce->expression >= 0 &&
			        (unsigned int)ce->expression < n) {
				const struct bs_rule *r =
				        &b->rules[ids[ce->expression]];

				snprintf(err, errlen, "%s:%u: rule %u: %s",
				        name, r->line, r->id, ce->message);
			} else {
				snprintf(err, errlen, "%s: hyperscan: %s", name,
				        ce ? ce->message : "error");
			}
			hs_free_compile_error(ce);
			goto out;
		}
		rs->db_targets[d] = served;
	}
	rc = 0;
out:
	free(expr);
	free(fl);
	free(ids);
	return rc;
}

/*
 * The gate database: dsn rules naming the subject or from target, in block
 * mode (the gate scans one header line at a time, before there is a
 * stream).  Start of match (leftmost) tells a signature that follows a
 * reply or forward prefix ("Re: Undelivered Mail ...", a person writing
 * about a bounce) from one further on ("Re: lunch : non remis", a bounce
 * quoting its original's subject); if Hyperscan cannot give it for some
 * expression, the whole set is compiled without, and the gate takes every
 * match as starting at the beginning (a prefix then always blocks: the
 * cautious reading).
 */
static int
gate_compile(struct bs_ruleset *rs, const struct builder *b, const char *name,
        char *err, size_t errlen)
{
	const char **expr = calloc(b->n, sizeof(*expr));
	unsigned int *fl = calloc(b->n, sizeof(*fl));
	unsigned int *ids = calloc(b->n, sizeof(*ids));
	hs_compile_error_t *ce = NULL;
	unsigned int n = 0;
	int rc = -1;

	if (!expr || !fl || !ids) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	for (unsigned int k = 0; k < b->n; k++) {
		const struct bs_rule *r = &b->rules[k];

		if (r->cls != BS_CLASS_DSN ||
		        !(r->targets & (BS_TGT_SUBJECT | BS_TGT_FROM)))
			continue;
		expr[n] = b->expr[k];
		fl[n] = b->hsflags[k] | HS_FLAG_SOM_LEFTMOST;
		ids[n++] = k;
	}
	rc = 0;
	if (n == 0)
		goto out;
	rs->gate_som = true;
	if (hs_compile_multi(expr, fl, ids, n, HS_MODE_BLOCK, NULL,
	            &rs->gate_db, &ce) != HS_SUCCESS) {
		hs_free_compile_error(ce);
		ce = NULL;
		for (unsigned int k = 0; k < n; k++)
			fl[k] &= ~(unsigned int)HS_FLAG_SOM_LEFTMOST;
		rs->gate_som = false;
		if (hs_compile_multi(expr, fl, ids, n, HS_MODE_BLOCK, NULL,
		            &rs->gate_db, &ce) != HS_SUCCESS) {
			snprintf(err, errlen, "%s: hyperscan (gate): %s", name,
			        ce ? ce->message : "error");
			hs_free_compile_error(ce);
			rc = -1;
			goto out;
		}
	}
	rs->n_gate = n;
out:
	free(expr);
	free(fl);
	free(ids);
	return rc;
}

struct bs_ruleset *
bs_ruleset_parse(const char *text, size_t len, const char *name, char *err,
        size_t errlen)
{
	struct builder b = {0};
	struct bs_ruleset *rs = NULL;
	char line[BS_RULE_LINE_MAX + 1];
	unsigned int lineno = 0;
	size_t i = 0;

	b.rules = calloc(BS_RULES_MAX, sizeof(*b.rules));
	b.expr = calloc(BS_RULES_MAX, sizeof(*b.expr));
	b.hsflags = calloc(BS_RULES_MAX, sizeof(*b.hsflags));
	if (!b.rules || !b.expr || !b.hsflags) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t k = nl ? (size_t)(nl - (text + i)) : len - i;
		char *s = line;

		lineno++;
		if (k > BS_RULE_LINE_MAX) {
			snprintf(err, errlen, "%s:%u: line longer than %u",
			        name, lineno, BS_RULE_LINE_MAX);
			goto fail;
		}
		memcpy(line, text + i, k);
		line[k] = '\0';
		i += k + (nl != NULL);
		while (k > 0 && (line[k - 1] == '\r' || line[k - 1] == ' ' ||
		                        line[k - 1] == '\t'))
			line[--k] = '\0';
		if (memchr(line, '\0', k)) {
			snprintf(err, errlen, "%s:%u: NUL byte", name, lineno);
			goto fail;
		}
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (parse_line(&b, s, lineno, name, err, errlen) < 0)
			goto fail;
	}

	rs = calloc(1, sizeof(*rs));
	if (!rs) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto fail;
	}
	rs->n = b.n;
	if (b.n > 0) {
		if (channels_compile(rs, &b, name, err, errlen) < 0)
			goto fail;
		if (gate_compile(rs, &b, name, err, errlen) < 0)
			goto fail;
	}
	rs->rules = realloc(b.rules, (b.n ? b.n : 1) * sizeof(*b.rules));
	if (!rs->rules)
		rs->rules = b.rules;
	b.rules = NULL;
	for (unsigned int k = 0; k < rs->n; k++)
		rs->targets |= rs->rules[k].targets;
	/* The expressions stay (bs_ruleset_expr()); the rest goes. */
	rs->expr = b.expr;
	rs->hsflags = b.hsflags;
	b.expr = NULL;
	b.hsflags = NULL;
	b.n = 0;
	builder_free(&b);
	return rs;
fail:
	builder_free(&b);
	if (rs) {
		for (unsigned int k = 0; k < BS_DB__N; k++)
			hs_free_database(rs->dbs[k]);
		hs_free_database(rs->gate_db);
		free(rs);
	}
	return NULL;
}

struct bs_ruleset *
bs_ruleset_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct bs_ruleset *rs;
	char *text;
	long sz;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	/* A rule pack is small; 16 MiB is far beyond any sane one. */
	if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 ||
	        sz > (16L << 20) || fseek(f, 0, SEEK_SET) != 0) {
		snprintf(err, errlen, "%s: cannot size (or over 16 MiB)", path);
		fclose(f);
		return NULL;
	}
	text = malloc((size_t)sz + 1);
	if (!text || fread(text, 1, (size_t)sz, f) != (size_t)sz) {
		snprintf(err, errlen, "%s: read error", path);
		free(text);
		fclose(f);
		return NULL;
	}
	fclose(f);
	rs = bs_ruleset_parse(text, (size_t)sz, path, err, errlen);
	free(text);
	return rs;
}

void
bs_ruleset_free(struct bs_ruleset *rs)
{
	if (!rs)
		return;
	for (unsigned int k = 0; k < BS_DB__N; k++)
		hs_free_database(rs->dbs[k]);
	hs_free_database(rs->gate_db);
	if (rs->expr)
		for (unsigned int k = 0; k < rs->n; k++)
			free(rs->expr[k]);
	free(rs->expr);
	free(rs->hsflags);
	free(rs->rules);
	free(rs);
}

unsigned int
bs_ruleset_count(const struct bs_ruleset *rs)
{
	return rs->n;
}

const struct bs_rule *
bs_ruleset_rule(const struct bs_ruleset *rs, unsigned int i)
{
	return i < rs->n ? &rs->rules[i] : NULL;
}

uint32_t
bs_ruleset_targets(const struct bs_ruleset *rs)
{
	return rs->targets;
}

const char *
bs_ruleset_expr(const struct bs_ruleset *rs, unsigned int i,
        unsigned int *hs_flags)
{
	if (i >= rs->n)
		return NULL;
	if (hs_flags)
		*hs_flags = rs->hsflags[i];
	return rs->expr[i];
}
