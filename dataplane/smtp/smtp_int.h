/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private state of the SMTP engine, shared by smtp_session.c (flows,
 * transactions, events), smtp_cmd.c (client direction) and smtp_reply.c
 * (server direction).  Nothing here is part of the public contract.
 */
#ifndef BACKSTOP_SMTP_INT_H
#define BACKSTOP_SMTP_INT_H

#include <stdint.h>

#include <openssl/evp.h>

#include "backstop/blkpool.h"
#include "backstop/smtp.h"

struct bs_smtp_ctx {
	struct bs_reasm_ctx reasm;
	struct bs_smtp_params p;
	struct bs_smtp_events ev;
	void *arg;
	struct bs_counters *cnt;
	uint64_t sess_bytes; /* charged to smtp.session_budget_bytes now */
	uint64_t now;        /* clock of the call under way (ms) */
	/* Pending-command rings of BS_SMTP_PEND_BASE entries: a flow holds
	 * one only while replies are due. */
	struct bs_blkpool pend_pool;
	/* Flows, transactions and first recipient arrays (BS_SMTP_RCPT_BASE
	 * entries) given back, reused: no malloc per session or message in
	 * steady state (issue 11). */
	struct bs_blkpool flow_pool;
	struct bs_blkpool txn_pool;
	struct bs_blkpool rcpt_pool;
};

/* Entries of a transaction's first recipient array (it doubles from
 * there up to smtp.rcpt_max). */
#define BS_SMTP_RCPT_BASE 4

/* Entries of a flow's first pending-command ring (it doubles from there
 * up to smtp.pipeline_max, which is at least this). */
#define BS_SMTP_PEND_BASE 8

/*
 * What an OpenSSL SHA-256 context costs (EVP_MD_CTX and the digest's
 * state; OpenSSL does not say, 3.0 allocates about 250 bytes): charged
 * to the session budget as a fixed amount.
 */
#define BS_SMTP_MD_COST 512

/*
 * A line that spans segments is copied here (allocated with the cap's
 * bytes when such a line starts, released once it is parsed); a line
 * inside one segment is parsed where it lies.
 */
struct bs_smtp_line {
	uint32_t len;   /* bytes kept */
	uint32_t total; /* bytes seen in this line, kept or not */
	uint8_t buf[];
};

/* bs_smtp_pend.flags */
#define BS_PF_LAST 0x01   /* BDAT ... LAST */
#define BS_PF_CHUNK 0x02  /* BDAT whose chunk we read as a chunk */
#define BS_PF_NESTED 0x04 /* MAIL inside an accepted transaction */
#define BS_PF_RESET 0x08  /* its reply may end the active transaction */

/*
 * A command waiting for its reply (replies come in command order).  txn
 * is where the command was put when it was seen; what it did is decided
 * on its reply, against the transaction the server then has.
 */
struct bs_smtp_pend {
	uint8_t cmd;   /* enum bs_smtp_cmd */
	uint8_t flags; /* BS_PF_* */
	uint16_t pad;
	uint32_t txn;  /* transaction seq it belongs to, 0 = none */
	uint32_t rcpt; /* RCPT index in the record, UINT32_MAX = not kept */
};

/* Transaction states (bs_smtp_txn.state). */
enum bs_smtp_tstate {
	BS_TS_MAIL = 0, /* MAIL seen, its reply not yet: may be refused */
	BS_TS_ACTIVE,   /* the server accepted the MAIL */
};

struct bs_smtp_txn {
	struct bs_smtp_record rec;
	struct bs_smtp_txn *open_next; /* the flow's open list, oldest first */
	EVP_MD_CTX *md;     /* SHA-256 of the content, if digests are on */
	uint32_t rcpt_cap;  /* entries allocated in rec.rcpt */
	uint32_t rcpt_ok;   /* RCPTs the server accepted, kept or not */
	uint32_t mem;       /* bytes charged to the session budget */
	uint8_t state;      /* enum bs_smtp_tstate */
	uint8_t msg_begun;  /* on_message_begin given */
};

/* Client direction modes. */
enum bs_smtp_cmode {
	BS_CM_CMD = 0, /* command lines */
	BS_CM_WAIT,    /* a reply decides how the next bytes read: hold */
	BS_CM_SASL,    /* next line is a SASL response: skip it */
	BS_CM_DATA,    /* DATA content until CRLF.CRLF */
	BS_CM_BDAT,    /* bdat_left raw bytes */
	BS_CM_IGNORE,  /* after QUIT, or the server hung up (521) */
};

/* The last greeting command the server accepted. */
enum bs_smtp_hello {
	BS_HELLO_NONE = 0,
	BS_HELLO_HELO, /* HELO: no extensions known */
	BS_HELLO_EHLO, /* EHLO: ext says what the server offers */
};

/* DATA content states (what the last bytes were). */
enum bs_smtp_dstate {
	BS_DS_BOL = 0, /* at the start of a line (after CRLF) */
	BS_DS_MID,     /* inside a line */
	BS_DS_CR,      /* after a CR inside a line */
	BS_DS_DOT,     /* after a '.' at the start of a line (held back) */
	BS_DS_DOTCR,   /* after ".\r" at the start of a line (held back) */
};

/*
 * One followed session.  Every established SMTP flow holds this for its
 * life, so it is kept small (docs/performance.md, memory per flow):
 * members by size, no padding holes; buffers that live only during an
 * exchange are pointers, NULL between exchanges.
 */
struct bs_smtp_flow {
	struct bs_reasm r;
	struct bs_smtp_ctx *ctx;
	void *user;
	uint64_t bdat_left;
	uint64_t mem;         /* bytes charged to the session budget */
	/*
	 * cur: where the client's next RCPT/DATA/BDAT goes, as far as the
	 * commands seen tell (the last MAIL, its message not sent).
	 * active: the transaction the server has, as its replies tell (its
	 * MAIL accepted, not ended).  They differ while replies are due.
	 */
	struct bs_smtp_txn *cur;
	struct bs_smtp_txn *active;
	struct bs_smtp_txn *data_txn; /* receives content, may be NULL */
	struct bs_smtp_txn *open; /* open transactions (<= BS_SMTP_TXN_OPEN_MAX),
				   * oldest first */
	struct bs_smtp_pend *pend; /* ring, while replies are due */
	uint8_t *hold; /* client bytes received in BS_CM_WAIT */
	struct bs_smtp_line *line[2]; /* per direction, while a line spans
				       * segments */
	/* The accepted HELO/EHLO name and the one awaiting its reply,
	 * each malloc'd to its length (charged; NULL: none): inline arrays
	 * of BS_SMTP_HELO_MAX cost every flow 512 bytes for its life. */
	char *helo;
	char *helo_pending;
	uint32_t data_linelen;
	uint32_t txn_seq;
	uint32_t hold_len;
	/* smtp.pipeline_max <= 32768 and smtp.reply_lines_max <= 65534
	 * (config_smtp.h) let these be 16 bits. */
	uint16_t pend_head, pend_n, pend_cap;
	uint16_t pend_resets; /* pending commands with BS_PF_RESET */
	uint16_t reply_lines; /* lines of the current reply (saturates) */
	uint16_t helo_len, helo_pending_len;
	uint8_t ext;          /* BS_SMTP_EXT_* of the last EHLO reply */
	uint8_t ext_pending;  /* collected from the current reply */
	struct bs_smtp_endpoints ep;
	uint8_t inspected;
	uint8_t why;     /* enum bs_smtp_why + 1 once uninspected */
	uint8_t cmode;   /* enum bs_smtp_cmode */
	uint8_t dstate;  /* enum bs_smtp_dstate */
	uint8_t greeted; /* the greeting reply was seen */
	uint8_t closed;  /* bit per direction: FIN reached */
	uint8_t bdat_last;
	uint8_t data_bare_lf; /* last DATA byte was a bare LF */
	uint8_t reply_over;   /* this reply passed reply_lines_max */
	uint8_t hello;        /* enum bs_smtp_hello */
	uint8_t hist_charged; /* bit per direction: history ring charged */
	uint8_t n_open;       /* transactions on the open list */
};

/* Reasons for bs_smtp_uninspect(). */
enum bs_smtp_why {
	BS_WHY_REASM = 0,
	BS_WHY_MIDSTREAM,
	BS_WHY_STARTTLS,
	BS_WHY_DESYNC,
	BS_WHY_PIPELINE,
	BS_WHY_WAIT,
	BS_WHY_NOMEM,
	BS_WHY_TXN_OPEN,
	BS_WHY_REPLY,  /* a reply that cannot answer its command */
	BS_WHY_BUDGET, /* smtp.session_budget_bytes reached */
};

/* smtp_session.c */
void bs_smtp_uninspect(struct bs_smtp_flow *f, enum bs_smtp_why why);
/*
 * Session budget: charge n bytes to the worker's smtp.session_budget_bytes
 * before allocating them.  Returns 0, or -ENOBUFS when the budget is
 * reached (the flow is then uninspected: the caller allocates nothing).
 */
int bs_smtp_mem_charge(struct bs_smtp_flow *f, uint64_t n);
void bs_smtp_mem_uncharge(struct bs_smtp_flow *f, uint64_t n);
void bs_smtp_helo_set(struct bs_smtp_flow *f, char **dst, uint16_t *len,
	const uint8_t *p, size_t n);
struct bs_smtp_txn *bs_smtp_txn_new(struct bs_smtp_flow *f);
struct bs_smtp_txn *bs_smtp_txn_find(struct bs_smtp_flow *f, uint32_t seq);
int bs_smtp_txn_rcpt_add(struct bs_smtp_flow *f, struct bs_smtp_txn *t,
	const char *addr, uint16_t len, uint32_t *idx);
void bs_smtp_txn_merge(struct bs_smtp_flow *f, struct bs_smtp_txn *from,
	struct bs_smtp_txn *into);
void bs_smtp_txn_message_begin(struct bs_smtp_flow *f,
	struct bs_smtp_txn *t);
void bs_smtp_txn_content(struct bs_smtp_flow *f, const uint8_t *p,
	uint32_t n);
void bs_smtp_txn_end_message(struct bs_smtp_flow *f, void *pkt);
void bs_smtp_txn_end(struct bs_smtp_flow *f, struct bs_smtp_txn *t,
	uint16_t reply);
int bs_smtp_pend_push(struct bs_smtp_flow *f, uint8_t cmd, uint32_t txn,
	uint32_t rcpt, uint8_t flags);
/* Take the oldest pending command off the ring (f->pend_n > 0). */
struct bs_smtp_pend bs_smtp_pend_pop(struct bs_smtp_flow *f);
size_t bs_smtp_line_feed(struct bs_smtp_flow *f, unsigned int dir,
	const uint8_t *p, size_t n, void *pkt);

/* smtp_cmd.c */
void bs_smtp_client_input(struct bs_smtp_flow *f, const uint8_t *p,
	size_t n, void *pkt);
void bs_smtp_cmd_line(struct bs_smtp_flow *f, const uint8_t *line,
	size_t len, void *pkt);
void bs_smtp_replay_hold(struct bs_smtp_flow *f);

/* smtp_reply.c */
void bs_smtp_reply_line(struct bs_smtp_flow *f, const uint8_t *line,
	size_t len, void *pkt);

#endif /* BACKSTOP_SMTP_INT_H */
