/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control protocol's request handling (see include/backstop/ctl.h):
 * one line in, one reply line out.  jansson parses and builds the JSON;
 * this file only checks shapes and dispatches through the command table,
 * so that every command gets the same validation and error replies.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/ctl.h"

const struct bs_ctl_cmd_desc bs_ctl_cmd_desc[BS_CTL__MAX] = {
#define BS_CTL_DESC_(id, words, arg, usage, help)                            \
	[BS_CTL_##id] = { words, arg, usage, help },
	BS_CTL_COMMANDS(BS_CTL_DESC_)
#undef BS_CTL_DESC_
};

/* Longest piece of a client's text quoted back in an error. */
#define QUOTE_MAX 64

int
bs_ctl_fail(struct bs_ctl_err *e, const char *code, const char *fmt, ...)
{
	va_list ap;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int
bs_ctl_cmd_find(const char *words)
{
	for (int i = 0; i < BS_CTL__MAX; i++)
		if (strcmp(bs_ctl_cmd_desc[i].words, words) == 0)
			return i;
	return -1;
}

/* Copy untrusted s into out, cut and with non-printables as '?'. */
static const char *
quote(char *out, size_t outlen, const char *s)
{
	size_t i;
	for (i = 0; s[i] != '\0' && i + 4 < outlen && i < QUOTE_MAX; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] != '\0' && i + 4 <= outlen) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/* Options a command takes besides its positional argument. */
static bool
arg_known(enum bs_ctl_cmd c, const char *key)
{
	const struct bs_ctl_cmd_desc *d = &bs_ctl_cmd_desc[c];
	if (d->arg != NULL && strcmp(d->arg, key) == 0)
		return true;
	/* Options are spelled "--name" in usage, "name" (with '_' for '-')
	 * in args. */
	const char *u = d->usage;
	size_t kl = strlen(key);
	while ((u = strstr(u, "--")) != NULL) {
		u += 2;
		size_t i = 0;
		while (i < kl && (u[i] == key[i] ||
				(u[i] == '-' && key[i] == '_')))
			i++;
		if (i == kl && (u[i] == ']' || u[i] == ' ' || u[i] == '=' ||
				u[i] == '\0'))
			return true;
	}
	return false;
}

static char *
dump_reply(json_t *reply, size_t *out_len)
{
	char *s = json_dumps(reply, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(reply);
	if (s == NULL)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (line == NULL) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*out_len = n + 1;
	return line;
}

static json_t *
error_reply(json_t *id, const char *code, const char *msg)
{
	json_t *r = json_object();
	if (r == NULL)
		return NULL;
	json_object_set_new(r, "ok", json_false());
	if (id != NULL)
		json_object_set(r, "id", id);
	json_object_set_new(r, "error", json_string(code));
	json_object_set_new(r, "message", json_string(msg));
	return r;
}

char *
bs_ctl_error_line(const char *code, const char *msg, size_t *out_len)
{
	json_t *r = error_reply(NULL, code, msg);
	return r != NULL ? dump_reply(r, out_len) : NULL;
}

/* Check the request's shape; on success *cmd and *args are set. */
static int
check_request(json_t *req, json_t **id, int *cmd, json_t **args,
	struct bs_ctl_err *e)
{
	char q[QUOTE_MAX + 8];
	if (!json_is_object(req))
		return bs_ctl_fail(e, BS_CTL_E_BAD_JSON,
			"a request is one JSON object per line");
	json_t *jid = json_object_get(req, "id");
	if (jid != NULL) {
		if (!json_is_string(jid) && !json_is_integer(jid))
			return bs_ctl_fail(e, BS_CTL_E_BAD_REQUEST,
				"\"id\" must be a string or an integer");
		if (json_is_string(jid) &&
				json_string_length(jid) > QUOTE_MAX)
			return bs_ctl_fail(e, BS_CTL_E_BAD_REQUEST,
				"\"id\" longer than %d bytes", QUOTE_MAX);
		*id = jid;
	}
	const char *key;
	json_t *v;
	json_object_foreach(req, key, v) {
		if (strcmp(key, "cmd") != 0 && strcmp(key, "args") != 0 &&
				strcmp(key, "id") != 0)
			return bs_ctl_fail(e, BS_CTL_E_BAD_REQUEST,
				"unknown member '%s' (cmd, args, id)",
				quote(q, sizeof(q), key));
	}
	json_t *jc = json_object_get(req, "cmd");
	if (!json_is_string(jc))
		return bs_ctl_fail(e, BS_CTL_E_BAD_REQUEST,
			"\"cmd\" (a string) is required");
	*cmd = bs_ctl_cmd_find(json_string_value(jc));
	if (*cmd < 0 || strlen(json_string_value(jc)) !=
			json_string_length(jc))
		return bs_ctl_fail(e, BS_CTL_E_UNKNOWN,
			"unknown command '%s' (try \"help\")",
			quote(q, sizeof(q), json_string_value(jc)));
	json_t *ja = json_object_get(req, "args");
	if (ja != NULL && !json_is_object(ja))
		return bs_ctl_fail(e, BS_CTL_E_BAD_REQUEST,
			"\"args\" must be an object");
	if (ja != NULL) {
		json_object_foreach(ja, key, v) {
			if (!arg_known((enum bs_ctl_cmd)*cmd, key))
				return bs_ctl_fail(e, BS_CTL_E_BAD_ARG,
					"%s: unknown argument '%s' (usage: %s %s)",
					bs_ctl_cmd_desc[*cmd].words,
					quote(q, sizeof(q), key),
					bs_ctl_cmd_desc[*cmd].words,
					bs_ctl_cmd_desc[*cmd].usage);
		}
	}
	*args = ja;
	return 0;
}

static int
help(json_t *result)
{
	json_t *a = json_array();
	for (int i = 0; i < BS_CTL__MAX; i++) {
		json_t *c = json_pack("{s:s,s:s,s:s}",
			"cmd", bs_ctl_cmd_desc[i].words,
			"usage", bs_ctl_cmd_desc[i].usage,
			"help", bs_ctl_cmd_desc[i].help);
		json_array_append_new(a, c);
	}
	return json_object_set_new(result, "commands", a);
}

char *
bs_ctl_handle_line(const struct bs_ctl_handlers *h, const char *line,
	size_t len, size_t *out_len)
{
	struct bs_ctl_err e = { .code = NULL };
	json_error_t je;
	json_t *id = NULL, *args = NULL, *reply;
	int cmd = -1;

	/* A request is one object: reject duplicate keys rather than let
	 * the last one win silently; NUL bytes are refused by jansson. */
	json_t *req = json_loadb(line, len,
		JSON_REJECT_DUPLICATES, &je);
	if (req == NULL) {
		reply = error_reply(NULL, BS_CTL_E_BAD_JSON, je.text);
		return reply != NULL ? dump_reply(reply, out_len) : NULL;
	}
	if (check_request(req, &id, &cmd, &args, &e) < 0) {
		reply = error_reply(id, e.code, e.msg);
		json_decref(req);
		return reply != NULL ? dump_reply(reply, out_len) : NULL;
	}
	json_t *empty = NULL;
	if (args == NULL)
		args = empty = json_object();
	json_t *result = json_object();
	int rc;
	if (cmd == BS_CTL_HELP) {
		rc = help(result);
	} else if (h == NULL || h->fn[cmd] == NULL) {
		rc = bs_ctl_fail(&e, BS_CTL_E_UNAVAILABLE,
			"%s: not available in %s", bs_ctl_cmd_desc[cmd].words,
			h != NULL && h->program != NULL ? h->program
							: "this build");
	} else {
		rc = h->fn[cmd](h->ctx, args, result, &e);
		if (rc < 0 && e.code == NULL)
			bs_ctl_fail(&e, BS_CTL_E_FAILED, "%s failed",
				bs_ctl_cmd_desc[cmd].words);
	}
	if (rc < 0) {
		reply = error_reply(id, e.code, e.msg);
		json_decref(result);
	} else {
		reply = json_object();
		json_object_set_new(reply, "ok", json_true());
		if (id != NULL)
			json_object_set(reply, "id", id);
		json_object_set_new(reply, "result", result);
	}
	json_decref(empty);
	json_decref(req);
	return reply != NULL ? dump_reply(reply, out_len) : NULL;
}
