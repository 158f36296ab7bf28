/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TCP stream reassembly, one flow at a time, without EAL.
 *
 * Each direction of a flow is turned into the ordered byte stream its
 * receiver sees.  Data that arrives in order is handed to the consumer
 * straight from the segment's buffer (no copy); only out-of-order data is
 * copied, under a per-direction and a per-worker byte budget.  The policy
 * (docs/SMTP.md) is the one of an inline normaliser in front of a Linux
 * server: first bytes win, a retransmission with different bytes is an
 * evasion (counted, the segment is to be dropped), data beyond the
 * receiver's window or after FIN is ignored, the urgent byte is removed
 * from the stream (SO_OOBINLINE off), and a hole that can no longer be
 * filled makes the flow unreliable (the caller passes it uninspected).
 *
 * All functions run on the worker that owns the flow; nothing is shared
 * but the per-worker context.
 */
#ifndef BACKSTOP_REASM_H
#define BACKSTOP_REASM_H

#include <stdbool.h>
#include <stdint.h>

#include "backstop/blkpool.h"
#include "backstop/counters.h"

/* seg.wscale: window scale option of a SYN, as the parser saw it. */
#define BS_WSCALE_UNKNOWN 0 /* options not parsed: assume the largest */
#define BS_WSCALE_NONE 1    /* SYN without the option: no scaling */
#define BS_WSCALE(n) ((uint8_t)(2 + (n))) /* option present, shift n */

/*
 * One TCP segment as the worker parsed it.  data points into the packet
 * and must stay valid for the duration of the call only.
 */
struct bs_seg {
	const uint8_t *data; /* TCP payload */
	uint32_t len;        /* payload bytes */
	uint32_t seq, ack;   /* host order */
	uint16_t win, urg;   /* unscaled window, urgent pointer */
	uint8_t flags;       /* BS_TCP_* (pkt.h) */
	uint8_t to_server;   /* 1: client to server, 0: server to client */
	uint8_t wscale;      /* SYN only: BS_WSCALE_* */
	uint8_t sack;        /* SYN only: SACK-permitted option present */
	void *pkt;           /* caller's handle on the packet (an mbuf) */
	struct bs_seg_out *out; /* optional: what reassembly judged */
};

/*
 * What reassembly tells the caller about one segment, beyond the verdict
 * (seg.out; may be NULL).  Reassembly only sets bits in flags: the caller
 * clears them before the call.  fix/fix_cap are the caller's: a buffer
 * for the bytes of a segment whose overlap must be rewritten.
 */
struct bs_seg_out {
	uint8_t flags;       /* BS_SEGO_* */
	uint32_t fix_lo, fix_hi; /* BS_SEG_REWRITE: payload bytes to replace */
	uint8_t *fix;        /* fix[fix_lo..fix_hi) are the bytes they become */
	uint32_t fix_cap;    /* bytes at fix; a longer segment is dropped */
};

#define BS_SEGO_RST 0x01     /* RST accepted: the connection is over */
#define BS_SEGO_FIN 0x02     /* this direction reached its FIN */
#define BS_SEGO_REWRITE 0x04 /* fix_lo/fix_hi are valid */

/* What the caller does with the segment. */
enum bs_seg_verdict {
	BS_SEG_PASS = 0,    /* forward */
	BS_SEG_DROP = 1,    /* normalise: drop (conflict, no room to fix) */
	BS_SEG_REWRITE = 2, /* normalise: payload[fix_lo..fix_hi) becomes
			     * out->fix[fix_lo..fix_hi) (the bytes first seen;
			     * the TCP checksum must follow), then forward */
};

/*
 * Segments held out of order per direction, derived from the byte cap:
 * each arrival walks the held list, so the count must be bounded too, or
 * 1-byte segments under a 64 KB cap would cost O(n^2) compares.  One
 * segment per 64 bytes of budget leaves room for any real reordering.
 */
#define BS_REASM_OOO_SEGS(flow_bytes) ((flow_bytes) / 64 + 64)

/* Largest segment payload a rewrite buffer must hold: one mbuf's data. */
#define BS_SEG_FIX_MAX 65535

/* Direction index: 0 client to server, 1 server to client. */
#define BS_REASM_C2S 0
#define BS_REASM_S2C 1

/* Per-worker limits and accounting. */
struct bs_reasm_ctx {
	uint64_t ooo_global_max; /* bytes held over all flows */
	uint64_t ooo_held;       /* bytes held now */
	uint32_t ooo_flow_max;   /* bytes held per direction */
	uint32_t ooo_segs_max;   /* segments held per direction */
	uint32_t gap_timeout_ms;
	uint32_t history;        /* power of two, 0 = off */
	/*
	 * History rings (of history bytes) come from here and go back once
	 * the receiver has acknowledged every byte they hold, so an idle
	 * flow holds none.  Left zeroed: plain malloc/free.
	 */
	struct bs_blkpool hist_pool;
	struct bs_counters *cnt;
};

struct bs_reasm_ooo;

struct bs_reasm_dir {
	uint32_t isn;      /* initial sequence number, if a SYN was seen */
	uint32_t nxt;      /* next sequence number the receiver expects;
			    * once the FIN is reached, the FIN's (it stays) */
	uint32_t urg_seq;  /* urgent byte to remove (Linux semantics) */
	uint32_t wnd_edge; /* right edge of the receiver's window */
	uint32_t ooo_bytes;
	uint32_t hist_len; /* valid bytes of hist, ending at nxt */
	uint32_t una;      /* highest ack of these bytes (BS_RDF_UNA), <= nxt */
	uint32_t gap_since; /* when the oldest held hole appeared (the
			     * caller's ms clock, mod 2^32: gaps time out
			     * in minutes) */
	uint8_t state;     /* private: BS_RD_* in reasm.c */
	uint8_t flags;     /* private: BS_RDF_* in reasm.c */
	uint8_t wscale;    /* BS_WSCALE_* of this side's SYN */
	uint8_t pad;
	uint32_t ooo_segs; /* segments held */
	struct bs_reasm_ooo *ooo; /* held segments, sorted by seq */
	uint8_t *hist;     /* ring of the last delivered bytes not yet all
			    * acknowledged (lazy, NULL between exchanges) */
};

struct bs_reasm {
	struct bs_reasm_dir dir[2];
	uint8_t unreliable; /* a hole can no longer be filled */
	uint8_t reset;      /* RST accepted */
	uint8_t midstream;  /* a direction was picked up without SYN */
};

/*
 * Consumer of the ordered stream.  data/len: the next bytes of direction
 * dir (BS_REASM_*); they point into the current segment or into held
 * memory and are valid during the call only.  pkt is the handle of the
 * segment being processed (the one that completed these bytes).  data ==
 * NULL and len == 0 signal that the direction reached its FIN.
 */
typedef void (*bs_reasm_deliver_fn)(void *arg, unsigned int dir,
	const uint8_t *data, uint32_t len, void *pkt);

/* Initialise *r (zeroes it).  Cannot fail. */
void bs_reasm_init(struct bs_reasm *r);

/*
 * Process one segment of the flow.  Delivers any bytes that became in
 * order through deliver(arg, ...), possibly several times.  Returns the
 * verdict for the segment: BS_SEG_REWRITE only when seg->out gives a
 * fix buffer of at least seg->len bytes (else a conflict is BS_SEG_DROP
 * and changes no state).  Never fails: a condition it cannot follow
 * sets r->unreliable (and frees held data); later segments are ignored
 * and passed.  now_ms is the caller's clock.  Owner worker only.
 */
enum bs_seg_verdict bs_reasm_input(struct bs_reasm_ctx *ctx,
	struct bs_reasm *r, const struct bs_seg *seg, uint64_t now_ms,
	bs_reasm_deliver_fn deliver, void *arg);

/*
 * Release everything *r holds and return its bytes to ctx's budget.
 * *r may be reused after bs_reasm_init().  Owner worker only.
 */
void bs_reasm_release(struct bs_reasm_ctx *ctx, struct bs_reasm *r);

/* Free the history rings ctx keeps for reuse.  Owner worker only. */
void bs_reasm_ctx_drain(struct bs_reasm_ctx *ctx);

/*
 * The next sequence number the receiver of direction dir expects: nxt,
 * plus one once the FIN was reached.  0 while the direction is not open
 * (no data position known).  Read-only; any caller of the owner.
 */
uint32_t bs_reasm_rcv_nxt(const struct bs_reasm *r, unsigned int dir);

/* Bytes held out of order by *r now (for tests and metrics). */
uint32_t bs_reasm_held(const struct bs_reasm *r);

#endif /* BACKSTOP_REASM_H */
