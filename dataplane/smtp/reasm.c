/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TCP reassembly for one flow (see include/backstop/reasm.h and
 * docs/SMTP.md for the policy).
 *
 * The common case costs a few comparisons: a segment that starts at the
 * next expected sequence number is delivered from the packet's own
 * buffer.  Everything else is an exception handled here: retransmissions
 * are compared with a small ring of the last delivered bytes, future
 * segments are copied into a sorted list under two byte budgets, and any
 * hole that can no longer be filled (budget hit, timeout, the receiver
 * acknowledging bytes we never saw) ends inspection of the flow instead
 * of guessing: the caller passes it uninspected (fail-open).
 *
 * Sequence numbers are compared with serial arithmetic (RFC 1982), so a
 * stream may wrap past 2^32 any number of times.
 */
#include "backstop/reasm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/pkt.h"

/* Direction states. */
#define BS_RD_NONE 0   /* nothing seen yet */
#define BS_RD_SYN 1    /* ISN known from the SYN, no data yet */
#define BS_RD_OPEN 2   /* nxt valid, data may flow */
#define BS_RD_CLOSED 3 /* FIN reached: the stream is complete */

/* Direction flags. */
#define BS_RDF_FIN 0x01 /* the FIN was reached (at nxt) */
#define BS_RDF_URG 0x02 /* urg_seq pending removal */
#define BS_RDF_WND 0x04 /* wnd_edge valid */
#define BS_RDF_MID 0x08 /* picked up mid-stream */
#define BS_RDF_SACK 0x10 /* this side's SYN offered SACK (RFC 2018) */
#define BS_RDF_UNA 0x20 /* una valid: the receiver acknowledged up to it */

/* Largest window shift allowed by RFC 7323. */
#define BS_WSCALE_MAX 14

struct bs_reasm_ooo {
	struct bs_reasm_ooo *next;
	uint32_t seq;
	uint32_t len;
	uint8_t fin; /* the segment carried FIN (after its len bytes) */
	uint8_t data[];
};

static inline int32_t
seq_diff(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b);
}

static inline int
seq_before(uint32_t a, uint32_t b)
{
	return seq_diff(a, b) < 0;
}

static inline int
seq_after(uint32_t a, uint32_t b)
{
	return seq_diff(a, b) > 0;
}

void
bs_reasm_init(struct bs_reasm *r)
{
	memset(r, 0, sizeof(*r));
}

uint32_t
bs_reasm_held(const struct bs_reasm *r)
{
	return r->dir[0].ooo_bytes + r->dir[1].ooo_bytes;
}

static void
ooo_free_all(struct bs_reasm_ctx *ctx, struct bs_reasm_dir *d)
{
	struct bs_reasm_ooo *n, *next;

	for (n = d->ooo; n != NULL; n = next) {
		next = n->next;
		free(n);
	}
	d->ooo = NULL;
	ctx->ooo_held -= d->ooo_bytes;
	BS_CNT_ADD(ctx->cnt, reasm_ooo_held_bytes, (uint64_t)0 - d->ooo_bytes);
	d->ooo_bytes = 0;
	d->ooo_segs = 0;
}

/*
 * History rings.  A ring is needed only while the receiver may not have
 * the bytes it holds: once it has acknowledged them all, a copy of them
 * is a duplicate its stack drops (Linux: before rcv_nxt), so nothing can
 * be compared or rewritten any more and the ring goes back to the
 * worker's pool.  An established session between two exchanges thus
 * holds no ring, and the pool (LIFO, so cache-warm) keeps the fast path
 * free of malloc.
 */
static void
hist_put(struct bs_reasm_ctx *ctx, struct bs_reasm_dir *d)
{
	bs_blkpool_free(&ctx->hist_pool, d->hist, ctx->history);
	d->hist = NULL;
	d->hist_len = 0;
}

void
bs_reasm_ctx_drain(struct bs_reasm_ctx *ctx)
{
	bs_blkpool_drain(&ctx->hist_pool);
}

void
bs_reasm_release(struct bs_reasm_ctx *ctx, struct bs_reasm *r)
{
	for (unsigned int i = 0; i < 2; i++) {
		ooo_free_all(ctx, &r->dir[i]);
		hist_put(ctx, &r->dir[i]);
	}
}

/* Give up on the flow: nothing it holds can become useful. */
static void
mark_unreliable(struct bs_reasm_ctx *ctx, struct bs_reasm *r)
{
	if (r->unreliable)
		return;
	r->unreliable = 1;
	BS_CNT_INC(ctx->cnt, reasm_unreliable);
	ooo_free_all(ctx, &r->dir[0]);
	ooo_free_all(ctx, &r->dir[1]);
}

/*
 * Remember the last delivered bytes.  The ring is indexed by sequence
 * number modulo its (power of two) size, so the byte of any sequence
 * number in [nxt - hist_len, nxt) is found without bookkeeping.
 */
static void
hist_store(struct bs_reasm_ctx *ctx, struct bs_reasm_dir *d, uint32_t seq,
	const uint8_t *p, uint32_t len)
{
	uint32_t h = ctx->history, pos, first, total = len;

	if (h == 0)
		return;
	if (d->hist == NULL) {
		d->hist = bs_blkpool_alloc(&ctx->hist_pool, h);
		if (d->hist == NULL)
			return; /* retransmissions go unverified, counted */
		d->hist_len = 0;
	}
	if (len > h) {
		p += len - h;
		seq += len - h;
		len = h;
	}
	pos = seq & (h - 1);
	first = h - pos < len ? h - pos : len;
	memcpy(d->hist + pos, p, first);
	memcpy(d->hist, p + first, len - first);
	d->hist_len = d->hist_len + total > h ? h : d->hist_len + total;
}

/*
 * Compare [seq, seq + len), all before nxt, with what was delivered.
 * Bytes the receiver acknowledged need no comparison: it holds them and
 * drops this copy.  Returns 1 on a difference, -1 if some other bytes
 * are older than the history (those are not compared), 0 if all bytes
 * match or were acknowledged.
 */
static int
hist_check(struct bs_reasm_ctx *ctx, const struct bs_reasm_dir *d,
	uint32_t seq, const uint8_t *p, uint32_t len)
{
	uint32_t start = d->nxt - d->hist_len, lo = 0, m = ctx->history - 1;
	int unknown = 0;

	if ((d->flags & BS_RDF_UNA) && seq_before(seq, d->una))
		lo = d->una - seq < len ? d->una - seq : len;
	if (lo == len)
		return 0;
	if (d->hist == NULL || d->hist_len == 0)
		return -1;
	if (seq_before(seq + lo, start)) {
		lo = start - seq;
		if (lo >= len)
			return -1;
		unknown = 1;
	}
	for (uint32_t i = lo; i < len; i++)
		if (d->hist[(seq + i) & m] != p[i])
			return 1;
	return unknown ? -1 : 0;
}

/* Does [seq, seq + len) differ from any held byte it overlaps? */
static int
ooo_conflict(const struct bs_reasm_dir *d, uint32_t seq, const uint8_t *p,
	uint32_t len)
{
	uint32_t end = seq + len;

	for (const struct bs_reasm_ooo *n = d->ooo; n != NULL; n = n->next) {
		uint32_t nend = n->seq + n->len, lo, hi;

		if (!seq_before(n->seq, end))
			break; /* sorted: the rest start later */
		if (!seq_after(nend, seq))
			continue;
		lo = seq_after(n->seq, seq) ? n->seq : seq;
		hi = seq_before(nend, end) ? nend : end;
		if (memcmp(n->data + (lo - n->seq), p + (lo - seq), hi - lo))
			return 1;
	}
	return 0;
}

/* Is [seq, seq + len) entirely held already? */
static int
ooo_covered(const struct bs_reasm_dir *d, uint32_t seq, uint32_t len)
{
	uint32_t cur = seq, end = seq + len;

	for (const struct bs_reasm_ooo *n = d->ooo; n != NULL; n = n->next) {
		if (seq_after(n->seq, cur))
			break;
		if (seq_after(n->seq + n->len, cur))
			cur = n->seq + n->len;
		if (!seq_before(cur, end))
			return 1;
	}
	return 0;
}

/* Copy a future segment into the sorted list, within the budgets. */
static int
ooo_store(struct bs_reasm_ctx *ctx, struct bs_reasm_dir *d, uint32_t seq,
	const uint8_t *p, uint32_t len, int fin)
{
	struct bs_reasm_ooo *n, **pp;

	if ((uint64_t)d->ooo_bytes + len > ctx->ooo_flow_max ||
		d->ooo_segs >= ctx->ooo_segs_max) {
		BS_CNT_INC(ctx->cnt, reasm_ooo_flow_cap);
		return -ENOBUFS;
	}
	if (ctx->ooo_held + len > ctx->ooo_global_max) {
		BS_CNT_INC(ctx->cnt, reasm_ooo_global_cap);
		return -ENOBUFS;
	}
	n = malloc(sizeof(*n) + len);
	if (n == NULL) {
		BS_CNT_INC(ctx->cnt, smtp_nomem);
		return -ENOMEM;
	}
	n->seq = seq;
	n->len = len;
	n->fin = (uint8_t)fin;
	if (len > 0)
		memcpy(n->data, p, len);
	for (pp = &d->ooo; *pp != NULL && !seq_after((*pp)->seq, seq);
		pp = &(*pp)->next)
		;
	n->next = *pp;
	*pp = n;
	d->ooo_bytes += len;
	d->ooo_segs++;
	ctx->ooo_held += len;
	BS_CNT_ADD(ctx->cnt, reasm_ooo_held_bytes, len);
	BS_CNT_INC(ctx->cnt, reasm_ooo_queued);
	return 0;
}

/*
 * Hand [seq, seq + len) (seq == nxt) to the consumer and advance nxt.
 * The pending urgent byte, if inside, is cut out as a Linux receiver
 * without SO_OOBINLINE does: the application never reads it in band.
 */
static void
deliver_range(struct bs_reasm_ctx *ctx, struct bs_reasm_dir *d,
	unsigned int dir, const uint8_t *p, uint32_t len, void *pkt,
	bs_reasm_deliver_fn deliver, void *arg)
{
	uint32_t seq = d->nxt;

	hist_store(ctx, d, seq, p, len);
	d->nxt = seq + len;
	if ((d->flags & BS_RDF_URG) && !seq_before(d->urg_seq, seq) &&
		seq_before(d->urg_seq, seq + len)) {
		uint32_t k = d->urg_seq - seq;

		d->flags &= ~BS_RDF_URG;
		BS_CNT_INC(ctx->cnt, reasm_urgent);
		if (k > 0)
			deliver(arg, dir, p, k, pkt);
		if (len - k - 1 > 0)
			deliver(arg, dir, p + k + 1, len - k - 1, pkt);
	} else {
		deliver(arg, dir, p, len, pkt);
	}
}

/*
 * Deliver held segments that became in order, then the FIN if the stream
 * reached one (fin: the current segment's FIN is in order now).  As in
 * Linux's tcp_ofo_queue(), a held segment's FIN counts only if the stream
 * stands exactly at it when it comes up: one that data already passed
 * (end_seq <= rcv_nxt) is dropped, and once a FIN counts, whatever is
 * held beyond it is purged (tcp_fin()).
 */
static void
drain(struct bs_reasm_ctx *ctx, struct bs_reasm_dir *d, unsigned int dir,
	const struct bs_seg *seg, uint64_t now, bs_reasm_deliver_fn deliver,
	void *arg, int fin)
{
	void *pkt = seg->pkt;
	struct bs_reasm_ooo *n;

	while (!fin && (n = d->ooo) != NULL && !seq_after(n->seq, d->nxt)) {
		uint32_t nend = n->seq + n->len;

		if (seq_after(nend, d->nxt)) {
			uint32_t k = d->nxt - n->seq;

			BS_CNT_ADD(ctx->cnt, reasm_bytes_ooo, n->len - k);
			deliver_range(ctx, d, dir, n->data + k, n->len - k,
				pkt, deliver, arg);
		}
		if (n->fin && nend == d->nxt)
			fin = 1;
		d->ooo = n->next;
		d->ooo_bytes -= n->len;
		d->ooo_segs--;
		ctx->ooo_held -= n->len;
		BS_CNT_ADD(ctx->cnt, reasm_ooo_held_bytes,
			(uint64_t)0 - n->len);
		free(n);
		/* A later hole starts now: time it from here. */
		d->gap_since = (uint32_t)now;
	}
	if (fin && d->state != BS_RD_CLOSED) {
		d->flags |= BS_RDF_FIN;
		d->state = BS_RD_CLOSED;
		ooo_free_all(ctx, d);
		hist_put(ctx, d); /* nothing after the FIN is compared */
		if (seg->out != NULL)
			seg->out->flags |= BS_SEGO_FIN;
		deliver(arg, dir, NULL, 0, pkt);
	}
}

/* Shift applied to windows advertised by side (RFC 7323 2.2). */
static unsigned int
wnd_shift(const struct bs_reasm *r, unsigned int side)
{
	uint8_t a = r->dir[side].wscale, b = r->dir[side ^ 1].wscale;

	if (a == BS_WSCALE_UNKNOWN || b == BS_WSCALE_UNKNOWN)
		return BS_WSCALE_MAX; /* cannot know: be lenient */
	if (a == BS_WSCALE_NONE || b == BS_WSCALE_NONE)
		return 0;
	return a - 2u > BS_WSCALE_MAX ? BS_WSCALE_MAX : a - 2u;
}

/* Learn from the ACK field: the window and what the peer received. */
static void
ack_input(struct bs_reasm_ctx *ctx, struct bs_reasm *r, unsigned int dn,
	const struct bs_seg *seg)
{
	struct bs_reasm_dir *o = &r->dir[dn ^ 1];
	uint32_t edge, lim;
	unsigned int shift;

	if (o->state == BS_RD_NONE) {
		/*
		 * This side's SYN was seen but not the peer's: a handshake
		 * in progress whose SYN-ACK is late (reordering on the wire
		 * is ordinary).  The ack tells nothing usable yet; the
		 * SYN-ACK will give the peer's ISN.
		 */
		if (r->dir[dn].state != BS_RD_NONE &&
			!(r->dir[dn].flags & BS_RDF_MID))
			return;
		/* Mid-stream: the ack says where the peer's stream is. */
		o->nxt = seg->ack;
		o->state = BS_RD_OPEN;
		o->flags |= BS_RDF_MID;
		r->midstream = 1;
		BS_CNT_INC(ctx->cnt, reasm_midstream);
	}
	/*
	 * Only the server's word is taken: a client acking server bytes it
	 * never got would otherwise switch inspection off at will.
	 */
	lim = o->nxt + (o->state == BS_RD_CLOSED ? 1 : 0);
	if (!seg->to_server && seq_after(seg->ack, lim)) {
		/* The server has client bytes that never passed here. */
		BS_CNT_INC(ctx->cnt, reasm_gap_acked);
		mark_unreliable(ctx, r);
		return;
	}
	/*
	 * What the peer has of o's bytes (at most what passed here: a
	 * client may ack server bytes it never got).  Once that is all of
	 * them, o's history ring has nothing left to protect.
	 */
	if (o->state == BS_RD_OPEN) {
		uint32_t a = seq_after(seg->ack, o->nxt) ? o->nxt : seg->ack;

		if (!(o->flags & BS_RDF_UNA) || seq_after(a, o->una)) {
			o->una = a;
			o->flags |= BS_RDF_UNA;
		}
		if (o->hist != NULL && o->una == o->nxt)
			hist_put(ctx, o);
	}
	/* SYN segments carry unscaled windows. */
	shift = (seg->flags & BS_TCP_SYN) ? 0 : wnd_shift(r, dn);
	edge = seg->ack + ((uint32_t)seg->win << shift);
	/* A receiver never moves its right edge back (RFC 9293 3.8.6). */
	if (!(o->flags & BS_RDF_WND) || seq_after(edge, o->wnd_edge)) {
		o->wnd_edge = edge;
		o->flags |= BS_RDF_WND;
	}
}

/* Right edge of the held out-of-order data (the right-most SACK block). */
static uint32_t
ooo_right_edge(const struct bs_reasm_dir *d)
{
	uint32_t edge = d->nxt;

	for (const struct bs_reasm_ooo *n = d->ooo; n != NULL; n = n->next)
		if (seq_after(n->seq + n->len, edge))
			edge = n->seq + n->len;
	return edge;
}

/*
 * Would the receiver of a RST from side dn accept it?  As Linux's
 * tcp_validate_incoming() (RFC 5961 3.2): only a RST at exactly rcv_nxt
 * (rcv_nxt - 1 too once the sender's FIN was received: CLOSE_WAIT,
 * LAST_ACK, CLOSING), or, with SACK, at the right edge of the right-most
 * SACK block, resets.  One elsewhere in the window gets a challenge ACK
 * and changes nothing; one outside it is dropped.  Returns 1 accepted,
 * 0 challenged, -1 ignored.
 *
 * A sender we never saw (a RST refusing a SYN) is checked as a Linux
 * client in SYN-SENT checks it: the RST must acknowledge the SYN.
 */
static int
rst_check(const struct bs_reasm *r, unsigned int dn, const struct bs_seg *seg)
{
	const struct bs_reasm_dir *d = &r->dir[dn], *o = &r->dir[dn ^ 1];
	uint32_t seq = seg->seq, rcv_nxt;

	if (d->state == BS_RD_NONE) {
		if (o->state == BS_RD_NONE)
			return 1; /* nothing known to check against */
		return (seg->flags & BS_TCP_ACK) && seg->ack == o->nxt ? 1
								       : -1;
	}
	rcv_nxt = d->nxt + (d->state == BS_RD_CLOSED ? 1u : 0u);
	if (seq == rcv_nxt)
		return 1;
	if (d->state == BS_RD_CLOSED && seq == rcv_nxt - 1)
		return 1;
	if ((d->flags & BS_RDF_SACK) && (o->flags & BS_RDF_SACK) &&
		d->ooo != NULL && seq == ooo_right_edge(d))
		return 1;
	if ((d->flags & BS_RDF_WND) ? !seq_before(seq, rcv_nxt) &&
			!seq_after(seq, d->wnd_edge)
		: seq_diff(seq, rcv_nxt) >= 0 && seq_diff(seq, rcv_nxt) < 65536)
		return 0;
	return -1;
}

/*
 * The retransmitted bytes of seg (payload [0, len), at sseq) conflict
 * with what was delivered ([0, old)) or is held: copy the payload into
 * the caller's fix buffer with the first bytes seen put back, and say
 * which span changed.  Returns the corrected payload, or NULL when there
 * is no room (the caller drops the segment instead).  Bytes older than
 * the history ring are unknown and stay as they are.
 */
static const uint8_t *
fix_conflict(const struct bs_reasm_ctx *ctx, const struct bs_reasm_dir *d,
	const struct bs_seg *seg, uint32_t sseq, const uint8_t *p,
	uint32_t len, uint32_t old)
{
	struct bs_seg_out *o = seg->out;
	uint32_t lo, hi, end = sseq + len;
	uint8_t *b;

	if (o == NULL || o->fix == NULL || o->fix_cap < len)
		return NULL;
	b = o->fix;
	memcpy(b, p, len);
	if (old > 0 && d->hist != NULL && d->hist_len > 0) {
		uint32_t start = d->nxt - d->hist_len, m = ctx->history - 1;
		uint32_t i = seq_before(sseq, start) ? start - sseq : 0;

		for (; i < old; i++)
			b[i] = d->hist[(sseq + i) & m];
	}
	for (const struct bs_reasm_ooo *n = d->ooo; n != NULL; n = n->next) {
		uint32_t nend = n->seq + n->len, s0, s1;

		if (!seq_before(n->seq, end))
			break;
		if (!seq_after(nend, sseq + old))
			continue;
		s0 = seq_after(n->seq, sseq + old) ? n->seq : sseq + old;
		s1 = seq_before(nend, end) ? nend : end;
		memcpy(b + (s0 - sseq), n->data + (s0 - n->seq), s1 - s0);
	}
	for (lo = 0; lo < len && b[lo] == p[lo]; lo++)
		;
	for (hi = len; hi > lo && b[hi - 1] == p[hi - 1]; hi--)
		;
	o->fix_lo = lo;
	o->fix_hi = hi;
	o->flags |= BS_SEGO_REWRITE;
	return b;
}

enum bs_seg_verdict
bs_reasm_input(struct bs_reasm_ctx *ctx, struct bs_reasm *r,
	const struct bs_seg *seg, uint64_t now_ms, bs_reasm_deliver_fn deliver,
	void *arg)
{
	unsigned int dn = seg->to_server ? BS_REASM_C2S : BS_REASM_S2C;
	struct bs_reasm_dir *d = &r->dir[dn];
	const uint8_t *p = seg->data;
	uint32_t len = seg->data != NULL ? seg->len : 0;
	uint32_t sseq, off = 0;
	int fin = (seg->flags & BS_TCP_FIN) != 0, conflict = 0;
	enum bs_seg_verdict v = BS_SEG_PASS;

	BS_CNT_INC(ctx->cnt, reasm_segments);
	if (r->unreliable || r->reset)
		return BS_SEG_PASS;

	if (seg->flags & BS_TCP_RST) {
		int a = rst_check(r, dn, seg);

		if (a > 0) {
			r->reset = 1;
			BS_CNT_INC(ctx->cnt, reasm_rst);
			bs_reasm_release(ctx, r);
			if (seg->out != NULL)
				seg->out->flags |= BS_SEGO_RST;
		} else if (a == 0) {
			BS_CNT_INC(ctx->cnt, reasm_rst_challenged);
		} else {
			BS_CNT_INC(ctx->cnt, reasm_rst_ignored);
		}
		return BS_SEG_PASS;
	}

	if (seg->flags & BS_TCP_SYN) {
		if (d->state <= BS_RD_SYN) {
			d->isn = seg->seq;
			d->nxt = seg->seq + 1;
			d->state = BS_RD_SYN;
			d->wscale = seg->wscale;
			d->flags = (uint8_t)((d->flags & ~BS_RDF_SACK) |
				(seg->sack ? BS_RDF_SACK : 0));
		} else if (seg->seq != d->isn || (d->flags & BS_RDF_MID)) {
			BS_CNT_INC(ctx->cnt, reasm_syn_conflict);
			return BS_SEG_PASS;
		}
	}
	if (seg->flags & BS_TCP_ACK) {
		ack_input(ctx, r, dn, seg);
		if (r->unreliable)
			return BS_SEG_PASS;
	}

	/* A hole older than the timeout will not be filled any more. */
	for (unsigned int i = 0; i < 2; i++) {
		struct bs_reasm_dir *x = &r->dir[i];

		/* Signed: a clock that steps back times nothing out. */
		if (x->ooo != NULL && (int32_t)((uint32_t)now_ms -
				x->gap_since) > (int32_t)ctx->gap_timeout_ms) {
			BS_CNT_INC(ctx->cnt, reasm_gap_timeout);
			mark_unreliable(ctx, r);
			return BS_SEG_PASS;
		}
	}

	if (len == 0 && !fin)
		return BS_SEG_PASS;
	sseq = seg->seq + ((seg->flags & BS_TCP_SYN) ? 1 : 0);
	if (d->state == BS_RD_NONE) {
		d->nxt = sseq;
		d->flags |= BS_RDF_MID;
		r->midstream = 1;
		BS_CNT_INC(ctx->cnt, reasm_midstream);
	}
	if (d->state == BS_RD_CLOSED) {
		if (len > 0 && seq_after(sseq + len, d->nxt))
			BS_CNT_INC(ctx->cnt, reasm_after_fin);
		return BS_SEG_PASS;
	}
	d->state = BS_RD_OPEN;

	/* The receiver drops what starts at or past its window's edge
	 * (a bare FIN too: Linux's tcp_sequence()/tcp_data_queue()). */
	if ((d->flags & BS_RDF_WND) && !seq_before(sseq, d->wnd_edge)) {
		BS_CNT_INC(ctx->cnt, reasm_out_of_window);
		return BS_SEG_PASS;
	}

	/* Old bytes: compare with what the consumer already got. */
	if (seq_before(sseq, d->nxt)) {
		uint32_t old = d->nxt - sseq;
		int c;

		if (old > len)
			old = len;
		/*
		 * A keepalive probe may carry one garbage byte at nxt - 1
		 * (Windows sends 0x00): not data, not to be dropped.  Only
		 * 0x00 is exempt, so the exemption cannot rewrite a line end.
		 */
		if (len == 1 && sseq + 1 == d->nxt && p[0] == 0)
			return BS_SEG_PASS;
		c = hist_check(ctx, d, sseq, p, old);
		if (c > 0)
			conflict = 1;
		else if (c < 0 && old > 0)
			BS_CNT_INC(ctx->cnt, reasm_retrans_unverified);
		else if (old == len && len > 0)
			BS_CNT_INC(ctx->cnt, reasm_retrans);
		off = old;
	}
	/* New bytes: compare with what is held; first bytes win. */
	if (off < len && ooo_conflict(d, sseq + off, p + off, len - off))
		conflict = 1;
	if (conflict) {
		/*
		 * Keep the first bytes and take the new ones (Suricata's
		 * inline policy): the caller rewrites the conflicting span
		 * to what the server already has, so both views stay one.
		 */
		BS_CNT_INC(ctx->cnt, reasm_overlap_conflict);
		p = fix_conflict(ctx, d, seg, sseq, p, len, off);
		if (p == NULL)
			return BS_SEG_DROP;
		BS_CNT_INC(ctx->cnt, reasm_rewritten);
		v = BS_SEG_REWRITE;
	}

	/* Urgent pointer, as Linux's tcp_urg(): the last byte it covers. */
	if ((seg->flags & BS_TCP_URG) && seg->urg != 0) {
		uint32_t u = seg->seq + seg->urg - 1;

		if (!seq_before(u, d->nxt) &&
			(!(d->flags & BS_RDF_URG) || seq_after(u, d->urg_seq))) {
			d->urg_seq = u;
			d->flags |= BS_RDF_URG;
		}
	}

	if (off < len) {
		uint32_t s = sseq + off;

		if (s == d->nxt) {
			BS_CNT_ADD(ctx->cnt, reasm_bytes_inorder, len - off);
			deliver_range(ctx, d, dn, p + off, len - off, seg->pkt,
				deliver, arg);
		} else if (!fin && ooo_covered(d, s, len - off)) {
			BS_CNT_INC(ctx->cnt, reasm_retrans);
			return v;
		} else {
			if (d->ooo == NULL)
				d->gap_since = (uint32_t)now_ms;
			if (ooo_store(ctx, d, s, p + off, len - off, fin) < 0)
				mark_unreliable(ctx, r);
			return v;
		}
	} else if (fin && seq_after(sseq + len, d->nxt)) {
		/* A FIN ahead of a hole waits there, as in Linux's
		 * out-of-order queue; data that passes it drops it. */
		if (d->ooo == NULL)
			d->gap_since = (uint32_t)now_ms;
		if (ooo_store(ctx, d, sseq + len, NULL, 0, 1) < 0)
			mark_unreliable(ctx, r);
		return v;
	}
	/* In order now: a FIN right after this segment's bytes counts. */
	drain(ctx, d, dn, seg, now_ms, deliver, arg,
		fin && sseq + len == d->nxt);
	return v;
}

uint32_t
bs_reasm_rcv_nxt(const struct bs_reasm *r, unsigned int dir)
{
	const struct bs_reasm_dir *d = &r->dir[dir & 1];

	if (d->state < BS_RD_OPEN)
		return 0;
	return d->nxt + (d->state == BS_RD_CLOSED ? 1u : 0u);
}
