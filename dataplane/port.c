/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Port set-up: inline pairs, one RX and one TX queue per worker, RSS that
 * keeps both directions of a connection on one queue, and the MTU.
 *
 * Both directions of a TCP connection must reach the same worker, or the
 * per-core flow state would be split.  The Toeplitz hash is symmetric when
 * the key repeats with a 16-bit period (Woo and Park, "Scalable TCP
 * Session Monitoring with Symmetric Receive-side Scaling", 2012), so we
 * program 0x6d5a repeated.  That is a property of the key, not a promise
 * of the NIC: some (Intel i40e, ice) hash extra fields or reorder them
 * unless asked for their symmetric Toeplitz function, which is an rte_flow
 * RSS rule.  So at start every RSS port is checked: where an rte_flow rule
 * with RTE_ETH_HASH_FUNCTION_SYMMETRIC_TOEPLITZ is accepted we use it;
 * otherwise the key and the redirection table are read back and checked in
 * software (bs_rss_asymmetric); a PMD that reports neither is logged as
 * unverified, and an asymmetric result is a start-up error.
 *
 * A PMD that cannot do RSS (net_pcap, net_af_packet) gets a single queue,
 * and then only one worker forwards: the log says so.  (net_null takes
 * queues and an RSS configuration, which the tests use to run two
 * workers.)
 */
#include <errno.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_log.h>
#include <rte_thash.h>

#include "dataplane.h"

#define RTE_LOGTYPE_BACKSTOP RTE_LOGTYPE_USER1

/* Connections sampled by the start-up check: enough that an asymmetric
 * key fails it with certainty (each sample fails with p >= 1/2 per queue
 * bit), cheap at start. */
#define BS_RSS_CHECK_SAMPLES 4096

void
bs_rss_sym_key(uint8_t *key, size_t len)
{
	for (size_t i = 0; i < len; i++)
		key[i] = (i % 2 == 0) ? 0x6d : 0x5a;
}

/* xorshift64*: a fixed sequence, so a failure is reproducible. */
static uint32_t
rss_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (uint32_t)((*s * 0x2545F4914F6CDD1DULL) >> 32);
}

static unsigned int
rss_queue(uint32_t h, const uint16_t *reta, unsigned int reta_size,
	unsigned int nq)
{
	if (reta_size == 0)
		return nq ? h % nq : 0;
	return reta[h % reta_size];
}

unsigned int
bs_rss_asymmetric(const uint8_t *key, size_t key_len, uint64_t rss_hf,
	const uint16_t *reta, unsigned int reta_size, unsigned int nq,
	unsigned int samples)
{
	/* rte_softrss reads 4 key bytes past the tuple: IPv6 needs 40. */
	uint8_t k[BS_RSS_KEY_MAX];
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	unsigned int bad = 0;
	bool ports = (rss_hf & (RTE_ETH_RSS_NONFRAG_IPV4_TCP |
		RTE_ETH_RSS_NONFRAG_IPV6_TCP)) != 0;

	memset(k, 0, sizeof(k));
	memcpy(k, key, key_len < sizeof(k) ? key_len : sizeof(k));
	for (unsigned int n = 0; n < samples; n++) {
		uint32_t a = rss_rand(&s), b = rss_rand(&s), pp = rss_rand(&s);
		uint16_t sp = (uint16_t)pp, dp = (uint16_t)(pp >> 16);
		uint32_t t4[3] = { a, b, ports ? (uint32_t)sp << 16 | dp : 0 };
		uint32_t r4[3] = { b, a, ports ? (uint32_t)dp << 16 | sp : 0 };
		uint32_t t6[9], r6[9];
		unsigned int len4 = ports ? 3 : 2, len6 = ports ? 9 : 8;

		for (int i = 0; i < 4; i++) {
			t6[i] = r6[4 + i] = rss_rand(&s);
			t6[4 + i] = r6[i] = rss_rand(&s);
		}
		t6[8] = t4[2];
		r6[8] = r4[2];
		if (rss_queue(rte_softrss(t4, len4, k), reta, reta_size, nq) !=
			rss_queue(rte_softrss(r4, len4, k), reta, reta_size, nq))
			bad++;
		if (rss_queue(rte_softrss(t6, len6, k), reta, reta_size, nq) !=
			rss_queue(rte_softrss(r6, len6, k), reta, reta_size, nq))
			bad++;
	}
	return bad;
}

static bool
port_can_rss(const struct rte_eth_dev_info *di)
{
	return di->max_rx_queues > 1 && di->max_tx_queues > 1 &&
		(di->flow_type_rss_offloads &
			(RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP)) != 0;
}

/*
 * Ask the PMD for its symmetric Toeplitz function with an rte_flow RSS
 * rule over all queues.  Only tried on PMDs known to need it: elsewhere a
 * symmetric key is enough, and a catch-all rule could displace the
 * PMD's default RSS in ways we could not check.  Returns 0 if a rule was
 * installed.
 */
static int
rss_flow_symmetric(const struct bs_port *p, uint16_t nq, uint64_t types)
{
	static const char *const need[] = { "net_i40e", "net_ice", "net_iavf" };
	bool wanted = false;
	for (size_t i = 0; i < RTE_DIM(need); i++)
		wanted |= strcmp(p->driver, need[i]) == 0;
	if (!wanted)
		return -ENOTSUP;

	uint16_t queues[BS_MAX_WORKERS];
	for (uint16_t q = 0; q < nq; q++)
		queues[q] = q;
	const struct rte_flow_attr attr = { .ingress = 1 };
	const struct rte_flow_action_rss rss = {
		.func = RTE_ETH_HASH_FUNCTION_SYMMETRIC_TOEPLITZ,
		.types = types,
		.queue_num = nq,
		.queue = queues,
	};
	const struct rte_flow_action actions[] = {
		{ .type = RTE_FLOW_ACTION_TYPE_RSS, .conf = &rss },
		{ .type = RTE_FLOW_ACTION_TYPE_END },
	};
	/* i40e takes a global rule with an empty pattern; ice wants one per
	 * protocol stack: try the first, then the second. */
	static const enum rte_flow_item_type stacks[][4] = {
		{ RTE_FLOW_ITEM_TYPE_END },
		{ RTE_FLOW_ITEM_TYPE_ETH, RTE_FLOW_ITEM_TYPE_IPV4,
			RTE_FLOW_ITEM_TYPE_TCP, RTE_FLOW_ITEM_TYPE_END },
		{ RTE_FLOW_ITEM_TYPE_ETH, RTE_FLOW_ITEM_TYPE_IPV6,
			RTE_FLOW_ITEM_TYPE_TCP, RTE_FLOW_ITEM_TYPE_END },
	};
	struct rte_flow_error err;
	int made = 0;
	for (size_t s = 0; s < RTE_DIM(stacks); s++) {
		struct rte_flow_item pat[4];
		memset(pat, 0, sizeof(pat));
		for (int i = 0; i < 4; i++)
			pat[i].type = stacks[s][i];
		if (rte_flow_validate(p->id, &attr, pat, actions, &err) != 0 ||
				rte_flow_create(p->id, &attr, pat, actions,
					&err) == NULL)
			continue;
		made++;
		if (s == 0)
			break; /* one global rule covers everything */
	}
	if (made == 0) {
		RTE_LOG(NOTICE, BACKSTOP, "port %u (%s): symmetric Toeplitz "
			"rte_flow rule refused (%s); using the symmetric key\n",
			p->id, p->driver,
			err.message ? err.message : "no reason given");
		return -ENOTSUP;
	}
	return 0;
}

/* Read the key and table back and check them; sets p->rss_state. */
static int
rss_verify(struct bs_port *p, const struct rte_eth_dev_info *di, uint16_t nq)
{
	uint8_t key[BS_RSS_KEY_MAX];
	struct rte_eth_rss_conf rc = {
		.rss_key = key,
		.rss_key_len = sizeof(key),
	};
	static struct rte_eth_rss_reta_entry64 rq[BS_RETA_MAX /
		RTE_ETH_RETA_GROUP_SIZE];
	static uint16_t reta[BS_RETA_MAX];
	unsigned int rsize = di->reta_size;

	if (rte_eth_dev_rss_hash_conf_get(p->id, &rc) != 0 ||
			rc.rss_key_len == 0 || rc.rss_key_len > sizeof(key)) {
		p->rss_state = BS_RSS_UNVERIFIED;
		RTE_LOG(WARNING, BACKSTOP, "port %u (%s): symmetric RSS "
			"unverified: the PMD does not report its key\n",
			p->id, p->driver);
		return 0;
	}
	if (rsize > BS_RETA_MAX)
		rsize = 0;
	if (rsize > 0) {
		memset(rq, 0, sizeof(rq));
		for (unsigned int i = 0; i < rsize / RTE_ETH_RETA_GROUP_SIZE;
				i++)
			rq[i].mask = UINT64_MAX;
		if (rte_eth_dev_rss_reta_query(p->id, rq, (uint16_t)rsize) !=
				0)
			rsize = 0; /* judge by queue count alone */
		for (unsigned int i = 0; i < rsize; i++)
			reta[i] = rq[i / RTE_ETH_RETA_GROUP_SIZE]
				.reta[i % RTE_ETH_RETA_GROUP_SIZE];
	}
	unsigned int bad = bs_rss_asymmetric(key, rc.rss_key_len, rc.rss_hf,
		reta, rsize, nq, BS_RSS_CHECK_SAMPLES);
	if (bad > 0) {
		RTE_LOG(ERR, BACKSTOP, "port %u (%s): RSS is not symmetric "
			"(%u of %u sampled connections split across queues): "
			"flows would be split between workers; run one worker "
			"(-l with two lcores)\n", p->id, p->driver, bad,
			2 * BS_RSS_CHECK_SAMPLES);
		return -EINVAL;
	}
	p->rss_state = BS_RSS_VERIFIED;
	return 0;
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
	if (app->cfg.mtu < di.min_mtu || app->cfg.mtu > di.max_mtu) {
		RTE_LOG(ERR, BACKSTOP, "port %u (%s): dataplane.mtu %u outside "
			"the PMD's range %u..%u\n", p->id, p->driver,
			app->cfg.mtu, di.min_mtu, di.max_mtu);
		return -EINVAL;
	}
	/* ethdev checks the frame against max_rx_pktlen with this overhead
	 * (eth_dev_get_overhead_len); say it in our words first. */
	uint32_t overhead = di.max_mtu != UINT16_MAX &&
		di.max_rx_pktlen > di.max_mtu ? di.max_rx_pktlen - di.max_mtu :
		RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
	if (app->cfg.mtu + overhead > di.max_rx_pktlen) {
		RTE_LOG(ERR, BACKSTOP, "port %u (%s): dataplane.mtu %u needs "
			"%u-byte frames; the PMD takes at most %u\n", p->id,
			p->driver, app->cfg.mtu, app->cfg.mtu + overhead,
			di.max_rx_pktlen);
		return -EINVAL;
	}
	conf.rxmode.mtu = app->cfg.mtu;
	if (app->rx_scatter) {
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
		/* What arrives chained must leave chained. */
		conf.txmode.offloads |= di.tx_offload_capa &
			RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	}
	p->rss = nq > 1;
	uint64_t rss_hf = di.flow_type_rss_offloads &
		(RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
	if (p->rss) {
		uint8_t klen = di.hash_key_size ? di.hash_key_size : 40;
		static uint8_t sym_rss_key[BS_RSS_KEY_MAX];
		if (klen > BS_RSS_KEY_MAX)
			return -ENOTSUP;
		bs_rss_sym_key(sym_rss_key, sizeof(sym_rss_key));
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = sym_rss_key;
		conf.rx_adv_conf.rss_conf.rss_key_len = klen;
		conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
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
	struct rte_eth_rxconf rxc = di.default_rxconf;
	rxc.offloads = conf.rxmode.offloads;
	for (uint16_t q = 0; q < nq; q++) {
		rc = rte_eth_rx_queue_setup(p->id, q, nrx, (unsigned int)socket,
			&rxc, app->pool);
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
	if (p->rss) {
		if (rss_flow_symmetric(p, nq, rss_hf) == 0)
			p->rss_state = BS_RSS_FLOW;
		else if ((rc = rss_verify(p, &di, nq)) < 0)
			return rc;
	}
	/* Inline: every frame on the wire is ours to forward, whatever its
	 * destination MAC.  Not all PMDs support it (and need not). */
	rc = rte_eth_promiscuous_enable(p->id);
	if (rc < 0 && rc != -ENOTSUP)
		RTE_LOG(WARNING, BACKSTOP, "port %u: promiscuous mode: %s\n",
			p->id, rte_strerror(-rc));
	return 0;
}

int
bs_ports_probe(struct bs_app *app, unsigned int want_queues)
{
	uint16_t pid;
	unsigned int nq = want_queues;
	bool all_scatter = true;

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
		snprintf(p->driver, sizeof(p->driver), "%s",
			di.driver_name ? di.driver_name : "?");
		all_scatter &= (di.rx_offload_capa &
			RTE_ETH_RX_OFFLOAD_SCATTER) != 0;
		unsigned int can = port_can_rss(&di) ?
			RTE_MIN(di.max_rx_queues, di.max_tx_queues) : 1;
		if (can < nq) {
			RTE_LOG(NOTICE, BACKSTOP,
				"port %u (%s, driver %s): %s; %u queue(s), so "
				"%u worker(s) forward\n", pid, p->name,
				p->driver,
				can == 1 ? "no RSS" : "few queues", can, can);
			nq = can;
		}
	}
	if (app->n_ports == 0) {
		RTE_LOG(ERR, BACKSTOP, "no ports: give --vdev or -a\n");
		return -ENODEV;
	}
	/* Frames longer than a default mbuf: chains where every port can
	 * scatter, else the caller sizes mbufs for whole frames. */
	app->rx_scatter = bs_frame_max(app->cfg.mtu) >
		RTE_MBUF_DEFAULT_DATAROOM && all_scatter;
	return (int)nq;
}

int
bs_ports_init(struct bs_app *app, unsigned int nq)
{
	/* Inline pairs 0<->1, 2<->3, ...; a lone last port reflects. */
	for (uint16_t i = 0; i < app->n_ports; i++) {
		uint16_t j = (i % 2 == 0) ? i + 1 : i - 1;
		app->port[i].peer = j < app->n_ports ? app->port[j].id
						     : app->port[i].id;
	}
	for (uint16_t i = 0; i < app->n_ports; i++) {
		struct bs_port *p = &app->port[i];
		int rc = port_setup(app, p, (uint16_t)nq);
		if (rc < 0) {
			RTE_LOG(ERR, BACKSTOP, "port %u (%s): set-up: %s\n",
				p->id, p->name, rte_strerror(-rc));
			return rc;
		}
		static const char *const rss_txt[] = {
			[BS_RSS_OFF] = "",
			[BS_RSS_VERIFIED] = ", symmetric RSS (verified)",
			[BS_RSS_FLOW] =
				", symmetric RSS (rte_flow symmetric Toeplitz)",
			[BS_RSS_UNVERIFIED] = ", symmetric RSS key (unverified)",
		};
		RTE_LOG(INFO, BACKSTOP, "port %u (%s) -> port %u, %u "
			"queue(s)%s, mtu %u%s\n", p->id, p->name, p->peer, nq,
			rss_txt[p->rss_state], app->cfg.mtu,
			app->rx_scatter ? ", rx scatter" : "");
	}
	return 0;
}

void
bs_ports_close(struct bs_app *app)
{
	for (uint16_t i = 0; i < app->n_ports; i++) {
		if (app->port[i].rss_state == BS_RSS_FLOW)
			rte_flow_flush(app->port[i].id, NULL);
		rte_eth_dev_stop(app->port[i].id);
		rte_eth_dev_close(app->port[i].id);
	}
}
