/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Setting rows of the verdict stage (see config.h and verdict.h): which
 * domains are protected, the evidence each one always carries (BATV tags,
 * relays, DKIM signatures), the outbound ledger and storm mode.
 *
 * Rows in BS_CFG_VERDICT_PD may also be set per domain, under
 * `domains: {NAME: {...}}` with the same keys; a domain's own value
 * replaces the global one for that domain only (docs/CONFIG.md).  The
 * ledger and storm modules never parse configuration: they take plain
 * parameter structs filled from these rows.
 *
 * Bounds: a BATV day stamp has three digits (Exim's format), so a
 * lifetime is under 1000 days; DKIM checks per second are a per-worker
 * budget against floods of forged signatures (an RSA-2048 verification
 * costs tens of microseconds, see docs/VERDICT.md).
 */
#ifndef BACKSTOP_CONFIG_VERDICT_H
#define BACKSTOP_CONFIG_VERDICT_H

/* Settings that a domain may override (same keys, under domains.NAME). */
#define BS_CFG_VERDICT_PD(X)                                                 \
	X(batv_enforce, "batv.enforce", BOOL, "false", 0, 1,                 \
		"Every envelope sender of the domain is BATV-tagged (except "\
		"mail to batv.exempt_destinations): a DSN to an untagged, "  \
		"expired or badly tagged address is backscatter. Per domain")\
	X(relays, "relays", RELAYS, "", 0, 0,                                \
		"Outbound relays (host names, * globs, IPv4/IPv6 CIDR): all "\
		"mail of the domain leaves through one of them, so an "      \
		"embedded Received chain that passes none is forged. Per "   \
		"domain ([] in a domain: no relay claim)")                  \
	X(verdict_unknown, "verdict.unknown", ACTION, "deliver", 0, 0,       \
		"What to do with a bounce that carries nothing checkable, "  \
		"outside a storm: deliver or refuse. Per domain")           \
	X(ledger_authoritative, "ledger.authoritative", BOOL, "false", 0, 1, \
		"The appliance sees all outbound mail of the domain in "     \
		"clear (no STARTTLS), so a ledger miss once warm is "        \
		"evidence of forgery; otherwise only a hit counts. Per "     \
		"domain")

#define BS_CFG_VERDICT(X)                                                    \
	X(protected_domains, "protected_domains", DOMAINS, "", 0, 0,         \
		"Domains whose bounces, auto-replies and challenges are "    \
		"judged; mail to other domains is not")                     \
	BS_CFG_VERDICT_PD(X)                                                 \
	X(batv_keys, "batv.keys", BATVKEYS, "", 0, 0,                        \
		"BATV signing keys, [{id: 0..9, secret: TEXT}]: the key "    \
		"digit of a tag picks the key (rotation). Secret: never "    \
		"printed")                                                   \
	X(batv_lifetime_days, "batv.lifetime_days", U32, "7", 1, 998,        \
		"Days a tag is valid after it was made (Exim's ${prvs} uses "\
		"7); one more day is allowed for the signer's clock")       \
	X(batv_exempt_destinations, "batv.exempt_destinations", DOMAINS,     \
		"", 0, 0,                                                    \
		"Domains (and their subdomains) that outbound mail is sent " \
		"to untagged: an untagged bounce about mail to them is not " \
		"evidence")                                                  \
	X(dkim_keys, "dkim_keys", DKIMKEYS, "", 0, 0,                        \
		"Public keys, [{domain, selector, public_key}] (public_key " \
		"as the DNS p= tag, or the whole TXT record): the domain "   \
		"signs all its mail with one of them")                      \
	X(domains, "domains", DOMAINMAP, "", 0, 0,                           \
		"Per-domain settings: {NAME: {KEY: VALUE}} with the keys "   \
		"marked 'Per domain'; NAME must be a protected domain")      \
	X(verdict_judge_feedback, "verdict.judge_feedback", BOOL, "false",   \
		0, 1, "Judge feedback reports (ARF) like bounces; when false "\
		"they are not judged")                                       \
	X(verdict_dkim_per_s, "verdict.dkim_checks_per_s", U32, "2000", 0,   \
		10000000,                                                    \
		"DKIM signature verifications per second per worker; over "  \
		"it DKIM is not checked (counted, no evidence). 0: never")   \
	X(ledger_learn_outbound, "ledger.learn_outbound", BOOL, "true", 0,   \
		1, "Record the Message-ID of outbound mail from protected "  \
		"domains (a later bounce that quotes it is legitimate)")     \
	X(ledger_ttl_days, "ledger.ttl_days", U32, "14", 1, 365,             \
		"Days a Message-ID stays in the ledger; the ledger is "      \
		"warming (a miss proves nothing) until it is this old")      \
	X(ledger_ttl_s, "ledger.ttl_s", U32, "0", 0, 31536000,               \
		"The same TTL in seconds, when set (not 0): replaces "       \
		"ledger.ttl_days (tests, sites whose bounces come back "     \
		"within hours)")                                             \
	X(ledger_snapshot, "ledger.snapshot", STR, "", 0, 0,                 \
		"File the ledger is saved to and restored from (written "    \
		"atomically); empty: not kept across restarts")             \
	X(ledger_snapshot_period_s, "ledger.snapshot_period_s", U32, "300",  \
		0, 86400, "Seconds between ledger snapshots (0: only at "    \
		"stop)")                                                     \
	X(ledger_max_gap_s, "ledger.max_gap_s", U32, "600", 0, 31536000,     \
		"A clean pause longer than this restarts the warm-up (mail " \
		"may have passed unseen); 0: never")                         \
	X(ledger_secret_file, "ledger.secret_file", STR, "", 0, 0,           \
		"File whose bytes (at least 16) key the ledger's hash: "     \
		"programs that share a ledger (appliance and milter) must "  \
		"use the same one; empty: a random key kept in the "         \
		"snapshot")                                                  \
	X(ledger_import_period_s, "ledger.import_period_s", U32, "10", 1,    \
		86400, "Seconds between checks of the other program's "      \
		"snapshot for new entries (shared ledger)")                  \
	X(ledger_max_entries, "ledger.max_entries", U32, "1048576", 1024,    \
		67108864,                                                    \
		"Message-IDs the ledger holds; when full the oldest go "     \
		"first (bounds its memory)")                                 \
	X(storm_enabled, "storm.enabled", BOOL, "true", 0, 1,                \
		"Storm mode: while a recipient or domain receives bounces "  \
		"over the thresholds, unknown becomes backscatter")          \
	X(storm_window_s, "storm.window_s", U32, "300", 1, 86400,            \
		"Sliding window of the bounce rates")                        \
	X(storm_slots, "storm.slots", U32, "10", 1, 3600,                    \
		"Steps the window moves in (window_s/slots each; at most "   \
		"window_s)")                                                 \
	X(storm_rcpt_threshold, "storm.rcpt_threshold", U32, "100", 1,       \
		100000000, "Bounces to one address within the window that "  \
		"start a storm for it")                                      \
	X(storm_domain_threshold, "storm.domain_threshold", U32, "1000", 1,  \
		100000000, "Bounces to one protected domain within the "     \
		"window that start a storm for the domain")

#endif
