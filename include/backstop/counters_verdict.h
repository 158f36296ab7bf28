/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict's reason codes and its counter rows (see counters.h and
 * verdict.h), declared once: BS_VERDICT_REASONS is the fixed, documented
 * list of reasons a verdict carries (docs/VERDICT.md), and it generates
 * one counter per reason beside one per verdict.
 *
 * A reason row is R(X, name, help): the extra X lets the counter table
 * turn each reason into a counter row X(verdict_reason_<name>, ...).
 */
#ifndef BACKSTOP_COUNTERS_VERDICT_H
#define BACKSTOP_COUNTERS_VERDICT_H

#define BS_VERDICT_REASONS(R, X)                                             \
	R(X, not_bounce, "not a bounce, auto-reply or challenge")            \
	R(X, no_recipient, "no accepted recipient is known: not judged")     \
	R(X, not_protected, "a recipient is in no protected domain: not "    \
		"judged")                                                    \
	R(X, feedback_not_judged, "a feedback report (ARF), and "            \
		"verdict.judge_feedback is off")                             \
	R(X, no_original, "no embedded original (nothing of it to check)")   \
	R(X, original_foreign, "the embedded original claims no protected "  \
		"domain in From or Return-Path: relays and DKIM prove "      \
		"nothing")                                                   \
	R(X, batv_valid, "the recipient carries a valid BATV tag")           \
	R(X, batv_expired, "the recipient's BATV tag is correctly signed "   \
		"but expired")                                               \
	R(X, batv_bad, "the recipient's BATV tag has a wrong signature or "  \
		"an unknown key digit")                                      \
	R(X, batv_missing, "the recipient is untagged (BATV keys are "       \
		"configured)")                                               \
	R(X, batv_exempt, "untagged, but the original went to "              \
		"batv.exempt_destinations")                                  \
	R(X, batv_other, "another tag form (Cisco, Barracuda, SparkPost, "   \
		"SRS): stripped, not validated")                             \
	R(X, ledger_hit, "a Message-ID it quotes left a protected domain")   \
	R(X, ledger_miss, "no Message-ID it quotes is in the ledger")        \
	R(X, ledger_warming, "not in the ledger, but the ledger is younger " \
		"than its TTL")                                              \
	R(X, relay_seen, "the embedded Received chain passes one of the "    \
		"domain's relays")                                           \
	R(X, relay_absent, "the embedded Received chain is visible and "     \
		"passes none of the domain's relays")                        \
	R(X, relay_unchecked, "the domain has relays but no complete "       \
		"Received chain was visible")                                \
	R(X, dkim_valid, "the original carries a valid DKIM signature of "   \
		"the domain (headers)")                                      \
	R(X, dkim_body_unchecked, "the DKIM body hash was not checked "      \
		"(the body is not in the bounce)")                           \
	R(X, dkim_fail, "no valid DKIM signature of the domain on the "      \
		"original's headers")                                        \
	R(X, dkim_unchecked, "the domain signs, but the original's header "  \
		"block was not available or was cut")                        \
	R(X, dkim_budget, "DKIM not checked: the worker's signature budget " \
		"per second was spent")                                      \
	R(X, storm, "unknown, and the recipient or its domain is in a "      \
		"bounce storm")

#define BS_CNT_VERDICT_REASON_(X, name, help)                                \
	X(verdict_reason_##name, "Verdicts with reason " #name ": " help,    \
		COUNTER)

/*
 * The verdict's latency: from the end of a judged message to its verdict
 * (the end of detection and the verdict itself: what the segment that
 * ends the message waits for).  B(X, name, seconds) is a bucket's upper
 * bound; its row counts the messages above the bucket below and at most
 * this bound (not cumulative: the exporter adds them up into the
 * Prometheus histogram backstop_verdict_latency_seconds).
 */
#define BS_VERDICT_LATENCY_BUCKETS(B, X)                                     \
	B(X, 2us, 2e-6) B(X, 5us, 5e-6) B(X, 10us, 1e-5) B(X, 20us, 2e-5)    \
	B(X, 50us, 5e-5) B(X, 100us, 1e-4) B(X, 200us, 2e-4)                 \
	B(X, 500us, 5e-4) B(X, 1ms, 1e-3) B(X, 2ms, 2e-3) B(X, 5ms, 5e-3)    \
	B(X, 10ms, 1e-2) B(X, 50ms, 5e-2)

#define BS_CNT_VERDICT_LAT_(X, name, le)                                     \
	X(verdict_latency_le_##name, "Judged messages whose verdict took "  \
		"at most " #name " (more than the bucket below)", HIST)

#define BS_CNT_VERDICT(X)                                                    \
	X(verdict_legit, "Bounces judged legit (answer mail the domain "     \
		"sent)", COUNTER)                                            \
	X(verdict_backscatter, "Bounces judged backscatter", COUNTER)        \
	X(verdict_unknown, "Bounces with nothing checkable (verdict.unknown "\
		"applies)", COUNTER)                                         \
	X(verdict_not_bounce, "Messages given to the verdict that it does "  \
		"not judge", COUNTER)                                        \
	X(verdict_refuse, "Verdicts whose action is refuse (backscatter, or "\
		"unknown with verdict.unknown: refuse)", COUNTER)            \
	X(verdict_dkim_checks, "DKIM signatures verified (OpenSSL)",         \
		COUNTER)                                                     \
	BS_VERDICT_REASONS(BS_CNT_VERDICT_REASON_, X)                        \
	BS_VERDICT_LATENCY_BUCKETS(BS_CNT_VERDICT_LAT_, X)                   \
	X(verdict_latency_over, "Judged messages whose verdict took longer " \
		"than the last bucket", HIST)                                \
	X(verdict_latency_count, "Judged messages timed (the histogram's "   \
		"count)", HIST)                                              \
	X(verdict_latency_sum_ns, "Nanoseconds the timed verdicts took in "  \
		"all (the histogram's sum)", HIST)

#endif /* BACKSTOP_COUNTERS_VERDICT_H */
