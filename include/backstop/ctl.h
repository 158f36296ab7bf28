/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control protocol: JSON lines over a UNIX stream socket
 * (docs/OPERATIONS.md has the reference).
 *
 *   request:  {"cmd": "stats", "args": {"per_worker": true}, "id": 7}
 *   reply:    {"ok": true, "id": 7, "result": {...}}
 *             {"ok": false, "id": 7, "error": "bad_argument",
 *              "message": "stats: unknown argument 'x'"}
 *
 * One request per line, one reply line per request, in order.  "id" is
 * optional (a string or an integer, echoed).  Requests are parsed with
 * jansson; anything else than an object with a known "cmd" and, per
 * command, known "args" is refused with an error code and a message, and
 * the connection stays usable (except after an oversized line, which
 * cannot be resynchronised: the reply says so and the server closes).
 *
 * The command table below is the one place commands are declared: the
 * server's dispatch, backstopctl's parser and both help texts come from
 * it.  A command's work is one handler supplied by the program (the
 * backstop daemon, or a test harness); a handler left NULL answers
 * "unavailable" (not in this build).
 *
 * No EAL: the protocol and the socket server are engine code, so the
 * fuzzer and unit tests drive exactly what the daemon runs.
 */
#ifndef BACKSTOP_CTL_H
#define BACKSTOP_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/* Longest request line (with its newline): requests are short; a client
 * must not make the daemon buffer without bound. */
#define BS_CTL_REQ_MAX (64u << 10)
/* Most bytes of replies queued to one client (stats per worker and flow
 * lists stay far below). */
#define BS_CTL_OUT_MAX (16u << 20)
/* Clients connected at once; more are told "busy" and closed. */
#define BS_CTL_CLIENTS_MAX 32
/* A client silent this long is closed (frees its slot). */
#define BS_CTL_IDLE_MS 60000

/*
 * Commands: X(id, words, arg, usage, help).  words is what the operator
 * types; arg is the member of "args" a positional argument fills (NULL:
 * none); usage documents the arguments, options included.
 */
#define BS_CTL_COMMANDS(X)                                                   \
	X(HELP, "help", NULL, "",                                            \
		"List the commands")                                         \
	X(STATUS, "status", NULL, "",                                        \
		"Rule-set generation, uptime, workers, ports, reloads")      \
	X(STATS, "stats", NULL, "[--per-worker]",                            \
		"Every counter, summed over workers (or per worker)")        \
	X(RULES_RELOAD, "rules reload", "file", "[FILE]",                    \
		"Compile the rule file (default: detect.rules) and publish " \
		"it; on error the running set stays")                        \
	X(CONFIG_RELOAD, "config reload", NULL, "",                          \
		"Re-read the configuration file and the rules; apply the "   \
		"settings that can change at run time (SIGHUP does the "     \
		"same)")                                                     \
	X(CONFIG_SHOW, "config show", NULL, "",                              \
		"The running settings")                                      \
	X(FLOWS_TOP, "flows top", "n", "[N]",                                \
		"The N SMTP flows (default 10) with the most bytes, over all "\
		"workers")       \
	X(LEDGER_STATS, "ledger stats", NULL, "",                            \
		"Outbound ledger figures")                                   \
	X(LEDGER_SAVE, "ledger save", NULL, "",                              \
		"Write the ledger snapshot now (to its configured path)")    \
	X(VERDICT_TEST, "verdict test", "file",                              \
		"FILE [--mail-from=ADDR] [--rcpt=ADDR]",                     \
		"Classify and judge a message file with the running rules "  \
		"and policy (envelope optional: null sender is --mail-from=)")

enum bs_ctl_cmd {
#define BS_CTL_ENUM_(id, words, arg, usage, help) BS_CTL_##id,
	BS_CTL_COMMANDS(BS_CTL_ENUM_)
#undef BS_CTL_ENUM_
	BS_CTL__MAX
};

struct bs_ctl_cmd_desc {
	const char *words;
	const char *arg;
	const char *usage;
	const char *help;
};

extern const struct bs_ctl_cmd_desc bs_ctl_cmd_desc[BS_CTL__MAX];

/* Error codes of replies (the "error" member). */
#define BS_CTL_E_BAD_JSON "bad_json"         /* not JSON, or not one object */
#define BS_CTL_E_BAD_REQUEST "bad_request"   /* members missing or wrong */
#define BS_CTL_E_UNKNOWN "unknown_command"
#define BS_CTL_E_BAD_ARG "bad_argument"
#define BS_CTL_E_TOO_LARGE "too_large"       /* line over BS_CTL_REQ_MAX */
#define BS_CTL_E_UNAVAILABLE "unavailable"   /* not in this build */
#define BS_CTL_E_FAILED "failed"             /* the operation failed */
#define BS_CTL_E_DENIED "denied"             /* peer uid/gid not allowed */
#define BS_CTL_E_BUSY "busy"                 /* too many clients */

/* Why a handler failed: a code above and a one-line message. */
struct bs_ctl_err {
	const char *code;
	char msg[512];
};

/* Set e (code, printf-style message); returns -1 for `return` use. */
int bs_ctl_fail(struct bs_ctl_err *e, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A command handler: args is the request's "args" object (never NULL;
 * members already checked to be the command's), result an empty object
 * to fill.  Returns 0, or -1 with *e set.  Runs on the control thread.
 */
typedef int (*bs_ctl_handler)(void *ctx, const json_t *args, json_t *result,
	struct bs_ctl_err *e);

struct bs_ctl_handlers {
	bs_ctl_handler fn[BS_CTL__MAX];
	void *ctx;
	/* Named in the "unavailable" reply of a NULL handler ("rules
	 * reload: not available in backstop-milter"); NULL: "this build". */
	const char *program;
};

/* Find a command by its words ("rules reload"); -1 if unknown. */
int bs_ctl_cmd_find(const char *words);

/*
 * Handle one request line (len bytes, without the newline): parse,
 * validate, dispatch, and return the reply line (JSON, newline
 * terminated, NUL-terminated) in a malloc'd buffer the caller frees, its
 * length in *out_len.  Never fails on bad input (the reply says what was
 * wrong); returns NULL only when out of memory.  Control thread.
 */
char *bs_ctl_handle_line(const struct bs_ctl_handlers *h, const char *line,
	size_t len, size_t *out_len);

/* An error reply line without a request (denied, busy, too large). */
char *bs_ctl_error_line(const char *code, const char *msg, size_t *out_len);

/* ---- the socket server ---- */

struct bs_ctl_server;

struct bs_ctl_server_params {
	const char *path;  /* socket path */
	mode_t mode;       /* permission bits of the socket */
	gid_t gid;         /* group of the socket; (gid_t)-1: the daemon's */
	bool gid_allowed;  /* clients whose primary group is gid may use it */
};

/*
 * Create the listening socket at p->path: a stale socket (nobody
 * answers) is replaced, a live one is an error, so two daemons never
 * share a path.  The socket is created owner-only, then given p->mode and
 * p->gid.  Returns NULL with a one-line reason in err.  Start-up.
 */
struct bs_ctl_server *bs_ctl_server_create(
	const struct bs_ctl_server_params *p, const struct bs_ctl_handlers *h,
	char *err, size_t errlen);

/*
 * Serve: wait up to timeout_ms for activity (listening socket, clients,
 * and extra_fd if >= 0), accept, read requests, answer them, write
 * replies without blocking.  Returns 1 if extra_fd is readable, else 0.
 * Control thread.
 */
int bs_ctl_server_poll(struct bs_ctl_server *s, int timeout_ms, int extra_fd);

/* Clients connected now. */
unsigned int bs_ctl_server_clients(const struct bs_ctl_server *s);

/* Requests answered, and clients refused (peer credentials), so far. */
uint64_t bs_ctl_server_requests(const struct bs_ctl_server *s);
uint64_t bs_ctl_server_denied(const struct bs_ctl_server *s);

/* Close every client and the socket, and remove the path. */
void bs_ctl_server_free(struct bs_ctl_server *s);

/*
 * Parse an octal mode ("0600", "660"): 0 and *out, or -1 if not octal
 * digits or above 0777.
 */
int bs_ctl_parse_mode(const char *s, mode_t *out);

/*
 * ---- command bodies shared by the programs (control/ctl_ops.c) ----
 *
 * The appliance (control/control.c) and backstop-milter
 * (milter/mf_control.c) serve the same protocol; what a command does is
 * the same code in both, given each program's own objects.  Control
 * thread; nothing here keeps a pointer it is given.
 */
struct bs_config;
struct bs_cfg_desc;
struct bs_counters;
struct bs_ledger;
struct bs_ruleset;
struct bs_verdict_policy;

/*
 * Open the control socket the settings ask for (control.socket,
 * control.socket_mode, control.socket_group): 0 with *out the server, or
 * with *out NULL when control.socket is empty; -1 with a one-line reason
 * in err (bad mode, unknown group, path in use).  Start-up.
 */
int bs_ctl_server_open(const struct bs_config *cfg,
	const struct bs_ctl_handlers *h, struct bs_ctl_server **out,
	char *err, size_t errlen);

/* Every counter of c as one JSON object {name: value}, in table order. */
json_t *bs_ctl_counters_json(const struct bs_counters *c);

/*
 * stats: the n counter blocks blk summed, with the process-wide rows
 * (counters.h BS_COUNTERS_PROCESS: ledger, storm) taken from process
 * (NULL: left as summed), as "counters"; with args.per_worker each block
 * too ("workers"); generation is the program's rule-set generation.  The
 * blocks may be written meanwhile (counters.h: per-writer blocks, summed
 * by the reader).
 */
int bs_ctl_stats(const json_t *args, json_t *result, uint64_t generation,
	const struct bs_counters *const *blk, unsigned int n,
	const struct bs_counters *process, struct bs_ctl_err *e);

/* The value of setting d in cfg as text (what config show prints). */
void bs_ctl_value_text(const struct bs_config *cfg,
	const struct bs_cfg_desc *d, char *buf, size_t len);
/* Is key one of keys[0..n)? */
bool bs_ctl_key_in(const char *key, const char *const *keys, size_t n);

/* config show: every setting's value in cfg, "live" for the keys the
 * program applies while running (live[0..n_live)). */
void bs_ctl_config_show(const struct bs_config *cfg, uint64_t generation,
	const char *const *live, size_t n_live, json_t *result);

/* ledger stats / ledger save on l; l NULL answers "unavailable", why_none
 * saying why the process has none. */
int bs_ctl_ledger_stats(struct bs_ledger *l, const char *why_none,
	json_t *result, struct bs_ctl_err *e);
int bs_ctl_ledger_save(struct bs_ledger *l, const char *why_none,
	json_t *result, struct bs_ctl_err *e);

/*
 * verdict test: classify and judge the message file args.file (envelope
 * args.mail_from, args.rcpt optional) with rules and pol, on contexts of
 * its own (counting nothing); NULL rules or pol: "failed".
 */
int bs_ctl_verdict_test(const struct bs_ruleset *rules,
	const struct bs_verdict_policy *pol, uint64_t generation,
	const json_t *args, json_t *result, struct bs_ctl_err *e);

#endif /* BACKSTOP_CTL_H */
