/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counter rows of backstop-milter (see counters.h and milter.h).  They are
 * in the one counter table, so the milter's report and exporter are the
 * appliance's code; in the appliance they stay 0.  Every way the milter
 * lets a message through without judging it has its own row (fail-open,
 * docs/MILTER.md).
 */
#ifndef BACKSTOP_COUNTERS_MILTER_H
#define BACKSTOP_COUNTERS_MILTER_H

#define BS_CNT_MILTER(X)                                                     \
	X(milter_connections, "MTA connections (SMTP sessions) the milter "  \
		"was told of", COUNTER)                                      \
	X(milter_messages, "Messages whose content reached the milter",      \
		COUNTER)                                                     \
	X(milter_judged, "Messages judged by the verdict at their end",      \
		COUNTER)                                                     \
	X(milter_refused, "Messages refused with 550 5.7.1 at their end",    \
		COUNTER)                                                     \
	X(milter_outbound, "Outbound messages seen (--role outbound, or "    \
		"both and the client authenticated or came through the "     \
		"outbound daemon)", COUNTER)                                 \
	X(milter_learned, "Outbound Message-IDs of protected senders "       \
		"given to the ledger", COUNTER)                              \
	X(milter_outbound_no_msgid, "Outbound messages of protected "        \
		"senders without a Message-ID (nothing to learn)", COUNTER)  \
	X(milter_overload, "Messages accepted unjudged: milter.max_messages "\
		"already in flight", COUNTER)                                \
	X(milter_scan_cap, "Messages accepted unjudged: longer than "        \
		"milter.max_scan_bytes", COUNTER)                            \
	X(milter_no_rules, "Messages accepted unjudged: no rule set loaded", \
		COUNTER)                                                     \
	X(milter_detect_failed, "Messages accepted unjudged: detection "     \
		"failed (memory, Hyperscan error)", COUNTER)                 \
	X(milter_nomem, "Messages accepted unjudged: no memory", COUNTER)    \
	X(milter_unfinished, "Messages begun whose end never came (the MTA " \
		"aborted, closed or timed out): nothing refused", COUNTER)   \
	X(milter_rcpt_over_cap, "Recipients past smtp.rcpt_max (not judged " \
		"for)", COUNTER)                                             \
	X(milter_reply_failed, "Refusals whose reply text the MTA could not "\
		"take (refused with its default 5xx)", COUNTER)              \
	X(milter_in_flight, "Messages being judged now", GAUGE)

#endif
