/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counter rows of TCP reassembly and the SMTP engine (see counters.h).
 * docs/SMTP.md explains the policies behind the evasion and cap counters.
 */
#ifndef BACKSTOP_COUNTERS_SMTP_H
#define BACKSTOP_COUNTERS_SMTP_H

#define BS_CNT_SMTP(X)                                                       \
	X(reasm_segments, "Segments given to reassembly", COUNTER)           \
	X(reasm_bytes_inorder, "Bytes delivered in order without a copy",    \
		COUNTER)                                                     \
	X(reasm_bytes_ooo, "Bytes delivered from the out-of-order store",    \
		COUNTER)                                                     \
	X(reasm_ooo_queued, "Out-of-order segments copied and held",         \
		COUNTER)                                                     \
	X(reasm_ooo_held_bytes, "Out-of-order bytes held now", GAUGE)        \
	X(reasm_ooo_flow_cap, "Per-flow out-of-order cap hit (flow "         \
		"uninspected)", COUNTER)                                     \
	X(reasm_ooo_global_cap, "Global out-of-order cap hit (flow "         \
		"uninspected)", COUNTER)                                     \
	X(reasm_retrans, "Retransmitted segments (same bytes)", COUNTER)     \
	X(reasm_retrans_unverified, "Retransmissions of bytes older than "   \
		"the history (not compared)", COUNTER)                       \
	X(reasm_overlap_conflict, "Overlaps with different bytes (evasion;" \
		" segment dropped, first bytes kept)", COUNTER)              \
	X(reasm_gap_timeout, "Holes not filled in time (flow uninspected)",  \
		COUNTER)                                                     \
	X(reasm_gap_acked, "Receiver acked bytes never seen (flow "          \
		"uninspected)", COUNTER)                                     \
	X(reasm_midstream, "Directions picked up without a SYN", COUNTER)    \
	X(reasm_out_of_window, "Segments beyond the receiver's window "      \
		"(ignored)", COUNTER)                                        \
	X(reasm_after_fin, "Segments with data after FIN (ignored)",         \
		COUNTER)                                                     \
	X(reasm_urgent, "Urgent bytes removed from the stream", COUNTER)     \
	X(reasm_rst, "RST accepted", COUNTER)                                \
	X(reasm_rst_ignored, "RST outside the window (ignored)", COUNTER)    \
	X(reasm_syn_conflict, "SYN with another ISN after data (ignored)",   \
		COUNTER)                                                     \
	X(reasm_unreliable, "Flows with a direction that cannot be followed",\
		COUNTER)                                                     \
	X(smtp_flows, "SMTP flows followed", COUNTER)                        \
	X(smtp_uninspected, "SMTP flows passed uninspected (any reason)",    \
		COUNTER)                                                     \
	X(smtp_midstream, "SMTP flows picked up mid-stream (uninspected)",   \
		COUNTER)                                                     \
	X(smtp_starttls, "SMTP flows that started TLS (uninspected)",        \
		COUNTER)                                                     \
	X(smtp_commands, "Client command lines parsed", COUNTER)             \
	X(smtp_unknown_commands, "Client command lines not understood",      \
		COUNTER)                                                     \
	X(smtp_replies, "Complete server replies parsed", COUNTER)           \
	X(smtp_reply_malformed, "Server lines that are not replies",         \
		COUNTER)                                                     \
	X(smtp_reply_unsolicited, "Replies with no command waiting",         \
		COUNTER)                                                     \
	X(smtp_reply_lines_over, "Reply lines past smtp.reply_lines_max",    \
		COUNTER)                                                     \
	X(smtp_line_too_long, "Command/reply lines cut at their cap",        \
		COUNTER)                                                     \
	X(smtp_bare_lf, "Lines ended by LF without CR", COUNTER)             \
	X(smtp_data_ambiguous_end, "Bare-LF end-of-data lookalikes in DATA " \
		"(not taken as the end)", COUNTER)                           \
	X(smtp_data_line_long, "Message lines past smtp.text_line_max",      \
		COUNTER)                                                     \
	X(smtp_desync, "Server and engine disagree on the session: a reply " \
		"during DATA content or one that cannot answer its command " \
		"(flow uninspected)", COUNTER)                               \
	X(smtp_desync_reply, "Replies that cannot answer their command "     \
		"(2xx to DATA, 354 to RCPT, ...; also in smtp_desync)",      \
		COUNTER)                                                     \
	X(smtp_pipeline_overflow, "Commands past smtp.pipeline_max (flow "   \
		"uninspected)", COUNTER)                                     \
	X(smtp_wait_overflow, "Early client bytes past smtp.wait_hold_bytes"\
		" (flow uninspected)", COUNTER)                              \
	X(smtp_wait_held, "Client bytes sent before the reply they must "    \
		"wait for (held and replayed)", COUNTER)                     \
	X(smtp_nomem, "Allocation failures (flow uninspected)", COUNTER)     \
	X(smtp_session_budget, "Flows uninspected or not followed: "         \
		"smtp.session_budget_bytes reached", COUNTER)                \
	X(smtp_session_bytes, "Session memory charged to "                   \
		"smtp.session_budget_bytes now", GAUGE)                      \
	X(smtp_auth, "AUTH exchanges (SASL lines skipped)", COUNTER)         \
	X(smtp_txn_begin, "Transactions begun (MAIL FROM)", COUNTER)         \
	X(smtp_txn_aborted, "Transactions ended without a message", COUNTER) \
	X(smtp_txn_done, "Transactions whose message was sent", COUNTER)     \
	X(smtp_txn_open_over, "Transactions open at once past the cap "      \
		"(flow uninspected)", COUNTER)                               \
	X(smtp_rcpt_over_cap, "Recipients past smtp.rcpt_max", COUNTER)      \
	X(smtp_bdat, "BDAT chunks", COUNTER)                                 \
	X(smtp_bdat_unannounced, "BDAT read as a command: malformed, or "    \
		"CHUNKING not in the EHLO reply", COUNTER)                   \
	X(smtp_message_bytes, "Message bytes after dot-unstuffing", COUNTER)

#endif
