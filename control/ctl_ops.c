/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Command bodies shared by the programs that serve the control protocol
 * (include/backstop/ctl.h): the backstop appliance (control/control.c)
 * and backstop-milter (milter/mf_control.c).  Each takes the program's
 * own objects (its counter blocks, settings, ledger, rules and policy)
 * as arguments, so one piece of code answers `stats`, `config show`,
 * `ledger stats`, `ledger save` and `verdict test` alike in both, and
 * the socket is opened from the same control.socket* settings.
 *
 * No EAL and no libmilter: engine code, run on a program's control
 * thread.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/ctl.h"
#include "backstop/detect.h"
#include "backstop/ledger.h"
#include "backstop/rules.h"
#include "backstop/smtp.h"
#include "backstop/verdict.h"

/* ---- the socket, from the settings ---- */

int
bs_ctl_server_open(const struct bs_config *cfg,
	const struct bs_ctl_handlers *h, struct bs_ctl_server **out,
	char *err, size_t errlen)
{
	*out = NULL;
	if (cfg->control_socket == NULL || cfg->control_socket[0] == '\0')
		return 0;
	struct bs_ctl_server_params sp = {
		.path = cfg->control_socket, .gid = (gid_t)-1,
	};
	if (bs_ctl_parse_mode(cfg->control_socket_mode, &sp.mode) < 0) {
		snprintf(err, errlen, "control.socket_mode '%.16s' is not an "
			"octal mode (e.g. 0600)", cfg->control_socket_mode);
		return -1;
	}
	if (cfg->control_socket_group != NULL &&
			cfg->control_socket_group[0] != '\0') {
		struct group *g = getgrnam(cfg->control_socket_group);
		if (g == NULL) {
			snprintf(err, errlen, "control.socket_group '%.64s': "
				"no such group", cfg->control_socket_group);
			return -1;
		}
		sp.gid = g->gr_gid;
		sp.gid_allowed = true;
	}
	char e[400];
	*out = bs_ctl_server_create(&sp, h, e, sizeof(e));
	if (*out == NULL) {
		snprintf(err, errlen, "control socket: %s", e);
		return -1;
	}
	return 0;
}

/* ---- stats ---- */

json_t *
bs_ctl_counters_json(const struct bs_counters *c)
{
	json_t *o = json_object();
	for (unsigned int i = 0; i < BS_CNT__MAX; i++)
		json_object_set_new(o, bs_counter_desc[i].name,
			json_integer((json_int_t)c->v[i]));
	return o;
}

int
bs_ctl_stats(const json_t *args, json_t *result, uint64_t generation,
	const struct bs_counters *const *blk, unsigned int n,
	const struct bs_counters *process, struct bs_ctl_err *e)
{
	const json_t *pw = json_object_get(args, "per_worker");
	if (pw != NULL && !json_is_boolean(pw))
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG,
			"stats: per_worker must be true or false");
	struct bs_counters *sum = malloc(sizeof(*sum));
	if (sum == NULL)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "stats: out of memory");
	bs_counters_sum(sum, blk, n);
	/* The process-wide rows are 0 in the blocks: kept once, added once. */
	if (process != NULL)
		for (unsigned int i = 0; i < BS_CNT__MAX; i++)
			if (bs_counter_process[i])
				sum->v[i] = process->v[i];
	json_object_set_new(result, "generation",
		json_integer((json_int_t)generation));
	json_object_set_new(result, "counters", bs_ctl_counters_json(sum));
	free(sum);
	if (json_is_true(pw)) {
		json_t *ws = json_array();
		for (unsigned int i = 0; i < n; i++)
			json_array_append_new(ws, json_pack("{s:I,s:o}",
				"worker", (json_int_t)i, "counters",
				bs_ctl_counters_json(blk[i])));
		json_object_set_new(result, "workers", ws);
	}
	return 0;
}

/* ---- config show ---- */

void
bs_ctl_value_text(const struct bs_config *cfg, const struct bs_cfg_desc *d,
	char *buf, size_t len)
{
	/* A string is shown as it is, not YAML-quoted: the reply is JSON. */
	if (d->type == BS_CFG_STR) {
		const char *v = *(char *const *)((const char *)cfg + d->offset);
		snprintf(buf, len, "%s", v != NULL ? v : "");
		return;
	}
	char *t = bs_config_value_text(cfg, d);

	/* Cut at len: a list of many domains or keys is long; the reply
	 * says so rather than end mid-item without a mark. */
	if (t != NULL && strlen(t) >= len && len > 4)
		snprintf(buf, len, "%.*s...", (int)(len - 4), t);
	else
		snprintf(buf, len, "%s", t != NULL ? t : "?");
	free(t);
}

bool
bs_ctl_key_in(const char *key, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return true;
	return false;
}

void
bs_ctl_config_show(const struct bs_config *cfg, uint64_t generation,
	const char *const *live, size_t n_live, json_t *result)
{
	char v[BS_CFG_STR_MAX * 2];
	json_t *s = json_array();
	for (unsigned int i = 0; i < bs_cfg_count; i++) {
		const struct bs_cfg_desc *d = &bs_cfg_desc[i];
		bs_ctl_value_text(cfg, d, v, sizeof(v));
		json_array_append_new(s, json_pack("{s:s,s:s,s:b}",
			"key", d->key, "value", v, "live",
			bs_ctl_key_in(d->key, live, n_live)));
	}
	json_object_set_new(result, "generation",
		json_integer((json_int_t)generation));
	json_object_set_new(result, "settings", s);
}

/* ---- ledger stats, ledger save ---- */

static int
no_ledger(struct bs_ctl_err *e, const char *what, const char *why)
{
	return bs_ctl_fail(e, BS_CTL_E_UNAVAILABLE, "%s: no outbound ledger "
		"in this process (%s)", what, why);
}

int
bs_ctl_ledger_stats(struct bs_ledger *l, const char *why_none,
	json_t *result, struct bs_ctl_err *e)
{
	struct bs_ledger_stats s;
	if (l == NULL)
		return no_ledger(e, "ledger stats", why_none);
	bs_ledger_stats(l, (uint64_t)time(NULL), &s);
	json_t *r = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		"s:I,s:I,s:b,s:I,s:I,s:I,s:b}",
		"entries", (json_int_t)s.entries,
		"capacity", (json_int_t)s.capacity,
		"recorded", (json_int_t)s.recorded,
		"ring_dropped", (json_int_t)s.ring_dropped,
		"bad_msgid", (json_int_t)s.bad_msgid,
		"inserts", (json_int_t)s.inserts,
		"refreshes", (json_int_t)s.refreshes,
		"evictions", (json_int_t)s.evictions,
		"expirations", (json_int_t)s.expirations,
		"snapshot_saves", (json_int_t)s.snapshot_saves,
		"snapshot_failures", (json_int_t)s.snapshot_failures,
		"snapshot_age_s", (json_int_t)s.snapshot_age_s,
		"warm_since_s", (json_int_t)s.warm_since_s,
		"warming", s.warming,
		"bytes", (json_int_t)s.bytes,
		"imported", (json_int_t)s.imported,
		"import_failures", (json_int_t)s.import_failures,
		"peer_stale", s.peer_stale);
	json_object_update(result, r);
	json_decref(r);
	return 0;
}

int
bs_ctl_ledger_save(struct bs_ledger *l, const char *why_none,
	json_t *result, struct bs_ctl_err *e)
{
	char err[512];
	if (l == NULL)
		return no_ledger(e, "ledger save", why_none);
	uint64_t t0 = bs_mono_ns();
	int rc = bs_ledger_save(l, err, sizeof(err));
	if (rc == -ENOENT)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "ledger save: no "
			"snapshot path is configured");
	if (rc < 0)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "ledger save: %s", err);
	json_object_set_new(result, "saved", json_true());
	json_object_set_new(result, "ms", json_real((double)(bs_mono_ns() - t0) /
		1e6));
	return 0;
}

/* ---- verdict test ---- */

/* Largest message file `verdict test` reads (a bounce with its original
 * attached is far smaller; the cap bounds what a wrong path costs). */
#define VERDICT_TEST_MAX (64u << 20)

int
bs_ctl_verdict_test(const struct bs_ruleset *rules,
	const struct bs_verdict_policy *pol, uint64_t generation,
	const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	const json_t *jf = json_object_get(args, "file");
	const json_t *jm = json_object_get(args, "mail_from");
	const json_t *jr = json_object_get(args, "rcpt");
	if (!json_is_string(jf) || json_string_length(jf) == 0)
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG,
			"verdict test: file (a path) is required");
	if ((jm != NULL && !json_is_string(jm)) ||
			(jr != NULL && !json_is_string(jr)))
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG,
			"verdict test: mail_from and rcpt are addresses");
	if (rules == NULL || pol == NULL)
		return bs_ctl_fail(e, BS_CTL_E_FAILED,
			"verdict test: no rule set loaded (detection off, or "
			"the rule file failed) in generation %" PRIu64,
			generation);
	const char *path = json_string_value(jf);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "%s: %s", path,
			strerror(errno));
	uint8_t *buf = malloc(VERDICT_TEST_MAX + 1);
	size_t len = buf ? fread(buf, 1, VERDICT_TEST_MAX + 1, f) : 0;
	fclose(f);
	if (buf == NULL || len > VERDICT_TEST_MAX) {
		free(buf);
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "%s: %s", path,
			buf ? "larger than 64 MiB" : "out of memory");
	}
	struct bs_smtp_rcpt rcpt;
	memset(&rcpt, 0, sizeof(rcpt));
	const char *mail_from = jm ? json_string_value(jm) : NULL;
	const char *rv = jr ? json_string_value(jr) : NULL;
	if (rv != NULL) {
		size_t l = strlen(rv);
		if (l >= sizeof(rcpt.addr))
			l = sizeof(rcpt.addr) - 1;
		memcpy(rcpt.addr, rv, l);
		rcpt.len = (uint16_t)l;
		rcpt.reply = 250;
	}
	/* Contexts of its own: the programs' per-worker (per-slot) ones
	 * belong to their threads; nothing here is counted. */
	struct bs_detect_ctx *dc = bs_detect_ctx_create(rules);
	struct bs_verdict_ctx *vc = bs_verdict_ctx_create(pol, NULL);
	struct bs_msg *msg = dc ? bs_msg_begin(dc, mail_from,
		rv ? &rv : NULL, rv ? 1 : 0) : NULL;
	struct bs_detect_result *res = calloc(1, sizeof(*res));
	if (vc == NULL || msg == NULL || res == NULL) {
		free(res);
		bs_msg_abort(msg);
		bs_verdict_ctx_free(vc);
		bs_detect_ctx_free(dc);
		free(buf);
		return bs_ctl_fail(e, BS_CTL_E_FAILED, "out of memory");
	}
	bs_msg_feed(msg, buf, len);
	bs_msg_end(msg, res);
	free(buf);
	struct bs_verdict_input vin;
	struct bs_verdict_result vr;
	bs_verdict_input_init(&vin, NULL, res, (uint64_t)time(NULL));
	vin.mail_from = mail_from;
	vin.rcpt = rv ? &rcpt : NULL;
	vin.nrcpt = rv ? 1 : 0;
	bs_verdict_judge(vc, NULL, &vin, &vr);

	/* Both stages write their own JSON: parse it back into the reply. */
	size_t need = bs_detect_result_json(res, NULL, NULL, 0);
	char *dj = malloc(need + 1);
	char vj[4096];
	vj[0] = '{';
	size_t vn = bs_verdict_result_json(&vr, vj + 1, sizeof(vj) - 2);
	if (vn + 3 > sizeof(vj))
		vn = 0;
	vj[1 + vn] = '}';
	vj[2 + vn] = '\0';
	if (dj != NULL)
		bs_detect_result_json(res, NULL, dj, need + 1);
	json_t *jd = dj ? json_loads(dj, 0, NULL) : NULL;
	json_t *jv = vn ? json_loads(vj, 0, NULL) : NULL;
	free(dj);
	json_object_set_new(result, "file", json_string(path));
	json_object_set_new(result, "generation",
		json_integer((json_int_t)generation));
	json_object_set_new(result, "class", json_string(
		bs_class_name((enum bs_class)res->cls)));
	if (jv != NULL)
		json_object_update(result, jv);
	json_decref(jv);
	json_object_set_new(result, "detect", jd ? jd : json_null());
	free(res);
	bs_verdict_ctx_free(vc);
	bs_detect_ctx_free(dc);
	return 0;
}
