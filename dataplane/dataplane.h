/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private contract between the parts of the backstop program: start-up
 * (main.c), port set-up (port.c) and the worker poll loop (worker.c).
 * Only this program includes it; the engine never sees DPDK types.
 */
#ifndef BACKSTOP_DATAPLANE_H
#define BACKSTOP_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/coverage.h"
#include "backstop/flow.h"
#include "backstop/pkt.h"
#include "backstop/pubcfg.h"
#include "backstop/smtp.h"
#include "backstop/txn.h"
#include "backstop/verdict.h"
#include "backstop/action.h"
#include "backstop/ledger.h"
#include "backstop/storm.h"

/* Most ports and workers one process drives. */
#define BS_MAX_PORTS 16
#define BS_MAX_WORKERS 64
/* Largest RX burst (bounds the on-stack mbuf array). */
#define BS_MAX_BURST 512
/* TX retries before the rest of a burst is dropped and counted. */
#define BS_TX_RETRIES 8
/* Expired flows removed per loop iteration: bounds the time aging can
 * steal from packet processing. */
#define BS_EXPIRE_BATCH 64

/* How a port's RSS was found to keep both directions on one queue. */
enum bs_rss_state {
	BS_RSS_OFF = 0,     /* one queue: nothing to spread */
	BS_RSS_VERIFIED,    /* key and table read back, checked in software */
	BS_RSS_FLOW,        /* symmetric Toeplitz by an rte_flow rule */
	BS_RSS_UNVERIFIED,  /* the PMD does not report its key or table */
};

struct bs_port {
	uint16_t id;
	uint16_t peer;       /* where its packets leave */
	uint16_t nb_queues;  /* RX and TX queues configured */
	bool rss;            /* RSS is on (more than one queue) */
	uint8_t rss_state;   /* enum bs_rss_state */
	char name[RTE_ETH_NAME_MAX_LEN];
	char driver[32];
};

struct bs_rxq {
	uint16_t port, queue, peer;
	uint8_t link;   /* inline pair: port index / 2 (part of flow keys) */
	uint8_t inside; /* BS_SIDE_* (smtp.h): this port faces the protected
			 * servers, the outside, or no side is known */
};

/* What the first pass over a burst learns of each SMTP segment. */
struct bs_pkt_meta {
	struct bs_pkt p;
	struct bs_flow_key k;
	uint32_t hash;
	int8_t dir;   /* BS_DIR_* */
};

/* A received burst on its way through the worker's two-burst pipeline. */
struct bs_burst {
	const struct bs_rxq *q;
	uint16_t n;
	uint16_t n_smtp;     /* SMTP segments: meta[0..n_smtp) */
	uint64_t rx_bytes;
	struct rte_mbuf *pkts[BS_MAX_BURST];
	uint16_t smtp_idx[BS_MAX_BURST]; /* meta[j] is of pkts[smtp_idx[j]] */
	struct bs_pkt_meta meta[BS_MAX_BURST];
};

/* Per-port figures a worker keeps (summed by the reader). */
struct bs_port_cnt {
	uint64_t rx, tx, tx_drop;
};

/*
 * One refused connection the worker keeps answering (action.c): the
 * client's retransmissions of the held segment get the reply again, its
 * later segments an ACK (never the server), the server's segments a RST.
 */
struct bs_act_flow {
	struct bs_act_tmpl t;
	uint32_t c_nxt;     /* client bytes consumed (acknowledged) up to */
	uint32_t s_seq;     /* the reply's first sequence number */
	uint32_t s_end;     /* after the reply and our FIN */
	uint32_t next_free; /* free list */
	uint16_t reply_len;
	uint8_t responses;  /* packets sent to the client since */
	uint8_t rsts;       /* RSTs sent to the server since */
	uint8_t reply[BS_ACT_REPLY_MAX];
};

/* Injected packets of one burst, sent after its forwarded frames. */
#define BS_ACT_OUT_MAX (3 * BS_MAX_BURST)
struct bs_act_out {
	struct rte_mbuf *m;
	uint16_t port;
};

/* The inline action's per-worker state (action.c). */
struct bs_act_worker {
	struct rte_mempool *pool;    /* injected packets */
	struct bs_act_flow *slot;    /* action.refused_max of them */
	uint32_t n_slots, free_head, in_use;
	uint16_t n_out;
	struct bs_act_out out[BS_ACT_OUT_MAX];
	double ns_per_cycle;
	/* How long a segment stays in the worker: those that end a message
	 * (held for the verdict), the others, and the refusal path. */
	struct bs_lat_hist hold, other, refuse;
};

struct bs_worker {
	unsigned int lcore;
	unsigned int idx;                 /* its queue on every port */
	uint16_t n_rxq;
	struct bs_rxq rxq[BS_MAX_PORTS];
	struct bs_flow_table *flows;
	struct bs_txn_stage txn;          /* SMTP, detection, event ring */
	/* The published settings (pubcfg.h), re-read after every quiescent
	 * state so reloaded settings apply from the next loop. */
	const struct bs_config *cfg;
	uint8_t smtp_filter[256];         /* of cfg's SMTP ports (worker.c) */
	struct bs_pub *pub;
	uint64_t tsc_per_ms;
	/* Wall clock = TSC ms + this; the main lcore keeps it right (its
	 * own word, read once per loop). */
	const int64_t *clock_offset_ms;
	/* Written by the worker, read by main (idle detection, stats). */
	volatile uint64_t last_rx_tsc;
	volatile bool running;
	struct bs_port_cnt port_cnt[BS_MAX_PORTS];
	struct bs_counters cnt;
	/* A flows-top request of the control thread, worked through a
	 * bounded slice per loop (flowsnap.c); NULL when none. */
	struct bs_flow_snap *volatile snap;
	struct bs_cov cov;                /* sessions per protected server */
	uint8_t *fix;                     /* BS_SEG_FIX_MAX bytes: rewrites */
	struct bs_act_worker act;         /* the inline action (action.c) */
	/* Two bursts in flight: one being parsed, one being finished. */
	struct bs_burst burst[2];
	int pending;                      /* burst[] awaiting finish, or -1 */
} __rte_cache_aligned;

struct bs_app {
	struct bs_config cfg;
	bool rx_scatter;     /* frames may span mbufs (MTU over the data room) */
	uint16_t n_ports;
	struct bs_port port[BS_MAX_PORTS];
	unsigned int n_workers;
	struct bs_worker *worker[BS_MAX_WORKERS];
	struct rte_mempool *pool;
	struct rte_mempool *inject_pool;  /* injected packets (action.c) */
	/* The verdict policy compiled at start (its errors stop start-up).
	 * What the workers are to read is the published configuration's
	 * (bs_pub_current()->policy, pinned per message like the rules),
	 * which every reload rebuilds. */
	struct bs_verdict_policy *verdict;
	/* Shared evidence, process-wide (NULL: not running): the outbound
	 * ledger (ledger.learn_outbound) and the storm detector
	 * (storm.enabled), started before the workers, stopped after. */
	struct bs_ledger *ledger;
	struct bs_storm *storm;
	/* Wall clock minus the workers' TSC clock (ms), refreshed by the
	 * main lcore every loop (atomic store; workers load it). */
	int64_t clock_offset_ms;
};

/* Longest RSS key among the PMDs we know (i40e/ice: 52 bytes). */
#define BS_RSS_KEY_MAX 52
/* Largest redirection table read back (ice: 2048 entries). */
#define BS_RETA_MAX 2048

/*
 * Longest frame a port must take for an IP MTU: Ethernet header and two
 * VLAN tags (QinQ) around it; the FCS is stripped by the NIC.
 */
static inline uint32_t
bs_frame_max(uint32_t mtu)
{
	return mtu + RTE_ETHER_HDR_LEN + 2 * RTE_VLAN_HLEN;
}

/*
 * Check in software that an RSS configuration sends both directions of a
 * connection to the same queue: random IPv4 and IPv6 TCP connections (and
 * address-only tuples when rss_hf hashes IP without ports) are hashed
 * both ways with DPDK's software Toeplitz over key, and each hash's queue
 * is looked up as the NIC does (reta[hash % reta_size], or hash % nq when
 * reta_size is 0).  Returns how many of the samples landed on different
 * queues (0: symmetric).  Pure function: no EAL, used at start-up and by
 * tests/unit/test_rss.c.
 */
unsigned int bs_rss_asymmetric(const uint8_t *key, size_t key_len,
	uint64_t rss_hf, const uint16_t *reta, unsigned int reta_size,
	unsigned int nq, unsigned int samples);

/*
 * Fill key (len bytes) with the symmetric Toeplitz key: 0x6d5a repeated
 * makes hash(src, dst, sport, dport) == hash(dst, src, dport, sport), so
 * both directions of a connection reach the same queue.  Pure function
 * (tests/unit/test_rss.c checks the property with DPDK's rte_softrss).
 */
void bs_rss_sym_key(uint8_t *key, size_t len);

/* Set while the process should keep forwarding; cleared by signals,
 * --idle-exit or --duration. */
extern volatile bool bs_running;

/*
 * Find the probed ports and what they can do: fills app->port[] (ids,
 * names, drivers) and app->rx_scatter (frames of dataplane.mtu longer
 * than a default mbuf, and every port can receive them as chains).
 * Returns how many queues every port can take, at most want_queues (the
 * number of workers that can be used), or a negative errno after logging
 * why.  Before the mbuf pool exists: its data room depends on it.
 */
int bs_ports_probe(struct bs_app *app, unsigned int want_queues);

/*
 * Pair the probed ports, configure each with nq RX/TX queues, the MTU and
 * symmetric RSS (checked: see port.c), and start them.  Returns 0, or a
 * negative errno after logging why.
 */
int bs_ports_init(struct bs_app *app, unsigned int nq);

/* Stop and close every port (net_pcap writes its file on close). */
void bs_ports_close(struct bs_app *app);

/* Every worker's counter block summed into *out (any thread; main.c). */
void bs_app_counters(const struct bs_app *app, struct bs_counters *out);

/* Release hook for the flow table: ends the flow's engine state. */
void bs_worker_flow_release(struct bs_flow *f, void *arg);

/* Most flows one flows-top snapshot keeps per worker. */
#define BS_SNAP_MAX 1000
/* Table entries a worker looks at per loop for a snapshot: bounds the
 * time a request can steal from packets. */
#define BS_SNAP_BATCH 256

struct bs_flow_snap_ent {
	struct bs_flow_key key;
	uint8_t server_side, fin_seen;
	bool inspected, closed;
	uint64_t bytes;
	uint64_t idle_ms;
};

/* A snapshot of one worker's biggest flows (by bytes), asked for by the
 * control thread (w->snap = s) and filled by the worker, which sets done
 * (release) when it has walked its whole table and lets go of s. */
struct bs_flow_snap {
	uint32_t want;    /* N, at most BS_SNAP_MAX */
	uint32_t cursor;  /* next table entry (worker) */
	uint32_t n;       /* entries kept, largest first */
	uint32_t done;
	struct bs_flow_snap_ent ent[BS_SNAP_MAX];
};

/* One slice of the pending snapshot (worker, from its loop). */
void bs_flow_snap_step(struct bs_worker *w, uint64_t now_ms);

/*
 * The inline action (action.c).  bs_act_init() allocates a worker's
 * refused-connection slots (action.refused_max) and sets its pool;
 * bs_act_fini() frees them.  Start-up.
 */
int bs_act_init(struct bs_worker *w, const struct bs_config *cfg,
	struct rte_mempool *pool, int socket);
void bs_act_fini(struct bs_worker *w);

/* The mbufs the inject pool needs for n_workers workers (start-up). */
unsigned int bs_act_pool_size(const struct bs_config *cfg,
	unsigned int n_workers, unsigned int n_ports, unsigned int nq);

/*
 * The stage asked to refuse the segment *mp just fed (w->txn.dec): act
 * as mode says.  inline: *mp is freed (set NULL), a RST toward the
 * server and the reply toward the client are queued, the flow's engine
 * state ends (records written) and f becomes a refused flow.  tap: both
 * sides reset, *mp left alone.  When the refusal cannot be made (no
 * slot, no mbuf) nothing changes but the record and a counter: the
 * segment passes.  Returns true when *mp was consumed.
 */
bool bs_act_refuse(struct bs_worker *w, struct bs_flow *f,
	const struct bs_pkt *p, struct rte_mbuf **mp, const struct bs_rxq *q);

/* A segment of a refused flow (f->act): never forwarded (*mp freed and
 * set NULL); answered when believed. */
void bs_act_segment(struct bs_worker *w, struct bs_flow *f,
	const struct bs_pkt *p, struct rte_mbuf **mp, const struct bs_rxq *q,
	bool to_server, bool believed);

/* The flow table releases a refused flow: its slot goes back. */
void bs_act_release(struct bs_worker *w, struct bs_flow *f);

/* Send the injected packets queued during the burst. */
void bs_act_flush(struct bs_worker *w, uint16_t queue);

/* Worker lcore entry point; arg is its struct bs_worker. */
int bs_worker_main(void *arg);


#endif /* BACKSTOP_DATAPLANE_H */
