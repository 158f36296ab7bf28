/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Storm detection internals shared by the worker side
 * (dataplane/verdict/storm.c) and the slow path (control/storm_sum.c).
 *
 * A "sketch set" is one array of depth x (rcpt_width + domain_width)
 * uint32 cells: the address rows, then the domain rows.  Each key is
 * hashed once with SipHash-2-4 (libsodium's 128-bit siphashx24, keyed by
 * a random secret per process); row i takes bits [i*b, (i+1)*b) of the
 * 128 bits as its column (b = log2 width), so the rows are independent
 * as the count-min bound wants (creation checks depth * b <= 128).
 *
 * Who writes what:
 *   - part->sk[e]: its worker while epoch & 1 == e; the slow path (read,
 *     zero) after it flipped the epoch and a grace period passed;
 *   - epoch, snap: the slow path (release store, rcu_assign_pointer);
 *     workers read them;
 *   - a part's candidate ring: head by the worker, tail by the slow path;
 *   - everything else after creation: the slow path.
 */
#ifndef BACKSTOP_STORM_INT_H
#define BACKSTOP_STORM_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <urcu-qsbr.h>

#include "backstop/storm.h"

enum { STORM_RCPT = 0, STORM_DOMAIN = 1 };

struct storm_hash {
	uint64_t w[2];
};

/* A key a worker asks the slow path to judge. */
struct storm_cand {
	struct storm_hash h;
	uint8_t kind, len;
	char name[BS_STORM_NAME_MAX];
};

/* A tracked key as workers see it in the snapshot (open addressing):
 * h = h.w[0]; meta = SKEY_USED | kind << 8 | active << 16.  Two words
 * read and written with relaxed atomics, like every field of a
 * snapshot: a snapshot is rewritten two ticks after it was last
 * published, which only a grace period orders, and ThreadSanitizer
 * cannot see liburcu's barriers. */
struct storm_skey {
	uint64_t h;
	uint64_t meta;
};
#define SKEY_USED 1u

/* What workers read: the window's sums and the tracked keys. */
struct storm_snap {
	uint64_t published_ms;
	uint64_t n_active;
	uint32_t set_mask;
	struct storm_skey *set;
	uint32_t *cells;
};

#define STORM_MEMO 16

struct bs_storm_part {
	_Alignas(64) uint32_t *sk[2]; /* by epoch parity */
	uint64_t notes, dropped;      /* worker's counters */
	uint64_t head;                /* candidates put (worker) */
	struct storm_cand *ring;
	uint32_t mask;
	const struct bs_storm *s;
	struct {
		uint64_t h, epoch;
	} memo[STORM_MEMO];           /* candidates sent this epoch */
	_Alignas(64) uint64_t tail;   /* candidates taken (slow path) */
};

struct storm_track {
	struct storm_hash h;
	uint8_t kind, len;
	bool active;
	uint32_t peak;
	uint64_t since_ms;
	char name[BS_STORM_NAME_MAX];
};

struct bs_storm {
	/* Read by workers. */
	_Alignas(64) uint8_t key[2][16]; /* per kind */
	uint32_t depth, width[2], bits[2];
	uint32_t row0[2];  /* first cell of each kind's rows */
	uint32_t cells;    /* per sketch set */
	uint32_t thr[2];
	uint64_t stale_ms;
	uint64_t epoch;
	struct storm_snap *snap;
	struct bs_storm_part *parts;
	uint32_t n_parts;

	/* Slow path. */
	_Alignas(64) struct bs_storm_params p;
	uint64_t slot_ms;
	uint32_t n_slots;  /* slots + 1: the window plus the filling one */
	uint32_t cur;
	uint64_t slot_start_ms;
	bool ticked;
	uint32_t *slot;    /* n_slots sketch sets */
	uint32_t *win;     /* their sum */
	struct storm_snap snaps[2];
	unsigned int spare;
	struct storm_track *tr;
	uint32_t n_tr;
	uint64_t bytes_part, bytes_total;

	uint64_t started, ended, active, tracked, track_full, ticks;

	pthread_t thread;
	bool running, stop_req;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static inline uint64_t
storm_ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void
storm_inc(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, storm_ld(p) + n, __ATOMIC_RELAXED);
}

/* Lower-case address without <> and white space, at most
 * BS_STORM_ADDR_MAX bytes; dom and dlen: where the part after the last
 * '@' starts in out, and its length. */
size_t bs_storm_norm(const char *in, size_t len, char *out, size_t *dom,
	size_t *dlen);
struct storm_hash bs_storm_hash(const struct bs_storm *s, int kind,
	const char *b, size_t n);
/* Column of row i for hash h of kind: an index into a sketch set. */
static inline uint32_t
storm_cell(const struct bs_storm *s, int kind, const struct storm_hash *h,
	uint32_t i)
{
	uint32_t b = s->bits[kind];
	uint32_t off = i * b;
	uint64_t w = h->w[off >> 6];
	uint32_t sh = off & 63;
	uint64_t v = w >> sh;
	if (sh + b > 64 && (off >> 6) == 0)
		v |= h->w[1] << (64 - sh);
	return s->row0[kind] + i * s->width[kind] +
		(uint32_t)(v & (s->width[kind] - 1));
}

/* Count-min estimate in a sketch set: the least of the rows. */
static inline uint32_t
storm_est(const struct bs_storm *s, const uint32_t *cells, int kind,
	const struct storm_hash *h)
{
	uint32_t m = UINT32_MAX;
	for (uint32_t i = 0; i < s->depth; i++) {
		uint32_t v = __atomic_load_n(&cells[storm_cell(s, kind, h, i)],
			__ATOMIC_RELAXED);
		if (v < m)
			m = v;
	}
	return m;
}

/* Is (h, kind) tracked in the snapshot?  *active: is it in a storm. */
static inline bool
storm_snap_find(const struct storm_snap *sn, uint64_t h, int kind,
	bool *active)
{
	for (uint32_t i = (uint32_t)h & sn->set_mask;;
			i = (i + 1) & sn->set_mask) {
		uint64_t meta = storm_ld(&sn->set[i].meta);
		if (!(meta & SKEY_USED))
			return false;
		if (storm_ld(&sn->set[i].h) == h &&
				((meta >> 8) & 0xff) == (uint64_t)kind) {
			*active = (meta >> 16) & 1;
			return true;
		}
	}
}

#endif /* BACKSTOP_STORM_INT_H */
