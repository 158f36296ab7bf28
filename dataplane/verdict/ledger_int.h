/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ledger internals shared by the read side (dataplane/verdict/ledger.c:
 * lookup, worker records) and the writer (control/ledger_writer.c:
 * insert, expire, evict, snapshots, thread).  Nothing outside those two
 * files includes this.
 *
 * Who writes what:
 *   - secret, ttl_s, ht, ents (the array), parts: set at creation, then
 *     read-only;
 *   - an entry's key: written by the writer before cds_lfht_add()
 *     publishes it, and only reused after a grace period;
 *   - an entry's seen_s: the writer renews it in place (relaxed atomic
 *     store), readers load it relaxed;
 *   - a part's ring head and counters: its worker; the ring tail: the
 *     writer;
 *   - everything else: the writer, read by stats with relaxed loads.
 */
#ifndef BACKSTOP_LEDGER_INT_H
#define BACKSTOP_LEDGER_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu-qsbr.h>
#include <urcu/rculfhash.h>

#include "backstop/ledger.h"

#define LEDGER_NIL UINT32_MAX

/* One entry: 40 bytes (static_assert in ledger_writer.c). */
struct ledger_ent {
	struct cds_lfht_node node; /* next, reverse_hash: 16 bytes */
	uint64_t key;              /* SipHash-2-4 of the normalised id */
	uint64_t seen_s;           /* last recorded (wall clock) */
	uint32_t prev, next;       /* age list (writer only) */
};

/* The entry of a table node (liburcu's caa_container_of drops const). */
static inline struct ledger_ent *
ledger_ent_of(struct cds_lfht_node *n)
{
	return (struct ledger_ent *)(void *)((char *)n -
		offsetof(struct ledger_ent, node));
}

/* A queued record: what a worker tells the writer. */
struct ledger_rec {
	uint64_t key;
	uint64_t seen_s;
};

/* One worker's side: an SPSC ring of records and its counters. */
struct bs_ledger_part {
	_Alignas(64) uint64_t head;      /* records ever put (worker) */
	uint64_t recorded, dropped, bad; /* worker's counters */
	struct ledger_rec *ring;
	uint32_t mask;
	const struct bs_ledger *l;
	_Alignas(64) uint64_t tail;      /* records ever taken (writer) */
};

struct bs_ledger {
	/* Read-mostly, shared with every worker. */
	_Alignas(64) struct cds_lfht *ht;
	struct ledger_ent *ents;
	uint8_t secret[16];
	uint64_t ttl_s;
	uint64_t warm_since_s; /* creation; the writer when sharing (relaxed) */
	struct bs_ledger_part *parts;
	uint32_t n_parts;

	/* Writer state. */
	_Alignas(64) struct bs_ledger_params p;
	char *snapshot_path; /* copy; NULL: none */
	uint32_t capacity;   /* entries allowed live (max_entries) */
	uint32_t pool;       /* entries allocated (capacity + slack) */
	uint32_t head, tail; /* age list: oldest .. newest live entry */
	uint32_t free_list;  /* reusable now (chained by next) */
	uint32_t limbo;      /* deleted, reusable after a grace period */
	uint32_t limbo_n;
	uint32_t live;
	uint64_t nr_buckets;
	uint64_t last_save_s; /* last save or load (0: never) */
	uint64_t next_save_s;
	uint64_t last_tick_s; /* time of the last step: what a save without
	                       * the thread is stamped with */
	struct ledger_rec *pending; /* loaded, inserted at the first step */
	bool secret_fixed;   /* from secret_file: snapshots must match it */
	int lock_fd;         /* flock of PATH.lock: one writer per snapshot */
	/* Sharing (import_path): the peer file last merged, its newest
	 * entry merged, its start of watching and save time. */
	char *import_path;
	uint64_t next_import_s, import_hwm, peer_warm_s, peer_saved_s;
	uint64_t peer_mtime_ns, peer_size, peer_ino;
	uint64_t created_s;
	uint64_t imported, import_failures, peer_stale;
	uint64_t pending_n;
	uint64_t bytes;

	/* Writer counters (relaxed atomics: stats read them). */
	uint64_t inserts, refreshes, evictions, expirations;
	uint64_t saves, save_failures, entries;

	/* Thread and the save requests of other threads. */
	pthread_t thread;
	bool running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop_req, started;
	uint64_t save_gen, done_gen; /* save requests made, answered */
	int save_rc;
	char save_err[256];
};

/* Relaxed single-writer counters and fields (plain moves on x86). */
static inline uint64_t
ledger_ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void
ledger_st(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline void
ledger_inc(uint64_t *p, uint64_t n)
{
	ledger_st(p, ledger_ld(p) + n);
}

/* Keyed hash of a normalised id (ledger.c). */
uint64_t bs_ledger_key(const struct bs_ledger *l, const char *norm,
	size_t n);

/* Log through the params' callback (ledger_writer.c). */
void bs_ledger_log(const struct bs_ledger *l, int level, const char *fmt,
	...) __attribute__((format(printf, 3, 4)));

/*
 * Validate a snapshot image and stage its entries for the first writer
 * step (ledger_writer.c; the fuzz target calls it on arbitrary bytes).
 * On success takes the secret and start of watching, returns the number
 * of entries staged; on refusal returns -EINVAL with the reason in err
 * and leaves the ledger untouched.
 */
long bs_ledger_snapshot_parse(struct bs_ledger *l, const uint8_t *buf,
	size_t len, uint64_t now_s, char *err, size_t errlen);

/* What bs_ledger_snapshot_check() reads from a valid image. */
struct ledger_snap_info {
	uint32_t flags;
	uint64_t saved_s, warm_s, count;
	const uint8_t *secret; /* 16 bytes, into the image */
	const uint8_t *ent;    /* count entries, into the image */
};

/* Validate an image (every check of the loader); 0 or -EINVAL with the
 * reason in err.  Pure. */
int bs_ledger_snapshot_check(const uint8_t *buf, size_t len,
	struct ledger_snap_info *si, char *err, size_t errlen);

/* Snapshot layout (little-endian). */
#define LEDGER_SNAP_MAGIC "BSLEDGER"
#define LEDGER_SNAP_VERSION 1u
#define LEDGER_SNAP_HDR 64u
#define LEDGER_SNAP_ENT 16u
#define LEDGER_SNAP_SUM 32u /* SHA-256 of everything before it */
#define LEDGER_SNAP_CLEAN 1u

#endif /* BACKSTOP_LEDGER_INT_H */
