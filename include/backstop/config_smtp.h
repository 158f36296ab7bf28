/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Setting rows of TCP reassembly and the SMTP engine (see config.h).
 *
 * The bounds are the reasoning behind each cap: a per-flow and a global
 * budget for out-of-order bytes (a sender can make us hold data only up
 * to them), line lengths from RFC 5321 4.5.3.1 (512 octets for a command
 * or reply line, 1000 for a text line, both including CRLF), and the
 * RFC 5321 4.5.3.1.8 minimum of 100 recipients a server must accept.
 *
 * smtp.session_budget_bytes bounds everything else a worker's sessions
 * hold (engine state, recipients, pending commands, the wait hold, line
 * buffers, history rings).  An ordinary session holds about 350 bytes
 * between transactions and 1.5 to 4 KB during one, so
 * the default fits a full default flow table (65536) of busy sessions
 * at 4 KB each; a hostile session can hold 100 KB and more (recipients,
 * long pipelines), so a flood of those reaches the budget first and is
 * passed uninspected instead of growing the process.
 * bs_smtp_params_from_config() (smtp.h) copies them into the engine.
 */
#ifndef BACKSTOP_CONFIG_SMTP_H
#define BACKSTOP_CONFIG_SMTP_H

#define BS_CFG_SMTP(X)                                                       \
	X(smtp_ooo_flow_bytes, "smtp.reasm.ooo_flow_bytes", U32, "65536", 0,  \
		16777216,                                                    \
		"Out-of-order bytes held per flow direction; more makes the "\
		"flow uninspected")                                          \
	X(smtp_ooo_global_bytes, "smtp.reasm.ooo_global_bytes", U64,         \
		"67108864", 0, 17179869184ULL,                               \
		"Out-of-order bytes held per worker over all flows")         \
	X(smtp_gap_timeout_ms, "smtp.reasm.gap_timeout_ms", U32, "30000",    \
		100, 600000,                                                 \
		"A hole in a stream not filled within this time makes the "  \
		"flow uninspected")                                          \
	X(smtp_history_bytes, "smtp.reasm.history_bytes", U32, "256", 0,     \
		65536,                                                       \
		"Delivered bytes kept per direction until acknowledged, to " \
		"check retransmissions of old data (rounded down to a power "\
		"of two; 0 = off)")                                          \
	X(smtp_cmd_line_max, "smtp.cmd_line_max", U32, "512", 64, 65536,     \
		"Longest client command line kept (RFC 5321: 512 with CRLF)"\
		"; excess is skipped and counted")                           \
	X(smtp_reply_line_max, "smtp.reply_line_max", U32, "512", 64, 65536, \
		"Longest server reply line kept; excess skipped, counted")   \
	X(smtp_text_line_max, "smtp.text_line_max", U32, "1000", 64,         \
		1048576,                                                     \
		"Message lines longer than this are counted (RFC 5321: "     \
		"1000 with CRLF); content is never cut")                     \
	X(smtp_reply_lines_max, "smtp.reply_lines_max", U32, "256", 1,       \
		65534, "Lines of one multi-line reply parsed; more counted") \
	X(smtp_rcpt_max, "smtp.rcpt_max", U32, "100", 1, 100000,             \
		"Recipients kept per transaction (RFC 5321 minimum 100); "   \
		"more are counted and left out of the record")               \
	X(smtp_pipeline_max, "smtp.pipeline_max", U32, "512", 8, 32768,      \
		"Commands awaiting a reply per flow; more makes the flow "   \
		"uninspected")                                               \
	X(smtp_wait_hold_bytes, "smtp.wait_hold_bytes", U32, "4096", 0,      \
		1048576,                                                     \
		"Client bytes copied while a DATA/AUTH/STARTTLS reply is "   \
		"pending (sent too early); more makes the flow uninspected") \
	X(smtp_session_budget_bytes, "smtp.session_budget_bytes", U64,       \
		"268435456", 65536, 68719476736ULL,                          \
		"Session memory per worker over all flows (engine state, "   \
		"recipients, pending commands, held bytes, line buffers, "   \
		"history); a flow that would pass it is uninspected")        \
	X(smtp_event_digest, "smtp.event_digest", BOOL, "false", 0, 1,       \
		"Compute the SHA-256 of each message for the event log")

#endif
