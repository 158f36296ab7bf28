/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker poll loop: one per lcore, its own queue on every port, its own
 * flow table and counters.  Nothing here takes a lock or an atomic per
 * packet.
 *
 * Loop shape (DPDK l3fwd): age a bounded number of flows, then for each RX
 * queue receive a burst, process it (prefetching the next packet), send it
 * to the peer port's queue of the same index, free what TX refused after
 * bounded retries, and finally announce an RCU quiescent state.  Bursts
 * go through a two-deep pipeline (see burst_stage1()) so flow-table
 * misses overlap with the next burst's parsing.
 *
 * Processing parses headers, tracks SMTP flows, feeds their segments to
 * the SMTP engine (whose events the transaction stage, txn.c, turns into
 * detection and records) and counts.  It believes only what the server
 * would: a segment with a bad checksum, or whose sender is on the other
 * side of the inline pair than the port it came in on, is forwarded but
 * changes nothing; a RST or FIN moves the table only once reassembly
 * accepted it.  Half-open flows hold no engine state.  It changes a
 * packet's bytes in one case: a retransmission whose overlap differs from
 * the bytes first seen gets those bytes back (and a fixed TCP checksum),
 * so the server reads what we read; one that cannot be rewritten is
 * dropped (counted).
 */
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_prefetch.h>
#include <urcu-qsbr.h>

#include "backstop/cksum.h"
#include "backstop/pkt.h"
#include "backstop/reasm.h"
#include "cksum_mbuf.h"
#include "dataplane.h"

_Static_assert(BS_WSCALE_NONE == 1 && BS_WSCALE(0) == 2,
	"pkt.h encodes the window scale as reasm.h does");

void
bs_worker_flow_release(struct bs_flow *f, void *arg)
{
	struct bs_worker *w = arg;
	/* Coverage: every session of a protected server that got going
	 * (handshake done), and whether the wire could follow it (a
	 * refused one was followed to its end). */
	if ((f->hs & BS_HS_DONE) && f->server_inside == BS_SIDE_INSIDE)
		bs_cov_count(&w->cov, f->key.l3, f->key.addr[f->server_side],
			f->act ? -1 : f->app == NULL ? BS_COV_UNFOLLOWED
				       : bs_smtp_flow_why(f->app));
	if (f->act) {
		bs_act_release(w, f);
		return;
	}
	bs_txn_flow_free(&w->txn, f->app);
	f->app = NULL;
}

/*
 * The side listening on the SMTP port is the server.  If both ports are
 * SMTP ports (25 -> 587, rare), the handshake says who connects: a SYN-ACK
 * comes from the server; otherwise the destination of the first segment
 * seen is taken as the server.
 */
static uint8_t
server_side(const struct bs_config *cfg, const struct bs_flow_key *k,
	const struct bs_pkt *p, int dir)
{
	bool s0 = bs_config_is_smtp_port(cfg, k->port[0]);
	bool s1 = bs_config_is_smtp_port(cfg, k->port[1]);
	if (s0 != s1)
		return s0 ? 0 : 1;
	uint8_t src = dir == BS_DIR_0TO1 ? 0 : 1;
	bool synack = (p->tcp_flags & (BS_TCP_SYN | BS_TCP_ACK)) ==
		(BS_TCP_SYN | BS_TCP_ACK);
	return synack ? src : (uint8_t)(1 - src);
}


/*
 * Would the receiver's stack accept this segment's checksums?  Linux
 * drops a datagram whose IPv4 header or TCP checksum is wrong before TCP
 * sees it, so such a segment must not move our view either.  The NIC's
 * word is taken where it gives one (GOOD; NONE means the data's
 * integrity was verified though the field is not a full checksum);
 * otherwise the sums are verified here, over the first segment's IPv4
 * header and the whole TCP segment (chained mbufs included).
 */
static bool
cksum_ok(const struct rte_mbuf *m, const struct bs_pkt *p)
{
	uint64_t ipf = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
	uint64_t l4f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;

	if (ipf == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
			l4f == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		return false;
	if (p->l3 == BS_L3_IPV4 && ipf == RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN &&
			bs_cksum_fold(bs_cksum_add(0,
				rte_pktmbuf_mtod_offset(m, const void *,
					p->l3_off), p->l4_off - p->l3_off)) !=
				0xffff)
		return false;
	if (l4f != RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN)
		return true;
	/* Pseudo-header (RFC 9293 3.1, RFC 8200 8.1) from the parsed
	 * addresses: the IPv6 length excludes extension headers. */
	uint32_t alen = p->l3 == BS_L3_IPV4 ? 4 : 16;
	uint32_t l4len = p->payload_off - p->l4_off + p->payload_len;
	uint64_t sum = bs_cksum_add(bs_cksum_add(0, p->src, alen), p->dst,
		alen) + rte_cpu_to_be_16(6) + rte_cpu_to_be_16((uint16_t)l4len);
	uint16_t raw;
	if (l4len > 0xffff || bs_cksum_mbuf(m, p->l4_off, l4len, &raw))
		return false;
	return bs_cksum_fold(sum + raw) == 0xffff;
}

/* May the worker write into segment s (and its packet's header)? */
static inline bool
writable(const struct rte_mbuf *s)
{
	return RTE_MBUF_DIRECT(s) && rte_mbuf_refcnt_read(s) == 1;
}

/*
 * Apply a rewrite reassembly asked for: the span [fix_lo, fix_hi) of the
 * piece at data (piece_off bytes into the TCP payload) becomes the bytes
 * first seen, and the TCP checksum follows (RFC 1624), so the server gets
 * a valid segment that agrees with what it already holds.
 */
static void
apply_fix(struct bs_worker *w, struct rte_mbuf *m, const struct bs_pkt *p,
	uint8_t *data, uint32_t piece_off, const struct bs_seg_out *o)
{
	uint8_t *ck = rte_pktmbuf_mtod_offset(m, uint8_t *, p->l4_off + 16);
	uint32_t n = o->fix_hi - o->fix_lo;
	size_t off = (size_t)(p->payload_off - p->l4_off) + piece_off +
		o->fix_lo;
	uint16_t c = (uint16_t)((ck[0] << 8) | ck[1]);

	c = bs_cksum_adjust(c, data + o->fix_lo, o->fix + o->fix_lo, n, off);
	memcpy(data + o->fix_lo, o->fix + o->fix_lo, n);
	ck[0] = (uint8_t)(c >> 8);
	ck[1] = (uint8_t)c;
	BS_CNT_INC(&w->cnt, seg_rewritten);
}

/*
 * Give the engine the TCP payload of m, which may span chained mbufs:
 * each piece goes in as its own segment at its own sequence number, with
 * SYN on the first and FIN on the last, so the engine never needs a
 * linear copy.  *judged collects what reassembly accepted (BS_SEGO_*).
 * A rewrite is applied here; one that cannot be (the packet is shared, or
 * its checksum field is not a full checksum) turns into a drop.
 */
static enum bs_seg_verdict
feed_engine(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	struct rte_mbuf *m, bool to_server, uint64_t now_ms, uint8_t *judged)
{
	uint8_t *data = rte_pktmbuf_mtod_offset(m, uint8_t *, p->payload_off);
	bool can_fix = writable(m) && (m->ol_flags &
		RTE_MBUF_F_RX_L4_CKSUM_MASK) != RTE_MBUF_F_RX_L4_CKSUM_NONE;
	struct bs_seg_out out = { .fix = can_fix ? w->fix : NULL,
		.fix_cap = BS_SEG_FIX_MAX };
	struct bs_seg seg = {
		.data = data,
		.len = p->payload_len,
		.seq = p->seq,
		.ack = p->ack,
		.win = p->win,
		.urg = p->urg,
		.flags = p->tcp_flags,
		.to_server = to_server,
		.wscale = p->wscale,
		.sack = p->sack_ok,
		.pkt = m,
		.out = &out,
	};
	uint32_t first = rte_pktmbuf_data_len(m) > p->payload_off
		? rte_pktmbuf_data_len(m) - p->payload_off : 0;
	enum bs_seg_verdict v;
	bs_txn_decision_reset(&w->txn);
	if (likely(p->payload_len <= first)) {
		v = bs_smtp_flow_input(w->txn.smtp, f->app, &seg, now_ms);
		*judged = out.flags;
		if (unlikely(v == BS_SEG_REWRITE)) {
			apply_fix(w, m, p, data, 0, &out);
			v = BS_SEG_PASS;
		}
		return v;
	}

	/* Chained mbuf: pieces in order; the verdict is the worst one. */
	BS_CNT_INC(&w->cnt, pkt_multiseg);
	v = BS_SEG_PASS;
	*judged = 0;
	uint32_t left = p->payload_len, off = 0;
	struct rte_mbuf *s = m;
	uint32_t take = first;
	while (s != NULL && left > 0) {
		struct bs_seg piece = seg;
		uint8_t *pd = s == m ? data : rte_pktmbuf_mtod(s, uint8_t *);
		piece.data = pd;
		piece.len = take < left ? take : left;
		piece.seq = p->seq + off;
		if (off > 0)
			piece.flags &= (uint8_t)~(BS_TCP_SYN | BS_TCP_URG);
		if (piece.len < left)
			piece.flags &= (uint8_t)~(BS_TCP_FIN | BS_TCP_RST);
		out.flags = 0;
		out.fix = can_fix && writable(s) ? w->fix : NULL;
		enum bs_seg_verdict pv = bs_smtp_flow_input(w->txn.smtp,
			f->app, &piece, now_ms);
		*judged |= out.flags;
		if (pv == BS_SEG_REWRITE)
			apply_fix(w, m, p, pd, off, &out);
		else if (pv == BS_SEG_DROP)
			v = BS_SEG_DROP;
		off += piece.len;
		left -= piece.len;
		s = s->next;
		take = s != NULL ? rte_pktmbuf_data_len(s) : 0;
	}
	return v;
}

/* Is the engine following f (so its judgement of RST and FIN counts)? */
static inline bool
followed(const struct bs_flow *f)
{
	return !f->act && f->app != NULL && bs_smtp_flow_inspected(f->app);
}

/* Has f ended, so that a new SYN on its 4-tuple starts a new flow? */
static inline bool
flow_over(const struct bs_flow *f)
{
	if (followed(f))
		return bs_smtp_flow_closed(f->app); /* RST taken, both FINs */
	return f->fin_seen != 0;
}

/*
 * The handshake is complete (or the flow was picked up mid-stream): now,
 * and only now, engine state is made, and reassembly is given the SYNs
 * the entry kept, unless the current segment is one of them.
 */
static void
establish(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	bool to_server, uint64_t now_ms)
{
	const struct bs_flow_key *k = &f->key;

	f->hs |= BS_HS_DONE;
	bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_LONG);
	BS_CNT_INC(&w->cnt, flow_established);
	if (f->server_inside == BS_SIDE_INSIDE)
		BS_CNT_INC(&w->cnt, flow_server_inside);
	else if (f->server_inside == BS_SIDE_OUTSIDE)
		BS_CNT_INC(&w->cnt, flow_server_outside);
	if (!w->cfg->smtp_inspect)
		return;
	struct bs_smtp_endpoints ep = { .l3 = k->l3,
		.server_inside = f->server_inside };
	uint8_t cs = (uint8_t)(1 - f->server_side);
	memcpy(ep.client, k->addr[cs], sizeof(ep.client));
	memcpy(ep.server, k->addr[f->server_side], sizeof(ep.server));
	ep.cport = k->port[cs];
	ep.sport = k->port[f->server_side];
	f->app = bs_txn_flow_new(&w->txn, &ep);
	if (f->app == NULL) {
		BS_CNT_INC(&w->cnt, flow_engine_nomem);
		return;
	}
	bool cur_syn = (p->tcp_flags & BS_TCP_SYN) != 0;
	if ((f->hs & BS_HS_SYN) && !(cur_syn && to_server)) {
		const struct bs_flow_syn *y = &f->syn[0];
		struct bs_seg s = { .seq = y->isn, .win = y->win,
			.flags = BS_TCP_SYN, .to_server = 1,
			.wscale = y->wscale, .sack = y->sack };
		bs_smtp_flow_input(w->txn.smtp, f->app, &s, now_ms);
	}
	if ((f->hs & BS_HS_SYNACK) && !(cur_syn && !to_server)) {
		const struct bs_flow_syn *y = &f->syn[1];
		struct bs_seg s = { .seq = y->isn, .ack = f->syn[0].isn + 1,
			.win = y->win, .flags = BS_TCP_SYN | BS_TCP_ACK,
			.to_server = 0, .wscale = y->wscale, .sack = y->sack };
		bs_smtp_flow_input(w->txn.smtp, f->app, &s, now_ms);
	}
}

static inline void
keep_syn(struct bs_flow_syn *y, const struct bs_pkt *p)
{
	y->isn = p->seq;
	y->win = p->win;
	y->wscale = p->wscale;
	y->sack = p->sack_ok;
}

/*
 * A half-open flow (no complete handshake yet) costs one table entry and
 * no engine state: a SYN flood must not buy more.  Returns 1 when the
 * handshake is now complete (the caller goes on with this segment), 0
 * while it is not, -1 when a RST ended the attempt (f was removed).
 *
 * Complete means: data in either direction (a stack only sends data on
 * an established connection; a flow picked up mid-stream starts here
 * too), or the client's ACK of the SYN-ACK (Linux's tcp_check_req()
 * checks that it acknowledges exactly the server's ISN + 1).
 */
static int
handshake(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	bool to_server)
{
	uint8_t fl = p->tcp_flags;

	if (fl & BS_TCP_RST) {
		/*
		 * The client abandoning the attempt (a flood's spoofed
		 * sources answer the SYN-ACK so: seq = its ack) or the
		 * server refusing it (RST|ACK of the SYN): the entry goes.
		 */
		bool ok = (f->hs & BS_HS_SYN) && (to_server
			? p->seq == f->syn[0].isn + 1
			: (fl & BS_TCP_ACK) && p->ack == f->syn[0].isn + 1);
		if (ok) {
			BS_CNT_INC(&w->cnt, flow_closed);
			bs_flow_remove(w->flows, f);
			return -1;
		}
		return 0;
	}
	if (fl & BS_TCP_SYN) {
		if (to_server && !(fl & BS_TCP_ACK)) {
			/* A new attempt (or a retransmission) on the tuple. */
			keep_syn(&f->syn[0], p);
			f->hs = BS_HS_SYN;
		} else if (!to_server && (fl & BS_TCP_ACK)) {
			keep_syn(&f->syn[1], p);
			if (!(f->hs & BS_HS_SYN))
				f->syn[0].isn = p->ack - 1;
			f->hs |= BS_HS_SYNACK;
		}
		return p->payload_len > 0; /* TFO data: established */
	}
	if (p->payload_len > 0)
		return 1;
	return to_server && (fl & BS_TCP_ACK) && (f->hs & BS_HS_SYNACK) &&
		p->ack == f->syn[1].isn + 1;
}

/* A new entry: who serves, and on which side of the pair it sits. */
static void
flow_init(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	int dir, const struct bs_rxq *q)
{
	f->server_side = server_side(w->cfg, &f->key, p, dir);
	bool from_server = (dir == BS_DIR_0TO1 ? 0 : 1) == f->server_side;
	if (q->inside == BS_SIDE_UNKNOWN)
		f->server_inside = BS_SIDE_UNKNOWN;
	else if (from_server)
		f->server_inside = q->inside;
	else
		f->server_inside = q->inside == BS_SIDE_INSIDE
			? BS_SIDE_OUTSIDE : BS_SIDE_INSIDE;
	BS_CNT_INC(&w->cnt, flow_created);
}

/* What track_smtp() did with a segment. */
enum trk {
	TRK_PASS = 0, /* forward it */
	TRK_DROP,     /* free it: a conflicting retransmission */
	TRK_TAKEN,    /* the inline action took it (*mp is NULL now) */
};

/* Feed a followed flow's segment and act on the verdicts it completes;
 * the time it takes is the hold of a segment that ends a message. */
static enum trk
feed_and_act(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	struct rte_mbuf **mp, const struct bs_rxq *q, bool to_server,
	uint64_t now_ms, uint8_t *judged)
{
	uint64_t t0 = rte_rdtsc();
	enum bs_seg_verdict v = feed_engine(w, f, p, *mp, to_server, now_ms,
		judged);
	uint64_t t1 = rte_rdtsc();
	struct bs_act_worker *a = &w->act;
	if (likely(w->txn.dec.n_eom == 0)) {
		bs_lat_add(&a->other, (uint64_t)((double)(t1 - t0) *
			a->ns_per_cycle));
		return v == BS_SEG_DROP ? TRK_DROP : TRK_PASS;
	}
	enum trk r = v == BS_SEG_DROP ? TRK_DROP : TRK_PASS;
	/* (A conflicting copy that could not be rewritten would be dropped
	 * anyway: refusing drops it too.) */
	if (w->txn.dec.refuse) {
		if (bs_act_refuse(w, f, p, mp, q))
			r = TRK_TAKEN;
		bs_lat_add(&a->refuse, (uint64_t)((double)(rte_rdtsc() - t1) *
			a->ns_per_cycle));
	}
	uint64_t held_ns = (uint64_t)((double)(rte_rdtsc() - t0) *
		a->ns_per_cycle);
	bs_lat_add(&a->hold, held_ns);
	BS_LAT_NOTE(&w->cnt, hold_latency, held_ns);
	return r;
}

/*
 * Follow one SMTP segment.  Order matters: nothing about a segment the
 * server would not believe (wrong side of the pair, bad checksum) may
 * touch the entry; a RST or FIN of a followed flow moves the table only
 * once reassembly has accepted it.  A segment of a refused connection is
 * the action's, whatever it is.
 */
static enum trk
track_smtp(struct bs_worker *w, struct bs_pkt_meta *pm, struct rte_mbuf **mp,
	const struct bs_rxq *q, uint64_t now_ms)
{
	struct rte_mbuf *m = *mp;
	const struct bs_pkt *p = &pm->p;
	const struct bs_flow_key *kp = &pm->k;
	int dir = pm->dir;
	uint8_t fl = p->tcp_flags;
	/*
	 * Create on a SYN or on data (mid-stream pickup); a stray ACK, FIN or
	 * RST for a flow we do not know is not worth an entry, and keeps
	 * scans from filling the table.
	 */
	bool create = (fl & BS_TCP_SYN) || p->payload_len > 0;

	BS_CNT_INC(&w->cnt, smtp_packets);
	struct bs_flow *f = bs_flow_find_hashed(w->flows, kp, pm->hash);
	if (f == NULL && !create)
		return TRK_PASS;
	uint8_t sender = dir == BS_DIR_0TO1 ? 0 : 1;
	if (unlikely(f != NULL && f->act)) {
		/* Refused: nothing of it reaches either side but what the
		 * action writes; a new SYN on the 4-tuple is a new
		 * connection. */
		if ((fl & (BS_TCP_SYN | BS_TCP_ACK)) != BS_TCP_SYN) {
			bool to_srv = sender != f->server_side;
			bool srv_in = f->server_inside == BS_SIDE_INSIDE;
			bool from_in = sender == f->server_side ? srv_in
								: !srv_in;
			bool believed = cksum_ok(m, p) &&
				(f->server_inside == BS_SIDE_UNKNOWN ||
				 q->inside == BS_SIDE_UNKNOWN ||
				 from_in == (q->inside == BS_SIDE_INSIDE));
			bs_flow_touch(w->flows, f, now_ms);
			bs_act_segment(w, f, p, mp, q, to_srv, believed);
			return TRK_TAKEN;
		}
		bs_flow_remove(w->flows, f);
		BS_CNT_INC(&w->cnt, flow_reused);
		f = NULL;
	}
	if (f != NULL && f->server_inside != BS_SIDE_UNKNOWN &&
			q->inside != BS_SIDE_UNKNOWN) {
		/* The server's packets come in on its side's port, the
		 * client's on the other: anything else is not their word. */
		bool srv_in = f->server_inside == BS_SIDE_INSIDE;
		bool from_in = sender == f->server_side ? srv_in : !srv_in;
		if (from_in != (q->inside == BS_SIDE_INSIDE)) {
			BS_CNT_INC(&w->cnt, seg_wrong_side);
			return TRK_PASS;
		}
	}
	/* Only segments that could change what is followed pay for a
	 * software checksum. */
	if (w->cfg->smtp_inspect && (f == NULL || !(f->hs & BS_HS_DONE) ||
			followed(f)) && !cksum_ok(m, p)) {
		BS_CNT_INC(&w->cnt, seg_cksum_bad);
		return TRK_PASS;
	}
	if (f != NULL) {
		bs_flow_touch(w->flows, f, now_ms);
		/* A bare SYN on a flow that has ended is a new connection
		 * reusing the ports: start afresh (the old one's records end
		 * now). */
		if ((fl & (BS_TCP_SYN | BS_TCP_ACK)) == BS_TCP_SYN &&
				(f->hs & BS_HS_DONE) && flow_over(f)) {
			bs_flow_remove(w->flows, f);
			BS_CNT_INC(&w->cnt, flow_reused);
			f = NULL;
		}
	}
	if (f == NULL) {
		bool created;
		f = bs_flow_lookup_hashed(w->flows, kp, pm->hash, now_ms, true,
			&created);
		if (f == NULL) {
			BS_CNT_INC(&w->cnt, flow_table_full);
			return TRK_PASS;
		}
		flow_init(w, f, p, dir, q);
	}
	f->bytes += rte_pktmbuf_pkt_len(m);
	bool to_server = sender != f->server_side;
	if (!(f->hs & BS_HS_DONE)) {
		int h = handshake(w, f, p, to_server);
		if (h <= 0)
			return TRK_PASS;
		establish(w, f, p, to_server, now_ms);
	}
	if (!followed(f)) {
		/* Nobody judges this flow's RST and FIN: take them as sent
		 * (it is passed uninspected either way). */
		if (fl & BS_TCP_RST) {
			if (f->fin_seen != 3)
				BS_CNT_INC(&w->cnt, flow_closed);
			f->fin_seen = 3;
			bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_SHORT);
		} else if (fl & BS_TCP_FIN) {
			uint8_t before = f->fin_seen;
			f->fin_seen |= (uint8_t)(1u << dir);
			if (f->fin_seen == 3 && before != 3)
				BS_CNT_INC(&w->cnt, flow_closed);
			bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_SHORT);
		}
		return TRK_PASS;
	}
	uint8_t judged = 0;
	enum trk v = feed_and_act(w, f, p, mp, q, to_server, now_ms, &judged);
	if (v == TRK_TAKEN)
		return v;
	if (unlikely(judged & (BS_SEGO_RST | BS_SEGO_FIN))) {
		uint8_t before = f->fin_seen;
		if (judged & BS_SEGO_RST)
			f->fin_seen = 3;
		if (judged & BS_SEGO_FIN)
			f->fin_seen |= (uint8_t)(1u << dir);
		if (f->fin_seen == 3 && before != 3)
			BS_CNT_INC(&w->cnt, flow_closed);
		bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_SHORT);
	}
	return v;
}

/*
 * Packet counters of one burst, kept in locals and added once per burst:
 * a counter block store per packet and counter would cost more than the
 * first look at the packet itself.
 */
struct pkt_tally {
	uint32_t res[BS_PKT_MALFORMED + 1]; /* by enum bs_pkt_result */
	uint32_t ipv4, ipv6, vlan, ipv4_opts, ipv6_ext;
};

static inline void
tally_add(struct bs_counters *c, const struct pkt_tally *t)
{
	BS_CNT_ADD(c, pkt_tcp, t->res[BS_PKT_TCP]);
	BS_CNT_ADD(c, pkt_udp, t->res[BS_PKT_UDP]);
	BS_CNT_ADD(c, pkt_other_l4, t->res[BS_PKT_OTHER_L4]);
	BS_CNT_ADD(c, pkt_fragment, t->res[BS_PKT_FRAGMENT]);
	BS_CNT_ADD(c, pkt_non_ip, t->res[BS_PKT_NON_IP]);
	BS_CNT_ADD(c, pkt_truncated, t->res[BS_PKT_TRUNCATED]);
	BS_CNT_ADD(c, pkt_malformed, t->res[BS_PKT_MALFORMED]);
	BS_CNT_ADD(c, pkt_ipv4, t->ipv4);
	BS_CNT_ADD(c, pkt_ipv6, t->ipv6);
	BS_CNT_ADD(c, pkt_vlan, t->vlan);
	BS_CNT_ADD(c, pkt_ipv4_options, t->ipv4_opts);
	BS_CNT_ADD(c, pkt_ipv6_ext, t->ipv6_ext);
}

/*
 * The SMTP port test of every TCP segment.  A 256-byte filter (entry
 * port % 256 set for each SMTP port; four cache lines that stay hot)
 * answers "no" for most segments with two loads; only on "maybe" are
 * the configured ports compared.  Built from the published settings
 * whenever they change.
 */
static void
smtp_port_filter(struct bs_worker *w, const struct bs_config *cfg)
{
	const struct bs_cfg_ports *sp = &cfg->smtp_ports;

	memset(w->smtp_filter, sp->n > BS_CFG_MAX_PORTS, sizeof(w->smtp_filter));
	for (unsigned int i = 0; i < sp->n && i < BS_CFG_MAX_PORTS; i++)
		w->smtp_filter[sp->port[i] & 0xff] = 1;
}

static inline bool
smtp_ports(const struct bs_worker *w, uint16_t sp, uint16_t dp)
{
	if (likely((w->smtp_filter[sp & 0xff] | w->smtp_filter[dp & 0xff]) ==
			0))
		return false;
	return bs_config_is_smtp_port(w->cfg, dp) ||
		bs_config_is_smtp_port(w->cfg, sp);
}

/*
 * First pass over one packet: count it and, for an SMTP segment, parse
 * it fully, build and hash its flow key and prefetch the bucket (its
 * meta goes to the burst's next SMTP slot).  Most packets are settled
 * by bs_pkt_peek() alone; the full parser sees SMTP segments and the
 * unusual frames (tags, options, fragments, broken headers).
 */
static inline void
classify_one(struct bs_worker *w, struct bs_burst *b, uint16_t i,
	struct pkt_tally *t)
{
	struct rte_mbuf *m = b->pkts[i];
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
	/* Headers must be in the first segment; a chained mbuf's payload may
	 * run on into the next ones (feed_engine() walks them). */
	uint32_t hl = rte_pktmbuf_data_len(m), len = rte_pktmbuf_pkt_len(m);
	uint8_t l3 = 0;
	uint16_t sp = 0, dp = 0;
	int k = bs_pkt_peek(data, hl, len, &l3, &sp, &dp);

	if (likely(k != BS_PKT_PEEK_FULL)) {
		t->res[k]++;
		if (l3 == BS_L3_IPV4)
			t->ipv4++;
		else
			t->ipv6++;
		if (k != BS_PKT_TCP || likely(!smtp_ports(w, sp, dp)))
			return;
	}
	struct bs_pkt_meta *pm = &b->meta[b->n_smtp];
	struct bs_pkt *p = &pm->p;
	int r = bs_pkt_parse_seg(data, hl, len, p);
	if (k == BS_PKT_PEEK_FULL) {
		t->res[r]++;
		if (p->vlan_count)
			t->vlan++;
		if (p->l3 == BS_L3_IPV4) {
			t->ipv4++;
			t->ipv4_opts += p->has_ip_opts;
		} else if (p->l3 == BS_L3_IPV6) {
			t->ipv6++;
			t->ipv6_ext += p->has_ip_opts;
		}
		if (r != BS_PKT_TCP || !smtp_ports(w, p->sport, p->dport))
			return;
	}
	pm->dir = (int8_t)bs_flow_key_from_pkt(p, b->q->link, &pm->k);
	pm->hash = bs_flow_hash(w->flows, &pm->k);
	bs_flow_prefetch(w->flows, pm->hash, 0);
	b->smtp_idx[b->n_smtp++] = i;
}

/*
 * The worker pipelines bursts two deep so that the flow table's cache
 * misses (bucket head, then entry: both usually DRAM once packet copies
 * have swept the caches) are hidden behind useful work:
 *
 *   receive burst k; stage 2 of burst k-1 (its buckets, prefetched an
 *   iteration ago, are read and its entries prefetched); stage 1 of burst
 *   k (parse, hash, prefetch buckets); finish burst k-1 (look up, track,
 *   forward).
 *
 * Bursts finish in arrival order, so every flow's (and the worker's)
 * packet order is kept.  A burst waits at most one loop iteration: when
 * an iteration receives nothing, the pending burst is finished at once.
 */
/* Not inlined: one call per burst, and profiles then show each stage. */
static __rte_noinline void
burst_stage1(struct bs_worker *w, struct bs_burst *b)
{
	uint16_t n = b->n;
	uint64_t bytes = 0;
	struct pkt_tally t;

	memset(&t, 0, sizeof(t));
	b->n_smtp = 0;
	for (uint16_t i = 0; i < n; i++) {
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(b->pkts[i + 1], void *));
		bytes += rte_pktmbuf_pkt_len(b->pkts[i]);
		classify_one(w, b, i, &t);
	}
	tally_add(&w->cnt, &t);
	b->rx_bytes = bytes;
	BS_CNT_ADD(&w->cnt, rx_packets, n);
	BS_CNT_ADD(&w->cnt, rx_bytes, bytes);
	w->port_cnt[b->q->port].rx += n;
}

static __rte_noinline void
burst_stage2(struct bs_worker *w, const struct bs_burst *b)
{
	for (uint16_t j = 0; j < b->n_smtp; j++)
		bs_flow_prefetch(w->flows, b->meta[j].hash, 1);
}

static __rte_noinline void
burst_finish(struct bs_worker *w, struct bs_burst *b, uint64_t now_ms)
{
	const struct bs_rxq *q = b->q;
	struct rte_mbuf **pkts = b->pkts;
	uint16_t n = b->n, n_drop = 0;
	uint64_t bytes = b->rx_bytes; /* what will be sent */

	uint16_t n_taken = 0;
	for (uint16_t j = 0; j < b->n_smtp; j++) {
		uint16_t i = b->smtp_idx[j];
		uint32_t len = rte_pktmbuf_pkt_len(pkts[i]);
		enum trk r = track_smtp(w, &b->meta[j], &pkts[i], q, now_ms);

		if (r == TRK_DROP) {
			/* Normalise: the conflicting copy never reaches the
			 * server, so it sees what we saw. */
			bytes -= len;
			rte_pktmbuf_free(pkts[i]);
			pkts[i] = NULL;
			n_drop++;
		} else if (r == TRK_TAKEN) {
			bytes -= len;
			n_taken++;
		}
	}
	if (unlikely(n_drop + n_taken > 0)) {
		uint16_t k = 0;
		for (uint16_t i = 0; i < n; i++)
			if (pkts[i] != NULL)
				pkts[k++] = pkts[i];
		BS_CNT_ADD(&w->cnt, seg_dropped_conflict, n_drop);
		n = (uint16_t)(n - n_drop - n_taken);
	}
	if (unlikely(w->cfg->mode == BS_MODE_TAP)) {
		/* The ports carry copies: forwarding them would duplicate
		 * the traffic.  Only what the action injects goes out. */
		for (uint16_t i = 0; i < n; i++)
			rte_pktmbuf_free(pkts[i]);
		BS_CNT_ADD(&w->cnt, tap_frames, n);
		n = 0;
		bytes = 0;
	}

	/* Forward unchanged.  Retry a full TX ring a bounded number of
	 * times, then drop and count: never block the loop. */
	uint16_t sent = 0;
	for (unsigned int t = 0; t <= BS_TX_RETRIES && sent < n; t++)
		sent += rte_eth_tx_burst(q->peer, q->queue, pkts + sent,
			(uint16_t)(n - sent));
	if (sent < n) {
		uint64_t lost = 0;
		for (uint16_t i = sent; i < n; i++) {
			lost += rte_pktmbuf_pkt_len(pkts[i]);
			rte_pktmbuf_free(pkts[i]);
		}
		BS_CNT_ADD(&w->cnt, tx_dropped, n - sent);
		w->port_cnt[q->peer].tx_drop += n - sent;
		bytes -= lost;
	}
	BS_CNT_ADD(&w->cnt, tx_packets, sent);
	BS_CNT_ADD(&w->cnt, tx_bytes, bytes);
	w->port_cnt[q->peer].tx += sent;
	/* After the frames they follow: RSTs, replies, ACKs. */
	if (unlikely(w->act.n_out > 0))
		bs_act_flush(w, q->queue);
}

/* Finish the pending burst now (idle queues, shutdown). */
static void
flush_pending(struct bs_worker *w, uint64_t now_ms)
{
	if (w->pending < 0)
		return;
	struct bs_burst *b = &w->burst[w->pending];
	burst_stage2(w, b);
	burst_finish(w, b, now_ms);
	w->pending = -1;
}

int
bs_worker_main(void *arg)
{
	struct bs_worker *w = arg;
	const uint16_t burst = (uint16_t)w->cfg->burst_size;

	rcu_register_thread();
	smtp_port_filter(w, w->cfg);
	w->pending = -1;
	w->last_rx_tsc = rte_rdtsc();
	w->running = true;
	while (bs_running) {
		uint64_t tsc = rte_rdtsc();
		uint64_t now_ms = tsc / w->tsc_per_ms;
		bs_txn_set_clock(&w->txn, now_ms, __atomic_load_n(
			w->clock_offset_ms, __ATOMIC_RELAXED));
		bool got = false;

		if (bs_flow_count(w->flows) > 0)
			bs_flow_expire(w->flows, now_ms, BS_EXPIRE_BATCH);
		for (uint16_t i = 0; i < w->n_rxq; i++) {
			const struct bs_rxq *q = &w->rxq[i];
			int slot = w->pending == 0 ? 1 : 0;
			struct bs_burst *nb = &w->burst[slot];
			uint16_t n = rte_eth_rx_burst(q->port, q->queue,
				nb->pkts, burst);
			if (n == 0)
				continue;
			got = true;
			nb->q = q;
			nb->n = n;
			if (w->pending >= 0)
				burst_stage2(w, &w->burst[w->pending]);
			burst_stage1(w, nb);
			if (w->pending >= 0)
				burst_finish(w, &w->burst[w->pending], now_ms);
			w->pending = slot;
		}
		if (got)
			w->last_rx_tsc = tsc;
		else
			flush_pending(w, now_ms);
		if (unlikely(w->snap != NULL))
			bs_flow_snap_step(w, now_ms);
		/* Table-owned figures, copied once per loop (owner only). */
		w->cnt.v[BS_CNT_flow_active] = bs_flow_count(w->flows);
		w->cnt.v[BS_CNT_flow_expired] = bs_flow_expired(w->flows);
		w->cnt.v[BS_CNT_flow_evicted_halfopen] =
			bs_flow_evicted(w->flows, BS_FLOW_TMO_SYN);
		w->cnt.v[BS_CNT_flow_evicted_closed] =
			bs_flow_evicted(w->flows, BS_FLOW_TMO_SHORT);
		rcu_quiescent_state();
		/* After the quiescent state: the settings published since. */
		const struct bs_config *cfg = &bs_pub_current(w->pub)->cfg;
		if (unlikely(cfg != w->cfg)) {
			w->cfg = cfg;
			w->txn.cfg = cfg;
			smtp_port_filter(w, cfg);
		}
	}
	flush_pending(w, w->txn.now_ms);
	w->cnt.v[BS_CNT_flow_active] = bs_flow_count(w->flows);
	rcu_unregister_thread();
	w->running = false;
	return 0;
}
