/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NDR detection: is this message a bounce (or another automatic
 * notification), and what does it say about the original it answers?
 *
 * Three objects, three lifetimes:
 *  - struct bs_ruleset (rules.h): compiled once, read-only, shared.
 *  - struct bs_detect_ctx: one per worker per rule set; holds the Hyperscan
 *    scratch.  Only its owner thread uses it.
 *  - struct bs_msg: one per message in flight (one SMTP transaction's
 *    DATA); holds the Hyperscan stream and the MIME parser state.
 *
 * Only bounce candidates pay for scanning: a message whose envelope sender
 * is null, or whose top-level header says it is automatic (Auto-Submitted,
 * Precedence, multipart/report, a MAILER-DAEMON or postmaster From, ...).
 * The header is parsed as it arrives; header lines are held back until the
 * decision, then fed to the stream, so a non-candidate costs one pass of the
 * header parser and nothing more.
 *
 * Fail-open: nothing here aborts.  Allocation or Hyperscan errors end
 * scanning for the message and are reported in result.fail; the caller
 * passes such mail.
 */
#ifndef BACKSTOP_DETECT_H
#define BACKSTOP_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backstop/mime.h"
#include "backstop/rules.h"

struct bs_counters;

/* Matched rule ids kept in a result (the count of all matched is kept). */
#define BS_DETECT_RULES_MAX 16
/* Hyperscan streams a candidate message uses at most (one per database:
 * header lines, folded body text, body lines); a context keeps as many
 * spares. */
#define BS_DETECT_STREAMS_MAX 3
/*
 * Ended messages (and their streams) a context keeps for reuse: a worker
 * follows many sessions at once, so this many messages in flight cost no
 * malloc in steady state; what it keeps is bounded (BS_DETECT_POOL_MAX
 * x bs_msg_size(), 12 MB per worker at most).
 */
#define BS_DETECT_POOL_MAX 256
/* Header bytes held back while the candidate decision is pending. */
#define BS_DETECT_HOLD_MAX 8192

/* Evidence behind a class (bit mask, in result.evidence). */
enum bs_evidence {
	BS_EV_NULL_SENDER = 1u << 0,    /* envelope MAIL FROM:<> */
	BS_EV_NULL_RP = 1u << 1,        /* Return-Path: <> or From: <> */
	BS_EV_DAEMON_FROM = 1u << 2,    /* From MAILER-DAEMON, postmaster */
	BS_EV_AUTO_SUBMITTED = 1u << 3, /* Auto-Submitted: auto-* */
	BS_EV_REPORT_DSN = 1u << 4,     /* message/delivery-status part */
	BS_EV_REPORT_ARF = 1u << 5,     /* message/feedback-report part */
	BS_EV_REPORT_MDN = 1u << 6,     /* disposition notification */
	BS_EV_ORIGINAL = 1u << 7,       /* an embedded original was found */
	BS_EV_RULE_DSN = 1u << 8,       /* a strong dsn rule matched */
	BS_EV_RULE_DSN_WEAK = 1u << 9,  /* only weak dsn rules matched */
	BS_EV_RULE_AUTOREPLY = 1u << 10,
	BS_EV_RULE_FEEDBACK = 1u << 11,
	BS_EV_RULE_CHALLENGE = 1u << 12,
	BS_EV_AUTOREPLY_HDR = 1u << 13, /* X-Autoreply, auto-replied */
	BS_EV_FAILED_RCPT = 1u << 14,   /* X-Failed-Recipients */
	BS_EV_DAEMON_SENDER = 1u << 15, /* MAIL FROM:<MAILER-DAEMON@...> */
	BS_EV_FROM_SIGNATURE = 1u << 16, /* a dsn rule matched the From */
	/* The gate opened on a Subject or From signature alone (ordinary
	 * sender, no automatic header): stronger evidence is needed. */
	BS_EV_SIGNATURE_GATE = 1u << 17,
};

/* Why a message was not (fully) inspected (bit mask, result.fail). */
enum bs_detect_fail {
	BS_DF_NOMEM = 1u << 0,     /* stream allocation failed */
	BS_DF_HS = 1u << 1,        /* Hyperscan returned an error */
	BS_DF_HOLD_FULL = 1u << 2, /* held header over HOLD_MAX (cut) */
	BS_DF_NO_RULES = 1u << 3,  /* empty rule set */
};

struct bs_detect_result {
	uint8_t cls;            /* enum bs_class */
	bool candidate;         /* passed the gate, was scanned */
	uint32_t evidence;      /* enum bs_evidence */
	uint32_t fail;          /* enum bs_detect_fail */
	uint64_t bytes;         /* message bytes fed */
	uint64_t bytes_scanned; /* bytes handed to Hyperscan */
	uint16_t n_rules;       /* matched rules (all of them) */
	uint16_t n_rule_ids;    /* kept in rule_ids (rule file order) */
	uint32_t rule_ids[BS_DETECT_RULES_MAX];
	struct bs_mime_info mime; /* DSN fields, the original, facts */
};

struct bs_detect_ctx;
struct bs_msg;

/*
 * Per-worker context for rule set rs (which must outlive it).  Returns
 * NULL on allocation failure.  Creation allocates (control thread or
 * worker start-up); the caller owns the context.
 */
struct bs_detect_ctx *bs_detect_ctx_create(const struct bs_ruleset *rs);

/* Count into the worker's counter block (NULL: do not count). */
void bs_detect_ctx_set_counters(
        struct bs_detect_ctx *ctx, struct bs_counters *cnt);

/* Free a context with no message in flight.  NULL is fine. */
void bs_detect_ctx_free(struct bs_detect_ctx *ctx);

/*
 * Start a message.  mail_from is the envelope reverse path without angle
 * brackets: "" for the null sender, NULL when unknown (offline: classify
 * on content alone).  rcpts (n_rcpts of them, may be NULL) are accepted for
 * the verdict stage's use and not looked at by detection today.  Returns a
 * message that the caller must pass to bs_msg_end() (or bs_msg_abort()), or
 * NULL if out of memory (fail-open: pass the mail).  Owner thread of ctx only.
 */
struct bs_msg *bs_msg_begin(struct bs_detect_ctx *ctx, const char *mail_from,
        const char *const *rcpts, unsigned int n_rcpts);

/*
 * Feed the next len bytes of the message as it appears in DATA (after
 * dot-unstuffing; CRLF or LF).  Chunks of any size; matches span chunks.
 * Returns 0, or a negative errno after a failure that ended scanning (the
 * message can still be fed and ended; result.fail says why).
 */
int bs_msg_feed(struct bs_msg *msg, const uint8_t *buf, size_t len);

/*
 * End of message: finish parsing and scanning, classify, write *out and
 * free msg.  Returns 0 (the class may be none).
 */
int bs_msg_end(struct bs_msg *msg, struct bs_detect_result *out);

/* Drop a message without a result (connection gone).  NULL is fine. */
void bs_msg_abort(struct bs_msg *msg);

/*
 * What a context holds now: messages begun and not yet ended or aborted,
 * Hyperscan streams held by them, and the allocations behind both
 * (including the messages and streams kept for reuse: at most
 * BS_DETECT_POOL_MAX messages and BS_DETECT_POOL_MAX x BS_DETECT_STREAMS_MAX
 * streams once no message is in flight).  Leak checks (fuzzers, tests)
 * assert on it; the same levels are the gauges detect_msgs_live and
 * detect_streams_live.  Owner thread.
 */
struct bs_detect_live {
	uint32_t msgs, msgs_alloc;
	uint32_t streams, streams_alloc;
};
void bs_detect_ctx_live(
        const struct bs_detect_ctx *ctx, struct bs_detect_live *out);

/* Size of a struct bs_msg, for sizing memory caps. */
size_t bs_msg_size(const struct bs_detect_ctx *ctx);

/* True if the class is a bounce (what backscatter filtering acts on). */
static inline bool
bs_class_is_bounce(enum bs_class c)
{
	return c == BS_CLASS_DSN;
}

/*
 * Write r as one JSON object (no newline) into buf, NUL-terminated, every
 * string escaped (control characters as \u00XX; bytes that are not valid
 * UTF-8 as \u00XX of their Latin-1 reading).  Returns the length the
 * object needs (like snprintf: the output was cut if >= len).  extra, if
 * not NULL, is inserted verbatim as the first members (e.g.
 * "\"file\":\"a.eml\","), so callers add their own keys.  Any thread.
 */
size_t bs_detect_result_json(const struct bs_detect_result *r,
        const char *extra, char *buf, size_t len);

/* Append s (n bytes) to buf as a JSON string with quotes; helper of the
 * above, exported for callers that build the extra members.  Returns the
 * length needed, like snprintf. */
size_t bs_json_string(char *buf, size_t len, const char *s, size_t n);

#endif /* BACKSTOP_DETECT_H */
