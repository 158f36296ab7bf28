/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Configuration: the settings table of config.h turned into a loader,
 * a validator and a printer.
 *
 * The YAML document (libyaml) is flattened into dotted keys; each key
 * must name a row of the table, and its text goes through the same value
 * parser as the defaults.  Errors carry the file and line and name the
 * key, with untrusted text cut short and escaped.
 *
 * List and map settings (protected domains, relays, BATV and DKIM keys,
 * per-domain settings) are parsed from their YAML node, item by item, so
 * an error names the line of the item; a list of domains or relays may
 * also be given as comma-separated text (defaults, bs_config_set()).
 * Checks that span settings run once the whole file is read.  DKIM public
 * keys are decoded and parsed with OpenSSL here, so a broken key stops
 * the start-up instead of failing every verification later.
 */
#include "backstop/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
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

const struct bs_cfg_desc bs_cfg_pd_desc[BS_CFG_PD__MAX] = {
#define BS_CFG_PD_DESC_(field, key, type, def, lo, hi, help)                 \
	{ key, BS_CFG_##type, def, lo, hi, help,                             \
		offsetof(struct bs_cfg_domain, field) },
	BS_CFG_VERDICT_PD(BS_CFG_PD_DESC_)
#undef BS_CFG_PD_DESC_
};

const char *
bs_cfg_type_name(enum bs_cfg_type t)
{
	static const char *const n[] = {
		[BS_CFG_U32] = "integer", [BS_CFG_U64] = "integer",
		[BS_CFG_BOOL] = "boolean", [BS_CFG_STR] = "string",
		[BS_CFG_PORTS] = "list of ports",
		[BS_CFG_DOMAINS] = "list of domains",
		[BS_CFG_RELAYS] = "list of relays",
		[BS_CFG_BATVKEYS] = "list of {id, secret}",
		[BS_CFG_DKIMKEYS] = "list of {domain, selector, public_key}",
		[BS_CFG_ACTION] = "deliver or refuse",
		[BS_CFG_DOMAINMAP] = "map of domain to settings",
		[BS_CFG_MODE] = "inline, monitor or tap",
	};
	return (unsigned int)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

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

/* ---- lists of domains and relays ---------------------------------- */

/* Longest domain name (RFC 1035: 253 without the trailing dot). */
#define CFG_DOMAIN_MAX 253
/* Most items in one list of domains or relays. */
#define CFG_LIST_MAX 4096

/*
 * Lower-case s into out (outlen bytes) if it is a domain name: labels of
 * letters, digits, '-' and '_' (seen in real host names), 1..63 bytes
 * each, not starting or ending with '-'; one trailing dot is dropped.
 * With glob, a label may hold '*' (relay names).  Returns 0 or -1.
 */
static int
norm_domain(const char *s, char *out, size_t outlen, bool glob)
{
	size_t n = strlen(s), lab = 0;
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > CFG_DOMAIN_MAX || n + 1 > outlen)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return -1;
			lab = 0;
			out[i] = '.';
			continue;
		}
		if (!(isalnum(c) || c == '_' || (c == '-' && lab > 0) ||
				(glob && c == '*')))
			return -1;
		if (++lab > 63)
			return -1;
		out[i] = (char)tolower(c);
	}
	if (s[n - 1] == '-')
		return -1;
	out[n] = '\0';
	return 0;
}

/* An IPv4 or IPv6 address with an optional /prefix in range. */
static bool
is_cidr(const char *s)
{
	char buf[64];
	uint8_t a[16];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	int bits;
	if (inet_pton(AF_INET, buf, a) == 1)
		bits = 32;
	else if (inet_pton(AF_INET6, buf, a) == 1)
		bits = 128;
	else
		return false;
	if (slash) {
		uint64_t v;
		if (parse_uint(slash + 1, 0, (uint64_t)bits, &v) < 0)
			return false;
	}
	return true;
}

/* Normalise one item of a list of type t; -1 if it is not valid. */
static int
norm_item(enum bs_cfg_type t, const char *s, char *out, size_t outlen)
{
	if (t == BS_CFG_RELAYS && is_cidr(s)) {
		size_t n = strlen(s);
		if (n + 1 > outlen)
			return -1;
		for (size_t i = 0; i <= n; i++)
			out[i] = (char)tolower((unsigned char)s[i]);
		return 0;
	}
	return norm_domain(s, out, outlen, t == BS_CFG_RELAYS);
}

static void
list_free(struct bs_cfg_list *l)
{
	for (uint32_t i = 0; i < l->n; i++)
		free(l->item[i]);
	free(l->item);
	free(l->line);
	memset(l, 0, sizeof(*l));
}

/* Append a normalised copy of s; duplicates are dropped.  0, -1 invalid,
 * -2 too many, -ENOMEM. */
static int
list_add(struct bs_cfg_list *l, enum bs_cfg_type t, const char *s,
	uint32_t line)
{
	char v[CFG_DOMAIN_MAX + 2];
	if (norm_item(t, s, v, sizeof(v)) < 0)
		return -1;
	for (uint32_t i = 0; i < l->n; i++)
		if (strcmp(l->item[i], v) == 0)
			return 0;
	if (l->n == CFG_LIST_MAX)
		return -2;
	char **ni = realloc(l->item, (l->n + 1) * sizeof(*ni));
	if (ni == NULL)
		return -ENOMEM;
	l->item = ni;
	uint32_t *nl = realloc(l->line, (l->n + 1) * sizeof(*nl));
	if (nl == NULL)
		return -ENOMEM;
	l->line = nl;
	if ((l->item[l->n] = strdup(v)) == NULL)
		return -ENOMEM;
	l->line[l->n++] = line;
	return 0;
}

static int
list_error(int rc, const char *key, const char *item, char *err,
	size_t errlen)
{
	char q[CFG_QUOTE_MAX * 4 + 8];
	quote(q, sizeof(q), item);
	if (rc == -ENOMEM)
		return fail(err, errlen, "%s: out of memory", key);
	if (rc == -2)
		return fail(err, errlen, "%s: more than %d items", key,
			CFG_LIST_MAX);
	return fail(err, errlen, "%s: invalid %s '%s'", key,
		strcmp(key, "relays") == 0 || strstr(key, ".relays")
			? "relay (host name, *.glob or CIDR)"
			: "domain name", q);
}

/* Comma or space separated text into a new list that replaces *out. */
static int
parse_list_text(const char *key, enum bs_cfg_type t, const char *val,
	struct bs_cfg_list *out, char *err, size_t errlen)
{
	struct bs_cfg_list l = { 0 };
	char buf[CFG_VAL_MAX];
	if (strlen(val) >= sizeof(buf))
		return fail(err, errlen, "%s: value too long", key);
	strcpy(buf, val);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", \t", &save); tok != NULL;
			tok = strtok_r(NULL, ", \t", &save)) {
		int rc = list_add(&l, t, tok, 0);
		if (rc < 0) {
			list_free(&l);
			return list_error(rc, key, tok, err, errlen);
		}
	}
	list_free(out);
	*out = l;
	return 0;
}

static int
parse_action(const char *s, uint8_t *out)
{
	if (strcasecmp(s, "deliver") == 0)
		*out = BS_ACTION_DELIVER;
	else if (strcasecmp(s, "refuse") == 0)
		*out = BS_ACTION_REFUSE;
	else
		return -1;
	return 0;
}

static int
parse_mode(const char *s, uint8_t *out)
{
	if (strcasecmp(s, "inline") == 0)
		*out = BS_MODE_INLINE;
	else if (strcasecmp(s, "monitor") == 0)
		*out = BS_MODE_MONITOR;
	else if (strcasecmp(s, "tap") == 0)
		*out = BS_MODE_TAP;
	else
		return -1;
	return 0;
}

const char *
bs_config_mode_name(unsigned int m)
{
	return m == BS_MODE_MONITOR ? "monitor"
		: m == BS_MODE_TAP ? "tap" : "inline";
}

static void
batv_keys_wipe(struct bs_cfg_batv_keys *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

static void
dkim_keys_free(struct bs_cfg_dkim_keys *k)
{
	for (uint32_t i = 0; i < k->n; i++) {
		free(k->key[i].domain);
		free(k->key[i].selector);
		free(k->key[i].der);
	}
	free(k->key);
	memset(k, 0, sizeof(*k));
}

static void pd_free(struct bs_cfg_domain *d);

static void
domains_free(struct bs_cfg_domains *m)
{
	for (uint32_t i = 0; i < m->n; i++)
		pd_free(&m->d[i]);
	free(m->d);
	memset(m, 0, sizeof(*m));
}

/* Release what a field of type t owns. */
static void
field_free(enum bs_cfg_type t, void *field)
{
	switch (t) {
	case BS_CFG_STR:
		free(*(char **)field);
		*(char **)field = NULL;
		break;
	case BS_CFG_DOMAINS:
	case BS_CFG_RELAYS:
		list_free(field);
		break;
	case BS_CFG_BATVKEYS:
		batv_keys_wipe(field);
		break;
	case BS_CFG_DKIMKEYS:
		dkim_keys_free(field);
		break;
	case BS_CFG_DOMAINMAP:
		domains_free(field);
		break;
	default:
		break;
	}
}

static void
pd_free(struct bs_cfg_domain *d)
{
	for (unsigned int i = 0; i < BS_CFG_PD__MAX; i++)
		field_free(bs_cfg_pd_desc[i].type,
			(char *)d + bs_cfg_pd_desc[i].offset);
	free(d->name);
	d->name = NULL;
}

/*
 * Set the field of row d in base (a struct bs_config or bs_cfg_domain)
 * from text.  Lists and maps given as YAML take parse_node() instead;
 * as text they accept "" (empty), and lists of domains or relays also
 * comma-separated items.
 */
static int
set_text(void *base, const struct bs_cfg_desc *d, const char *key,
	const char *val, char *err, size_t errlen)
{
	char qv[CFG_QUOTE_MAX * 4 + 8];
	void *field = (char *)base + d->offset;
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
	case BS_CFG_DOMAINS:
	case BS_CFG_RELAYS:
		return parse_list_text(key, d->type, val, field, err, errlen);
	case BS_CFG_ACTION:
		rc = parse_action(val, field);
		break;
	case BS_CFG_MODE:
		rc = parse_mode(val, field);
		break;
	case BS_CFG_BATVKEYS:
	case BS_CFG_DKIMKEYS:
	case BS_CFG_DOMAINMAP:
		if (*val != '\0')
			return fail(err, errlen, "%s: must be a YAML %s", key,
				d->type == BS_CFG_DOMAINMAP ? "mapping"
							    : "list of mappings");
		field_free(d->type, field);
		return 0;
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
		if (d->type == BS_CFG_ACTION)
			return fail(err, errlen,
				"%s: invalid value '%s' (deliver or refuse)",
				key, qv);
		if (d->type == BS_CFG_MODE)
			return fail(err, errlen, "%s: invalid value '%s' "
				"(inline, monitor or tap)", key, qv);
		return fail(err, errlen, "%s: value too long (max %d bytes)",
			key, BS_CFG_STR_MAX - 1);
	}
	return 0;
}

int
bs_config_set(struct bs_config *cfg, const char *key, const char *val,
	char *err, size_t errlen)
{
	char qk[CFG_QUOTE_MAX * 4 + 8];
	const struct bs_cfg_desc *d = find(key);
	if (d == NULL) {
		quote(qk, sizeof(qk), key);
		return fail(err, errlen, "unknown setting '%s'", qk);
	}
	return set_text(cfg, d, key, val, err, errlen);
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
		field_free(bs_cfg_desc[i].type,
			(char *)cfg + bs_cfg_desc[i].offset);
}

const struct bs_cfg_domain *
bs_config_domain(const struct bs_config *cfg, const char *domain, size_t len)
{
	for (uint32_t i = 0; i < cfg->domains.n; i++) {
		const char *n = cfg->domains.d[i].name;
		if (strlen(n) == len && memcmp(n, domain, len) == 0)
			return &cfg->domains.d[i];
	}
	return NULL;
}

/* ---- YAML nodes ----------------------------------------------------- */

struct walk_ctx {
	yaml_document_t *doc;
	const char *path;
	char *err;
	size_t errlen;
};

static size_t
node_line(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

/* A scalar's text, or NULL (not a scalar, or a NUL inside). */
static const char *
scalar(const yaml_node_t *n)
{
	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	const char *s = (const char *)n->data.scalar.value;
	return strlen(s) == n->data.scalar.length ? s : NULL;
}

/* Decode base64 (whitespace ignored) into out; returns length or -1. */
static int
b64_decode(const char *s, uint8_t *out, size_t outlen)
{
	char clean[2048];
	size_t n = 0;
	for (; *s; s++) {
		if (isspace((unsigned char)*s))
			continue;
		if (n + 1 >= sizeof(clean))
			return -1;
		clean[n++] = *s;
	}
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > outlen)
		return -1;
	int l = EVP_DecodeBlock(out, (const unsigned char *)clean, (int)n);
	if (l < 0)
		return -1;
	if (clean[n - 1] == '=')
		l--;
	if (clean[n - 2] == '=')
		l--;
	return l;
}

/*
 * The public key text of a DKIM key: the base64 of the DNS p= tag, or
 * the whole TXT record ("v=DKIM1; k=ed25519; p=...").  Fills alg, der.
 */
static int
parse_dkim_pub(const char *txt, const char *kname, struct bs_cfg_dkim_key *k,
	char *msg, size_t msglen)
{
	char p[2048], kt[16] = "";
	uint8_t der[BS_CFG_DKIM_DER_MAX + 4];
	if (strlen(txt) >= sizeof(p))
		return fail(msg, msglen, "public_key too long");
	/* A tag list has "x=" at its start or a ';' (base64 has neither:
	 * its '=' is padding at the end, so "...p=" is still base64). */
	const char *t0 = txt;
	while (isspace((unsigned char)*t0))
		t0++;
	if (strchr(txt, ';') != NULL || (t0[0] != '\0' && t0[1] == '=')) {
		/* A tag list: pick k= and p=. */
		p[0] = '\0';
		char buf[2048];
		strcpy(buf, txt);
		char *save = NULL;
		for (char *t = strtok_r(buf, ";", &save); t != NULL;
				t = strtok_r(NULL, ";", &save)) {
			while (isspace((unsigned char)*t))
				t++;
			if (strncmp(t, "p=", 2) == 0)
				strcpy(p, t + 2);
			else if (strncmp(t, "k=", 2) == 0)
				snprintf(kt, sizeof(kt), "%s", t + 2);
		}
		for (char *e = kt + strlen(kt); e > kt && isspace((unsigned char)e[-1]);)
			*--e = '\0';
	} else {
		strcpy(p, txt);
	}
	int n = b64_decode(p, der, sizeof(der));
	if (n <= 0 || n > BS_CFG_DKIM_DER_MAX)
		return fail(msg, msglen, "%s: public_key is not base64 of a key",
			kname);
	EVP_PKEY *pk = NULL;
	if (strcasecmp(kt, "ed25519") == 0 || (kt[0] == '\0' && n == 32)) {
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der,
			(size_t)n);
		if (pk == NULL)
			return fail(msg, msglen,
				"%s: public_key is not an Ed25519 key (32 bytes)",
				kname);
		k->alg = BS_DKIM_ALG_ED25519;
	} else if (kt[0] == '\0' || strcasecmp(kt, "rsa") == 0) {
		const unsigned char *q = der;
		pk = d2i_PUBKEY(NULL, &q, n);
		if (pk == NULL || EVP_PKEY_base_id(pk) != EVP_PKEY_RSA ||
				q != der + n) {
			EVP_PKEY_free(pk);
			return fail(msg, msglen,
				"%s: public_key is not an RSA SubjectPublicKeyInfo",
				kname);
		}
		/* RFC 8301: keys under 1024 bits must not be trusted. */
		if (EVP_PKEY_get_bits(pk) < 1024) {
			EVP_PKEY_free(pk);
			return fail(msg, msglen,
				"%s: RSA key shorter than 1024 bits (RFC 8301)",
				kname);
		}
		k->alg = BS_DKIM_ALG_RSA;
	} else {
		return fail(msg, msglen, "%s: unknown key type k=%s", kname, kt);
	}
	EVP_PKEY_free(pk);
	k->der = malloc((size_t)n);
	if (k->der == NULL)
		return fail(msg, msglen, "out of memory");
	memcpy(k->der, der, (size_t)n);
	k->der_len = (uint16_t)n;
	return 0;
}

/* Each item of seq must be a mapping; call fn(ctx, item, i). */
static bool
each_mapping_pair(struct walk_ctx *w, yaml_node_t *map, const char *key,
	const char *const *names, unsigned int nnames, const char **vals,
	const yaml_node_t **vnodes)
{
	char q[CFG_QUOTE_MAX * 4 + 8];
	for (unsigned int i = 0; i < nnames; i++) {
		vals[i] = NULL;
		vnodes[i] = NULL;
	}
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
			p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
		const char *ks = scalar(k);
		unsigned int i;
		if (ks == NULL || v == NULL) {
			fail(w->err, w->errlen, "%s:%zu: %s: keys must be plain "
				"names", w->path, node_line(map), key);
			return false;
		}
		for (i = 0; i < nnames; i++)
			if (strcmp(ks, names[i]) == 0)
				break;
		if (i == nnames) {
			quote(q, sizeof(q), ks);
			fail(w->err, w->errlen, "%s:%zu: %s: unknown key '%s'",
				w->path, node_line(k), key, q);
			return false;
		}
		if (vals[i] != NULL) {
			fail(w->err, w->errlen, "%s:%zu: %s: '%s' given twice",
				w->path, node_line(k), key, names[i]);
			return false;
		}
		vals[i] = scalar(v);
		vnodes[i] = v;
		if (vals[i] == NULL) {
			fail(w->err, w->errlen, "%s:%zu: %s: '%s' must be a "
				"scalar", w->path, node_line(v), key, names[i]);
			return false;
		}
	}
	return true;
}

static int
parse_batv_keys(struct walk_ctx *w, yaml_node_t *seq, const char *key,
	struct bs_cfg_batv_keys *out)
{
	static const char *const names[] = { "id", "secret" };
	struct bs_cfg_batv_keys *k = calloc(1, sizeof(*k));
	const char *v[2];
	const yaml_node_t *vn[2];
	int rc = -EINVAL;
	if (k == NULL)
		return fail(w->err, w->errlen, "%s: out of memory", w->path);
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
			it < seq->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(w->doc, *it);
		size_t line = e ? node_line(e) : node_line(seq);
		uint64_t id;
		if (e == NULL || e->type != YAML_MAPPING_NODE) {
			fail(w->err, w->errlen, "%s:%zu: %s: each key is a "
				"mapping {id, secret}", w->path, line, key);
			goto out;
		}
		if (!each_mapping_pair(w, e, key, names, 2, v, vn))
			goto out;
		if (v[0] == NULL || v[1] == NULL) {
			fail(w->err, w->errlen, "%s:%zu: %s: a key needs both id "
				"and secret", w->path, line, key);
			goto out;
		}
		if (parse_uint(v[0], 0, 9, &id) < 0) {
			fail(w->err, w->errlen, "%s:%zu: %s: id must be 0..9 (the "
				"tag's key digit)", w->path, node_line(vn[0]), key);
			goto out;
		}
		size_t sl = strlen(v[1]);
		if (sl == 0 || sl > BS_CFG_SECRET_MAX) {
			fail(w->err, w->errlen, "%s:%zu: %s: secret must be 1..%d "
				"bytes", w->path, node_line(vn[1]), key,
				BS_CFG_SECRET_MAX);
			goto out;
		}
		for (uint32_t j = 0; j < k->n; j++)
			if (k->key[j].id == id) {
				fail(w->err, w->errlen, "%s:%zu: %s: id %u given "
					"twice", w->path, line, key,
					(unsigned int)id);
				goto out;
			}
		struct bs_cfg_batv_key *bk = &k->key[k->n++];
		bk->id = (uint8_t)id;
		bk->len = (uint16_t)sl;
		memcpy(bk->secret, v[1], sl);
		bk->line = (uint32_t)line;
	}
	batv_keys_wipe(out);
	*out = *k;
	rc = 0;
out:
	batv_keys_wipe(k);
	free(k);
	return rc;
}

static int
parse_dkim_keys(struct walk_ctx *w, yaml_node_t *seq, const char *key,
	struct bs_cfg_dkim_keys *out)
{
	static const char *const names[] = { "domain", "selector",
		"public_key" };
	struct bs_cfg_dkim_keys k = { 0 };
	const char *v[3];
	const yaml_node_t *vn[3];
	char msg[256], q[CFG_QUOTE_MAX * 4 + 8];
	size_t n = (size_t)(seq->data.sequence.items.top -
		seq->data.sequence.items.start);
	if (n > BS_CFG_DKIM_KEYS_MAX)
		return fail(w->err, w->errlen, "%s:%zu: %s: more than %d keys",
			w->path, node_line(seq), key, BS_CFG_DKIM_KEYS_MAX);
	k.key = calloc(n ? n : 1, sizeof(*k.key));
	if (k.key == NULL)
		return fail(w->err, w->errlen, "%s: out of memory", w->path);
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
			it < seq->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(w->doc, *it);
		size_t line = e ? node_line(e) : node_line(seq);
		char dom[CFG_DOMAIN_MAX + 2];
		if (e == NULL || e->type != YAML_MAPPING_NODE) {
			fail(w->err, w->errlen, "%s:%zu: %s: each key is a "
				"mapping {domain, selector, public_key}", w->path,
				line, key);
			goto bad;
		}
		if (!each_mapping_pair(w, e, key, names, 3, v, vn))
			goto bad;
		if (v[0] == NULL || v[1] == NULL || v[2] == NULL) {
			fail(w->err, w->errlen, "%s:%zu: %s: a key needs domain, "
				"selector and public_key", w->path, line, key);
			goto bad;
		}
		if (norm_domain(v[0], dom, sizeof(dom), false) < 0) {
			quote(q, sizeof(q), v[0]);
			fail(w->err, w->errlen, "%s:%zu: %s: invalid domain '%s'",
				w->path, node_line(vn[0]), key, q);
			goto bad;
		}
		/* A selector is a sub-domain (RFC 6376 3.1). */
		char sel[CFG_DOMAIN_MAX + 2];
		if (norm_domain(v[1], sel, sizeof(sel), false) < 0) {
			quote(q, sizeof(q), v[1]);
			fail(w->err, w->errlen, "%s:%zu: %s: invalid selector "
				"'%s'", w->path, node_line(vn[1]), key, q);
			goto bad;
		}
		for (uint32_t j = 0; j < k.n; j++)
			if (strcmp(k.key[j].domain, dom) == 0 &&
					strcmp(k.key[j].selector, sel) == 0) {
				fail(w->err, w->errlen, "%s:%zu: %s: selector %s of "
					"%s given twice", w->path, line, key,
					sel, dom);
				goto bad;
			}
		struct bs_cfg_dkim_key *dk = &k.key[k.n++];
		dk->line = (uint32_t)line;
		dk->domain = strdup(dom);
		dk->selector = strdup(sel);
		if (dk->domain == NULL || dk->selector == NULL) {
			fail(w->err, w->errlen, "%s: out of memory", w->path);
			goto bad;
		}
		if (parse_dkim_pub(v[2], sel, dk, msg, sizeof(msg)) < 0) {
			fail(w->err, w->errlen, "%s:%zu: %s: %s", w->path,
				node_line(vn[2]), key, msg);
			goto bad;
		}
	}
	dkim_keys_free(out);
	*out = k;
	return 0;
bad:
	dkim_keys_free(&k);
	return -EINVAL;
}

static int walk(struct walk_ctx *w, yaml_node_t *node, const char *prefix,
	void *base, const struct bs_cfg_desc *tab, unsigned int ntab,
	uint32_t *set);

static int
parse_domain_map(struct walk_ctx *w, yaml_node_t *map, const char *key,
	struct bs_cfg_domains *out)
{
	struct bs_cfg_domains m = { 0 };
	char q[CFG_QUOTE_MAX * 4 + 8], dom[CFG_DOMAIN_MAX + 2];
	size_t n = (size_t)(map->data.mapping.pairs.top -
		map->data.mapping.pairs.start);
	if (n > BS_CFG_DOMAINS_MAX)
		return fail(w->err, w->errlen, "%s:%zu: %s: more than %d domains",
			w->path, node_line(map), key, BS_CFG_DOMAINS_MAX);
	m.d = calloc(n ? n : 1, sizeof(*m.d));
	if (m.d == NULL)
		return fail(w->err, w->errlen, "%s: out of memory", w->path);
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
			p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
		const char *ks = scalar(k);
		if (ks == NULL || v == NULL ||
				norm_domain(ks, dom, sizeof(dom), false) < 0) {
			quote(q, sizeof(q), ks ? ks : "?");
			fail(w->err, w->errlen, "%s:%zu: %s: invalid domain '%s'",
				w->path, k ? node_line(k) : node_line(map), key, q);
			goto bad;
		}
		for (uint32_t j = 0; j < m.n; j++)
			if (strcmp(m.d[j].name, dom) == 0) {
				fail(w->err, w->errlen, "%s:%zu: %s: %s given twice",
					w->path, node_line(k), key, dom);
				goto bad;
			}
		struct bs_cfg_domain *d = &m.d[m.n++];
		d->line = (uint32_t)node_line(k);
		if ((d->name = strdup(dom)) == NULL) {
			fail(w->err, w->errlen, "%s: out of memory", w->path);
			goto bad;
		}
		if (v->type != YAML_MAPPING_NODE) {
			fail(w->err, w->errlen, "%s:%zu: %s.%s: expected a mapping "
				"of settings", w->path, node_line(v), key, dom);
			goto bad;
		}
		if (walk(w, v, "", d, bs_cfg_pd_desc, BS_CFG_PD__MAX,
				&d->set) < 0) {
			/* Name the domain in front of the message. */
			char msg[512];
			snprintf(msg, sizeof(msg), "%s", w->err);
			char *colon = strstr(msg, ": ");
			if (colon != NULL && colon - msg < 200)
				snprintf(w->err, w->errlen, "%.*s: %s.%s:%s",
					(int)(colon - msg), msg, key, dom,
					colon + 1);
			goto bad;
		}
	}
	domains_free(out);
	*out = m;
	return 0;
bad:
	domains_free(&m);
	return -EINVAL;
}

/* Lists of domains or relays from a YAML sequence, item by item. */
static int
parse_list_node(struct walk_ctx *w, yaml_node_t *seq, const char *key,
	enum bs_cfg_type t, struct bs_cfg_list *out)
{
	struct bs_cfg_list l = { 0 };
	for (yaml_node_item_t *it = seq->data.sequence.items.start;
			it < seq->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml_document_get_node(w->doc, *it);
		const char *s = scalar(e);
		size_t line = e ? node_line(e) : node_line(seq);
		char msg[256];
		if (s == NULL) {
			list_free(&l);
			return fail(w->err, w->errlen, "%s:%zu: %s: list items "
				"must be scalars", w->path, line, key);
		}
		int rc = list_add(&l, t, s, (uint32_t)line);
		if (rc < 0) {
			list_free(&l);
			list_error(rc, key, s, msg, sizeof(msg));
			return fail(w->err, w->errlen, "%s:%zu: %s", w->path,
				line, msg);
		}
	}
	list_free(out);
	*out = l;
	return 0;
}

static const struct bs_cfg_desc *
find_in(const struct bs_cfg_desc *tab, unsigned int n, const char *key)
{
	for (unsigned int i = 0; i < n; i++)
		if (strcmp(tab[i].key, key) == 0)
			return &tab[i];
	return NULL;
}

/* A setting given as a YAML node of its own (lists, maps). */
static int
parse_node(struct walk_ctx *w, yaml_node_t *node, const char *key,
	const struct bs_cfg_desc *d, void *base)
{
	void *field = (char *)base + d->offset;
	bool seq = node->type == YAML_SEQUENCE_NODE;
	switch (d->type) {
	case BS_CFG_DOMAINS:
	case BS_CFG_RELAYS:
		if (seq)
			return parse_list_node(w, node, key, d->type, field);
		break;
	case BS_CFG_BATVKEYS:
		if (seq)
			return parse_batv_keys(w, node, key, field);
		break;
	case BS_CFG_DKIMKEYS:
		if (seq)
			return parse_dkim_keys(w, node, key, field);
		break;
	case BS_CFG_DOMAINMAP:
		if (node->type == YAML_MAPPING_NODE)
			return parse_domain_map(w, node, key, field);
		break;
	default:
		break;
	}
	if (node->type == YAML_SCALAR_NODE) {
		char msg[256];
		const char *s = scalar(node);
		if (s == NULL)
			return fail(w->err, w->errlen, "%s:%zu: %s: NUL in value",
				w->path, node_line(node), key);
		if (set_text(base, d, key, s, msg, sizeof(msg)) < 0)
			return fail(w->err, w->errlen, "%s:%zu: %s", w->path,
				node_line(node), msg);
		return 0;
	}
	return fail(w->err, w->errlen, "%s:%zu: %s: expected a %s", w->path,
		node_line(node), key, bs_cfg_type_name(d->type));
}

static bool
is_node_type(enum bs_cfg_type t)
{
	return t == BS_CFG_DOMAINS || t == BS_CFG_RELAYS ||
		t == BS_CFG_BATVKEYS || t == BS_CFG_DKIMKEYS ||
		t == BS_CFG_DOMAINMAP;
}

/*
 * Walk node under the dotted prefix, setting every leaf in base with the
 * rows of tab (the global table, or the per-domain rows); *set, if not
 * NULL, gets the bit of each row set.
 */
static int
walk(struct walk_ctx *w, yaml_node_t *node, const char *prefix, void *base,
	const struct bs_cfg_desc *tab, unsigned int ntab, uint32_t *set)
{
	char msg[256], qk[CFG_QUOTE_MAX * 4 + 8];
	size_t line = node_line(node);
	const struct bs_cfg_desc *d =
		*prefix ? find_in(tab, ntab, prefix) : NULL;

	if (*prefix && d == NULL && node->type != YAML_MAPPING_NODE) {
		quote(qk, sizeof(qk), prefix);
		return fail(w->err, w->errlen, "%s:%zu: unknown setting '%s'",
			w->path, line, qk);
	}
	if (d != NULL && set != NULL)
		*set |= 1u << (unsigned int)(d - tab);
	if (d != NULL && is_node_type(d->type))
		return parse_node(w, node, prefix, d, base);

	switch (node->type) {
	case YAML_MAPPING_NODE:
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
				p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
			yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
			if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE)
				return fail(w->err, w->errlen,
					"%s:%zu: keys must be plain names",
					w->path, line);
			char key[CFG_KEY_MAX];
			int n = snprintf(key, sizeof(key), "%s%s%s", prefix,
				*prefix ? "." : "",
				(const char *)k->data.scalar.value);
			if (n < 0 || (size_t)n >= sizeof(key))
				return fail(w->err, w->errlen,
					"%s:%zu: key too long", w->path, line);
			int rc = walk(w, v, key, base, tab, ntab, set);
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
			yaml_node_t *e = yaml_document_get_node(w->doc, *it);
			if (e == NULL || e->type != YAML_SCALAR_NODE)
				return fail(w->err, w->errlen,
					"%s:%zu: %s: list items must be scalars",
					w->path, line, prefix);
			size_t l = e->data.scalar.length;
			if (o + l + 2 > sizeof(val))
				return fail(w->err, w->errlen,
					"%s:%zu: %s: list too long", w->path,
					line, prefix);
			if (o > 0)
				val[o++] = ',';
			memcpy(val + o, e->data.scalar.value, l);
			o += l;
			val[o] = '\0';
		}
		if (d == NULL)
			return fail(w->err, w->errlen,
				"%s:%zu: expected a mapping of settings",
				w->path, line);
		if (set_text(base, d, prefix, val, msg, sizeof(msg)) < 0)
			return fail(w->err, w->errlen, "%s:%zu: %s", w->path,
				line, msg);
		return 0;
	}
	case YAML_SCALAR_NODE:
		if (*prefix == '\0') {
			/* An empty file is a valid, empty configuration. */
			if (node->data.scalar.length == 0)
				return 0;
			return fail(w->err, w->errlen,
				"%s:%zu: expected a mapping of settings",
				w->path, line);
		}
		if (strlen((const char *)node->data.scalar.value) !=
				node->data.scalar.length)
			return fail(w->err, w->errlen, "%s:%zu: %s: NUL in value",
				w->path, line, prefix);
		if (set_text(base, d, prefix,
				(const char *)node->data.scalar.value, msg,
				sizeof(msg)) < 0)
			return fail(w->err, w->errlen, "%s:%zu: %s", w->path,
				line, msg);
		return 0;
	default:
		return fail(w->err, w->errlen, "%s:%zu: unsupported YAML node",
			w->path, line);
	}
}

/* True if domain (lower case) is in the list. */
static bool
list_has(const struct bs_cfg_list *l, const char *s)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (strcmp(l->item[i], s) == 0)
			return true;
	return false;
}

/*
 * Checks that span settings, once the whole file is read: a per-domain
 * entry or a DKIM key for a domain that is not protected is a typo that
 * would silently protect nothing; enforcing BATV without a key would
 * call every tagged bounce forged.
 */
static int
config_check(const struct bs_config *cfg, const char *path, char *err,
	size_t errlen)
{
	for (uint32_t i = 0; i < cfg->domains.n; i++) {
		const struct bs_cfg_domain *d = &cfg->domains.d[i];
		if (!list_has(&cfg->protected_domains, d->name))
			return fail(err, errlen, "%s:%u: domains: %s is not in "
				"protected_domains", path, d->line, d->name);
		if ((d->set & (1u << BS_CFG_PD_batv_enforce)) &&
				d->batv_enforce && cfg->batv_keys.n == 0)
			return fail(err, errlen, "%s:%u: domains.%s.batv.enforce:"
				" needs batv.keys", path, d->line, d->name);
	}
	for (uint32_t i = 0; i < cfg->dkim_keys.n; i++) {
		const struct bs_cfg_dkim_key *k = &cfg->dkim_keys.key[i];
		if (!list_has(&cfg->protected_domains, k->domain))
			return fail(err, errlen, "%s:%u: dkim_keys: %s is not in "
				"protected_domains", path, k->line, k->domain);
	}
	if (cfg->batv_enforce && cfg->batv_keys.n == 0)
		return fail(err, errlen, "%s: batv.enforce: needs batv.keys",
			path);
	return 0;
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
	snprintf(cfg->source, sizeof(cfg->source), "%s", name);
	if (!yaml_parser_initialize(&parser))
		return fail(err, errlen, "%s: out of memory", name);
	yaml_parser_set_input_string(&parser, buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = fail(err, errlen, "%s:%zu: YAML error: %s", name,
			parser.problem_mark.line + 1,
			parser.problem ? parser.problem : "unknown");
	} else {
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		struct walk_ctx w = { &doc, name, err, errlen };
		if (root != NULL)
			rc = walk(&w, root, "", cfg, bs_cfg_desc, bs_cfg_count,
				NULL);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	if (rc == 0)
		rc = config_check(cfg, name, err, errlen);
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
	OPENSSL_cleanse(buf, n); /* it held the BATV secrets */
	free(buf);
	fclose(f);
	return rc;
}

/* ---- printing ------------------------------------------------------- */

static void
show_list(FILE *f, const struct bs_cfg_list *l)
{
	/* Items are validated names and CIDRs: quoting is enough (a bare
	 * '*' would start a YAML alias). */
	fputc('[', f);
	for (uint32_t j = 0; j < l->n; j++)
		fprintf(f, "%s\"%s\"", j ? ", " : "", l->item[j]);
	fputc(']', f);
}

static void
show_b64(FILE *f, const uint8_t *p, size_t n)
{
	unsigned char out[BS_CFG_DKIM_DER_MAX * 2];
	if (n > BS_CFG_DKIM_DER_MAX)
		return;
	EVP_EncodeBlock(out, p, (int)n);
	fputs((const char *)out, f);
}

/* One value in YAML flow style (no newline). */
static void
show_value(FILE *f, const struct bs_cfg_desc *d, const void *field)
{
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
	case BS_CFG_DOMAINS:
	case BS_CFG_RELAYS:
		show_list(f, field);
		break;
	case BS_CFG_ACTION:
		fputs(*(const uint8_t *)field == BS_ACTION_REFUSE ? "refuse"
								  : "deliver",
			f);
		break;
	case BS_CFG_MODE:
		fputs(bs_config_mode_name(*(const uint8_t *)field), f);
		break;
	case BS_CFG_BATVKEYS:
	case BS_CFG_DKIMKEYS:
	case BS_CFG_DOMAINMAP:
		break; /* printed by bs_config_show() */
	}
}

/*
 * One setting's value in YAML flow style (no newline).  BATV keys show
 * their ids only: secrets are never printed.
 */
static void
show_setting(FILE *f, const struct bs_cfg_desc *d, const void *field)
{
	if (d->type == BS_CFG_BATVKEYS) {
		const struct bs_cfg_batv_keys *k = field;
		fputs("ids [", f);
		for (uint32_t j = 0; j < k->n; j++)
			fprintf(f, "%s%u", j ? ", " : "", k->key[j].id);
		fputs("] (secrets not shown)", f);
	} else if (d->type == BS_CFG_DKIMKEYS) {
		const struct bs_cfg_dkim_keys *k = field;
		fputc('[', f);
		for (uint32_t j = 0; j < k->n; j++) {
			fprintf(f, "%s{domain: \"%s\", selector: \"%s\", "
				"public_key: \"v=DKIM1; k=%s; p=",
				j ? ", " : "", k->key[j].domain,
				k->key[j].selector,
				k->key[j].alg == BS_DKIM_ALG_ED25519 ? "ed25519"
								     : "rsa");
			show_b64(f, k->key[j].der, k->key[j].der_len);
			fputs("\"}", f);
		}
		fputc(']', f);
	} else if (d->type == BS_CFG_DOMAINMAP) {
		const struct bs_cfg_domains *m = field;
		fputc('{', f);
		for (uint32_t j = 0; j < m->n; j++) {
			const struct bs_cfg_domain *dm = &m->d[j];
			unsigned int k = 0;
			fprintf(f, "%s\"%s\": {", j ? ", " : "", dm->name);
			for (unsigned int r = 0; r < BS_CFG_PD__MAX; r++) {
				if (!(dm->set & (1u << r)))
					continue;
				fprintf(f, "%s%s: ", k++ ? ", " : "",
					bs_cfg_pd_desc[r].key);
				show_setting(f, &bs_cfg_pd_desc[r],
					(const char *)dm +
						bs_cfg_pd_desc[r].offset);
			}
			fputc('}', f);
		}
		fputc('}', f);
	} else {
		show_value(f, d, field);
	}
}

void
bs_config_show(FILE *f, const struct bs_config *cfg)
{
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		const struct bs_cfg_desc *d = &bs_cfg_desc[i];
		/* BATV keys: a comment, so that the output cannot load back
		 * with made-up secrets. */
		fprintf(f, "%s%s: ", d->type == BS_CFG_BATVKEYS ? "# " : "",
			d->key);
		show_setting(f, d, (const char *)cfg + d->offset);
		fputc('\n', f);
	}
}

char *
bs_config_value_text(const struct bs_config *cfg, const struct bs_cfg_desc *d)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	show_setting(f, d, (const char *)cfg + d->offset);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* BATV keys equal: the same ids with the same secrets, in order. */
static bool
batv_keys_equal(const struct bs_cfg_batv_keys *a,
	const struct bs_cfg_batv_keys *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t j = 0; j < a->n; j++)
		if (a->key[j].id != b->key[j].id ||
				a->key[j].len != b->key[j].len ||
				memcmp(a->key[j].secret, b->key[j].secret,
					a->key[j].len) != 0)
			return false;
	return true;
}

int
bs_config_value_equal(const struct bs_config *a, const struct bs_config *b,
	const struct bs_cfg_desc *d)
{
	const void *fa = (const char *)a + d->offset;
	const void *fb = (const char *)b + d->offset;

	if (d->type == BS_CFG_BATVKEYS)
		return batv_keys_equal(fa, fb);
	/* Every other value is its text in full (DKIM keys in base64, a
	 * domain's own settings; they have no secrets). */
	char *ta = bs_config_value_text(a, d), *tb = bs_config_value_text(b, d);
	int eq = ta == NULL || tb == NULL ? -ENOMEM : strcmp(ta, tb) == 0;
	free(ta);
	free(tb);
	return eq;
}

void
bs_config_reference(FILE *f)
{
	fprintf(f, "| key | type | default | range | meaning |\n");
	fprintf(f, "|---|---|---|---|---|\n");
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		const struct bs_cfg_desc *d = &bs_cfg_desc[i];
		fprintf(f, "| `%s` | %s | `%s` | ", d->key,
			bs_cfg_type_name(d->type), d->def ? d->def : "");
		if (d->type == BS_CFG_U32 || d->type == BS_CFG_U64 ||
				d->type == BS_CFG_PORTS)
			fprintf(f, "%" PRIu64 "..%" PRIu64, d->lo, d->hi);
		fprintf(f, " | %s |\n", d->help);
	}
	fprintf(f, "\nSettings a domain may have of its own "
		"(`domains: {NAME: {KEY: VALUE}}`):\n\n| key | type |\n"
		"|---|---|\n");
	for (unsigned int i = 0; i < BS_CFG_PD__MAX; i++)
		fprintf(f, "| `%s` | %s |\n", bs_cfg_pd_desc[i].key,
			bs_cfg_type_name(bs_cfg_pd_desc[i].type));
}

/*
 * Give a field memcpy'd from another config its own copies of what it
 * points to.  On -ENOMEM the field holds only what it owns (safe to
 * free) and what it had shared is dropped.
 */
static int field_dup(enum bs_cfg_type t, void *field);
static size_t field_ptr_size(enum bs_cfg_type t);

static int
list_dup(struct bs_cfg_list *l)
{
	struct bs_cfg_list n = { 0 };
	if (l->n == 0) {
		memset(l, 0, sizeof(*l));
		return 0;
	}
	n.item = calloc(l->n, sizeof(*n.item));
	n.line = l->line != NULL ? malloc(l->n * sizeof(*n.line)) : NULL;
	if (n.item == NULL || (l->line != NULL && n.line == NULL))
		goto fail;
	if (l->line != NULL)
		memcpy(n.line, l->line, l->n * sizeof(*n.line));
	for (; n.n < l->n; n.n++)
		if ((n.item[n.n] = strdup(l->item[n.n])) == NULL)
			goto fail;
	*l = n;
	return 0;
fail:
	list_free(&n);
	memset(l, 0, sizeof(*l));
	return -ENOMEM;
}

static int
dkim_keys_dup(struct bs_cfg_dkim_keys *k)
{
	struct bs_cfg_dkim_keys n = { 0 };
	if (k->n == 0) {
		memset(k, 0, sizeof(*k));
		return 0;
	}
	n.key = calloc(k->n, sizeof(*n.key));
	if (n.key == NULL)
		goto fail;
	for (; n.n < k->n; n.n++) {
		const struct bs_cfg_dkim_key *o = &k->key[n.n];
		struct bs_cfg_dkim_key *c = &n.key[n.n];
		*c = *o;
		c->domain = o->domain ? strdup(o->domain) : NULL;
		c->selector = o->selector ? strdup(o->selector) : NULL;
		c->der = o->der ? malloc(o->der_len ? o->der_len : 1) : NULL;
		if ((o->domain && !c->domain) || (o->selector && !c->selector) ||
				(o->der && !c->der)) {
			n.n++;
			goto fail;
		}
		if (o->der)
			memcpy(c->der, o->der, o->der_len);
	}
	*k = n;
	return 0;
fail:
	dkim_keys_free(&n);
	memset(k, 0, sizeof(*k));
	return -ENOMEM;
}

static int
domains_dup(struct bs_cfg_domains *m)
{
	struct bs_cfg_domains n = { 0 };
	if (m->n == 0) {
		memset(m, 0, sizeof(*m));
		return 0;
	}
	n.d = calloc(m->n, sizeof(*n.d));
	if (n.d == NULL)
		goto fail;
	for (; n.n < m->n; n.n++) {
		struct bs_cfg_domain *c = &n.d[n.n];
		*c = m->d[n.n];
		c->name = m->d[n.n].name ? strdup(m->d[n.n].name) : NULL;
		int rc = m->d[n.n].name && !c->name ? -ENOMEM : 0;
		for (unsigned int i = 0; i < BS_CFG_PD__MAX; i++) {
			void *f = (char *)c + bs_cfg_pd_desc[i].offset;
			if (rc == 0)
				rc = field_dup(bs_cfg_pd_desc[i].type, f);
			else /* still shared with the source: drop */
				memset(f, 0, field_ptr_size(
					bs_cfg_pd_desc[i].type));
		}
		if (rc < 0) {
			n.n++;
			goto fail;
		}
	}
	*m = n;
	return 0;
fail:
	domains_free(&n);
	memset(m, 0, sizeof(*m));
	return -ENOMEM;
}

static int
field_dup(enum bs_cfg_type t, void *field)
{
	switch (t) {
	case BS_CFG_STR: {
		char **s = field;
		if (*s != NULL && (*s = strdup(*s)) == NULL)
			return -ENOMEM;
		return 0;
	}
	case BS_CFG_DOMAINS:
	case BS_CFG_RELAYS:
		return list_dup(field);
	case BS_CFG_DKIMKEYS:
		return dkim_keys_dup(field);
	case BS_CFG_DOMAINMAP:
		return domains_dup(field);
	default: /* held inline (BATV keys included) */
		return 0;
	}
}

/* Bytes of a field of type t that point elsewhere (0: held inline). */
static size_t
field_ptr_size(enum bs_cfg_type t)
{
	switch (t) {
	case BS_CFG_STR:
		return sizeof(char *);
	case BS_CFG_DOMAINS:
	case BS_CFG_RELAYS:
		return sizeof(struct bs_cfg_list);
	case BS_CFG_DKIMKEYS:
		return sizeof(struct bs_cfg_dkim_keys);
	case BS_CFG_DOMAINMAP:
		return sizeof(struct bs_cfg_domains);
	default:
		return 0;
	}
}

/* Bytes a field of type t takes in struct bs_config. */
static size_t
field_size(enum bs_cfg_type t)
{
	switch (t) {
	case BS_CFG_U32:
		return sizeof(uint32_t);
	case BS_CFG_U64:
		return sizeof(uint64_t);
	case BS_CFG_BOOL:
		return sizeof(bool);
	case BS_CFG_ACTION:
		return sizeof(uint8_t);
	case BS_CFG_PORTS:
		return sizeof(struct bs_cfg_ports);
	case BS_CFG_BATVKEYS:
		return sizeof(struct bs_cfg_batv_keys);
	default:
		return field_ptr_size(t);
	}
}

int
bs_config_keep(struct bs_config *dst, const struct bs_config *src,
	const struct bs_cfg_desc *d)
{
	void *fd = (char *)dst + d->offset;
	const void *fs = (const char *)src + d->offset;
	size_t n = field_size(d->type);

	field_free(d->type, fd);
	memcpy(fd, fs, n);
	if (field_dup(d->type, fd) < 0) {
		memset(fd, 0, n);
		return -ENOMEM;
	}
	return 0;
}

int
bs_config_copy(struct bs_config *dst, const struct bs_config *src)
{
	memcpy(dst, src, sizeof(*dst));
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		if (field_dup(bs_cfg_desc[i].type,
				(char *)dst + bs_cfg_desc[i].offset) == 0)
			continue;
		/* Fields not yet copied still point into src. */
		for (unsigned int j = i + 1; j < bs_cfg_count; j++)
			memset((char *)dst + bs_cfg_desc[j].offset, 0,
				field_ptr_size(bs_cfg_desc[j].type));
		bs_config_free(dst);
		return -ENOMEM;
	}
	return 0;
}
