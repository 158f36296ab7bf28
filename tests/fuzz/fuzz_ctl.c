/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target of the control protocol: the input is cut into lines
 * as the socket server cuts them, and each line goes through
 * bs_ctl_handle_line() with handlers that read their arguments the way
 * the daemon's do.  Every reply must be one JSON object line with "ok";
 * a failure must carry an error code and a message.  Any crash, leak or
 * sanitizer report is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
h_stats(void *ctx, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	const struct bs_counters *c = ctx;
	const json_t *pw = json_object_get(args, "per_worker");
	if (pw != NULL && !json_is_boolean(pw))
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG, "per_worker: boolean");
	json_t *o = json_object();
	for (unsigned int i = 0; i < BS_CNT__MAX; i++)
		json_object_set_new(o, bs_counter_desc[i].name,
			json_integer((json_int_t)c->v[i]));
	return json_object_set_new(result, "counters", o);
}

static int
h_file(void *ctx, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	(void)ctx;
	const json_t *f = json_object_get(args, "file");
	if (f != NULL && (!json_is_string(f) || json_string_length(f) == 0))
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG, "file: a path");
	struct bs_config cfg;
	char err[256];
	bs_config_defaults(&cfg);
	int rc = 0;
	if (f != NULL && bs_config_set(&cfg, "detect.rules",
			json_string_value(f), err, sizeof(err)) < 0)
		rc = bs_ctl_fail(e, BS_CTL_E_BAD_ARG, "%s", err);
	else
		json_object_set_new(result, "file",
			json_string(cfg.detect_rules_file));
	bs_config_free(&cfg);
	return rc;
}

static int
h_top(void *ctx, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	(void)ctx;
	const json_t *n = json_object_get(args, "n");
	if (n != NULL && (!json_is_integer(n) || json_integer_value(n) < 1 ||
			json_integer_value(n) > 1000))
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG, "n: 1..1000");
	return json_object_set_new(result, "flows", json_array());
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bs_counters cnt;
	struct bs_ctl_handlers h = { .ctx = &cnt };
	h.fn[BS_CTL_STATS] = h_stats;
	h.fn[BS_CTL_RULES_RELOAD] = h_file;
	h.fn[BS_CTL_FLOWS_TOP] = h_top;
	cnt.v[BS_CNT_rx_packets]++;

	size_t start = 0;
	while (start < size) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t len = nl ? (size_t)(nl - data) - start : size - start;
		/* Exactly as the server: lines over the cap never get here. */
		if (len > 0 && len < BS_CTL_REQ_MAX) {
			size_t rl;
			char *reply = bs_ctl_handle_line(&h,
				(const char *)data + start, len, &rl);
			if (reply == NULL)
				abort();
			if (rl == 0 || reply[rl - 1] != '\n' ||
					memchr(reply, '\n', rl - 1) != NULL)
				abort();
			json_t *r = json_loadb(reply, rl, 0, NULL);
			if (!json_is_object(r) ||
					!json_is_boolean(json_object_get(r, "ok")))
				abort();
			if (json_is_false(json_object_get(r, "ok")) &&
					(!json_is_string(json_object_get(r, "error")) ||
					!json_is_string(json_object_get(r, "message"))))
				abort();
			json_decref(r);
			free(reply);
		}
		start += len + 1;
	}
	return 0;
}
