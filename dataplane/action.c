/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The inline action: what a refuse verdict does to packets, beside the
 * worker that owns them (docs/ACTION.md).
 *
 * The segment that completes a message is held simply by not forwarding
 * it before its verdict: the verdict is computed inside the same
 * bs_smtp_flow_input() call (txn.c), so the hold lasts that call, and
 * when txn.c asks for a refusal (w->txn.dec) the segment is still ours.
 * Inline, a refusal then:
 *   - frees the held segment (the server never sees the end of data),
 *   - sends the server a RST at the held segment's sequence number (its
 *     rcv_nxt when everything before arrived; a server that answers with
 *     a challenge ACK, because a forwarded segment was lost on the way,
 *     gets a RST at the number that ACK names),
 *   - sends the client the replies it is owed ("550 5.7.1 ..."), a
 *     "421 4.7.0" and a FIN, acknowledging everything it sent,
 *   - ends the flow's engine state (the records are written, saying so)
 *     and keeps a small slot instead, so that the client's later segments
 *     (a retransmission of the held segment, the QUIT, its FIN) are
 *     answered and never reach the server.
 * In mode tap the ports carry copies: the most that can be done is to
 * reset both sides.  Monitor never gets here (txn.c logs and counts).
 *
 * Injected packets come from a pool of their own (bs_act_pool_size()),
 * so that refusals cannot starve reception and a flood of refusals runs
 * out of its own mbufs first (fail-open, counted).
 */
#include <string.h>

#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "dataplane.h"

/* Packets a refused connection may still get: its retransmissions and
 * segments cost the worker at most this much each. */
#define ACT_RESP_MAX 32
#define ACT_RST_MAX 8
/* Window advertised toward the client (any open window lets its FIN
 * and QUIT come). */
#define ACT_WIN 65535

static inline bool
seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static inline bool
seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

unsigned int
bs_act_pool_size(const struct bs_config *cfg, unsigned int n_workers,
	unsigned int n_ports, unsigned int nq)
{
	if (cfg->action_inject_mbufs != 0)
		return cfg->action_inject_mbufs;
	/*
	 * A burst can inject up to three packets per segment (tap resets
	 * both sides twice over), and injected packets may wait in every
	 * TX ring until the PMD recycles its descriptors; plus a per-lcore
	 * cache's worth.
	 */
	uint64_t n = (uint64_t)n_workers * (BS_ACT_OUT_MAX + 64) +
		(uint64_t)n_ports * nq * cfg->tx_ring_size;
	return n > 4194303 ? 4194303 : (unsigned int)n;
}

int
bs_act_init(struct bs_worker *w, const struct bs_config *cfg,
	struct rte_mempool *pool, int socket)
{
	struct bs_act_worker *a = &w->act;

	a->pool = pool;
	a->n_slots = cfg->action_refused_max;
	a->free_head = UINT32_MAX;
	a->ns_per_cycle = 1e9 / (double)rte_get_tsc_hz();
	if (a->n_slots == 0)
		return 0;
	a->slot = rte_zmalloc_socket("act_slots",
		(size_t)a->n_slots * sizeof(*a->slot), RTE_CACHE_LINE_SIZE,
		socket);
	if (a->slot == NULL)
		return -ENOMEM;
	for (uint32_t i = a->n_slots; i-- > 0;) {
		a->slot[i].next_free = a->free_head;
		a->free_head = i;
	}
	return 0;
}

void
bs_act_fini(struct bs_worker *w)
{
	for (uint16_t i = 0; i < w->act.n_out; i++)
		rte_pktmbuf_free(w->act.out[i].m);
	w->act.n_out = 0;
	rte_free(w->act.slot);
	w->act.slot = NULL;
}

static struct bs_act_flow *
slot_get(struct bs_act_worker *a)
{
	if (a->free_head == UINT32_MAX)
		return NULL;
	struct bs_act_flow *s = &a->slot[a->free_head];
	a->free_head = s->next_free;
	a->in_use++;
	return s;
}

static void
slot_put(struct bs_act_worker *a, struct bs_act_flow *s)
{
	s->next_free = a->free_head;
	a->free_head = (uint32_t)(s - a->slot);
	a->in_use--;
}

void
bs_act_release(struct bs_worker *w, struct bs_flow *f)
{
	slot_put(&w->act, f->app);
	f->app = NULL;
	f->act = 0;
	w->cnt.v[BS_CNT_action_refused_flows] = w->act.in_use;
}

/* Queue m to leave on port after the burst; false when the queue is
 * full (m freed, counted). */
static bool
out_push(struct bs_worker *w, struct rte_mbuf *m, uint16_t port)
{
	struct bs_act_worker *a = &w->act;
	if (a->n_out == BS_ACT_OUT_MAX) {
		rte_pktmbuf_free(m);
		BS_CNT_INC(&w->cnt, action_inject_tx_dropped);
		return false;
	}
	a->out[a->n_out++] = (struct bs_act_out){ .m = m, .port = port };
	BS_CNT_INC(&w->cnt, action_inject_packets);
	return true;
}

/* Write a frame of the connection into m (from the inject pool). */
static bool
build(struct rte_mbuf *m, const struct bs_act_tmpl *t, bool to_server,
	uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win,
	const struct bs_act_ts *ts, const uint8_t *pl, size_t plen)
{
	size_t room = rte_pktmbuf_tailroom(m);
	size_t n = bs_act_frame(t, to_server, flags, seq, ack, win, ts, pl,
		plen, rte_pktmbuf_mtod(m, uint8_t *), room);
	if (n == 0)
		return false;
	m->data_len = (uint16_t)n;
	m->pkt_len = (uint32_t)n;
	return true;
}

/* The timestamp option of the parsed segment. */
static struct bs_act_ts
seg_ts(const struct rte_mbuf *m, const struct bs_pkt *p)
{
	return bs_act_ts_parse(rte_pktmbuf_mtod_offset(m, const uint8_t *,
		p->l4_off), (size_t)(p->payload_off - p->l4_off));
}

/* The echo of ts, as the peer writes it toward its sender. */
static inline struct bs_act_ts
ts_reply(const struct bs_act_ts *ts)
{
	return (struct bs_act_ts){ .on = ts->on, .val = ts->ecr,
		.ecr = ts->val };
}

/* Tap: the ports carry copies; reset both sides and keep following. */
static bool
refuse_tap(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	struct rte_mbuf *m, const struct bs_rxq *q)
{
	struct bs_smtp_flow *sf = f->app;
	struct bs_act_tmpl t;
	struct rte_mbuf *ms[3];

	if (bs_act_tmpl_init(&t, rte_pktmbuf_mtod(m, const uint8_t *),
			rte_pktmbuf_data_len(m), p) < 0 ||
			rte_pktmbuf_alloc_bulk(w->act.pool, ms, 3) != 0) {
		bs_txn_decided(&w->txn, sf, BS_TAKEN_PASSED, BS_FO_NOMBUF);
		return false;
	}
	struct bs_act_ts ts = seg_ts(m, p), rts = ts_reply(&ts);
	uint32_t c_nxt = bs_smtp_flow_rcv_nxt(sf, true);
	uint32_t s_nxt = bs_smtp_flow_rcv_nxt(sf, false);
	/* The server got the segment (or is about to): a RST before it
	 * and one after it, one of them at its rcv_nxt. */
	build(ms[0], &t, true, BS_TCP_RST | BS_TCP_ACK, p->seq, p->ack, 0, &ts,
		NULL, 0);
	build(ms[1], &t, true, BS_TCP_RST | BS_TCP_ACK, c_nxt, p->ack, 0, &ts,
		NULL, 0);
	build(ms[2], &t, false, BS_TCP_RST | BS_TCP_ACK, s_nxt, c_nxt, 0, &rts,
		NULL, 0);
	out_push(w, ms[0], q->peer);
	out_push(w, ms[1], q->peer);
	out_push(w, ms[2], q->port);
	bs_txn_decided(&w->txn, sf, BS_TAKEN_RESET, BS_FO_NONE);
	BS_CNT_INC(&w->cnt, action_tap_reset);
	return false;
}

bool
bs_act_refuse(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	struct rte_mbuf **mp, const struct bs_rxq *q)
{
	struct bs_act_worker *a = &w->act;
	struct bs_smtp_flow *sf = f->app;
	struct rte_mbuf *m = *mp;
	const struct bs_txn_decision *dec = &w->txn.dec;

	if (w->cfg->mode == BS_MODE_TAP)
		return refuse_tap(w, f, p, m, q);
	struct bs_act_flow *s = slot_get(a);
	if (s == NULL) {
		bs_txn_decided(&w->txn, sf, BS_TAKEN_PASSED, BS_FO_STATE);
		return false;
	}
	uint32_t c_nxt = bs_smtp_flow_rcv_nxt(sf, true);
	uint32_t s_nxt = bs_smtp_flow_rcv_nxt(sf, false);
	struct rte_mbuf *ms[2];
	if (bs_act_tmpl_init(&s->t, rte_pktmbuf_mtod(m, const uint8_t *),
			rte_pktmbuf_data_len(m), p) < 0 || c_nxt == 0 ||
			s_nxt == 0 ||
			rte_pktmbuf_alloc_bulk(a->pool, ms, 2) != 0) {
		slot_put(a, s);
		bs_txn_decided(&w->txn, sf, BS_TAKEN_PASSED, BS_FO_NOMBUF);
		return false;
	}
	struct bs_act_ts ts = seg_ts(m, p), rts = ts_reply(&ts);
	s->reply_len = (uint16_t)bs_act_reply(&dec->vr, dec->n_replies,
		(char *)s->reply, sizeof(s->reply));
	s->c_nxt = c_nxt;
	s->s_seq = s_nxt;
	s->s_end = s_nxt + s->reply_len + 1;
	s->responses = 1;
	s->rsts = 1;
	/* Toward the server, as the client: a RST where the held segment
	 * began.  Toward the client, as the server: the replies and FIN,
	 * acknowledging all it sent (the held segment and what followed
	 * it in order). */
	build(ms[0], &s->t, true, BS_TCP_RST | BS_TCP_ACK, p->seq, p->ack, 0,
		&ts, NULL, 0);
	build(ms[1], &s->t, false, BS_TCP_PSH | BS_TCP_ACK | BS_TCP_FIN,
		s_nxt, c_nxt, ACT_WIN, &rts, s->reply, s->reply_len);
	rte_pktmbuf_free(m);
	*mp = NULL;
	out_push(w, ms[0], q->peer);
	out_push(w, ms[1], q->port);
	/* The records say what was done; then the engine lets go. */
	bs_txn_decided(&w->txn, sf, BS_TAKEN_REFUSED, BS_FO_NONE);
	bs_txn_flow_free(&w->txn, sf);
	f->app = s;
	f->act = 1;
	f->fin_seen = 3;
	bs_flow_set_tmo(w->flows, f, BS_FLOW_TMO_SHORT);
	BS_CNT_INC(&w->cnt, action_refused);
	BS_CNT_INC(&w->cnt, action_consumed);
	w->cnt.v[BS_CNT_action_refused_flows] = a->in_use;
	return true;
}

void
bs_act_segment(struct bs_worker *w, struct bs_flow *f, const struct bs_pkt *p,
	struct rte_mbuf **mp, const struct bs_rxq *q, bool to_server,
	bool believed)
{
	struct bs_act_flow *s = f->app;
	struct rte_mbuf *m = *mp, *r = NULL;
	uint8_t fl = p->tcp_flags;

	*mp = NULL;
	BS_CNT_INC(&w->cnt, action_consumed);
	if (!believed)
		goto out;
	if (to_server) {
		BS_CNT_INC(&w->cnt, action_client_segs);
		if (fl & BS_TCP_RST) {
			rte_pktmbuf_free(m);
			bs_flow_remove(w->flows, f);
			return;
		}
		uint32_t end = p->seq + p->payload_len +
			((fl & BS_TCP_FIN) ? 1u : 0u);
		bool data = p->payload_len > 0 || (fl & BS_TCP_FIN);
		bool retrans = data && seq_lt(p->seq, s->c_nxt);
		/* Bytes that continue the stream are taken (the QUIT, the
		 * FIN); later ones wait for a retransmission. */
		if (data && seq_le(p->seq, s->c_nxt) && seq_lt(s->c_nxt, end))
			s->c_nxt = end;
		bool unacked = (fl & BS_TCP_ACK) && seq_lt(p->ack, s->s_end);
		if ((!data && !unacked) || s->responses >= ACT_RESP_MAX)
			goto out;
		if (rte_pktmbuf_alloc_bulk(w->act.pool, &r, 1) != 0)
			goto out;
		s->responses++;
		struct bs_act_ts ts = seg_ts(m, p), rts = ts_reply(&ts);
		if (unacked) {
			/* Our reply or FIN did not arrive: all of it again
			 * (the client keeps what it has). */
			if (retrans)
				BS_CNT_INC(&w->cnt, action_retransmits);
			build(r, &s->t, false, BS_TCP_PSH | BS_TCP_ACK |
				BS_TCP_FIN, s->s_seq, s->c_nxt, ACT_WIN, &rts,
				s->reply, s->reply_len);
		} else {
			build(r, &s->t, false, BS_TCP_ACK, s->s_end, s->c_nxt,
				ACT_WIN, &rts, NULL, 0);
		}
		out_push(w, r, q->port);
	} else {
		BS_CNT_INC(&w->cnt, action_server_segs);
		/* The server is still there (the RST was lost, or not at its
		 * rcv_nxt: it answered with a challenge ACK): reset it at the
		 * number it acknowledges. */
		if ((fl & BS_TCP_RST) || !(fl & BS_TCP_ACK) ||
				s->rsts >= ACT_RST_MAX)
			goto out;
		if (rte_pktmbuf_alloc_bulk(w->act.pool, &r, 1) != 0)
			goto out;
		s->rsts++;
		struct bs_act_ts ts = seg_ts(m, p), rts = ts_reply(&ts);
		uint32_t end = p->seq + p->payload_len +
			((fl & (BS_TCP_FIN | BS_TCP_SYN)) ? 1u : 0u);
		build(r, &s->t, true, BS_TCP_RST | BS_TCP_ACK, p->ack, end, 0,
			&rts, NULL, 0);
		out_push(w, r, q->port);
	}
out:
	rte_pktmbuf_free(m);
}

void
bs_act_flush(struct bs_worker *w, uint16_t queue)
{
	struct bs_act_worker *a = &w->act;
	uint16_t i = 0;

	while (i < a->n_out) {
		uint16_t port = a->out[i].port, n = 0;
		struct rte_mbuf *ms[64];
		while (i + n < a->n_out && n < 64 && a->out[i + n].port == port) {
			ms[n] = a->out[i + n].m;
			n++;
		}
		uint16_t sent = 0;
		for (unsigned int t = 0; t <= BS_TX_RETRIES && sent < n; t++)
			sent += rte_eth_tx_burst(port, queue, ms + sent,
				(uint16_t)(n - sent));
		for (uint16_t k = sent; k < n; k++)
			rte_pktmbuf_free(ms[k]);
		if (sent < n)
			BS_CNT_ADD(&w->cnt, action_inject_tx_dropped, n - sent);
		i = (uint16_t)(i + n);
	}
	a->n_out = 0;
}
