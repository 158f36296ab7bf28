/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-worker SMTP flow table.
 *
 * One table per worker, touched by that worker only: no locks, no atomics.
 * Keys are symmetric (the two endpoints are stored in a canonical order),
 * so both directions of a connection find the same entry and the lookup
 * also says which direction a packet travels.  A connection is its
 * addresses and ports on one link: the VLAN tags (outer and inner) and
 * the inline port pair are part of the key, so the same 5-tuple on two
 * VLANs or two links is two flows, as it is two sockets to the servers.
 *
 * Storage is preallocated at creation (entries, bucket heads): input can
 * never make the table allocate.  The bucket hash is keyed with a random
 * secret chosen at creation, so a sender cannot aim collisions at one
 * chain.
 *
 * Aging is O(1) per packet, and lazy: every entry sits on one of three LRU
 * lists (one per timeout class).  A packet only stores its time in the
 * entry; the entry moves to the tail of its list at most once per
 * granule (1/16 of the class timeout, at most 1 s), so a busy flow costs
 * one store per packet instead of relinking three cache lines.
 * bs_flow_expire() sweeps from the heads, a bounded number per call: an
 * expired head is removed, a head touched since it was linked is moved
 * to the tail.  Lists are thus ordered to within one granule and a flow
 * expires at most one granule late.  When the table is full a new flow
 * first reclaims expired entries with a short sweep; failing that it
 * evicts the oldest half-open entry (a SYN never answered by a complete
 * handshake: what a SYN flood leaves), then the oldest closed one; an
 * established flow is never evicted.  Only when every entry is
 * established is a new flow refused, and the caller passes the packet
 * untracked (forwarding never stops).
 */
#ifndef BACKSTOP_FLOW_H
#define BACKSTOP_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "backstop/pkt.h"

#define BS_FLOW_NONE UINT32_MAX

enum bs_flow_tmo {
	BS_FLOW_TMO_LONG = 0,  /* established */
	BS_FLOW_TMO_SHORT = 1, /* FIN or RST seen: evicted after half-open */
	BS_FLOW_TMO_SYN = 2,   /* half-open (new entries): evicted first */
	BS_FLOW_TMO__MAX
};

struct bs_flow_key {
	uint8_t addr[2][16]; /* canonical order: side 0 <= side 1 */
	uint16_t port[2];
	uint16_t vlan[2];    /* outer, inner VLAN ID (0: untagged) */
	uint8_t l3;          /* BS_L3_IPV4 or BS_L3_IPV6 */
	uint8_t link;        /* inline port pair (port index / 2) */
	uint8_t pad[6];
};

/* Direction of a packet relative to the canonical key. */
#define BS_DIR_0TO1 0 /* sent by side 0 */
#define BS_DIR_1TO0 1

/*
 * What a half-open flow keeps of one side's SYN: all reassembly needs
 * from it, so that no engine state exists before the handshake is done.
 */
struct bs_flow_syn {
	uint32_t isn;
	uint16_t win;    /* unscaled, as the SYN carried it */
	uint8_t wscale;  /* BS_WSCALE_* (reasm.h) */
	uint8_t sack;    /* SACK-permitted offered */
};

/* bs_flow.hs: where the handshake is (set by the worker). */
#define BS_HS_SYN 0x01    /* the client's SYN was seen (syn[0]) */
#define BS_HS_SYNACK 0x02 /* the server's SYN-ACK was seen (syn[1]) */
#define BS_HS_DONE 0x04   /* established: engine state may exist */

/*
 * Lookup reads key, hash, chain_next and writes last_seen: they share the
 * first cache line.
 */
struct bs_flow {
	struct bs_flow_key key;
	uint32_t hash;
	uint32_t chain_next;      /* bucket chain, or BS_FLOW_NONE */
	uint64_t last_seen;       /* caller's clock (ms) */
	/* -- second cache line -- */
	uint64_t lru_stamp;       /* last_seen when last put at the tail */
	uint32_t lru_prev, lru_next;
	uint8_t tmo;              /* enum bs_flow_tmo; list it sits on */
	uint8_t in_use;
	uint8_t server_side;      /* side (0/1) that listens on the SMTP port */
	uint8_t fin_seen;         /* bit per direction */
	uint8_t hs;               /* BS_HS_* */
	uint8_t server_inside;    /* BS_SIDE_* (smtp.h) of the server */
	uint8_t act;              /* 1: refused by the inline action; app
	                           * is then the action's state (action.c) */
	uint8_t pad;
	struct bs_flow_syn syn[2]; /* half-open: client's SYN, server's */
	void *app;                /* owned by the app layer (reassembly/SMTP) */
	uint64_t bytes;           /* frame bytes seen, both directions (the
	                           * worker adds them; for flows top; on the
	                           * line the worker reads per segment) */
} __attribute__((aligned(64)));

/* Called when an entry leaves the table (expiry or removal), to free app. */
typedef void (*bs_flow_release_fn)(struct bs_flow *f, void *arg);

struct bs_flow_table;

/*
 * Create a table of capacity entries (rounded up to a power of two for
 * the buckets).  timeout_ms[] gives the idle timeout per class.  release
 * may be NULL.  Returns NULL on allocation failure.  Start-up only.
 */
struct bs_flow_table *bs_flow_table_create(uint32_t capacity,
	const uint64_t timeout_ms[BS_FLOW_TMO__MAX], bs_flow_release_fn release,
	void *release_arg, uint64_t seed);

void bs_flow_table_free(struct bs_flow_table *t);

/*
 * Build the canonical key of a parsed packet that crossed inline port
 * pair link (its VLAN tags included); returns its direction.
 */
int bs_flow_key_from_pkt(const struct bs_pkt *p, unsigned int link,
	struct bs_flow_key *k);

/*
 * Keyed hash of k for this table.  With bs_flow_prefetch() it lets a
 * caller hash a whole burst, prefetch, then look up, hiding the two cache
 * misses a lookup costs (bucket head, entry) behind other packets' work.
 */
uint32_t bs_flow_hash(const struct bs_flow_table *t,
	const struct bs_flow_key *k);

/*
 * Prefetch for a coming lookup of hash h: stage 0 the bucket head,
 * stage 1 the first entry of its chain (reads the bucket head, so issue
 * stage 0 for the whole burst first).
 */
void bs_flow_prefetch(const struct bs_flow_table *t, uint32_t h, int stage);

/*
 * The entry of key k (hash h), or NULL, without marking it touched: the
 * caller first decides whether the packet is to be believed, then calls
 * bs_flow_touch().  Owner worker only.
 */
struct bs_flow *bs_flow_find_hashed(const struct bs_flow_table *t,
	const struct bs_flow_key *k, uint32_t h);

/* Mark f seen at now (what a lookup does on a hit).  Owner worker only. */
void bs_flow_touch(struct bs_flow_table *t, struct bs_flow *f, uint64_t now);

/* bs_flow_lookup() with the hash already computed by bs_flow_hash(). */
struct bs_flow *bs_flow_lookup_hashed(struct bs_flow_table *t,
	const struct bs_flow_key *k, uint32_t h, uint64_t now, bool create,
	bool *created);

/*
 * Find the entry of key k; create it when create is true and none exists.
 * A new entry is half-open (class BS_FLOW_TMO_SYN) until the caller
 * moves it.  now is the caller's clock in ms.  On success returns the
 * entry, marks it touched and sets *created.  Returns NULL if absent
 * (create false) or if the table is full of established flows.  Owner
 * worker only.
 */
struct bs_flow *bs_flow_lookup(struct bs_flow_table *t,
	const struct bs_flow_key *k, uint64_t now, bool create, bool *created);

/* Move f to timeout class tmo (and to the tail of that list). */
void bs_flow_set_tmo(struct bs_flow_table *t, struct bs_flow *f,
	enum bs_flow_tmo tmo);

/* Remove f now (calls release). */
void bs_flow_remove(struct bs_flow_table *t, struct bs_flow *f);

/*
 * Remove up to max entries idle longer than their class timeout at now.
 * Returns how many were removed.  Owner worker only.
 */
uint32_t bs_flow_expire(struct bs_flow_table *t, uint64_t now, uint32_t max);

/* Entries removed by aging so far (bs_flow_expire and recycling). */
uint64_t bs_flow_expired(const struct bs_flow_table *t);

/*
 * Entry i (0 <= i < capacity) if it is in use, else NULL: a bounded walk
 * for snapshots (flows top).  Owner worker only.
 */
const struct bs_flow *bs_flow_at(const struct bs_flow_table *t, uint32_t i);

/* Live entries of class tmo (SYN or SHORT) evicted to make room. */
uint64_t bs_flow_evicted(const struct bs_flow_table *t, enum bs_flow_tmo tmo);

/* Entries in use. */
uint32_t bs_flow_count(const struct bs_flow_table *t);
uint32_t bs_flow_capacity(const struct bs_flow_table *t);

/* Bytes the table holds for capacity entries (for docs and metrics). */
uint64_t bs_flow_table_mem(uint32_t capacity);

#endif /* BACKSTOP_FLOW_H */
