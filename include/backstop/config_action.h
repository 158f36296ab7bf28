/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Setting rows of the inline action (see config.h, action.h and
 * docs/ACTION.md).
 *
 * mode says what a refuse verdict does: inline (act: RST toward the
 * server, 550 toward the client), monitor (decide, log, count, never
 * touch traffic), tap (the ports carry copies: nothing is forwarded, a
 * refusal resets both sides).  It can change with a reload.
 *
 * action.refused_max bounds the refused connections a worker keeps
 * answering (retransmissions of the held segment, the client's later
 * segments, the server's challenge ACKs): 1024 entries of about 1.3 KB,
 * allocated at start.  A flood of refusals beyond it passes messages
 * (fail-open) rather than refusing them half-way.
 */
#ifndef BACKSTOP_CONFIG_ACTION_H
#define BACKSTOP_CONFIG_ACTION_H

#define BS_CFG_INLINE(X)                                                     \
	X(mode, "mode", MODE, "inline", 0, 0,                                \
		"inline: refuse backscatter on the wire; monitor: decide, "  \
		"log and count, never touch traffic; tap: the ports carry "  \
		"copies (nothing is forwarded), a refusal resets both sides")\
	X(action_refused_max, "action.refused_max", U32, "1024", 0, 1048576, \
		"Refused connections one worker keeps answering (held "      \
		"segment retransmitted, the client's later segments); when " \
		"full, a message to refuse passes (counted)")                \
	X(action_inject_mbufs, "action.inject_mbufs", U32, "0", 0, 4194303,  \
		"mbufs of the pool injected packets come from (RSTs, "       \
		"replies, ACKs); 0: sized from the workers, bursts and TX "  \
		"rings")

#endif
