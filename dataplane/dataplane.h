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
#include <rte_mbuf.h>

#include "backstop/config.h"
#include "backstop/counters.h"
#include "backstop/flow.h"
#include "backstop/pkt.h"
#include "backstop/txn.h"
#include "backstop/verdict.h"

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

struct bs_port {
	uint16_t id;
	uint16_t peer;       /* where its packets leave */
	uint16_t nb_queues;  /* RX and TX queues configured */
	bool rss;            /* RSS with the symmetric key is on */
	char name[RTE_ETH_NAME_MAX_LEN];
};

struct bs_rxq {
	uint16_t port, queue, peer;
};

/* What the first pass over a burst learns of each packet. */
struct bs_pkt_meta {
	struct bs_pkt p;
	struct bs_flow_key k;
	uint32_t hash;
	int8_t dir;   /* BS_DIR_*, or -1 when not an SMTP segment */
};

/* A received burst on its way through the worker's two-burst pipeline. */
struct bs_burst {
	const struct bs_rxq *q;
	uint16_t n;
	uint16_t n_smtp;
	uint64_t rx_bytes;
	struct rte_mbuf *pkts[BS_MAX_BURST];
	struct bs_pkt_meta meta[BS_MAX_BURST];
};

/* Per-port figures a worker keeps (summed by the reader). */
struct bs_port_cnt {
	uint64_t rx, tx, tx_drop;
};

struct bs_worker {
	unsigned int lcore;
	unsigned int idx;                 /* its queue on every port */
	uint16_t n_rxq;
	struct bs_rxq rxq[BS_MAX_PORTS];
	struct bs_flow_table *flows;
	struct bs_txn_stage txn;          /* SMTP, detection, event ring */
	const struct bs_config *cfg;
	uint64_t tsc_per_ms;
	/* Written by the worker, read by main (idle detection, stats). */
	volatile uint64_t last_rx_tsc;
	volatile bool running;
	struct bs_port_cnt port_cnt[BS_MAX_PORTS];
	struct bs_counters cnt;
	/* Two bursts in flight: one being parsed, one being finished. */
	struct bs_burst burst[2];
	int pending;                      /* burst[] awaiting finish, or -1 */
} __rte_cache_aligned;

struct bs_app {
	struct bs_config cfg;
	uint16_t n_ports;
	struct bs_port port[BS_MAX_PORTS];
	unsigned int n_workers;
	struct bs_worker *worker[BS_MAX_WORKERS];
	struct rte_mempool *pool;
	/* The verdict policy, compiled at start (the workers will read it;
	 * the control plane will publish new ones through RCU). */
	struct bs_verdict_policy *verdict;
};

/* Longest RSS key among the PMDs we know (i40e/ice: 52 bytes). */
#define BS_RSS_KEY_MAX 52

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
 * Configure every probed port with up to want_queues RX/TX queues (fewer
 * when the port cannot spread flows with symmetric RSS), pair them, and
 * start them.  Returns the number of queues every port got (the number of
 * workers that can be used), or a negative errno after logging why.
 */
int bs_ports_init(struct bs_app *app, unsigned int want_queues);

/* Stop and close every port (net_pcap writes its file on close). */
void bs_ports_close(struct bs_app *app);

/* Release hook for the flow table: ends the flow's engine state. */
void bs_worker_flow_release(struct bs_flow *f, void *arg);

/* Worker lcore entry point; arg is its struct bs_worker. */
int bs_worker_main(void *arg);


#endif /* BACKSTOP_DATAPLANE_H */
