/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The SMTP session engine: both reassembled directions of a flow in,
 * transaction events out.  No EAL: the worker, the unit tests, the
 * fuzzers and the offline classifier drive the same code.
 *
 * The worker gives every TCP segment of a followed flow to
 * bs_smtp_flow_input().  The engine reassembles it (reasm.h), follows the
 * commands and the server's replies in order (PIPELINING included) and
 * calls the event table for each mail transaction:
 *
 *   on_txn_begin      MAIL FROM seen (helo, mail_from set); its reply
 *                     may still refuse it (then on_txn_end follows)
 *   on_message_begin  the message's first byte is next, exactly once
 *                     per message: DATA on the 354, BDAT when the first
 *                     chunk starts (possibly before any reply to MAIL,
 *                     RCPT or BDAT: recipients may have reply 0)
 *   on_data           message bytes after dot-unstuffing, in order
 *   on_end_of_message the message is complete; pkt is the segment that
 *                     carries its last byte (NULL if it left already)
 *   on_txn_end        always paired with on_txn_begin: the final reply
 *                     arrived, the transaction was refused or aborted,
 *                     or the flow ended; rec->complete says if a
 *                     message was sent.  A message begun and not
 *                     complete is aborted here.
 *
 * State changes where the server makes them: on its reply (RSET,
 * EHLO/HELO, MAIL, RCPT, DATA), as Postfix's smtpd does.  A reply that
 * cannot answer its command is a desynchronisation.
 *
 * A flow the engine cannot follow (STARTTLS, mid-stream pickup, holes,
 * caps, desynchronisation) becomes uninspected: open transactions end,
 * later segments are passed untouched (fail-open), a counter says why.
 */
#ifndef BACKSTOP_SMTP_H
#define BACKSTOP_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/reasm.h"

/* Longest address kept: RFC 5321 4.5.3.1.3 path is 256 with "<>". */
#define BS_SMTP_ADDR_MAX 256
/* Longest HELO/EHLO argument kept (a domain is at most 255). */
#define BS_SMTP_HELO_MAX 256
/* Longest MAIL FROM parameter string kept. */
#define BS_SMTP_PARAMS_MAX 256
/*
 * Transactions open at once in one flow.  More than two needs a client
 * that pipelines a new MAIL behind BDAT LAST twice before any reply.
 */
#define BS_SMTP_TXN_OPEN_MAX 4
/*
 * Bytes that always hold the JSON line of a record with nrcpt recipients:
 * every string byte may become a 6-byte \u00XX escape (helo and
 * mail_from: 2 x 255 x 6 = 3060), plus keys, addresses and digest.
 */
#define BS_SMTP_JSON_MAX(nrcpt)                                              \
	(4096 + (size_t)(nrcpt) * (BS_SMTP_ADDR_MAX * 6 + 4))

/* Extensions the server offered in its EHLO reply (bit mask). */
#define BS_SMTP_EXT_PIPELINING 0x01
#define BS_SMTP_EXT_CHUNKING 0x02
#define BS_SMTP_EXT_STARTTLS 0x04
#define BS_SMTP_EXT_SIZE 0x08
#define BS_SMTP_EXT_8BITMIME 0x10
#define BS_SMTP_EXT_SMTPUTF8 0x20
#define BS_SMTP_EXT_AUTH 0x40
#define BS_SMTP_EXT_DSN 0x80

/*
 * bs_smtp_endpoints.server_inside: where the server is.  Zero is
 * "unknown" so that endpoints nobody filled in (tests, the offline
 * classifier) never pass for outbound mail, which the ledger learns from.
 */
#define BS_SIDE_UNKNOWN 0 /* no side known (a lone reflecting port) */
#define BS_SIDE_INSIDE 1  /* on the protected side: inbound mail to its MX */
#define BS_SIDE_OUTSIDE 2 /* outside: outbound mail from the protected side */

/* Both ends of a flow, client first.  IPv4 in the first 4 bytes. */
struct bs_smtp_endpoints {
	uint8_t l3; /* BS_L3_IPV4 or BS_L3_IPV6 (pkt.h) */
	uint8_t client[16];
	uint8_t server[16];
	uint16_t cport, sport;
	/*
	 * BS_SIDE_*: set by the worker from the ingress port of the flow's
	 * packets (the port of its inline pair that faces the protected
	 * mail servers, dataplane.inside_port).
	 */
	uint8_t server_inside;
};

struct bs_smtp_rcpt {
	char addr[BS_SMTP_ADDR_MAX]; /* NUL-terminated; may hold any byte */
	uint16_t len;
	uint16_t reply; /* reply code to the RCPT, 0 = none yet */
};

/* One mail transaction; the event log writes it as one JSON line. */
struct bs_smtp_record {
	uint64_t ts_ms;  /* when it ended (caller's clock + clock offset) */
	uint32_t seq;    /* transaction number in the flow, from 1 */
	struct bs_smtp_endpoints ep;
	char helo[BS_SMTP_HELO_MAX];
	uint16_t helo_len;
	char mail_from[BS_SMTP_ADDR_MAX]; /* inside <>; "" = null sender */
	uint16_t mail_from_len;
	char mail_params[BS_SMTP_PARAMS_MAX]; /* after the address */
	uint16_t mail_params_len;
	uint16_t mail_reply; /* reply to MAIL, 0 = none */
	uint32_t nrcpt;      /* recipients given (accepted or not) */
	uint32_t rcpt_dropped; /* past smtp.rcpt_max, not kept */
	struct bs_smtp_rcpt *rcpt; /* nrcpt entries */
	uint64_t size;    /* message bytes after dot-unstuffing */
	uint16_t reply;   /* final reply code, 0 = none */
	uint8_t complete; /* the whole message was sent */
	uint8_t bdat;     /* sent with BDAT (CHUNKING) */
	uint8_t has_sha256;
	uint8_t sha256[32];
	uint32_t ext;     /* BS_SMTP_EXT_* offered by the server */
};

struct bs_smtp_flow;

/*
 * Event table.  Every entry may be NULL.  arg is the pointer given to
 * bs_smtp_ctx_create(); f is the flow (see bs_smtp_flow_user()).  rec
 * and data are owned by the engine and valid during the call only.
 * Callbacks run on the worker inside bs_smtp_flow_input() and must not
 * call back into the engine for the same flow.
 */
struct bs_smtp_events {
	void (*on_txn_begin)(void *arg, struct bs_smtp_flow *f,
		const struct bs_smtp_record *rec);
	void (*on_message_begin)(void *arg, struct bs_smtp_flow *f,
		const struct bs_smtp_record *rec);
	void (*on_data)(void *arg, struct bs_smtp_flow *f,
		const struct bs_smtp_record *rec, const uint8_t *data,
		uint32_t len);
	void (*on_end_of_message)(void *arg, struct bs_smtp_flow *f,
		const struct bs_smtp_record *rec, void *pkt);
	void (*on_reply)(void *arg, struct bs_smtp_flow *f, uint16_t code,
		int cmd);
	void (*on_txn_end)(void *arg, struct bs_smtp_flow *f,
		const struct bs_smtp_record *rec);
};

/* Engine parameters, normally from struct bs_config. */
struct bs_smtp_params {
#define BS_SMTP_PARAM_(field, key, type, def, lo, hi, help)                  \
	BS_CFG_CTYPE_##type field;
	BS_CFG_SMTP(BS_SMTP_PARAM_)
#undef BS_SMTP_PARAM_
	int64_t clock_offset_ms; /* added to now_ms for record timestamps */
};

/* Fill *p with the defaults of the config rows (config_smtp.h). */
void bs_smtp_params_default(struct bs_smtp_params *p);

/* Copy the SMTP rows of *cfg into *p (clock offset set to 0). */
static inline void
bs_smtp_params_from_config(struct bs_smtp_params *p,
	const struct bs_config *cfg)
{
#define BS_SMTP_PARAM_COPY_(field, key, type, def, lo, hi, help)             \
	p->field = cfg->field;
	BS_CFG_SMTP(BS_SMTP_PARAM_COPY_)
#undef BS_SMTP_PARAM_COPY_
	p->clock_offset_ms = 0;
}

/* Commands, as reported by on_reply (cmd). */
enum bs_smtp_cmd {
	BS_SMTP_CMD_GREETING = 0,
	BS_SMTP_CMD_EHLO,
	BS_SMTP_CMD_HELO,
	BS_SMTP_CMD_MAIL,
	BS_SMTP_CMD_RCPT,
	BS_SMTP_CMD_DATA,
	BS_SMTP_CMD_DOT, /* end of DATA content */
	BS_SMTP_CMD_BDAT,
	BS_SMTP_CMD_RSET,
	BS_SMTP_CMD_NOOP,
	BS_SMTP_CMD_QUIT,
	BS_SMTP_CMD_STARTTLS,
	BS_SMTP_CMD_AUTH,
	BS_SMTP_CMD_OTHER,
};

struct bs_smtp_ctx;

/*
 * Create the per-worker engine context.  params is copied; ev (copied)
 * and arg are passed to every event; cnt is the worker's counter block
 * and must outlive the context.  Returns NULL on allocation failure.
 * Start-up, any thread; then used by one worker only.
 */
struct bs_smtp_ctx *bs_smtp_ctx_create(const struct bs_smtp_params *params,
	const struct bs_smtp_events *ev, void *arg, struct bs_counters *cnt);

/* Free the context.  All its flows must have been freed before. */
void bs_smtp_ctx_free(struct bs_smtp_ctx *ctx);

/*
 * Change the offset added to the caller's clock for record timestamps
 * (the owner keeps its wall clock right while the process runs for
 * months: TSC drift, NTP steps).  Owner worker only.
 */
void bs_smtp_ctx_set_clock_offset(struct bs_smtp_ctx *ctx, int64_t off_ms);

/* Out-of-order bytes held by all flows of ctx now. */
uint64_t bs_smtp_ctx_held(const struct bs_smtp_ctx *ctx);

/*
 * Bytes of session memory charged to smtp.session_budget_bytes by all
 * flows of ctx now: engine state, transactions and their recipients,
 * pending-command rings, the wait hold, line buffers and history rings
 * (out-of-order data has its own budget, bs_smtp_ctx_held()).  0 once
 * every flow is freed.
 */
uint64_t bs_smtp_ctx_session_bytes(const struct bs_smtp_ctx *ctx);

/*
 * Start following a flow.  ep gives the client and server endpoints (the
 * record reports them).  Returns the per-flow state to store in
 * bs_flow.app, or NULL when memory is short or the worker's session
 * budget is spent (pass the flow untracked; smtp_nomem or
 * smtp_session_budget says which).
 * Owner worker only; free with bs_smtp_flow_free().
 */
struct bs_smtp_flow *bs_smtp_flow_new(struct bs_smtp_ctx *ctx,
	const struct bs_smtp_endpoints *ep);

/*
 * Process one TCP segment of the flow.  now_ms is the worker's clock in
 * ms.  Events are called from inside.  Returns BS_SEG_PASS, or
 * BS_SEG_DROP when the segment retransmits delivered bytes with other
 * content (normalisation; a monitor-mode caller may still forward it).
 * Never fails; see bs_smtp_flow_inspected().  Owner worker only.
 */
enum bs_seg_verdict bs_smtp_flow_input(struct bs_smtp_ctx *ctx,
	struct bs_smtp_flow *f, const struct bs_seg *seg, uint64_t now_ms);

/*
 * True while the engine follows the flow; false once it passes the flow
 * uninspected for good (the worker may stop calling input for it).
 */
bool bs_smtp_flow_inspected(const struct bs_smtp_flow *f);

/*
 * Why the engine stopped inspecting f (coverage.h's reasons: starttls,
 * midstream, desync, caps, reasm), or -1 while it inspects.  Owner.
 */
int bs_smtp_flow_why(const struct bs_smtp_flow *f);

/*
 * Commands of f awaiting the server's reply now (PIPELINING: replies
 * come in command order).  Read-only; may be called from an event of f.
 */
uint32_t bs_smtp_flow_pending(const struct bs_smtp_flow *f);

/*
 * Of those, how many belong to a transaction other than seq (commands
 * outside any transaction, such as NOOP or RSET, do not count): replies a
 * refusal of transaction seq must not answer.  Read-only.
 */
uint32_t bs_smtp_flow_pending_other(const struct bs_smtp_flow *f,
	uint32_t seq);

/*
 * The next sequence number the receiver of direction to_server (1: the
 * server, 0: the client) expects, as reassembly has seen the stream: all
 * bytes delivered in order, plus one for a FIN reached.  0 when that
 * direction is not open.  Read-only.
 */
uint32_t bs_smtp_flow_rcv_nxt(const struct bs_smtp_flow *f, bool to_server);

/* True once both directions ended (FIN reached or RST). */
bool bs_smtp_flow_closed(const struct bs_smtp_flow *f);

/*
 * End the flow: open transactions get on_txn_end (a sent message whose
 * reply never came has reply 0), held memory returns to the worker's
 * budget, f is freed.  NULL is a no-op.  Owner worker only; call it from
 * the flow table's release callback.
 */
void bs_smtp_flow_free(struct bs_smtp_ctx *ctx, struct bs_smtp_flow *f,
	uint64_t now_ms);

/* The next stage's per-flow pointer (NULL at first). */
void *bs_smtp_flow_user(const struct bs_smtp_flow *f);
void bs_smtp_flow_set_user(struct bs_smtp_flow *f, void *user);

/* Extensions the server offered (BS_SMTP_EXT_*). */
uint32_t bs_smtp_flow_ext(const struct bs_smtp_flow *f);

/* Bytes of the per-flow state, without held data and line buffers. */
size_t bs_smtp_flow_size(void);

/*
 * Write rec as one JSON object and a newline into buf (len bytes, see
 * BS_SMTP_JSON_MAX), NUL-terminated.  Keys: ts, flow {src, sport, dst,
 * dport} (client = src), helo, mail_from, rcpt (accepted recipients),
 * size, reply, and sha256 if rec->has_sha256.  Strings are escaped:
 * quote, backslash, control characters and bytes that are not valid
 * UTF-8 become \uXXXX (a byte b becomes \u00XX).  Returns the length
 * written, or -ENOSPC if buf is too small.  Any thread.
 */
int bs_smtp_record_json(const struct bs_smtp_record *rec, char *buf,
	size_t len);

/* Short name of a command, for logs and tests. */
const char *bs_smtp_cmd_name(int cmd);

#endif /* BACKSTOP_SMTP_H */
