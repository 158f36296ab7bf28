/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming, bounded MIME/DSN parser.
 *
 * The parser takes a message as it appears in DATA (after dot-unstuffing),
 * in chunks of any size, and does three things at once:
 *  - it follows the MIME structure (header unfolding, multipart nesting with
 *    boundaries, content types and parameters, base64 and quoted-printable),
 *  - it extracts what the verdict needs into a struct bs_mime_info: facts of
 *    the top-level header (Auto-Submitted, report-type, ...), the fields of a
 *    message/delivery-status part, and the headers of the embedded original
 *    (message/rfc822, text/rfc822-headers, or an original quoted inline in
 *    plain text after a marker such as qmail's "Below this line is a copy of
 *    the message"),
 *  - it hands decoded text to a scan callback, one line at a time, tagged
 *    with where the text sits (header, subject, body, dsn, ...), which the
 *    detector feeds to its Hyperscan stream.
 *
 * Every buffer has a named cap below; what exceeds a cap is cut (and the
 * cut is recorded in info->anomalies), never trusted, never read past.
 * Text in another charset than UTF-8 (a text part's charset parameter, an
 * RFC 2047 word's charset) is converted to UTF-8 with iconv before it is
 * scanned or copied, so rules and results are UTF-8 whatever the sender
 * used (ISO-2022-JP, Shift_JIS, KOI8-R, GB2312, ISO-8859-x, ...); an
 * unknown charset passes through unconverted.
 *
 * A struct bs_mime is plain state that the caller places where it likes
 * (one per message being parsed) and may drop at any point: it holds no
 * resource.  Charset converters belong to the thread (a small cache of
 * iconv descriptors, at most 16, reused by every parser of the thread).
 */
#ifndef BACKSTOP_MIME_H
#define BACKSTOP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Caps.  RFC 5322 2.1.1 limits a line to 998 octets; longer lines exist in
 * the wild (HTML, unwrapped base64) and are handled in pieces of LINE_MAX.
 * A logical (unfolded) header is cut at HDR_MAX: the fields we extract are
 * far shorter, and a DKIM-Signature with a 4096-bit key is about 900 bytes.
 */
#define BS_MIME_LINE_MAX 1000
#define BS_MIME_HDR_MAX 2048
#define BS_MIME_DEPTH_MAX 8     /* nested multiparts followed */
#define BS_MIME_BOUNDARY_MAX 72 /* RFC 2046: 70 + slack */
#define BS_MIME_TOKEN_MAX 64    /* content type, report-type */
/* Longest IANA charset name is 45; those mail uses are far shorter. */
#define BS_MIME_CHARSET_MAX 32

/* Extracted copies (each includes the NUL; longer values are cut). */
#define BS_FIELD_MAX 256
#define BS_DIAG_MAX 512
#define BS_RECEIVED_MAX 8 /* Received headers kept from the original */
#define BS_RECEIVED_RAW_MAX 512
#define BS_HOST_MAX 128
#define BS_IP_MAX 48
#define BS_DKIM_MAX 2
#define BS_DKIM_RAW_MAX 1024
/*
 * The top-level References kept: its tail (the ids answered last are the
 * ones an auto-reply is about, and the verdict looks up at most 8 of
 * them); whole ids only.  16 typical ids of 60 bytes fit.
 */
#define BS_REFS_MAX 1024
/*
 * The original's header block, raw (contract 3: what DKIM verification of
 * the original needs).  Real headers are 1..6 KB (a Received chain of 10
 * hops and two 2048-bit DKIM signatures is about 5 KB); 16 KiB leaves room
 * for long chains and ARC sets without letting a message make it large.
 */
#define BS_ORIG_HDR_RAW_MAX 16384

/* Where scanned text sits; a rule names the targets it applies to. */
enum bs_target {
	BS_TGT_HEADER = 1u << 0,   /* a top-level header line "Name: value" */
	BS_TGT_SUBJECT = 1u << 1,  /* top-level Subject (RFC 2047 decoded) */
	BS_TGT_FROM = 1u << 2,     /* top-level From */
	BS_TGT_BODY = 1u << 3,     /* decoded text of the notification itself */
	BS_TGT_DSN = 1u << 4,      /* message/delivery-status fields */
	BS_TGT_ARF = 1u << 5,      /* message/feedback-report fields */
	BS_TGT_ORIGINAL = 1u << 6, /* the embedded original (headers, body) */
	BS_TGT_ALL = (1u << 7) - 1,
};

/* Anomalies met while parsing (bit mask): cuts and things skipped. */
enum bs_mime_anomaly {
	BS_MIME_A_LINE_SPLIT = 1u << 0, /* a line longer than LINE_MAX */
	BS_MIME_A_HDR_TRUNC = 1u << 1,  /* a header longer than HDR_MAX */
	BS_MIME_A_DEPTH = 1u << 2,      /* multipart nesting over DEPTH_MAX */
	BS_MIME_A_BOUNDARY = 1u << 3,   /* missing or oversized boundary */
	BS_MIME_A_BAD_B64 = 1u << 4,    /* invalid base64 characters skipped */
	BS_MIME_A_UNTERMINATED = 1u << 5,  /* multipart without closing line */
	BS_MIME_A_FIELD_TRUNC = 1u << 6,   /* an extracted value was cut */
	BS_MIME_A_NO_HEADER_END = 1u << 7, /* message ended inside headers */
	BS_MIME_A_ORIG_HDR_CUT = 1u << 8,  /* original's header over 16 KiB */
};

struct bs_received {
	char raw[BS_RECEIVED_RAW_MAX]; /* unfolded value, spaces squeezed */
	char from_host[BS_HOST_MAX];   /* "from X" (HELO name) */
	char from_rdns[BS_HOST_MAX];   /* "(rdns [ip])" host name, if any */
	char from_ip[BS_IP_MAX];       /* first [address] after "from" */
	char by_host[BS_HOST_MAX];     /* "by Y" */
};

/* Headers of the embedded original message. */
struct bs_original {
	bool present;   /* some header of an original was found */
	uint8_t source; /* enum bs_orig_source */
	char message_id[BS_FIELD_MAX];
	char from[BS_FIELD_MAX];
	char return_path[BS_FIELD_MAX];
	char to[BS_FIELD_MAX];
	char subject[BS_FIELD_MAX]; /* RFC 2047 decoded */
	char date[BS_FIELD_MAX];
	uint8_t n_received; /* kept, top (newest) first */
	uint16_t n_received_seen;
	struct bs_received received[BS_RECEIVED_MAX];
	uint8_t n_dkim;
	char dkim[BS_DKIM_MAX][BS_DKIM_RAW_MAX]; /* value as sent, folds kept */
	/*
	 * The original's header fields exactly as it carried them (after the
	 * part's Content-Transfer-Encoding is undone; bytes of an inline
	 * copy are taken before charset conversion), each line ending in
	 * CRLF (a bare LF becomes CRLF), folds kept, up to and excluding the
	 * blank line that ends the header (an mbox "From " line before it
	 * is not a field and is left out).  Over BS_ORIG_HDR_RAW_MAX the
	 * block ends with the last whole field that fits (a field is never
	 * kept in part) and hdr_raw_cut is set.  Not NUL-terminated.
	 *
	 * hdr_raw is the last member of the last member of struct
	 * bs_mime_info (and of struct bs_detect_result): copies of a result
	 * stop at hdr_raw_len, so bytes past it are undefined.
	 */
	uint32_t hdr_raw_len;
	bool hdr_raw_cut;
	uint8_t hdr_raw[BS_ORIG_HDR_RAW_MAX];
};

enum bs_orig_source {
	BS_ORIG_NONE,
	BS_ORIG_RFC822,  /* message/rfc822 part */
	BS_ORIG_HEADERS, /* text/rfc822-headers part */
	BS_ORIG_INLINE,  /* quoted in plain text */
};

/* Fields of a message/delivery-status part (RFC 3464); first recipient. */
struct bs_dsn {
	bool present;    /* a delivery-status part was seen */
	uint16_t n_rcpt; /* per-recipient groups seen */
	char reporting_mta[BS_FIELD_MAX];
	char final_recipient[BS_FIELD_MAX];
	char original_recipient[BS_FIELD_MAX];
	char action[BS_FIELD_MAX / 4];
	char status[BS_FIELD_MAX / 8];
	char diagnostic_code[BS_DIAG_MAX];
};

/* Facts of the top-level header that say "automatic". */
enum bs_auto_flag {
	BS_AUTO_SUBMITTED = 1u << 0, /* Auto-Submitted: other than "no" */
	BS_AUTO_REPLIED = 1u << 1,   /* Auto-Submitted: auto-replied */
	BS_AUTO_PRECEDENCE =
	        1u << 2, /* Precedence: bulk, junk, list, auto_reply */
	BS_AUTO_REPORT_CT = 1u << 3,   /* Content-Type: multipart/report */
	BS_AUTO_DAEMON_FROM = 1u << 4, /* From MAILER-DAEMON, postmaster, ... */
	BS_AUTO_NULL_FROM = 1u << 5,   /* From: <> */
	BS_AUTO_NULL_RP = 1u << 6,     /* Return-Path: <> in the header */
	BS_AUTO_AUTOREPLY_HDR = 1u << 7, /* X-Autoreply, X-Autorespond, ... */
	BS_AUTO_FAILED_RCPT = 1u << 8,   /* X-Failed-Recipients (Exim) */
	BS_AUTO_NOTIFY_SENDER = 1u << 9, /* no-reply sender, SNS notice */
	BS_AUTO_SUBJECT = 1u << 10, /* "Auto reply:", "Out of Office", ... */
};

struct bs_mime_info {
	uint32_t auto_flags;                  /* enum bs_auto_flag */
	uint32_t anomalies;                   /* enum bs_mime_anomaly */
	char content_type[BS_MIME_TOKEN_MAX]; /* top-level, lower case */
	char report_type[BS_MIME_TOKEN_MAX];  /* report-type parameter */
	char subject[BS_FIELD_MAX];           /* top-level, decoded */
	char from[BS_FIELD_MAX];              /* top-level */
	/*
	 * The top-level identifiers, as sent (folding white space squeezed):
	 * Message-ID (the outbound ledger learns it), In-Reply-To and
	 * References (an auto-reply answers a message by them).  An
	 * identifier that does not fit is left out whole, never cut: a cut
	 * id could match another's prefix.  Empty when absent.
	 */
	char message_id[BS_FIELD_MAX];
	char in_reply_to[BS_FIELD_MAX];
	char references[BS_REFS_MAX];
	char feedback_type[BS_FIELD_MAX / 4]; /* from message/feedback-report */
	bool arf_present; /* a message/feedback-report part was seen */
	bool mdn_present; /* a message/disposition-notification part */
	struct bs_dsn dsn;
	struct bs_original orig; /* last: see bs_original.hdr_raw */
};

/*
 * What holds the value of a struct bs_mime_info: every field up to the
 * original's Received entries, then only the entries kept (n_received),
 * the DKIM values kept (n_dkim, each to its NUL) and the raw header
 * block's hdr_raw_len bytes.  The rest (unused entries, bytes after a
 * DKIM value's NUL, the raw block past its length) is undefined: the
 * parser neither clears nor copies it (clearing and copying the whole
 * 15 KB twice per message was a tenth of classification's instructions).
 */
static inline size_t
bs_mime_info_used(const struct bs_mime_info *in)
{
	size_t n = offsetof(struct bs_mime_info, orig.received) +
	           in->orig.n_received * sizeof(struct bs_received) +
	           in->orig.hdr_raw_len;

	for (unsigned int k = 0; k < in->orig.n_dkim && k < BS_DKIM_MAX; k++)
		n += strlen(in->orig.dkim[k]) + 1;
	return n;
}

/* Copy src's value into dst (see bs_mime_info_used()). */
void bs_mime_info_copy(
        struct bs_mime_info *dst, const struct bs_mime_info *src);

/* a and b hold the same value (see bs_mime_info_used()). */
bool bs_mime_info_same(
        const struct bs_mime_info *a, const struct bs_mime_info *b);

/*
 * Called with decoded text, one line (or one LINE_MAX piece) at a time,
 * always ending in '\n'; target is one or more enum bs_target bits.
 */
typedef void (*bs_mime_scan_fn)(
        void *arg, uint32_t target, const uint8_t *p, size_t n);
/* Called once, when the top-level header is complete. */
typedef void (*bs_mime_hdr_done_fn)(void *arg);

/* Parser state; opaque to callers, sized for embedding. */
struct bs_mime_part {
	char boundary[BS_MIME_BOUNDARY_MAX + 1];
	uint8_t blen;
};

struct bs_mime {
	struct bs_mime_info *info;
	bs_mime_scan_fn scan;
	bs_mime_hdr_done_fn hdr_done;
	void *arg;
	uint32_t scan_mask; /* targets worth handing to scan() */

	/* Private to the parser (mime.c, dsn.c). */
	uint8_t state;        /* header or body */
	uint8_t handler;      /* body handler of the current part */
	uint8_t enc;          /* content-transfer-encoding of the part */
	uint8_t ctx;          /* notification itself, or the original */
	uint8_t depth;        /* multipart levels open */
	uint8_t hb;           /* kind of header block being unfolded */
	uint8_t inline_armed; /* marker line seen, headers may follow */
	bool line_cont;       /* raw line continues a cut line */
	bool dline_cont;      /* decoded line continues a cut line */
	bool hdr_trunc;       /* the header being unfolded was cut */
	bool top_done;        /* top-level header complete */
	bool orig_hdr;        /* reading the original's header block */
	bool dsn_in_rcpt;     /* DSN: inside a per-recipient group */
	bool dsn_rcpt_done;   /* DSN: first recipient's group complete */
	bool stopped;         /* bs_mime_stop(): ignore the rest */
	uint32_t raw_field;   /* hdr_raw offset where the current field began */

	/* Part being set up from its header. */
	uint8_t p_handler, p_enc, p_blen;
	char p_boundary[BS_MIME_BOUNDARY_MAX + 1];
	char p_charset[BS_MIME_CHARSET_MAX]; /* lower case, "" if none */
	/* Charset of the text part being read (normalised, "" = none: UTF-8,
	 * ASCII or unknown); converted with the thread's converter for it. */
	char cs[BS_MIME_CHARSET_MAX];
	bool cs_ascii;     /* ASCII lines of cs need no conversion */
	uint64_t cs_seq;   /* the converter's clock at our last use */
	uint32_t cs_opens; /* iconv descriptors opened (cache misses) */

	struct bs_mime_part part[BS_MIME_DEPTH_MAX];

	/* base64 / quoted-printable decoder state */
	uint32_t b64_acc;
	uint8_t b64_n;

	size_t line_len;                    /* raw line assembler */
	uint8_t line[BS_MIME_LINE_MAX + 2]; /* +2: '\n' for scan */
	size_t dline_len;                   /* decoded line assembler */
	uint8_t dline[BS_MIME_LINE_MAX + 2];
	size_t hdr_len; /* logical header being unfolded */
	uint8_t hdr[BS_MIME_HDR_MAX + 2];
};

/*
 * Start parsing a message into *info (zeroed here).  scan may be NULL (no
 * text wanted); scan_mask limits the targets handed to it, so text nobody
 * scans is not even decoded.  Never fails.  The caller owns m and info.
 */
void bs_mime_init(struct bs_mime *m, struct bs_mime_info *info,
        bs_mime_scan_fn scan, bs_mime_hdr_done_fn hdr_done, void *arg,
        uint32_t scan_mask);

/*
 * Feed the next len bytes (any split; CRLF or LF line ends).  Reads buf[0..
 * len) only.  Cannot fail: what it cannot parse it records in anomalies.
 * Thread safety: one thread per struct bs_mime.
 */
void bs_mime_feed(struct bs_mime *m, const uint8_t *buf, size_t len);

/*
 * Stop parsing: the rest of the message (even the rest of the chunk being
 * fed, when called from a callback) is ignored, and bs_mime_end() does
 * nothing more.  For the detector's "not a candidate" decision.
 */
void bs_mime_stop(struct bs_mime *m);

/*
 * Drop the message without finishing it.  The parser holds no resource
 * (converters belong to the thread), so this only ends conversion; kept
 * so that callers need not rely on that.  NULL-safe, idempotent.
 */
void bs_mime_abort(struct bs_mime *m);

/* End of message: flush a last line without line end, close open parts. */
void bs_mime_end(struct bs_mime *m);

/* Change the targets handed to scan() from now on (e.g. after gating). */
static inline void
bs_mime_set_scan_mask(struct bs_mime *m, uint32_t mask)
{
	m->scan_mask = mask;
}

/*
 * Charset converters of the calling thread (see dsn.c): cached = iconv
 * descriptors open, the thread's whole holding (at most
 * BS_MIME_CHARSET_CACHE, whatever the input), opened = iconv_open() calls
 * so far (cache misses).  For tests, fuzzers and leak checks.
 */
#define BS_MIME_CHARSET_CACHE 16
struct bs_mime_charset_stats {
	uint32_t cached;
	uint64_t opened;
};
void bs_mime_charset_stats(struct bs_mime_charset_stats *st);

/* Close the calling thread's converters (a thread's exit; leak checks).
 * Parsers in progress simply open them again. */
void bs_mime_charset_flush(void);

/*
 * Decode RFC 2047 encoded words in src[0..n) into dst (NUL-terminated, cut
 * at dstlen), unfolding whitespace between adjacent encoded words.  The
 * charset is not converted: UTF-8 stays UTF-8, other charsets come out as
 * their raw bytes.  Returns the length written.
 */
size_t bs_mime_decode_2047(char *dst, size_t dstlen, const char *src, size_t n);

#endif /* BACKSTOP_MIME_H */
