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
	/* From the end of a judged message to its verdict (the end of   \
	 * detection and the verdict: what the held segment waits for). */ \
	BS_CNT_LATENCY(X, verdict_latency, "Judged messages")

#endif /* BACKSTOP_COUNTERS_VERDICT_H */
