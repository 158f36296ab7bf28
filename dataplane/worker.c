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
 * Processing never changes a byte of a packet: it parses headers, tracks
 * SMTP flows, feeds their segments to the SMTP engine (whose events the
 * transaction stage, txn.c, turns into detection and records) and counts.
 * The only packets it holds back are conflicting retransmissions, which
 * it drops to normalise the stream (counted).
 */
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_prefetch.h>
#include <urcu-qsbr.h>

#include "backstop/pkt.h"
#include "backstop/reasm.h"
#include "dataplane.h"

_Static_assert(BS_WSCALE_NONE == 1 && BS_WSCALE(0) == 2,
	"pkt.h encodes the window scale as reasm.h does");

void
bs_worker_flow_release(struct bs_flow *f, void *arg)
{
	struct bs_worker *w = arg;
	bs_txn_flow_free(&w->txn, f->app);
	f->app = NULL;
}

static inline bool
is_smtp(const struct bs_config *cfg, const struct bs_pkt *p)
{
	return bs_config_is_smtp_port(cfg, p->dport) ||
		bs_config_is_smtp_port(cfg, p->sport);
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
 * Give the engine the TCP payload of m, which may span chained mbufs:
 * each piece goes in as its own segment at its own sequence number, with
 * SYN on the first and FIN on the last, so the engine never needs a
 * linear copy.
 */
static enum bs_seg_verdict
feed_engine(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	struct rte_mbuf *m, bool to_server, uint64_t now_ms)
{
	struct bs_seg seg = {
		.data = rte_pktmbuf_mtod_offset(m, const uint8_t *,
			p->payload_off),
		.len = p->payload_len,
		.seq = p->seq,
		.ack = p->ack,
		.win = p->win,
		.urg = p->urg,
		.flags = p->tcp_flags,
		.to_server = to_server,
		.wscale = p->wscale,
		.pkt = m,
	};
	uint32_t first = rte_pktmbuf_data_len(m) > p->payload_off
		? rte_pktmbuf_data_len(m) - p->payload_off : 0;
	if (likely(p->payload_len <= first))
		return bs_smtp_flow_input(w->txn.smtp, f->app, &seg, now_ms);

	/* Chained mbuf: pieces in order; the verdict is the worst one. */
	BS_CNT_INC(&w->cnt, pkt_multiseg);
	enum bs_seg_verdict v = BS_SEG_PASS;
	uint32_t left = p->payload_len, off = 0;
	const struct rte_mbuf *s = m;
	uint32_t take = first;
	while (s != NULL && left > 0) {
		struct bs_seg piece = seg;
		piece.data = s == m ? seg.data : rte_pktmbuf_mtod(s,
			const uint8_t *);
		piece.len = take < left ? take : left;
		piece.seq = p->seq + off;
		if (off > 0)
			piece.flags &= (uint8_t)~(BS_TCP_SYN | BS_TCP_URG);
		if (piece.len < left)
			piece.flags &= (uint8_t)~(BS_TCP_FIN | BS_TCP_RST);
		if (bs_smtp_flow_input(w->txn.smtp, f->app, &piece, now_ms) ==
				BS_SEG_DROP)
			v = BS_SEG_DROP;
		off += piece.len;
		left -= piece.len;
		s = s->next;
		take = s != NULL ? rte_pktmbuf_data_len(s) : 0;
	}
	return v;
}

static enum bs_seg_verdict
track_smtp(struct bs_worker *w, struct bs_pkt_meta *pm, struct rte_mbuf *m,
	uint64_t now_ms)
{
	const struct bs_pkt *p = &pm->p;
	const struct bs_flow_key *kp = &pm->k;
	bool created;
	int dir = pm->dir;
	uint8_t fl = p->tcp_flags;
	/*
	 * Create on a SYN or on data (mid-stream pickup); a stray ACK, FIN or
	 * RST for a flow we do not know is not worth an entry, and keeps
	 * scans from filling the table.
	 */
	bool create = (fl & BS_TCP_SYN) || p->payload_len > 0;

	BS_CNT_INC(&w->cnt, smtp_packets);
	struct bs_flow *f = bs_flow_lookup_hashed(w->flows, kp, pm->hash,
		now_ms, create, &created);
	/*
	 * A bare SYN on a flow that has closed is a new connection reusing
	 * the ports: start afresh (the old one's records end now).
	 */
	if (f != NULL && !created && (fl & (BS_TCP_SYN | BS_TCP_ACK)) ==
			BS_TCP_SYN && (f->fin_seen != 0 || (f->app != NULL &&
			bs_smtp_flow_closed(f->app)))) {
		bs_flow_remove(w->flows, f);
		BS_CNT_INC(&w->cnt, flow_reused);
		f = bs_flow_lookup_hashed(w->flows, kp, pm->hash, now_ms, true,
			&created);
	}
	if (f == NULL) {
		if (create)
			BS_CNT_INC(&w->cnt, flow_table_full);
		return BS_SEG_PASS;
	}
	if (created) {
		BS_CNT_INC(&w->cnt, flow_created);
		f->server_side = server_side(w->cfg, kp, p, dir);
		struct bs_smtp_endpoints ep = { .l3 = kp->l3 };
		uint8_t cs = (uint8_t)(1 - f->server_side);
		memcpy(ep.client, kp->addr[cs], sizeof(ep.client));
		memcpy(ep.server, kp->addr[f->server_side], sizeof(ep.server));
		ep.cport = kp->port[cs];
		ep.sport = kp->port[f->server_side];
		if (w->cfg->smtp_inspect) {
			f->app = bs_txn_flow_new(&w->txn, &ep);
			if (f->app == NULL)
				BS_CNT_INC(&w->cnt, flow_engine_nomem);
		}
	}
	if (fl & BS_TCP_RST) {
		if (f->tmo != BS_FLOW_TMO_SHORT || f->fin_seen != 3) {
			f->fin_seen = 3;
			BS_CNT_INC(&w->cnt, flow_closed);
		}
		bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_SHORT);
	} else if (fl & BS_TCP_FIN) {
		uint8_t before = f->fin_seen;
		f->fin_seen |= (uint8_t)(1u << dir);
		if (f->fin_seen == 3 && before != 3)
			BS_CNT_INC(&w->cnt, flow_closed);
		bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_SHORT);
	} else if (p->payload_len > 0 && f->fin_seen == 0) {
		bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_LONG);
	}
	if (f->app == NULL || !bs_smtp_flow_inspected(f->app))
		return BS_SEG_PASS;
	/* Direction sent by the server side is "to client". */
	bool to_server = (dir == BS_DIR_0TO1) == (f->server_side == 1);
	return feed_engine(w, f, p, m, to_server, now_ms);
}

/* First pass: parse, count, and for SMTP segments hash the flow key and
 * prefetch its bucket. */
static inline void
classify_one(struct bs_worker *w, struct rte_mbuf *m, struct bs_pkt_meta *pm)
{
	struct bs_pkt *p = &pm->p;
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
	/* Headers must be in the first segment; a chained mbuf's payload may
	 * run on into the next ones (feed_engine() walks them). */
	int r = bs_pkt_parse_seg(data, rte_pktmbuf_data_len(m),
		rte_pktmbuf_pkt_len(m), p);
	pm->dir = -1;

	if (p->vlan_count)
		BS_CNT_INC(&w->cnt, pkt_vlan);
	if (p->l3 == BS_L3_IPV4) {
		BS_CNT_INC(&w->cnt, pkt_ipv4);
		if (p->has_ip_opts)
			BS_CNT_INC(&w->cnt, pkt_ipv4_options);
	} else if (p->l3 == BS_L3_IPV6) {
		BS_CNT_INC(&w->cnt, pkt_ipv6);
		if (p->has_ip_opts)
			BS_CNT_INC(&w->cnt, pkt_ipv6_ext);
	}
	switch (r) {
	case BS_PKT_TCP:
		BS_CNT_INC(&w->cnt, pkt_tcp);
		if (is_smtp(w->cfg, p)) {
			pm->dir = (int8_t)bs_flow_key_from_pkt(p, 0, &pm->k);
			pm->hash = bs_flow_hash(w->flows, &pm->k);
			bs_flow_prefetch(w->flows, pm->hash, 0);
		}
		break;
	case BS_PKT_UDP:
		BS_CNT_INC(&w->cnt, pkt_udp);
		break;
	case BS_PKT_OTHER_L4:
		BS_CNT_INC(&w->cnt, pkt_other_l4);
		break;
	case BS_PKT_FRAGMENT:
		BS_CNT_INC(&w->cnt, pkt_fragment);
		break;
	case BS_PKT_NON_IP:
		BS_CNT_INC(&w->cnt, pkt_non_ip);
		break;
	case BS_PKT_TRUNCATED:
		BS_CNT_INC(&w->cnt, pkt_truncated);
		break;
	default:
		BS_CNT_INC(&w->cnt, pkt_malformed);
		break;
	}
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
static void
burst_stage1(struct bs_worker *w, struct bs_burst *b)
{
	uint16_t n = b->n, n_smtp = 0;
	uint64_t bytes = 0;

	for (uint16_t i = 0; i < n; i++) {
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(b->pkts[i + 1], void *));
		bytes += rte_pktmbuf_pkt_len(b->pkts[i]);
		classify_one(w, b->pkts[i], &b->meta[i]);
		n_smtp += b->meta[i].dir >= 0;
	}
	b->n_smtp = n_smtp;
	b->rx_bytes = bytes;
	BS_CNT_ADD(&w->cnt, rx_packets, n);
	BS_CNT_ADD(&w->cnt, rx_bytes, bytes);
	w->port_cnt[b->q->port].rx += n;
}

static void
burst_stage2(struct bs_worker *w, const struct bs_burst *b)
{
	if (b->n_smtp == 0)
		return;
	for (uint16_t i = 0; i < b->n; i++)
		if (b->meta[i].dir >= 0)
			bs_flow_prefetch(w->flows, b->meta[i].hash, 1);
}

static void
burst_finish(struct bs_worker *w, struct bs_burst *b, uint64_t now_ms)
{
	const struct bs_rxq *q = b->q;
	struct rte_mbuf **pkts = b->pkts;
	uint16_t n = b->n, n_drop = 0;
	uint64_t bytes = b->rx_bytes; /* what will be sent */

	if (b->n_smtp > 0) {
		for (uint16_t i = 0; i < n; i++) {
			if (b->meta[i].dir < 0)
				continue;
			if (track_smtp(w, &b->meta[i], pkts[i], now_ms) ==
					BS_SEG_DROP) {
				/* Normalise: the conflicting copy never reaches
				 * the server, so it sees what we saw. */
				bytes -= rte_pktmbuf_pkt_len(pkts[i]);
				rte_pktmbuf_free(pkts[i]);
				pkts[i] = NULL;
				n_drop++;
			}
		}
	}
	if (unlikely(n_drop > 0)) {
		uint16_t k = 0;
		for (uint16_t i = 0; i < n; i++)
			if (pkts[i] != NULL)
				pkts[k++] = pkts[i];
		BS_CNT_ADD(&w->cnt, seg_dropped_conflict, n_drop);
		n = (uint16_t)(n - n_drop);
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
	w->pending = -1;
	w->last_rx_tsc = rte_rdtsc();
	w->running = true;
	while (bs_running) {
		uint64_t tsc = rte_rdtsc();
		uint64_t now_ms = tsc / w->tsc_per_ms;
		w->txn.now_ms = now_ms;
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
		/* Table-owned figures, copied once per loop (owner only). */
		w->cnt.v[BS_CNT_flow_active] = bs_flow_count(w->flows);
		w->cnt.v[BS_CNT_flow_expired] = bs_flow_expired(w->flows);
		rcu_quiescent_state();
	}
	flush_pending(w, w->txn.now_ms);
	w->cnt.v[BS_CNT_flow_active] = bs_flow_count(w->flows);
	rcu_unregister_thread();
	w->running = false;
	return 0;
}
