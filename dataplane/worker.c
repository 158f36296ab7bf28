/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker poll loop: one per lcore, its own queue on every port, its own
 * flow table and counters.  Nothing here takes a lock or an atomic per
 * packet.
 *
 * Loop shape (DPDK l3fwd): age a bounded number of flows, then for each RX
 * queue receive a burst, process it (prefetching the next packet), send it
 * to the peer port's queue of the same index, free what TX refused after
 * bounded retries, and finally announce an RCU quiescent state.
 *
 * Processing never changes a byte of a packet: it parses headers, tracks
 * SMTP flows and counts.  Later stages (reassembly, SMTP, detection,
 * verdicts) hang off the SMTP branch of bs_worker_burst().
 */
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_prefetch.h>
#include <urcu-qsbr.h>

#include "backstop/pkt.h"
#include "dataplane.h"

static inline bool
is_smtp(const struct bs_config *cfg, const struct bs_pkt *p)
{
	return bs_config_is_smtp_port(cfg, p->dport) ||
		bs_config_is_smtp_port(cfg, p->sport);
}

/*
 * The side listening on the SMTP port is the server.  If both ports are
 * SMTP ports (25 -> 587, rare), a bare SYN says who connects; otherwise the
 * destination of the first segment seen is taken as the server.
 */
static uint8_t
server_side(const struct bs_config *cfg, const struct bs_flow_key *k,
	const struct bs_pkt *p, int dir)
{
	bool s0 = bs_config_is_smtp_port(cfg, k->port[0]);
	bool s1 = bs_config_is_smtp_port(cfg, k->port[1]);
	if (s0 != s1)
		return s0 ? 0 : 1;
	(void)p;
	return dir == BS_DIR_0TO1 ? 1 : 0;
}

/* What the first pass over a burst learns of each packet. */
struct pkt_meta {
	struct bs_pkt p;
	struct bs_flow_key k;
	uint32_t hash;
	int8_t dir;   /* BS_DIR_*, or -1 when not an SMTP segment */
};

static void
track_smtp(struct bs_worker *w, struct pkt_meta *pm, uint32_t wire_len,
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
	if (f == NULL) {
		if (create)
			BS_CNT_INC(&w->cnt, flow_table_full);
		return;
	}
	if (created) {
		BS_CNT_INC(&w->cnt, flow_created);
		f->server_side = server_side(w->cfg, kp, p, dir);
	}
	f->pkts[dir]++;
	f->bytes[dir] += wire_len;

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
}

/* First pass: parse, count, and for SMTP segments hash the flow key and
 * prefetch its bucket. */
static inline void
classify_one(struct bs_worker *w, struct rte_mbuf *m, struct pkt_meta *pm)
{
	struct bs_pkt *p = &pm->p;
	const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
	/* Headers are in the first segment; a chained mbuf's later segments
	 * hold payload only. */
	int r = bs_pkt_parse(data, rte_pktmbuf_data_len(m), p);
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
			pm->dir = (int8_t)bs_flow_key_from_pkt(p, &pm->k);
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

void
bs_worker_burst(struct bs_worker *w, const struct bs_rxq *q,
	struct rte_mbuf **pkts, uint16_t n, uint64_t now_ms)
{
	struct pkt_meta meta[BS_MAX_BURST];
	uint64_t bytes = 0;
	uint16_t n_smtp = 0;

	/*
	 * Three passes so the flow table's cache misses overlap: parse and
	 * hash (prefetching buckets), prefetch the entries the buckets name,
	 * then look up and track.
	 */
	for (uint16_t i = 0; i < n; i++) {
		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		bytes += rte_pktmbuf_pkt_len(pkts[i]);
		classify_one(w, pkts[i], &meta[i]);
		n_smtp += meta[i].dir >= 0;
	}
	if (n_smtp > 0) {
		for (uint16_t i = 0; i < n; i++)
			if (meta[i].dir >= 0)
				bs_flow_prefetch(w->flows, meta[i].hash, 1);
		for (uint16_t i = 0; i < n; i++)
			if (meta[i].dir >= 0)
				track_smtp(w, &meta[i],
					rte_pktmbuf_pkt_len(pkts[i]), now_ms);
	}
	BS_CNT_ADD(&w->cnt, rx_packets, n);
	BS_CNT_ADD(&w->cnt, rx_bytes, bytes);
	w->port_cnt[q->port].rx += n;

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

int
bs_worker_main(void *arg)
{
	struct bs_worker *w = arg;
	struct rte_mbuf *pkts[BS_MAX_BURST];
	const uint16_t burst = (uint16_t)w->cfg->burst_size;

	rcu_register_thread();
	w->last_rx_tsc = rte_rdtsc();
	w->running = true;
	while (bs_running) {
		uint64_t tsc = rte_rdtsc();
		uint64_t now_ms = tsc / w->tsc_per_ms;
		bool got = false;

		if (bs_flow_count(w->flows) > 0)
			bs_flow_expire(w->flows, now_ms, BS_EXPIRE_BATCH);
		for (uint16_t i = 0; i < w->n_rxq; i++) {
			const struct bs_rxq *q = &w->rxq[i];
			uint16_t n = rte_eth_rx_burst(q->port, q->queue, pkts,
				burst);
			if (n == 0)
				continue;
			got = true;
			bs_worker_burst(w, q, pkts, n, now_ms);
		}
		if (got)
			w->last_rx_tsc = tsc;
		/* Table-owned figures, copied once per loop (owner only). */
		w->cnt.v[BS_CNT_flow_active] = bs_flow_count(w->flows);
		w->cnt.v[BS_CNT_flow_expired] = bs_flow_expired(w->flows);
		rcu_quiescent_state();
	}
	w->cnt.v[BS_CNT_flow_active] = bs_flow_count(w->flows);
	rcu_unregister_thread();
	w->running = false;
	return 0;
}
