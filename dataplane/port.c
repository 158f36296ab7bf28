/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Port set-up: inline pairs, one RX and one TX queue per worker, RSS with
 * a symmetric key.
 *
 * Both directions of a TCP connection must reach the same worker, or the
 * per-core flow state would be split.  The Toeplitz hash is symmetric when
 * the key repeats with a 16-bit period (Woo and Park, "Scalable TCP
 * Session Monitoring with Symmetric Receive-side Scaling", 2012), so we use
 * 0x6d5a repeated.  A PMD that cannot do RSS (net_pcap, net_af_packet)
 * gets a single queue, and then only one worker forwards: the log says
 * so.  (net_null takes queues and an RSS configuration, which the tests
 * use to run two workers.)
 */
#include <errno.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_log.h>

#include "dataplane.h"

void
bs_rss_sym_key(uint8_t *key, size_t len)
{
	for (size_t i = 0; i < len; i++)
		key[i] = (i % 2 == 0) ? 0x6d : 0x5a;
}

#define RTE_LOGTYPE_BACKSTOP RTE_LOGTYPE_USER1

static uint8_t sym_rss_key[BS_RSS_KEY_MAX];

static bool
port_can_rss(const struct rte_eth_dev_info *di)
{
	return di->max_rx_queues > 1 && di->max_tx_queues > 1 &&
		(di->flow_type_rss_offloads &
			(RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP)) != 0;
}

static int
port_setup(struct bs_app *app, struct bs_port *p, uint16_t nq)
{
	struct rte_eth_dev_info di;
	struct rte_eth_conf conf;
	int rc = rte_eth_dev_info_get(p->id, &di);
	if (rc < 0)
		return rc;

	memset(&conf, 0, sizeof(conf));
	p->rss = nq > 1;
	if (p->rss) {
		uint8_t klen = di.hash_key_size ? di.hash_key_size : 40;
		if (klen > BS_RSS_KEY_MAX)
			return -ENOTSUP;
		bs_rss_sym_key(sym_rss_key, sizeof(sym_rss_key));
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = sym_rss_key;
		conf.rx_adv_conf.rss_conf.rss_key_len = klen;
		conf.rx_adv_conf.rss_conf.rss_hf = di.flow_type_rss_offloads &
			(RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
	}
	/* Fast-free is safe: one pool, mbufs are never shared (refcnt 1). */
	if (di.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

	rc = rte_eth_dev_configure(p->id, nq, nq, &conf);
	if (rc < 0)
		return rc;
	uint16_t nrx = (uint16_t)app->cfg.rx_ring_size;
	uint16_t ntx = (uint16_t)app->cfg.tx_ring_size;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->id, &nrx, &ntx);
	if (rc < 0)
		return rc;
	int socket = rte_eth_dev_socket_id(p->id);
	if (socket < 0)
		socket = SOCKET_ID_ANY;
	struct rte_eth_txconf txc = di.default_txconf;
	txc.offloads = conf.txmode.offloads;
	for (uint16_t q = 0; q < nq; q++) {
		rc = rte_eth_rx_queue_setup(p->id, q, nrx, (unsigned int)socket,
			NULL, app->pool);
		if (rc < 0)
			return rc;
		rc = rte_eth_tx_queue_setup(p->id, q, ntx, (unsigned int)socket,
			&txc);
		if (rc < 0)
			return rc;
	}
	p->nb_queues = nq;
	rc = rte_eth_dev_start(p->id);
	if (rc < 0)
		return rc;
	/* Inline: every frame on the wire is ours to forward, whatever its
	 * destination MAC.  Not all PMDs support it (and need not). */
	rc = rte_eth_promiscuous_enable(p->id);
	if (rc < 0 && rc != -ENOTSUP)
		RTE_LOG(WARNING, BACKSTOP, "port %u: promiscuous mode: %s\n",
			p->id, rte_strerror(-rc));
	return 0;
}

int
bs_ports_init(struct bs_app *app, unsigned int want_queues)
{
	uint16_t pid;
	unsigned int nq = want_queues;

	app->n_ports = 0;
	RTE_ETH_FOREACH_DEV(pid) {
		if (app->n_ports == BS_MAX_PORTS) {
			RTE_LOG(ERR, BACKSTOP, "more than %d ports\n",
				BS_MAX_PORTS);
			return -E2BIG;
		}
		struct bs_port *p = &app->port[app->n_ports++];
		struct rte_eth_dev_info di;
		int rc = rte_eth_dev_info_get(pid, &di);
		if (rc < 0)
			return rc;
		p->id = pid;
		rte_eth_dev_get_name_by_port(pid, p->name);
		unsigned int can = port_can_rss(&di) ?
			RTE_MIN(di.max_rx_queues, di.max_tx_queues) : 1;
		if (can < nq) {
			RTE_LOG(NOTICE, BACKSTOP,
				"port %u (%s, driver %s): %s; %u queue(s), so "
				"%u worker(s) forward\n", pid, p->name,
				di.driver_name,
				can == 1 ? "no RSS" : "few queues", can, can);
			nq = can;
		}
	}
	if (app->n_ports == 0) {
		RTE_LOG(ERR, BACKSTOP, "no ports: give --vdev or -a\n");
		return -ENODEV;
	}
	/* Inline pairs 0<->1, 2<->3, ...; a lone last port reflects. */
	for (uint16_t i = 0; i < app->n_ports; i++) {
		uint16_t j = (i % 2 == 0) ? i + 1 : i - 1;
		app->port[i].peer = j < app->n_ports ? app->port[j].id
						     : app->port[i].id;
	}
	for (uint16_t i = 0; i < app->n_ports; i++) {
		int rc = port_setup(app, &app->port[i], (uint16_t)nq);
		if (rc < 0) {
			RTE_LOG(ERR, BACKSTOP, "port %u (%s): set-up: %s\n",
				app->port[i].id, app->port[i].name,
				rte_strerror(-rc));
			return rc;
		}
		RTE_LOG(INFO, BACKSTOP, "port %u (%s) -> port %u, %u queue(s)%s\n",
			app->port[i].id, app->port[i].name, app->port[i].peer,
			nq, app->port[i].rss ? ", symmetric RSS" : "");
	}
	return (int)nq;
}

void
bs_ports_close(struct bs_app *app)
{
	for (uint16_t i = 0; i < app->n_ports; i++) {
		rte_eth_dev_stop(app->port[i].id);
		rte_eth_dev_close(app->port[i].id);
	}
}
