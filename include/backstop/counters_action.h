/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counter rows of the inline action (see counters.h, action.h and
 * docs/ACTION.md): what was done to messages the verdict said to refuse,
 * why a refusal fell back to passing the message (fail-open: each reason
 * its own row), and what refused connections cost afterwards.
 */
#ifndef BACKSTOP_COUNTERS_ACTION_H
#define BACKSTOP_COUNTERS_ACTION_H

#define BS_CNT_ACTION(X)                                                     \
	X(action_refused, "Messages refused inline: the held segment dropped, "\
		"a RST toward the server, 550 5.7.1 toward the client",     \
		COUNTER)                                                     \
	X(action_monitor, "Refuse verdicts not acted on: mode monitor",      \
		COUNTER)                                                     \
	X(action_tap_reset, "Refuse verdicts in mode tap: both sides reset", \
		COUNTER)                                                     \
	X(action_unjudged, "Inbound messages that ended without a verdict "  \
		"(no detection state: detection off, no rule set, "          \
		"detect.inflight_max, no memory): passed", COUNTER)          \
	X(action_failopen_unheld, "Refusals passed: the end of the message " \
		"came from the wait hold (the client sent it before the 354; "\
		"its packets had left)", COUNTER)                            \
	X(action_failopen_detect, "Refusals passed: detection failed on the "\
		"message (no memory, Hyperscan error, header hold full)",    \
		COUNTER)                                                     \
	X(action_failopen_pipelined, "Refusals passed: replies of another "  \
		"transaction were still due (pipelined BDAT): refusing would "\
		"answer them too", COUNTER)                                  \
	X(action_failopen_shared, "Refusals passed: a message that passes "  \
		"ended in the same segment (before or after it)", COUNTER)   \
	X(action_failopen_state, "Refusals passed: action.refused_max "      \
		"refused connections already followed by this worker",       \
		COUNTER)                                                     \
	X(action_failopen_nombuf, "Refusals passed: no mbuf for the packets "\
		"to inject", COUNTER)                                        \
	X(action_consumed, "Received segments the action took off the wire " \
		"(held segments refused, refused connections' segments)",    \
		COUNTER)                                                     \
	X(action_inject_packets, "Packets injected (RSTs, replies, ACKs)",   \
		COUNTER)                                                     \
	X(action_inject_tx_dropped, "Injected packets the TX queue refused " \
		"after retries", COUNTER)                                    \
	X(action_retransmits, "Client retransmissions into a refused "       \
		"connection answered again with the reply", COUNTER)         \
	X(action_client_segs, "Client segments of refused connections "      \
		"absorbed (never forwarded)", COUNTER)                       \
	X(action_server_segs, "Server segments of refused connections "      \
		"dropped (the server is reset again)", COUNTER)              \
	X(action_refused_flows, "Refused connections followed now", GAUGE)   \
	X(tap_frames, "Frames received in mode tap (copies: not forwarded)", \
		COUNTER)                                                     \
	/* How long the segment that ends a message stays in the worker  \
	 * (engine, detection's end, verdict, refusal): its added delay. */ \
	BS_CNT_LATENCY(X, hold_latency, "Held segments (ending a message)")

#endif
