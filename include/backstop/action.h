/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The inline action's packet bytes: what backstop writes on the wire when
 * it refuses a backscatter message.  The server's side gets a TCP RST
 * (it never sees the end of the message, so it never accepts it); the
 * client's side gets "550 5.7.1 ..." for each reply it is owed, a
 * "421 4.7.0" and a FIN, as if the server had said so, with sequence and
 * acknowledgement numbers that continue the connection, correct IPv4 and
 * TCP checksums, the frame's VLAN tags, and the TCP timestamp option when
 * the connection uses it (so PAWS does not discard the segment).
 *
 * This part is EAL-free and pure (bytes in, bytes out), so unit tests and
 * the fuzzer drive exactly what the worker runs (dataplane/action.c owns
 * the mbufs, the refused-connection state and the transmission).
 */
#ifndef BACKSTOP_ACTION_H
#define BACKSTOP_ACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backstop/pkt.h"

struct bs_verdict_result;

/* Ethernet header and up to two VLAN tags (QinQ). */
#define BS_ACT_L2_MAX 22
/*
 * Longest reply written toward the client: a few reply lines (each at
 * most 512 bytes with CRLF, RFC 5321 4.5.3.1.5) in one segment well below
 * any MSS (IPv6 minimum MTU 1280 - 40 - 32 = 1208).
 */
#define BS_ACT_REPLY_MAX 1200
/* 550 lines at most (one per reply owed); the 421 and the FIN end the
 * connection for anything owed beyond them. */
#define BS_ACT_REPLIES_MAX 6
/* Longest 550 line (with CRLF). */
#define BS_ACT_LINE_MAX 200
/* Longest frame built: L2, IPv6, TCP with the timestamp option, reply. */
#define BS_ACT_FRAME_MAX (BS_ACT_L2_MAX + 40 + 32 + BS_ACT_REPLY_MAX)
/* Hop limit of injected packets. */
#define BS_ACT_TTL 64

/*
 * What is needed to write packets of one connection in both directions,
 * taken from a frame the client sent (the segment held for the verdict).
 */
struct bs_act_tmpl {
	uint8_t l2[BS_ACT_L2_MAX]; /* as the client's frame had it */
	uint8_t l2_len;            /* l3_off of that frame: 14, 18 or 22 */
	uint8_t l3;                /* BS_L3_IPV4 or BS_L3_IPV6 */
	uint8_t cli[16], srv[16];  /* IPv4 in the first 4 bytes */
	uint16_t cport, sport;
};

/*
 * Fill *t from frame[0..len) parsed as *p (bs_pkt_parse() said BS_PKT_TCP),
 * a segment sent by the client.  Returns 0, or -EINVAL when the frame's
 * link header is longer than BS_ACT_L2_MAX or not IP.  Pure.
 */
int bs_act_tmpl_init(struct bs_act_tmpl *t, const uint8_t *frame, size_t len,
	const struct bs_pkt *p);

/* The TCP timestamp option of a segment (RFC 7323), when present. */
struct bs_act_ts {
	bool on;
	uint32_t val, ecr;
};

/*
 * Find the timestamp option in the TCP header at tcp[0..hlen) (hlen: the
 * data offset, 20..60).  Pure; never reads past hlen.
 */
struct bs_act_ts bs_act_ts_parse(const uint8_t *tcp, size_t hlen);

/*
 * Write one frame of the connection into out (cap bytes): toward the
 * server (impersonating the client: the template's link header as is)
 * or toward the client (impersonating the server: MAC addresses swapped,
 * VLAN tags kept), TCP flags, seq, ack, window, the timestamp option if
 * ts->on, payload[0..plen).  IPv4: header of 20 bytes, DF, TTL 64,
 * checksum; IPv6: no extension header, hop limit 64.  TCP checksum over
 * the pseudo-header.  Returns the frame length, or 0 when it does not
 * fit in cap or plen > BS_ACT_REPLY_MAX.  Pure.
 */
size_t bs_act_frame(const struct bs_act_tmpl *t, bool to_server,
	uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win,
	const struct bs_act_ts *ts, const uint8_t *payload, size_t plen,
	uint8_t *out, size_t cap);

/*
 * The reply toward the client: n_550 (1..BS_ACT_REPLIES_MAX, clamped)
 * lines "550 5.7.1 Backscatter refused: this bounce answers no message
 * sent from DOMAIN (reason reason ...)" (cut to BS_ACT_LINE_MAX, bytes
 * outside printable ASCII replaced), then "421 4.7.0 Closing
 * connection".  Returns the length written into out (cap at least
 * BS_ACT_REPLY_MAX), never more than cap.  Pure.
 */
size_t bs_act_reply(const struct bs_verdict_result *vr, unsigned int n_550,
	char *out, size_t cap);

/*
 * A latency histogram kept by one worker (plain stores, summed by the
 * reader): log2 buckets of nanoseconds, 4 sub-buckets each, so a
 * quantile is known to within 19%.
 */
#define BS_LAT_BUCKETS (64 * 4)
struct bs_lat_hist {
	uint64_t b[BS_LAT_BUCKETS];
	uint64_t count, sum_ns, max_ns;
};

/* Count one observation of ns nanoseconds.  Owner only. */
void bs_lat_add(struct bs_lat_hist *h, uint64_t ns);
/* out += in (readers sum workers). */
void bs_lat_sum(struct bs_lat_hist *out, const struct bs_lat_hist *in);
/* The q-quantile (0..1) as the upper bound of its bucket; 0 if empty. */
uint64_t bs_lat_quantile(const struct bs_lat_hist *h, double q);
/* Upper bound (ns) of bucket i. */
uint64_t bs_lat_bucket_le(unsigned int i);

#endif /* BACKSTOP_ACTION_H */
