/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counter rows of the outbound ledger and storm detection (see counters.h,
 * ledger.h, storm.h).  These live in the ledger and storm objects, not in
 * the workers' blocks (the writer and the slow path keep most of them):
 * bs_ledger_counters() and bs_storm_counters() add them into the summed
 * block, so the report and the exporter stay table-driven.
 */
#ifndef BACKSTOP_COUNTERS_LEDGER_H
#define BACKSTOP_COUNTERS_LEDGER_H

#define BS_CNT_LEDGER(X)                                                     \
	X(ledger_recorded, "Outbound Message-IDs queued to the ledger",      \
		COUNTER)                                                     \
	X(ledger_ring_dropped, "Outbound Message-IDs lost: the worker's "    \
		"ledger ring was full", COUNTER)                             \
	X(ledger_bad_msgid, "Outbound Message-IDs not recorded: empty, "     \
		"unparseable or longer than 998 bytes", COUNTER)             \
	X(ledger_inserts, "Ledger entries added", COUNTER)                   \
	X(ledger_refreshes, "Message-IDs recorded again (entry's time "      \
		"renewed)", COUNTER)                                         \
	X(ledger_evictions, "Ledger entries evicted before their TTL: "      \
		"ledger full (oldest first)", COUNTER)                       \
	X(ledger_expirations, "Ledger entries expired (TTL)", COUNTER)       \
	X(ledger_entries, "Entries in the ledger", GAUGE)                    \
	X(ledger_snapshot_saves, "Ledger snapshots written", COUNTER)        \
	X(ledger_snapshot_failures, "Ledger snapshots that failed to be "    \
		"written (the previous one is kept)", COUNTER)               \
	X(ledger_snapshot_age_seconds, "Seconds since the ledger was last " \
		"saved or loaded", GAUGE)                                    \
	X(ledger_warming, "1 while the ledger is younger than its TTL "      \
		"(a miss is no evidence)", GAUGE)                            \
	X(ledger_imported, "Entries merged from the other program's "        \
		"snapshot (shared ledger)", COUNTER)                         \
	X(ledger_import_failures, "The other program's snapshot refused "    \
		"(corrupt, or another secret)", COUNTER)                     \
	X(ledger_peer_stale, "1 while the other program's snapshot is "      \
		"missing or older than ledger.max_gap_s (warm-up restarts)", \
		GAUGE)

#define BS_CNT_STORM(X)                                                      \
	X(storm_notes, "Bounces to protected recipients counted for storm "  \
		"detection", COUNTER)                                        \
	X(storm_started, "Storms that started (a recipient or domain over "  \
		"its threshold)", COUNTER)                                   \
	X(storm_ended, "Storms that ended", COUNTER)                         \
	X(storm_active, "Storms in progress", GAUGE)                         \
	X(storm_candidates_dropped, "Storm candidates lost: the worker's "   \
		"ring was full", COUNTER)                                    \
	X(storm_track_full, "Storm candidates not judged: max_tracked keys " \
		"already tracked", COUNTER)

#endif /* BACKSTOP_COUNTERS_LEDGER_H */
