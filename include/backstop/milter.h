/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backstop-milter's core: the messages an MTA passes through the milter
 * protocol (envelope, header fields one by one, body chunks) turned back
 * into the bytes detection expects, judged by exactly the detection and
 * verdict code the appliance's workers run, and the answer (accept, or
 * refuse with 550 5.7.1 at the end of the message).
 *
 * No libmilter here: milter/milter_main.c maps libmilter's callbacks onto
 * these calls, the fuzzer and the unit tests drive them directly.
 *
 * Threads.  libmilter runs each MTA connection on a thread of its own
 * (Debian's build: one detached thread per connection, created and
 * ended with the connection).  Contexts with per-thread state (Hyperscan
 * scratch in the detection context, OpenSSL contexts in the verdict
 * context, a ledger ring and a storm sketch, a counter block for the
 * detection and verdict rows) are kept in a pool of milter.max_messages
 * slots: a message checks one out at its first content byte and gives it
 * back at its end, so at most that many messages are judged at once and
 * a slot is used by one thread at a time (the pool's mutex orders
 * successive owners).  A message with no free
 * slot is accepted unjudged and counted (fail-open).
 *
 * Counters.  Per writer, plain stores, summed by the reader, as the
 * appliance's workers count: a slot's block is written by its holder; the
 * milter rows go to a block each connection holds from bs_mf_txn_new() to
 * bs_mf_txn_free() (given back with its values for the next connection,
 * so the blocks number the most connections open at once).  The control
 * socket, /metrics and SIGUSR1 read bs_mf_counters() while they count.
 *
 * RCU.  The ledger's table and the storm snapshot are read under
 * liburcu-qsbr.  A QSBR reader that blocks (a libmilter thread waiting
 * for the MTA) while online would stall every grace period, so each
 * thread registers on first use and stays offline, going online only
 * for the verdict (rcu_thread_online() ... rcu_thread_offline(), tens of
 * ns): a short read-side critical section.  A thread-specific key
 * unregisters the thread when libmilter ends it.
 */
#ifndef BACKSTOP_MILTER_H
#define BACKSTOP_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/ledger.h"
#include "backstop/rules.h"
#include "backstop/storm.h"
#include "backstop/verdict.h"

/* Which mail the milter sees (--role). */
enum bs_mf_role {
	BS_MF_INBOUND = 1,  /* judge every message */
	BS_MF_OUTBOUND = 2, /* learn every message, judge none */
	BS_MF_BOTH = 3,     /* learn originating mail, judge the rest */
};

/* Longest Message-ID header value kept for learning (the ledger refuses
 * longer identifiers, BS_MSGID_MAX). */
#define BS_MF_MSGID_MAX 1024
/* Longest reply text (SMTP: a reply line is at most 512 octets). */
#define BS_MF_REPLY_MAX 400

struct bs_mf_params {
	const struct bs_config *cfg;        /* outlives the core */
	const struct bs_ruleset *rules;     /* NULL: none loaded (fail-open) */
	const struct bs_verdict_policy *pol;
	struct bs_ledger *ledger;           /* NULL: no ledger */
	struct bs_storm *storm;             /* NULL: no storm mode */
	enum bs_mf_role role;
	/* Wall clock override for tests (seconds); 0: time(). */
	uint64_t now_s;
};

struct bs_mf;
struct bs_mf_txn;

/*
 * Create the core: milter.max_messages slots, each with a detection and
 * a verdict context and a ledger and storm part (so the ledger and storm
 * must have been created with n_parts >= that many).  Returns NULL with
 * a message in err.  Start-up.
 */
struct bs_mf *bs_mf_create(const struct bs_mf_params *p, char *err,
	size_t errlen);
/* Free the core (no transaction may be alive).  NULL is fine. */
void bs_mf_free(struct bs_mf *mf);

/* Slots in the pool (the n_parts the ledger and storm need). */
unsigned int bs_mf_slots(const struct bs_config *cfg);

/*
 * Sum every counter of the milter into *out (zeroed first): the slots'
 * blocks (detection and verdict rows), the connections' blocks (milter
 * rows), the spill block, the ledger's and the storm's rows.  Any thread,
 * while the MTA's threads count: each block has one writer at a time and
 * the reader sums them (counters.h), so every counter read is one its
 * writer stored and a later read is never smaller.
 */
void bs_mf_counters(const struct bs_mf *mf, struct bs_counters *out);

/* Counter blocks of connections made so far (the most connections open
 * at once).  Any thread. */
unsigned int bs_mf_counter_blocks(const struct bs_mf *mf);

/* Count a connection (xxfi_connect). */
void bs_mf_connection(struct bs_mf_txn *t);
/* Add one to counter c in t's block.  The thread serving t. */
void bs_mf_txn_inc(struct bs_mf_txn *t, enum bs_counter c);
/* Add one to counter c outside any connection (the glue out of memory
 * for one): an atomic add on a shared block, never on a message's
 * path.  Any thread. */
void bs_mf_inc(struct bs_mf *mf, enum bs_counter c);

/* What the MTA is to do with the message now. */
enum bs_mf_act {
	BS_MF_CONTINUE = 0, /* go on sending it */
	BS_MF_ACCEPT,       /* accept it; no more of it is needed */
	BS_MF_REJECT,       /* refuse it (end of message only), reply set */
};

/* One connection's state; its transactions follow one another. */
struct bs_mf_txn *bs_mf_txn_new(struct bs_mf *mf);
/* End the connection: a message in flight is dropped, counted
 * milter_unfinished.  NULL is fine. */
void bs_mf_txn_free(struct bs_mf_txn *t);
/* The MTA aborted the transaction (xxfi_abort, RSET): same as above, and
 * the next MAIL starts afresh. */
void bs_mf_txn_abort(struct bs_mf_txn *t);

/*
 * MAIL FROM: addr as the MTA gives it ("<a@b>" or "a@b"; "<>" the null
 * sender).  originating: the MTA says the client is ours (authenticated,
 * or the outbound daemon); with role both it makes the message outbound.
 * Starts a new transaction (an unfinished one is dropped first).
 */
void bs_mf_txn_mail(struct bs_mf_txn *t, const char *addr, bool originating);
/* RCPT TO accepted so far by the MTA (brackets optional). */
void bs_mf_txn_rcpt(struct bs_mf_txn *t, const char *addr);

/*
 * One header field as the milter protocol passes it: name, and value
 * without the line terminator, folded lines separated by LF.  leadspc:
 * the value keeps the white space after the colon (SMFIP_HDR_LEADSPC);
 * otherwise one space is put back.  Rebuilt as "name:value" CRLF.
 */
enum bs_mf_act bs_mf_txn_header(struct bs_mf_txn *t, const char *name,
	size_t nlen, const char *value, size_t vlen, bool leadspc);
/* End of header: the empty line. */
enum bs_mf_act bs_mf_txn_eoh(struct bs_mf_txn *t);
/* A body chunk, as the MTA passes it (CRLF lines, dot-unstuffed). */
enum bs_mf_act bs_mf_txn_body(struct bs_mf_txn *t, const uint8_t *buf,
	size_t len);

struct bs_mf_answer {
	uint8_t act;      /* enum bs_mf_act */
	bool judged;      /* the verdict ran */
	struct bs_verdict_result vr;
	uint8_t cls;      /* detection's class */
	char reply[BS_MF_REPLY_MAX]; /* REJECT: the text after "550 5.7.1 " */
};

/*
 * End of message: detection ends, the verdict runs (inbound) or the
 * Message-ID is learned (outbound), the slot goes back.  *out says what
 * to answer: BS_MF_REJECT only for a verdict whose action is refuse.
 */
enum bs_mf_act bs_mf_txn_eom(struct bs_mf_txn *t, struct bs_mf_answer *out);

/*
 * One JSON object (no newline) for the event log: ts, mail_from, rcpt,
 * outbound, class, judged, then the verdict's members when judged.  Call
 * after bs_mf_txn_eom() (the envelope is kept until the next MAIL).
 * Returns the length needed, like snprintf.  Owner thread of t.
 */
size_t bs_mf_txn_json(const struct bs_mf_txn *t, const struct bs_mf_answer *a,
	char *buf, size_t len);

/* For the libmilter glue: make the calling thread an RCU reader that is
 * offline (registered once, unregistered at thread exit). */
void bs_mf_thread_rcu(void);

#endif /* BACKSTOP_MILTER_H */
