/* SPDX-License-Identifier: BSD-3-Clause */
/* Counter rows of NDR detection (see counters.h and detect.h). */
#ifndef BACKSTOP_COUNTERS_DETECT_H
#define BACKSTOP_COUNTERS_DETECT_H

#define BS_CNT_DETECT(X)                                                     \
	X(detect_msgs, "Messages given to detection", COUNTER)               \
	X(detect_bytes, "Message bytes given to detection", COUNTER)         \
	X(detect_candidates, "Messages that were bounce candidates "         \
		"(null sender or automatic header) and were scanned", COUNTER) \
	X(detect_scanned_bytes, "Bytes handed to Hyperscan", COUNTER)        \
	X(detect_class_dsn, "Messages classed dsn (bounce)", COUNTER)        \
	X(detect_class_autoreply, "Messages classed autoreply", COUNTER)     \
	X(detect_class_feedback, "Messages classed feedback", COUNTER)       \
	X(detect_class_challenge, "Messages classed challenge", COUNTER)     \
	X(detect_class_none, "Messages classed none", COUNTER)               \
	X(detect_fail_nomem, "Messages not scanned: stream allocation "      \
		"failed (passed)", COUNTER)                                  \
	X(detect_fail_hs, "Messages whose scan ended on a Hyperscan error "  \
		"(passed)", COUNTER)                                         \
	X(detect_hold_full, "Candidate decisions that came after more "      \
		"header than the hold buffer keeps (header cut)", COUNTER)   \
	X(detect_mime_anomaly, "Messages with a MIME anomaly (line or "      \
		"header cut, depth, bad boundary, bad base64)", COUNTER)     \
	X(detect_orig_hdr_cut, "Embedded originals whose header block was "  \
		"over 16 KiB (kept to the last whole field that fits)",      \
		COUNTER)                                                     \
	X(detect_msgs_live, "Messages in detection now (begun, not yet "     \
		"ended or aborted)", GAUGE)                                  \
	X(detect_streams_live, "Hyperscan streams held by messages in "      \
		"detection now", GAUGE)                                      \
	X(detect_charset_opens, "Charset converters opened (iconv_open: "    \
		"the per-thread cache of 16 missed)", COUNTER)

#endif /* BACKSTOP_COUNTERS_DETECT_H */
