/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Configuration: the settings table of config.h turned into a loader,
 * a validator and a printer.
 *
 * The YAML document (libyaml) is flattened into dotted keys; each key
 * must name a row of the table, and its text goes through the same value
 * parser as the defaults.  Errors carry the file and line and name the
 * key, with untrusted text cut short and escaped.
 */
#include "backstop/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

const struct bs_cfg_desc bs_cfg_desc[] = {
#define BS_CFG_DESC_(field, key, type, def, lo, hi, help)                    \
	{ key, BS_CFG_##type, def, lo, hi, help,                             \
		offsetof(struct bs_config, field) },
	BS_CFG_TABLE(BS_CFG_DESC_)
#undef BS_CFG_DESC_
};
const unsigned int bs_cfg_count = sizeof(bs_cfg_desc) / sizeof(bs_cfg_desc[0]);

/* Longest flattened key; deeper YAML is an error, not a truncation. */
#define CFG_KEY_MAX 128
/* Longest value text (a list of ports is the longest we expect). */
#define CFG_VAL_MAX 1024
/* Longest piece of untrusted text quoted in an error. */
#define CFG_QUOTE_MAX 48

/* Copy s into out, cut at CFG_QUOTE_MAX and with non-printables escaped. */
static void
quote(char *out, size_t outlen, const char *s)
{
	size_t o = 0;
	for (size_t i = 0; s[i] != '\0' && o + 5 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == CFG_QUOTE_MAX) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (isprint(c) && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const struct bs_cfg_desc *
find(const char *key)
{
	for (unsigned int i = 0; i < bs_cfg_count; i++)
		if (strcmp(bs_cfg_desc[i].key, key) == 0)
			return &bs_cfg_desc[i];
	return NULL;
}

static int
parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (*s == '\0' || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int
parse_ports(const char *s, uint64_t lo, uint64_t hi, struct bs_cfg_ports *out)
{
	uint16_t port[BS_CFG_MAX_PORTS];
	unsigned int n = 0;
	char buf[CFG_VAL_MAX];
	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", ", &save); tok != NULL;
			tok = strtok_r(NULL, ", ", &save)) {
		uint64_t v;
		if (n == BS_CFG_MAX_PORTS || parse_uint(tok, lo, hi, &v) < 0)
			return -1;
		for (unsigned int i = 0; i < n; i++)
			if (port[i] == v)
				return -1;
		port[n++] = (uint16_t)v;
	}
	if (n == 0)
		return -1;
	/* Valid: only now replace the old value (list and bitmap). */
	memset(out, 0, sizeof(*out));
	out->n = (uint16_t)n;
	for (unsigned int i = 0; i < n; i++) {
		out->port[i] = port[i];
		out->bitmap[port[i] >> 6] |= 1ULL << (port[i] & 63);
	}
	return 0;
}

int
bs_config_set(struct bs_config *cfg, const char *key, const char *val,
	char *err, size_t errlen)
{
	char qk[CFG_QUOTE_MAX * 4 + 8], qv[CFG_QUOTE_MAX * 4 + 8];
	const struct bs_cfg_desc *d = find(key);
	if (d == NULL) {
		quote(qk, sizeof(qk), key);
		return fail(err, errlen, "unknown setting '%s'", qk);
	}
	void *field = (char *)cfg + d->offset;
	uint64_t v;
	int rc = 0;
	switch (d->type) {
	case BS_CFG_U32:
		rc = parse_uint(val, d->lo, d->hi, &v);
		if (rc == 0)
			*(uint32_t *)field = (uint32_t)v;
		break;
	case BS_CFG_U64:
		rc = parse_uint(val, d->lo, d->hi, &v);
		if (rc == 0)
			*(uint64_t *)field = v;
		break;
	case BS_CFG_BOOL:
		rc = parse_bool(val, (bool *)field);
		break;
	case BS_CFG_STR: {
		if (strlen(val) >= BS_CFG_STR_MAX) {
			rc = -1;
			break;
		}
		char *s = strdup(val);
		if (s == NULL)
			return -ENOMEM;
		free(*(char **)field);
		*(char **)field = s;
		break;
	}
	case BS_CFG_PORTS:
		rc = parse_ports(val, d->lo, d->hi, (struct bs_cfg_ports *)field);
		break;
	}
	if (rc < 0) {
		quote(qv, sizeof(qv), val);
		if (d->type == BS_CFG_U32 || d->type == BS_CFG_U64 ||
				d->type == BS_CFG_PORTS)
			return fail(err, errlen,
				"%s: invalid value '%s' (integer%s in %" PRIu64
				"..%" PRIu64 ")", key, qv,
				d->type == BS_CFG_PORTS ? " list" : "", d->lo,
				d->hi);
		if (d->type == BS_CFG_BOOL)
			return fail(err, errlen,
				"%s: invalid value '%s' (true or false)", key,
				qv);
		return fail(err, errlen, "%s: value too long (max %d bytes)",
			key, BS_CFG_STR_MAX - 1);
	}
	return 0;
}

int
bs_config_defaults(struct bs_config *cfg)
{
	char err[256];
	memset(cfg, 0, sizeof(*cfg));
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		if (bs_cfg_desc[i].def == NULL)
			continue;
		if (bs_config_set(cfg, bs_cfg_desc[i].key, bs_cfg_desc[i].def,
				err, sizeof(err)) < 0) {
			fprintf(stderr, "backstop: bad built-in default: %s\n",
				err);
			return -EINVAL;
		}
	}
	return 0;
}

void
bs_config_free(struct bs_config *cfg)
{
	for (unsigned int i = 0; i < bs_cfg_count; i++)
		if (bs_cfg_desc[i].type == BS_CFG_STR) {
			char **s = (char **)((char *)cfg + bs_cfg_desc[i].offset);
			free(*s);
			*s = NULL;
		}
}

/* Walk node under the dotted prefix, setting every leaf. */
static int
walk(yaml_document_t *doc, yaml_node_t *node, const char *prefix,
	const char *path, struct bs_config *cfg, char *err, size_t errlen)
{
	char msg[256];
	size_t line = node->start_mark.line + 1;

	switch (node->type) {
	case YAML_MAPPING_NODE:
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
				p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			yaml_node_t *v = yaml_document_get_node(doc, p->value);
			if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE)
				return fail(err, errlen,
					"%s:%zu: keys must be plain names",
					path, line);
			char key[CFG_KEY_MAX];
			int n = snprintf(key, sizeof(key), "%s%s%s", prefix,
				*prefix ? "." : "",
				(const char *)k->data.scalar.value);
			if (n < 0 || (size_t)n >= sizeof(key))
				return fail(err, errlen, "%s:%zu: key too long",
					path, line);
			int rc = walk(doc, v, key, path, cfg, err, errlen);
			if (rc < 0)
				return rc;
		}
		return 0;
	case YAML_SEQUENCE_NODE: {
		char val[CFG_VAL_MAX];
		size_t o = 0;
		val[0] = '\0';
		for (yaml_node_item_t *it = node->data.sequence.items.start;
				it < node->data.sequence.items.top; it++) {
			yaml_node_t *e = yaml_document_get_node(doc, *it);
			if (e == NULL || e->type != YAML_SCALAR_NODE)
				return fail(err, errlen,
					"%s:%zu: %s: list items must be scalars",
					path, line, prefix);
			size_t l = e->data.scalar.length;
			if (o + l + 2 > sizeof(val))
				return fail(err, errlen,
					"%s:%zu: %s: list too long", path, line,
					prefix);
			if (o > 0)
				val[o++] = ',';
			memcpy(val + o, e->data.scalar.value, l);
			o += l;
			val[o] = '\0';
		}
		if (bs_config_set(cfg, prefix, val, msg, sizeof(msg)) < 0)
			return fail(err, errlen, "%s:%zu: %s", path, line, msg);
		return 0;
	}
	case YAML_SCALAR_NODE:
		if (*prefix == '\0') {
			/* An empty file is a valid, empty configuration. */
			if (node->data.scalar.length == 0)
				return 0;
			return fail(err, errlen,
				"%s:%zu: expected a mapping of settings", path,
				line);
		}
		if (strlen((const char *)node->data.scalar.value) !=
				node->data.scalar.length)
			return fail(err, errlen, "%s:%zu: %s: NUL in value",
				path, line, prefix);
		if (bs_config_set(cfg, prefix,
				(const char *)node->data.scalar.value, msg,
				sizeof(msg)) < 0)
			return fail(err, errlen, "%s:%zu: %s", path, line, msg);
		return 0;
	default:
		return fail(err, errlen, "%s:%zu: unsupported YAML node", path,
			line);
	}
}

/* Largest configuration file read: far above any real one, and a bound
 * on what a wrong path (a log, a device) can make us read. */
#define CFG_FILE_MAX (1u << 20)

int
bs_config_load_mem(struct bs_config *cfg, const char *name,
	const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int rc = 0;

	if (len > CFG_FILE_MAX)
		return fail(err, errlen, "%s: larger than %u bytes", name,
			CFG_FILE_MAX);
	if (!yaml_parser_initialize(&parser))
		return fail(err, errlen, "%s: out of memory", name);
	yaml_parser_set_input_string(&parser, buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = fail(err, errlen, "%s:%zu: YAML error: %s", name,
			parser.problem_mark.line + 1,
			parser.problem ? parser.problem : "unknown");
	} else {
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (root != NULL)
			rc = walk(&doc, root, "", name, cfg, err, errlen);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	return rc;
}

int
bs_config_load(struct bs_config *cfg, const char *path, char *err,
	size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		int e = errno;
		fail(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	uint8_t *buf = malloc(CFG_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		return fail(err, errlen, "%s: out of memory", path);
	}
	size_t n = fread(buf, 1, CFG_FILE_MAX + 1, f);
	int rc;
	if (ferror(f))
		rc = fail(err, errlen, "%s: read error", path);
	else
		rc = bs_config_load_mem(cfg, path, buf, n, err, errlen);
	free(buf);
	fclose(f);
	return rc;
}

void
bs_config_show(FILE *f, const struct bs_config *cfg)
{
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		const struct bs_cfg_desc *d = &bs_cfg_desc[i];
		const void *field = (const char *)cfg + d->offset;
		fprintf(f, "%s: ", d->key);
		switch (d->type) {
		case BS_CFG_U32:
			fprintf(f, "%" PRIu32, *(const uint32_t *)field);
			break;
		case BS_CFG_U64:
			fprintf(f, "%" PRIu64, *(const uint64_t *)field);
			break;
		case BS_CFG_BOOL:
			fputs(*(const bool *)field ? "true" : "false", f);
			break;
		case BS_CFG_STR: {
			const char *s = *(char *const *)field;
			fprintf(f, "\"%s\"", s ? s : "");
			break;
		}
		case BS_CFG_PORTS: {
			const struct bs_cfg_ports *p = field;
			fputc('[', f);
			for (unsigned int j = 0; j < p->n; j++)
				fprintf(f, "%s%u", j ? ", " : "", p->port[j]);
			fputc(']', f);
			break;
		}
		}
		fputc('\n', f);
	}
}

int
bs_config_copy(struct bs_config *dst, const struct bs_config *src)
{
	memcpy(dst, src, sizeof(*dst));
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		if (bs_cfg_desc[i].type != BS_CFG_STR)
			continue;
		char **d = (char **)((char *)dst + bs_cfg_desc[i].offset);
		if (*d != NULL && (*d = strdup(*d)) == NULL) {
			/* Strings not yet copied still point into src. */
			for (unsigned int j = i + 1; j < bs_cfg_count; j++)
				if (bs_cfg_desc[j].type == BS_CFG_STR)
					*(char **)((char *)dst +
						bs_cfg_desc[j].offset) = NULL;
			bs_config_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}
