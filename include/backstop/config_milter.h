/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Setting rows of backstop-milter (see config.h and milter.h).  The milter
 * reads the appliance's YAML file; these rows are its own and the
 * appliance ignores them (except milter.ledger_snapshot, the file it
 * imports to share the ledger, docs/MILTER.md).
 *
 * Bounds: every message in flight holds a detection context (Hyperscan
 * scratch and stream, about 41 KB) and a verdict context, so
 * milter.max_messages bounds the milter's memory; milter.max_scan_bytes
 * bounds the CPU one message may take (SMTP SIZE limits are usually
 * tens of MB; Postfix's default message_size_limit is 10,240,000).
 */
#ifndef BACKSTOP_CONFIG_MILTER_H
#define BACKSTOP_CONFIG_MILTER_H

#define BS_CFG_MILTER(X)                                                     \
	X(milter_max_messages, "milter.max_messages", U32, "64", 1, 65536,   \
		"Messages the milter judges at once; more are accepted "     \
		"unjudged (counted milter_overload)")                        \
	X(milter_max_scan_bytes, "milter.max_scan_bytes", U64, "16777216",   \
		1024, 1099511627776ULL,                                      \
		"Bytes of one message the milter scans; a longer message is "\
		"accepted unjudged (counted milter_scan_cap)")               \
	X(milter_timeout_s, "milter.timeout_s", U32, "300", 1, 86400,        \
		"libmilter's socket timeout (smfi_settimeout; Debian's "     \
		"libmilter applies it to writes to the MTA). The MTA's own " \
		"milter timeouts bound the rest: a message it gives up on "  \
		"is never refused (counted milter_unfinished)")              \
	X(milter_outbound_daemon_name, "milter.outbound_daemon_name", STR,   \
		"ORIGINATING", 0, 0,                                         \
		"With --role both: mail whose {daemon_name} macro is this "  \
		"(Postfix: milter_macro_daemon_name on the submission "      \
		"service), or whose client authenticated, is outbound: "     \
		"learned, never judged")                                     \
	X(milter_ledger_snapshot, "milter.ledger_snapshot", STR, "", 0, 0,   \
		"The milter's own ledger snapshot. When both this and "      \
		"ledger.snapshot are set, each program writes its own and "  \
		"imports the other's (shared ledger, docs/MILTER.md); "      \
		"empty: the milter uses ledger.snapshot")

#endif
