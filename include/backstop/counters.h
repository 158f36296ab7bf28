/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counters, declared once.
 *
 * Every counter the product keeps is one line in an X-macro table below
 * (name, help text, kind).  The table generates the enum, the per-worker
 * counter block, the exit report, the control socket's stats and the
 * Prometheus exposition: nothing else names counters one by one.  Modules
 * keep their own rows (BS_CNT_<MODULE>) so that adding a counter touches
 * one line in the module's own header.
 *
 * Counters live in one block per worker, written only by that worker with
 * plain stores; readers sum the blocks and tolerate a torn view of a value
 * that is at most one burst old.
 */
#ifndef BACKSTOP_COUNTERS_H
#define BACKSTOP_COUNTERS_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

/*
 * Latency histograms are runs of rows of kind HIST: one per bucket
 * (B(X, pfx, what, name, seconds): upper bound; a row counts what is above
 * the bucket below and at most its bound, not cumulative), one beyond the
 * last, the count and the sum in nanoseconds.  The exporter adds them up
 * into one Prometheus histogram, backstop_<pfx>_seconds.  Every histogram
 * has these buckets.
 */
#define BS_LATENCY_BUCKETS(B, X, pfx, what)                                  \
	B(X, pfx, what, 2us, 2e-6) B(X, pfx, what, 5us, 5e-6)                \
	B(X, pfx, what, 10us, 1e-5) B(X, pfx, what, 20us, 2e-5)              \
	B(X, pfx, what, 50us, 5e-5) B(X, pfx, what, 100us, 1e-4)             \
	B(X, pfx, what, 200us, 2e-4) B(X, pfx, what, 500us, 5e-4)            \
	B(X, pfx, what, 1ms, 1e-3) B(X, pfx, what, 2ms, 2e-3)                \
	B(X, pfx, what, 5ms, 5e-3) B(X, pfx, what, 10ms, 1e-2)               \
	B(X, pfx, what, 50ms, 5e-2)

#define BS_CNT_LAT_BUCKET_(X, pfx, what, name, le)                           \
	X(pfx##_le_##name, what " that took at most " #name " (more than "  \
		"the bucket below)", HIST)

#define BS_CNT_LATENCY(X, pfx, what)                                         \
	BS_LATENCY_BUCKETS(BS_CNT_LAT_BUCKET_, X, pfx, what)                 \
	X(pfx##_over, what " that took longer than the last bucket", HIST)   \
	X(pfx##_count, what " timed (the histogram's count)", HIST)          \
	X(pfx##_sum_ns, what ": nanoseconds taken in all (the histogram's "  \
		"sum)", HIST)

#include "backstop/counters_smtp.h"
#include "backstop/counters_detect.h"
#include "backstop/counters_verdict.h"
#include "backstop/counters_ledger.h"
#include "backstop/counters_action.h"
#include "backstop/counters_milter.h"

/* Kinds: a COUNTER only grows; a GAUGE is a level (summed over workers);
 * a HIST row is a counter that is part of a histogram (its buckets, count
 * and sum), exported as one Prometheus histogram, not on its own. */
#define BS_CNT_KIND_COUNTER 0
#define BS_CNT_KIND_GAUGE 1
#define BS_CNT_KIND_HIST 2

/* Packet path: receive, parse, forward. */
#define BS_CNT_PKT(X)                                                        \
	X(rx_packets, "Packets received on all ports", COUNTER)              \
	X(rx_bytes, "Bytes received on all ports", COUNTER)                  \
	X(tx_packets, "Packets transmitted on all ports", COUNTER)           \
	X(tx_bytes, "Bytes transmitted on all ports", COUNTER)               \
	X(tx_dropped, "Packets the TX queue refused after retries", COUNTER) \
	X(pkt_non_ip, "Frames that are not IPv4 or IPv6 (passed)", COUNTER)  \
	X(pkt_ipv4, "IPv4 packets", COUNTER)                                 \
	X(pkt_ipv6, "IPv6 packets", COUNTER)                                 \
	X(pkt_vlan, "Frames with one or two VLAN tags", COUNTER)             \
	X(pkt_ipv4_options, "IPv4 packets with options", COUNTER)            \
	X(pkt_ipv6_ext, "IPv6 packets with extension headers", COUNTER)      \
	X(pkt_fragment, "IP fragments (passed uninspected)", COUNTER)        \
	X(pkt_tcp, "TCP segments", COUNTER)                                  \
	X(pkt_udp, "UDP datagrams", COUNTER)                                 \
	X(pkt_other_l4, "IP packets neither TCP nor UDP", COUNTER)           \
	X(pkt_truncated, "Frames shorter than their headers say (passed)",   \
		COUNTER)                                                     \
	X(pkt_malformed, "Frames with invalid headers (passed)", COUNTER)

/* Flow table. */
#define BS_CNT_FLOW(X)                                                       \
	X(smtp_packets, "TCP segments on SMTP ports", COUNTER)               \
	X(flow_created, "SMTP flows created", COUNTER)                       \
	X(flow_expired, "SMTP flows aged out", COUNTER)                      \
	X(flow_closed, "SMTP flows that ended with FIN or RST", COUNTER)     \
	X(flow_reused, "SMTP flows restarted by a SYN after they closed",     \
		COUNTER)                                                     \
	X(flow_table_full, "SMTP segments passed untracked: table full",     \
		COUNTER)                                                     \
	X(flow_established, "SMTP flows whose handshake completed (or "      \
		"picked up mid-stream): only these get engine state",        \
		COUNTER)                                                     \
	X(flow_server_inside, "Established SMTP flows whose server is on "   \
		"the protected side (inbound mail)", COUNTER)                \
	X(flow_server_outside, "Established SMTP flows whose server is "     \
		"outside (outbound mail from the protected side)", COUNTER)  \
	X(flow_evicted_halfopen, "Half-open SMTP flows evicted to make "     \
		"room for a new one (SYN flood)", COUNTER)                   \
	X(flow_evicted_closed, "Closed SMTP flows evicted to make room for " \
		"a new one", COUNTER)                                        \
	X(seg_cksum_bad, "SMTP segments with a bad IP or TCP checksum (NIC " \
		"flag or software check): forwarded, not believed", COUNTER) \
	X(seg_wrong_side, "SMTP segments whose sender is on the other side " \
		"of the inline pair than their ingress port: forwarded, "    \
		"not believed", COUNTER)                                     \
	X(seg_rewritten, "Segments whose conflicting bytes were rewritten "  \
		"inline to the bytes first seen (TCP checksum updated)",     \
		COUNTER)                                                     \
	X(flow_active, "SMTP flows in the table", GAUGE)                     \
	X(flow_engine_nomem, "SMTP flows passed uninspected: no memory "      \
		"for engine state", COUNTER)                                 \
	X(seg_dropped_conflict, "Segments dropped inline: retransmission "    \
		"with different bytes that could not be rewritten", COUNTER) \
	X(pkt_multiseg, "Chained mbufs on SMTP flows (fed segment by "        \
		"segment)", COUNTER)                                         \
	X(reasm_rst_challenged, "RST in the window but not at rcv_nxt "      \
		"(the server sends a challenge ACK: ignored, RFC 5961)",     \
		COUNTER)                                                     \
	X(reasm_rewritten, "Conflicting retransmissions whose overlap is "   \
		"to be rewritten to the bytes first seen", COUNTER)          \
	X(event_log_records, "Transaction records written to the event log", \
		COUNTER)                                                     \
	X(event_log_dropped, "Transaction records lost: event ring full",    \
		COUNTER)                                                     \
	X(detect_inflight_cap, "Messages passed unscanned: "                 \
		"detect.inflight_max reached", COUNTER)                      \
	X(detect_msg_nomem, "Messages passed unscanned: no memory",          \
		COUNTER)                                                     \
	X(txn_bounces, "Transactions whose message was classed as a bounce", \
		COUNTER)

#define BS_COUNTERS(X)                                                       \
	BS_CNT_PKT(X)                                                        \
	BS_CNT_FLOW(X)                                                       \
	BS_CNT_SMTP(X)                                                       \
	BS_CNT_DETECT(X)                                                     \
	BS_CNT_VERDICT(X)                                                    \
	BS_CNT_ACTION(X)                                                     \
	BS_CNT_LEDGER(X)                                                     \
	BS_CNT_STORM(X)                                                      \
	BS_CNT_MILTER(X)

/*
 * Rows kept by process-wide objects (the outbound ledger, the storm
 * detector), not by the workers: they are 0 in every worker's block, and
 * readers add them once into the summed block (bs_ledger_counters(),
 * bs_storm_counters()).  Exporters tell them apart by
 * bs_counter_process[] and give one sample per process, not per worker.
 */
#define BS_COUNTERS_PROCESS(X)                                               \
	BS_CNT_LEDGER(X)                                                     \
	BS_CNT_STORM(X)

enum bs_counter {
#define BS_CNT_ENUM_(name, help, kind) BS_CNT_##name,
	BS_COUNTERS(BS_CNT_ENUM_)
#undef BS_CNT_ENUM_
	BS_CNT__MAX
};

struct bs_counter_desc {
	const char *name;
	const char *help;
	int kind;
};

/* Name, help and kind of every counter, indexed by enum bs_counter. */
extern const struct bs_counter_desc bs_counter_desc[BS_CNT__MAX];
/* True for the rows of BS_COUNTERS_PROCESS (one value per process). */
extern const unsigned char bs_counter_process[BS_CNT__MAX];

/* The histograms' bucket bounds in seconds, in the order of their rows
 * (from BS_CNT_<pfx>_le_2us on). */
#define BS_LAT_ONE_(X, pfx, what, name, le) +1
enum { BS_LATENCY_N = 0 BS_LATENCY_BUCKETS(BS_LAT_ONE_, , , ) };
#undef BS_LAT_ONE_
extern const double bs_latency_le[BS_LATENCY_N];

/* One block per worker; aligned so two workers never share a line. */
struct bs_counters {
	uint64_t v[BS_CNT__MAX];
} __attribute__((aligned(64)));

#define BS_CNT_INC(c, name) ((c)->v[BS_CNT_##name]++)
#define BS_CNT_ADD(c, name, n) ((c)->v[BS_CNT_##name] += (n))

/*
 * Sum the n blocks blk[0..n) into *out.  Blocks are separate per-worker
 * allocations, hence the array of pointers.  Any thread; the blocks may
 * be written meanwhile (each value is at most one burst old).
 */
void bs_counters_sum(struct bs_counters *out,
	const struct bs_counters *const *blk, unsigned int n);

/*
 * Count one timing of ns nanoseconds into the histogram whose first row
 * is `first` (BS_CNT_<pfx>_le_2us) in block c: its bucket, the count and
 * the sum.  The block's writer only.
 */
void bs_latency_note(struct bs_counters *c, unsigned int first, uint64_t ns);
#define BS_LAT_NOTE(c, pfx, ns) bs_latency_note(c, BS_CNT_##pfx##_le_2us, ns)

/* A monotonic clock in nanoseconds for such timings: the vDSO's
 * CLOCK_MONOTONIC, no system call, no EAL (the engine runs without). */
static inline uint64_t
bs_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Print "name value" lines, one per counter, in table order. */
void bs_counters_print(FILE *f, const struct bs_counters *c);

#endif /* BACKSTOP_COUNTERS_H */
