/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backstopctl: the operator's command line for a running backstop, over
 * its control socket (docs/OPERATIONS.md).
 *
 *   backstopctl [--socket PATH] [--json] [--timeout S] COMMAND [ARG...]
 *
 * The commands and their arguments come from the protocol's own table
 * (include/backstop/ctl.h), so the CLI, its help and the daemon cannot
 * disagree.  Human output is aligned columns (key and value; tables with
 * a header line); --json prints the daemon's reply as it came, one line,
 * for scripts.  Exit codes: 0 done; 1 the daemon refused or the
 * operation failed (the message says why); 2 usage error; 3 no daemon
 * answering on the socket (or a broken reply).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backstop/ctl.h"

#define DEFAULT_SOCKET "/run/backstop/control.sock"
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_CONN 3
/* Largest reply read (the daemon caps what it queues the same way). */
#define REPLY_MAX BS_CTL_OUT_MAX

static void
usage(FILE *f)
{
	fprintf(f, "usage: backstopctl [--socket PATH] [--json] [--timeout S] "
		"COMMAND [ARG...]\n\n"
		"  --socket PATH  control socket (default $BACKSTOP_SOCKET or "
		DEFAULT_SOCKET ")\n"
		"  --json         print the reply as JSON (one line)\n"
		"  --timeout S    give up after S seconds (default 60)\n\n"
		"commands:\n");
	for (int i = 0; i < BS_CTL__MAX; i++) {
		char w[64];
		snprintf(w, sizeof(w), "%s %s", bs_ctl_cmd_desc[i].words,
			bs_ctl_cmd_desc[i].usage);
		fprintf(f, "  %-28s %s\n", w, bs_ctl_cmd_desc[i].help);
	}
	fprintf(f, "\nexit status: 0 done, 1 the command failed, 2 usage, "
		"3 no daemon on the socket\n");
}

/* ---- human output ---- */

static void
scalar(json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%.3f", json_real_value(v));
	else if (json_is_true(v))
		snprintf(buf, len, "yes");
	else if (json_is_false(v))
		snprintf(buf, len, "no");
	else if (json_is_null(v))
		snprintf(buf, len, "-");
	else {
		char *s = json_dumps(v, JSON_COMPACT);
		snprintf(buf, len, "%s", s ? s : "?");
		free(s);
	}
}

static bool
is_scalar(json_t *v)
{
	return !json_is_object(v) && !json_is_array(v);
}

/* "key  value" lines for the scalars of o (names prefixed), aligned. */
static void
print_pairs(json_t *o, const char *indent)
{
	const char *k;
	json_t *v;
	int w = 0;
	char buf[4096];
	json_object_foreach(o, k, v)
		if (is_scalar(v) && (int)strlen(k) > w)
			w = (int)strlen(k);
	json_object_foreach(o, k, v) {
		if (!is_scalar(v))
			continue;
		scalar(v, buf, sizeof(buf));
		printf("%s%-*s  %s\n", indent, w, k, buf);
	}
}

/* An array of objects as a table: header from the first element. */
static void
print_table(json_t *a)
{
	size_t n = json_array_size(a), nc = 0;
	const char *cols[32];
	int width[32];
	char buf[512];
	if (n == 0) {
		printf("  (none)\n");
		return;
	}
	if (!json_is_object(json_array_get(a, 0))) {
		for (size_t i = 0; i < n; i++) {
			scalar(json_array_get(a, i), buf, sizeof(buf));
			printf("  %s\n", buf);
		}
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach(json_array_get(a, 0), k, v) {
		if (nc < 32 && is_scalar(v)) {
			cols[nc] = k;
			width[nc++] = (int)strlen(k);
		}
	}
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < nc; c++) {
			scalar(json_object_get(json_array_get(a, i), cols[c]), buf,
				sizeof(buf));
			if ((int)strlen(buf) > width[c])
				width[c] = (int)strlen(buf);
		}
	printf(" ");
	for (size_t c = 0; c < nc; c++)
		printf(" %-*s", width[c], cols[c]);
	printf("\n");
	for (size_t i = 0; i < n; i++) {
		printf(" ");
		for (size_t c = 0; c < nc; c++) {
			scalar(json_object_get(json_array_get(a, i), cols[c]), buf,
				sizeof(buf));
			printf(" %-*s", width[c], buf);
		}
		printf("\n");
	}
}

static void
print_generic(json_t *r)
{
	const char *k;
	json_t *v;
	print_pairs(r, "");
	json_object_foreach(r, k, v) {
		if (json_is_object(v)) {
			printf("%s:\n", k);
			print_pairs(v, "  ");
		} else if (json_is_array(v)) {
			printf("%s:\n", k);
			print_table(v);
		}
	}
}

/* stats: one line per counter; per worker: a column each. */
static void
print_stats(json_t *r)
{
	json_t *c = json_object_get(r, "counters");
	json_t *ws = json_object_get(r, "workers");
	const char *k;
	json_t *v;
	int w = 0;
	json_object_foreach(c, k, v)
		if ((int)strlen(k) > w)
			w = (int)strlen(k);
	if (ws != NULL) {
		printf("%-*s  %14s", w, "counter", "total");
		for (size_t i = 0; i < json_array_size(ws); i++)
			printf("  %12s%zu", "worker", i);
		printf("\n");
	}
	json_object_foreach(c, k, v) {
		printf("%-*s  %14" JSON_INTEGER_FORMAT, w, k,
			json_integer_value(v));
		for (size_t i = 0; i < json_array_size(ws); i++) {
			json_t *wc = json_object_get(json_array_get(ws, i),
				"counters");
			printf("  %13" JSON_INTEGER_FORMAT,
				json_integer_value(json_object_get(wc, k)));
		}
		printf("\n");
	}
}

/* config show: "key: value", like the configuration file. */
static void
print_config(json_t *r)
{
	json_t *s = json_object_get(r, "settings");
	for (size_t i = 0; i < json_array_size(s); i++) {
		json_t *e = json_array_get(s, i);
		printf("%s: %s\n", json_string_value(json_object_get(e, "key")),
			json_string_value(json_object_get(e, "value")));
	}
}

static void
print_help(json_t *r)
{
	json_t *a = json_object_get(r, "commands");
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);
		char w[64];
		snprintf(w, sizeof(w), "%s %s",
			json_string_value(json_object_get(e, "cmd")),
			json_string_value(json_object_get(e, "usage")));
		printf("%-28s %s\n", w,
			json_string_value(json_object_get(e, "help")));
	}
}

/* ---- talking to the daemon ---- */

static int
connect_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "backstopctl: socket path too long\n");
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "backstopctl: %s: %s (is backstop running with "
			"control.socket set?)\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Send one line, read one reply line (malloc'd, NUL-terminated). */
static char *
roundtrip(int fd, const char *req, int timeout_ms)
{
	size_t len = strlen(req), off = 0;
	while (off < len) {
		ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			break; /* refused at accept: its reply says why */
		if (n < 0) {
			fprintf(stderr, "backstopctl: send: %s\n",
				strerror(errno));
			return NULL;
		}
		off += (size_t)n;
	}
	size_t cap = 65536, got = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int r = poll(&pf, 1, timeout_ms);
		if (r == 0) {
			fprintf(stderr, "backstopctl: no reply within %d s\n",
				timeout_ms / 1000);
			break;
		}
		if (got + 1 >= cap) {
			if (cap >= REPLY_MAX) {
				fprintf(stderr, "backstopctl: reply too large\n");
				break;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL)
				break;
			buf = nb;
			cap *= 2;
		}
		ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
		if (n <= 0) {
			fprintf(stderr, "backstopctl: connection closed before "
				"the reply\n");
			break;
		}
		char *nl = memchr(buf + got, '\n', (size_t)n);
		got += (size_t)n;
		if (nl != NULL) {
			*nl = '\0';
			return buf;
		}
	}
	free(buf);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *sock = getenv("BACKSTOP_SOCKET");
	bool as_json = false;
	double timeout_s = 60;
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	/* "+": options of the commands (--per-worker) come after them. */
	while ((c = getopt_long(argc, argv, "+s:jt:h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'j':
			as_json = true;
			break;
		case 't':
			timeout_s = strtod(optarg, NULL);
			if (timeout_s <= 0 || timeout_s > 86400) {
				fprintf(stderr, "backstopctl: bad timeout\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (sock == NULL || *sock == '\0')
		sock = DEFAULT_SOCKET;
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* The longest run of words that names a command. */
	int cmd = -1, used = 0;
	char words[128] = "";
	for (int i = optind; i < argc && i < optind + 3; i++) {
		size_t o = strlen(words);
		snprintf(words + o, sizeof(words) - o, "%s%s", o ? " " : "",
			argv[i]);
		int k = bs_ctl_cmd_find(words);
		if (k >= 0) {
			cmd = k;
			used = i - optind + 1;
		}
	}
	if (cmd < 0) {
		fprintf(stderr, "backstopctl: unknown command '%s' (backstopctl "
			"--help lists them)\n", argv[optind]);
		return EXIT_USAGE;
	}
	const struct bs_ctl_cmd_desc *d = &bs_ctl_cmd_desc[cmd];
	json_t *args = json_object();
	for (int i = optind + used; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) == 0 && a[2] != '\0') {
			char key[64];
			const char *eq = strchr(a, '=');
			size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			if (kl >= sizeof(key))
				kl = sizeof(key) - 1;
			for (size_t j = 0; j < kl; j++)
				key[j] = a[2 + j] == '-' ? '_' : a[2 + j];
			key[kl] = '\0';
			json_object_set_new(args, key, eq ? json_string(eq + 1)
							  : json_true());
			continue;
		}
		if (d->arg == NULL || json_object_get(args, d->arg) != NULL) {
			fprintf(stderr, "backstopctl: %s: unexpected argument "
				"'%s' (usage: %s %s)\n", d->words, a, d->words,
				d->usage);
			json_decref(args);
			return EXIT_USAGE;
		}
		if (strcmp(d->arg, "n") == 0) {
			char *end;
			long n = strtol(a, &end, 10);
			if (*end != '\0' || n <= 0) {
				fprintf(stderr, "backstopctl: %s: N must be a "
					"positive number\n", d->words);
				json_decref(args);
				return EXIT_USAGE;
			}
			json_object_set_new(args, d->arg, json_integer(n));
		} else if (strcmp(d->arg, "file") == 0 && a[0] != '/') {
			/* The daemon has its own working directory. */
			char cwd[PATH_MAX], full[PATH_MAX + 256];
			if (getcwd(cwd, sizeof(cwd)) == NULL) {
				perror("backstopctl: getcwd");
				json_decref(args);
				return EXIT_USAGE;
			}
			snprintf(full, sizeof(full), "%s/%s", cwd, a);
			json_object_set_new(args, d->arg, json_string(full));
		} else {
			json_object_set_new(args, d->arg, json_string(a));
		}
	}
	if (strncmp(d->usage, "FILE", 4) == 0 &&
			json_object_get(args, "file") == NULL) {
		fprintf(stderr, "backstopctl: usage: %s %s\n", d->words,
			d->usage);
		json_decref(args);
		return EXIT_USAGE;
	}
	json_t *req = json_pack("{s:s,s:o}", "cmd", d->words, "args", args);
	char *line = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	size_t ll = strlen(line);
	line = realloc(line, ll + 2);
	line[ll] = '\n';
	line[ll + 1] = '\0';

	int fd = connect_socket(sock);
	if (fd < 0) {
		free(line);
		return EXIT_CONN;
	}
	char *reply = roundtrip(fd, line, (int)(timeout_s * 1000));
	free(line);
	close(fd);
	if (reply == NULL)
		return EXIT_CONN;
	json_error_t je;
	json_t *r = json_loads(reply, 0, &je);
	if (r == NULL || !json_is_object(r)) {
		fprintf(stderr, "backstopctl: bad reply: %s\n", je.text);
		free(reply);
		json_decref(r);
		return EXIT_CONN;
	}
	int rc = 0;
	bool ok = json_is_true(json_object_get(r, "ok"));
	if (as_json) {
		printf("%s\n", reply);
		rc = ok ? 0 : EXIT_FAILED;
	} else if (!ok) {
		fprintf(stderr, "backstopctl: %s (%s)\n",
			json_string_value(json_object_get(r, "message")),
			json_string_value(json_object_get(r, "error")));
		rc = EXIT_FAILED;
	} else {
		json_t *res = json_object_get(r, "result");
		if (cmd == BS_CTL_STATS)
			print_stats(res);
		else if (cmd == BS_CTL_CONFIG_SHOW)
			print_config(res);
		else if (cmd == BS_CTL_HELP)
			print_help(res);
		else
			print_generic(res);
	}
	json_decref(r);
	free(reply);
	return rc;
}
