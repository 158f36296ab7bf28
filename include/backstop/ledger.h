/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The outbound Message-ID ledger: which messages the protected domains
 * really sent, so that a bounce (or an out-of-office reply, through
 * In-Reply-To/References) can be matched to mail that left the domain.
 *
 * The appliance sits in the path both ways.  Workers record the
 * Message-ID of every message whose envelope sender is in a protected
 * domain; the bounce that answers it arrives later on another connection,
 * hence usually on another worker, so the ledger is shared:
 *
 *   worker w: bs_ledger_record() --(SPSC ring of w, 16-byte records)--+
 *                                                                     v
 *   writer thread (control/ledger_writer.c): insert, refresh, expire,
 *   evict the oldest, snapshot -> liburcu lock-free hash table (rculfhash)
 *                                                                     |
 *   any worker: bs_ledger_lookup() -- QSBR reader, no lock, no atomic RMW
 *
 * Keys are a keyed hash (SipHash-2-4, libsodium, 128-bit random secret
 * kept in the snapshot) of the normalised Message-ID, so an entry has a
 * fixed size whatever the input and an attacker who does not know the
 * secret cannot aim collisions.  Memory is allocated once, at creation,
 * from max_entries (docs/LEDGER.md gives the bytes per entry).
 *
 * A miss is evidence of forgery only once the ledger has watched for a
 * whole TTL without a break: until then lookups answer BS_LEDGER_WARMING.
 * The start of unbroken watching persists in the snapshot; a restart
 * that may have lost records (the previous run did not stop cleanly, or
 * the pause was longer than max_gap_s) starts the warm-up again.
 *
 * Contract 4 (helpers/CONTRACTS.md): the verdict reaches the ledger only
 * through bs_ledger_lookup() (worker-safe) wrapped in its ops table.
 */
#ifndef BACKSTOP_LEDGER_H
#define BACKSTOP_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bs_counters;
struct bs_ledger;
struct bs_ledger_part;

enum bs_ledger_answer {
	BS_LEDGER_OFF = 0, /* no ledger configured: no evidence */
	BS_LEDGER_MISS,    /* not seen, ledger warm: evidence of forgery */
	BS_LEDGER_HIT,     /* seen leaving a protected domain */
	BS_LEDGER_WARMING, /* not seen, but the ledger is younger than its
	                    * TTL: no evidence */
};

/*
 * Longest normalised Message-ID kept (bytes).  RFC 5322 limits a line to
 * 998 octets, so a longer identifier cannot have been written by a
 * conforming sender; it is neither recorded nor looked up (no evidence).
 */
#define BS_MSGID_MAX 998

/* Parameters (the verdict branch's YAML settings fill them; 0 = default). */
struct bs_ledger_params {
	uint32_t max_entries;       /* entries kept; the oldest is evicted */
	uint32_t ttl_s;             /* an entry answers for this long */
	const char *snapshot_path;  /* NULL or "": not persisted */
	uint32_t snapshot_period_s; /* periodic save (0: only at stop) */
	uint32_t max_gap_s;         /* a clean pause longer than this restarts
	                             * the warm-up (mail may have passed unseen,
	                             * e.g. through a bypass) */
	uint32_t ring_size;         /* records each worker may queue (2^n) */
	uint32_t n_parts;           /* workers that record (at least 1) */
	uint32_t drain_ms;          /* writer thread's period */
	/*
	 * Sharing one ledger between programs (the appliance and
	 * backstop-milter, docs/MILTER.md): each writes its own snapshot and
	 * merges the other's.  secret_file keys the hash (SHA-256 of its
	 * bytes, at least 16), so both key ids alike; a snapshot keyed
	 * otherwise is refused.  import_path is the other program's
	 * snapshot, checked every import_period_s: entries newer than the
	 * last ones merged are inserted; the start of watching becomes the
	 * later of the two; a peer snapshot older than max_gap_s (or none
	 * max_gap_s after start) restarts the warm-up.  NULL: not shared.
	 */
	const char *secret_file;
	const char *import_path;
	uint32_t import_period_s;
	/* Messages for the operator (syslog levels: LOG_ERR, LOG_WARNING,
	 * LOG_INFO), from the creating thread and the writer thread.  NULL:
	 * "backstop: ledger: ..." on stderr. */
	void (*log)(void *arg, int level, const char *msg);
	void *log_arg;
};

#define BS_LEDGER_DEF_MAX_ENTRIES 1048576u
#define BS_LEDGER_DEF_TTL_S (14u * 86400u)
#define BS_LEDGER_DEF_SNAPSHOT_PERIOD_S 300u
#define BS_LEDGER_DEF_MAX_GAP_S 600u
#define BS_LEDGER_DEF_RING_SIZE 4096u
#define BS_LEDGER_DEF_DRAIN_MS 100u
#define BS_LEDGER_DEF_IMPORT_PERIOD_S 10u
/* Bounds the creator enforces (-EINVAL outside). */
#define BS_LEDGER_MIN_ENTRIES 16u
#define BS_LEDGER_MAX_ENTRIES (1u << 26)
#define BS_LEDGER_MAX_PARTS 1024u

/* Fill *p with the defaults above (n_parts 1, no snapshot). */
void bs_ledger_params_default(struct bs_ledger_params *p);

/*
 * Create a ledger: allocates every entry, the hash table and one ring per
 * part; draws a fresh secret, or loads the snapshot at p->snapshot_path.
 * A snapshot that is missing starts an empty ledger; one that is corrupt
 * or foreign is refused (the reason is logged, the file is renamed to
 * PATH.refused so the next save cannot destroy it) and the ledger starts
 * empty, warming up.  Loaded entries become visible at the writer's first
 * step (bs_ledger_start() waits for it).  now_s is wall-clock seconds.
 * Returns NULL with a message in err on bad parameters or no memory.
 * Start-up (any thread; need not be an RCU reader).  The caller owns the
 * ledger; parts belong to it.
 */
struct bs_ledger *bs_ledger_create(const struct bs_ledger_params *p,
	uint64_t now_s, char *err, size_t errlen);

/* Free everything (stop the writer first).  NULL is fine. */
void bs_ledger_destroy(struct bs_ledger *l);

/* The part of worker idx (< n_parts), for bs_ledger_record(). */
struct bs_ledger_part *bs_ledger_part(struct bs_ledger *l, unsigned int idx);

/*
 * Worker, at the end of an outbound message whose envelope sender is in a
 * protected domain: queue its Message-ID (the header's value, raw: the
 * ledger normalises it) with the wall-clock time now_s.  Never blocks,
 * allocates or enters the kernel: it normalises into a stack buffer,
 * hashes and copies 16 bytes into the worker's ring.  Returns 0;
 * -EINVAL when the value holds no usable identifier (nothing recorded;
 * counted ledger_bad_msgid); -ENOSPC when the ring is full (the record
 * is lost; counted ledger_ring_dropped).  Only the owner of p calls it.
 */
int bs_ledger_record(struct bs_ledger_part *p, const char *msgid, size_t len,
	uint64_t now_s);

/*
 * Was this Message-ID (raw header value or msg-id token) seen leaving a
 * protected domain within the TTL?  l == NULL or a value with no usable
 * identifier (empty, longer than BS_MSGID_MAX) answer BS_LEDGER_OFF: no
 * evidence either way.  Lock-free and wait-free for the caller; must run
 * on a registered liburcu-qsbr thread (the workers are), outside any
 * offline period.  Only the first identifier of a list is looked up:
 * walk References with bs_msgid_next().
 */
enum bs_ledger_answer bs_ledger_lookup(const struct bs_ledger *l,
	const char *msgid, size_t len, uint64_t now_s);

/*
 * Start the writer thread: it registers with liburcu-qsbr, inserts the
 * loaded entries (this call returns after that first step), then every
 * drain_ms drains the rings, expires, evicts and saves the snapshot every
 * snapshot_period_s; it stays offline while it sleeps, so it never holds
 * up a grace period.  Returns 0, or -errno (thread creation).  Control.
 */
int bs_ledger_start(struct bs_ledger *l);

/*
 * Stop the writer: last drain, then a snapshot marked clean, then the
 * thread ends.  Stop the workers first (what they record after the last
 * drain is lost).  Without a running thread it only writes the clean
 * snapshot, stamped like bs_ledger_save()'s.  Control.
 */
void bs_ledger_stop(struct bs_ledger *l);

/*
 * One writer step, for callers that run the writer themselves (tests,
 * tools) instead of bs_ledger_start(): drain, expire, save when due.
 * Never together with the thread.  The caller must be a registered
 * liburcu-qsbr thread (the hash table requires it).  Returns 0 or the
 * snapshot's -errno when a due save failed (logged; retried next period).
 */
int bs_ledger_tick(struct bs_ledger *l, uint64_t now_s);

/*
 * Write the snapshot now (the `ledger save` control command): with the
 * writer running, asks it and waits for the result; otherwise writes in
 * the caller (which must then be the one running the steps), stamped
 * with the time of the last step (or of creation).  Atomic:
 * a temporary file, fsync, rename, fsync of the directory.  Returns 0,
 * -ENOENT when no snapshot path is set, or -errno with err filled.
 */
int bs_ledger_save(struct bs_ledger *l, char *err, size_t errlen);

struct bs_ledger_stats {
	uint64_t entries, capacity;
	uint64_t recorded, ring_dropped, bad_msgid; /* summed over parts */
	uint64_t inserts, refreshes, evictions, expirations;
	uint64_t snapshot_saves, snapshot_failures;
	uint64_t snapshot_age_s; /* since the last save or load; 0: never */
	uint64_t warm_since_s;   /* start of unbroken watching */
	bool warming;
	uint64_t bytes;          /* memory held (entries, table, rings) */
	uint64_t imported, import_failures; /* shared ledger */
	bool peer_stale;
};

/* Any thread; values are at most one writer step old. */
void bs_ledger_stats(const struct bs_ledger *l, uint64_t now_s,
	struct bs_ledger_stats *st);

/*
 * Add the ledger's rows (counters_ledger.h) into a counter block the
 * caller summed over the workers (main's report, the exporter).  Any
 * thread.  NULL l adds nothing.
 */
void bs_ledger_counters(const struct bs_ledger *l, uint64_t now_s,
	struct bs_counters *c);

/*
 * Message-ID normalisation (contract 4): the addr-spec inside <>, local
 * part byte for byte, domain part (after the last '@') in ASCII lower
 * case, folding white space removed; comments and white space around the
 * identifier skipped; without <> the first bare token.  Writes at most
 * cap bytes to out (not terminated).  Returns the length (>= 1),
 * -EINVAL when there is no identifier, -E2BIG when it is longer than
 * cap.  Pure; any thread.
 */
int bs_msgid_normalise(const char *in, size_t len, char *out, size_t cap);

/*
 * Walk the msg-id tokens of an In-Reply-To or References value: points
 * *id at the next "<...>" span at or after *off, sets *idlen to its
 * length and moves *off past it.  A value without any '<' yields itself once (a bare id).
 * Returns false when there are no more.  Pure; any thread.
 */
bool bs_msgid_next(const char *buf, size_t len, size_t *off,
	const char **id, size_t *idlen);

#endif /* BACKSTOP_LEDGER_H */
