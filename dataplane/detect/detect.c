/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Detection: candidate gating, the Hyperscan stream of one message, and
 * the classification that combines rule matches with the structure the
 * MIME parser found.
 *
 * One stream per message, one target per scan call.  The MIME parser
 * hands over text one line at a time together with where it sits (header,
 * subject, body, dsn, original, ...).  Each line is one hs_scan_stream()
 * call, so when a match is reported we know the target of the line it
 * ended in, and keep it only if the rule applies there.  The alternative,
 * one stream per target, would multiply stream state (and the cost of
 * opening and closing) by the number of targets for no gain: the rule
 * pack's targets mostly overlap in the header and body.  Text of a target
 * that no rule names (e.g. the original's body) is not even decoded.
 *
 * A match spanning two lines is kept (rules use \s+ between words so that
 * wrapped sentences still match); it is attributed to the line it ends in.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "backstop/counters.h"
#include "backstop/detect.h"
#include "mime_priv.h"
#include "rules_priv.h"

/* The raw header block ends the result too (copies stop at its length). */
static_assert(offsetof(struct bs_detect_result, mime) +
                        sizeof(struct bs_mime_info) + 8 >
                sizeof(struct bs_detect_result),
        "mime must be the last member of struct bs_detect_result");

struct bs_detect_ctx {
	const struct bs_ruleset *rs;
	hs_scratch_t *scratch;
	struct bs_counters *cnt;
	/*
	 * Messages and streams kept for reuse, up to BS_DETECT_POOL_MAX of
	 * each: malloc + hs_open_stream per message cost a quarter of the
	 * classification time in the benchmark, and a worker has many
	 * messages in flight at once (interleaved sessions), so one spare
	 * was not enough: past it every message malloc'ed its 47 KB.
	 */
	struct bs_msg *pool[BS_DETECT_POOL_MAX];
	unsigned int n_pool;
	hs_stream_t *spool[BS_DB__N][BS_DETECT_POOL_MAX];
	unsigned int n_spool[BS_DB__N];
	/* What this context holds (bs_detect_ctx_live()); leak checks. */
	struct bs_detect_live live;
};

/*
 * Consecutive lines of the same target are scanned in one hs_scan_stream()
 * call: a call costs about as much as scanning a hundred bytes, and lines
 * average 60.  A batch never mixes targets, so a match still falls in the
 * target it was found in.  Two batches: the folded running text (TEXT
 * database) and lines (HDR or LINE database, never both at once: the
 * header's lines all come before the body's).
 */
#define BS_DETECT_BATCH_MAX 2048

enum { B_TEXT, B_LINE, B__N };

struct bs_msg {
	struct bs_detect_ctx *ctx;
	hs_stream_t *stream[BS_DB__N]; /* opened at the first scan of each */
	bool null_sender; /* envelope MAIL FROM:<> */
	bool decided;     /* candidate decision taken */
	bool candidate;
	bool scanning;    /* stream open and healthy */
	bool skip;        /* not a candidate: ignore the rest */
	bool daemon_sender; /* envelope MAIL FROM:<MAILER-DAEMON@...> */
	uint8_t sig;      /* header signatures seen by the gate (SIG_*) */
	uint8_t dsn_ev;   /* where dsn rules matched (DEV_*) */
	uint32_t cur_tgt; /* target of the line being scanned */
	uint32_t fail;
	uint64_t bytes, scanned;
	size_t hold_len;    /* held header lines: [tgt][len16][bytes] */
	struct {
		uint8_t db;
		bool sp;
		uint32_t tgt;
		size_t len;
	} bh[B__N]; /* the batches' heads (cleared with the message) */
	/* From here on bs_msg_begin() clears nothing itself: the parser
	 * sets up its state and info (all but the raw header block), the
	 * buffers are guarded by the lengths above. */
	struct bs_mime mime;
	struct bs_mime_info info;
	uint8_t batch[B__N][BS_DETECT_BATCH_MAX];
	uint8_t hold[BS_DETECT_HOLD_MAX];
	uint64_t matched[]; /* one bit per rule */
};

/* Header signatures (dsn rules on the Subject or From line) the gate saw. */
#define SIG_SUBJECT 1u
#define SIG_FROM 2u

/* Where dsn rules matched, for classify(). */
#define DEV_STRONG_CONTENT 1u /* strong, outside Subject and From */
#define DEV_STRONG_SUBJECT 2u /* strong, in the Subject */
#define DEV_WEAK_TEXT 4u      /* weak, in the Subject, body or DSN text */
#define DEV_FROM 8u           /* any, in the From line: a sender signature */

/* Top-level facts that make a message a bounce candidate. */
#define GATE_FLAGS                                                             \
	(BS_AUTO_SUBMITTED | BS_AUTO_PRECEDENCE | BS_AUTO_REPORT_CT |          \
	        BS_AUTO_DAEMON_FROM | BS_AUTO_NULL_FROM | BS_AUTO_NULL_RP |    \
	        BS_AUTO_AUTOREPLY_HDR | BS_AUTO_FAILED_RCPT |                  \
	        BS_AUTO_NOTIFY_SENDER | BS_AUTO_SUBJECT)

#define CNT_INC(m, name)                                                       \
	do {                                                                   \
		if ((m)->ctx->cnt)                                             \
			BS_CNT_INC((m)->ctx->cnt, name);                       \
	} while (0)
#define CNT_ADD(m, name, n)                                                    \
	do {                                                                   \
		if ((m)->ctx->cnt)                                             \
			BS_CNT_ADD((m)->ctx->cnt, name, (n));                  \
	} while (0)

struct bs_detect_ctx *
bs_detect_ctx_create(const struct bs_ruleset *rs)
{
	struct bs_detect_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	ctx->rs = rs;
	/* One scratch serves every database (Hyperscan grows it). */
	for (unsigned int d = 0; d <= BS_DB__N; d++) {
		const hs_database_t *db = d < BS_DB__N ? rs->dbs[d] : rs->gate_db;

		if (db && hs_alloc_scratch(db, &ctx->scratch) != HS_SUCCESS) {
			hs_free_scratch(ctx->scratch);
			free(ctx);
			return NULL;
		}
	}
	return ctx;
}

void
bs_detect_ctx_set_counters(struct bs_detect_ctx *ctx, struct bs_counters *cnt)
{
	ctx->cnt = cnt;
}

void
bs_detect_ctx_free(struct bs_detect_ctx *ctx)
{
	if (!ctx)
		return;
	for (unsigned int d = 0; d < BS_DB__N; d++)
		while (ctx->n_spool[d] > 0)
			hs_close_stream(ctx->spool[d][--ctx->n_spool[d]],
			        ctx->scratch, NULL, NULL);
	while (ctx->n_pool > 0)
		free(ctx->pool[--ctx->n_pool]);
	/* Open messages would now point to freed memory: a caller bug. */
	assert(ctx->live.msgs == 0);
	hs_free_scratch(ctx->scratch);
	free(ctx);
}

void
bs_detect_ctx_live(const struct bs_detect_ctx *ctx, struct bs_detect_live *out)
{
	*out = ctx->live;
}

size_t
bs_msg_size(const struct bs_detect_ctx *ctx)
{
	return sizeof(struct bs_msg) + ((ctx->rs->n + 63) / 64) * 8;
}

/* White space that Hyperscan's \s matches (without UCP): what the
 * scanned text folds to one space. */
static inline bool
fold_ws(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int
on_match(unsigned int id, unsigned long long from, unsigned long long to,
        unsigned int flags, void *arg)
{
	struct bs_msg *msg = arg;
	const struct bs_rule *r = &msg->ctx->rs->rules[id];

	uint32_t t = r->targets & msg->cur_tgt;

	(void)from;
	(void)to;
	(void)flags;
	if (!t)
		return 0;
	msg->matched[id / 64] |= 1ull << (id % 64);
	if (r->cls == BS_CLASS_DSN) {
		if (t & BS_TGT_FROM)
			msg->dsn_ev |= DEV_FROM;
		if (!r->weak && (t & ~(BS_TGT_SUBJECT | BS_TGT_FROM)))
			msg->dsn_ev |= DEV_STRONG_CONTENT;
		else if (!r->weak && (t & BS_TGT_SUBJECT))
			msg->dsn_ev |= DEV_STRONG_SUBJECT;
		else if (r->weak &&
		         (t & (BS_TGT_SUBJECT | BS_TGT_BODY | BS_TGT_DSN)))
			msg->dsn_ev |= DEV_WEAK_TEXT;
	}
	return 0;
}

/*
 * Reply and forward prefixes ("Re:", "Fwd:", "AW:", "WG:", "TR:", "RV:",
 * "SV:", "Antw:", ... with an optional "[2]" count, and a list's "[tag]"
 * after them): where a person's
 * reply to a bounce, or forward of one, puts the bounce's own subject.
 * Returns the offset in the "Subject: ..." line after the last prefix, or
 * 0 if the subject has none.
 */
static size_t
subject_prefix_end(const uint8_t *p, size_t n)
{
	static const char *const pfx[] = {"re", "fwd", "fw", "aw", "wg", "tr",
	        "rv", "sv", "vs", "antw", "doorst", "wtrd", "rif", "enc", "res",
	        "odp", "pd", "ynt", "ilt", "r", "i"};
	size_t i = 9, end = 0; /* after "Subject: " */

	for (;;) {
		size_t j = i, k;
		unsigned int w;

		while (j < n && (p[j] == ' ' || p[j] == '\t'))
			j++;
		for (w = 0; w < sizeof(pfx) / sizeof(pfx[0]); w++) {
			size_t l = strlen(pfx[w]);

			if (n - j > l &&
			        bs_mime_prefix_ci(p + j, n - j, pfx[w]) &&
			        (p[j + l] == ':' || p[j + l] == '[' ||
			                p[j + l] == ' '))
				break;
		}
		if (w == sizeof(pfx) / sizeof(pfx[0]))
			return end;
		k = j + strlen(pfx[w]);
		if (k < n && p[k] == '[') {
			while (k < n && p[k] != ']' && k - j < 12)
				k++;
			k++;
		}
		while (k < n && p[k] == ' ')
			k++;
		if (k >= n || p[k] != ':')
			return end;
		k++;
		while (k < n && (p[k] == ' ' || p[k] == '\t'))
			k++;
		/* A list's tag after the prefix ("Re: [users] ...") or a
		 * count ("Fwd: [2] ...") belongs to it. */
		if (k < n && p[k] == '[') {
			const uint8_t *e = memchr(p + k, ']', n - k);

			if (e && e - (p + k) <= 64) {
				k = (size_t)(e - p) + 1;
				while (k < n && (p[k] == ' ' || p[k] == '\t'))
					k++;
			}
		}
		i = end = k;
	}
}

struct gate_scan {
	struct bs_msg *msg;
	uint32_t tgt;
	size_t prefix_end;
	bool hit;       /* a signature matched */
	bool at_prefix; /* one starts right after a reply/forward prefix */
};

static int
on_gate_match(unsigned int id, unsigned long long from, unsigned long long to,
        unsigned int flags, void *arg)
{
	struct gate_scan *g = arg;
	const struct bs_ruleset *rs = g->msg->ctx->rs;
	const struct bs_rule *r = &rs->rules[id];

	(void)to;
	(void)flags;
	if (!(r->targets & g->tgt & (BS_TGT_SUBJECT | BS_TGT_FROM)))
		return 0;
	g->hit = true;
	/* Without start offsets every match is taken to start there. */
	if (g->prefix_end > 0 && (!rs->gate_som || from <= g->prefix_end))
		g->at_prefix = true;
	/* One is enough, unless a prefix makes us look at them all. */
	return g->prefix_end == 0 || g->at_prefix;
}

/*
 * The gate's header signatures: scan the top-level Subject or From line
 * (still held, the decision pending) with the block database of the dsn
 * rules naming those targets.  Two short scans per ordinary message; what
 * they cost is in docs/DETECTION.md.
 */
static void
gate_scan(struct bs_msg *msg, uint32_t tgt, const uint8_t *p, size_t n)
{
	const struct bs_ruleset *rs = msg->ctx->rs;
	struct gate_scan g = {msg, tgt, 0};
	/* Folded as the HDR stream sees it (rules write one space). */
	uint8_t f[BS_MIME_HDR_MAX + 16];
	size_t k = 0;
	bool sp = false;

	if (!rs->gate_db)
		return;
	for (size_t i = 0; i < n && k < sizeof(f); i++) {
		if (!fold_ws(p[i]) || p[i] == '\n') {
			f[k++] = p[i];
			sp = false;
		} else if (!sp) {
			f[k++] = ' ';
			sp = true;
		}
	}
	p = f;
	n = k;
	if (tgt & BS_TGT_SUBJECT)
		g.prefix_end = subject_prefix_end(p, n);
	/* An error only loses a signature: the gate stays as it was. */
	(void)hs_scan(rs->gate_db, (const char *)p, (unsigned int)n, 0,
	        msg->ctx->scratch, on_gate_match, &g);
	/*
	 * A subject that, after "Re:" or "Fwd:", begins with a signature is
	 * a person's reply to (or forward of) a bounce; a bounce's own
	 * subject may quote its original's ("Re: lunch : non remis"), and
	 * then its signature comes later.
	 */
	if (g.hit && !g.at_prefix)
		msg->sig |= (tgt & BS_TGT_SUBJECT) ? SIG_SUBJECT : SIG_FROM;
}

/* MAIL FROM:<MAILER-DAEMON@host> or <postmaster@host>, BATV tag or not:
 * the null sender as some MTAs write it. */
static bool
is_daemon_sender(const char *a)
{
	static const char *const names[] = {"mailer-daemon", "mailer_daemon",
	        "mailerdaemon", "postmaster"};
	const char *at = strrchr(a, '@');
	size_t n = at ? (size_t)(at - a) : strlen(a);

	/* BATV (prvs=TAG=local, msprvs1=TAG=local): the tag goes. */
	size_t tag = bs_mime_prefix_ci((const uint8_t *)a, n, "prvs=")      ? 5
	             : bs_mime_prefix_ci((const uint8_t *)a, n, "msprvs1=") ? 8
	                                                                    : 0;
	if (tag > 0 && n > tag) {
		const char *e = memchr(a + tag, '=', n - tag);

		if (e && e + 1 < a + n) {
			n -= (size_t)(e + 1 - a);
			a = e + 1;
		}
	}
	for (unsigned int k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (strlen(names[k]) == n &&
		        bs_mime_prefix_ci((const uint8_t *)a, n, names[k]))
			return true;
	return false;
}

/* The message's stream for database d, opened (or reused) at first use;
 * NULL after a failure (recorded, scanning stops). */
static hs_stream_t *
msg_stream(struct bs_msg *msg, unsigned int d)
{
	struct bs_detect_ctx *ctx = msg->ctx;

	if (msg->stream[d])
		return msg->stream[d];
	if (ctx->n_spool[d] > 0) {
		msg->stream[d] = ctx->spool[d][--ctx->n_spool[d]];
	} else if (hs_open_stream(ctx->rs->dbs[d], 0, &msg->stream[d]) !=
	           HS_SUCCESS) {
		msg->stream[d] = NULL;
		msg->fail |= BS_DF_NOMEM;
		msg->scanning = false;
		CNT_INC(msg, detect_fail_nomem);
		return NULL;
	} else {
		ctx->live.streams_alloc++;
	}
	ctx->live.streams++;
	CNT_INC(msg, detect_streams_live);
	return msg->stream[d];
}

static void
batch_flush(struct bs_msg *msg, unsigned int b)
{
	size_t n = msg->bh[b].len;
	hs_stream_t *s;

	msg->bh[b].len = 0;
	if (!msg->scanning || n == 0)
		return;
	s = msg_stream(msg, msg->bh[b].db);
	if (s == NULL)
		return;
	msg->cur_tgt = msg->bh[b].tgt;
	if (hs_scan_stream(s, (const char *)msg->batch[b], (unsigned int)n, 0,
	            msg->ctx->scratch, on_match, msg) != HS_SUCCESS) {
		msg->fail |= BS_DF_HS;
		msg->scanning = false;
	}
}

/*
 * Append p[0..n) to batch b for database d and target tgt, every run of
 * white space written as one space (line ends too, for the TEXT
 * database); flushed whenever it fills or its stream or target changes.
 * The space state carries over batches: a run never becomes two spaces.
 */
static void
batch_add(struct bs_msg *msg, unsigned int b, unsigned int d, uint32_t tgt,
        const uint8_t *p, size_t n)
{
	const bool keep_nl = d != BS_DB_TEXT;
	bool sp;

	if (msg->bh[b].len > 0 && (msg->bh[b].db != d || msg->bh[b].tgt != tgt))
		batch_flush(msg, b);
	if (msg->bh[b].db != d)
		msg->bh[b].sp = false;
	msg->bh[b].db = (uint8_t)d;
	msg->bh[b].tgt = tgt;
	sp = msg->bh[b].sp;
	while (n > 0) {
		uint8_t *out = msg->batch[b];
		size_t o = msg->bh[b].len, i = 0;

		/* Output never outgrows input: fill up to the room left. */
		while (i < n && o < BS_DETECT_BATCH_MAX) {
#ifdef __SSE2__
			/*
			 * 16 bytes at a time: the other white space (tab, CR,
			 * LF but where lines are kept, VT, FF) is written as
			 * a space in the vector, so that only a space after
			 * white space needs the byte path (text is mostly
			 * words and single spaces).
			 */
			const __m128i nl_keep =
			        _mm_set1_epi8(keep_nl ? '\n' : 0);

			while (i < n && o + 16 <= BS_DETECT_BATCH_MAX) {
				/* A last block under 16 bytes is read from a
				 * padded copy (never past p + n). */
				uint8_t tail[16];
				size_t left = n - i;
				const uint8_t *src = p + i;

				if (left < 16) {
					memcpy(tail, src, left);
					memset(tail + left, 'a', 16 - left);
					src = tail;
				}
				__m128i v = _mm_loadu_si128((const __m128i *)src);
				__m128i t = _mm_sub_epi8(v, _mm_set1_epi8(9));
				__m128i ctl = _mm_andnot_si128(
				        _mm_cmpeq_epi8(v, nl_keep),
				        _mm_cmpeq_epi8(
				                _mm_min_epu8(t, _mm_set1_epi8(4)),
				                t));
				v = _mm_or_si128(_mm_andnot_si128(ctl, v),
				        _mm_and_si128(ctl, _mm_set1_epi8(' ')));
				unsigned int spc = (unsigned int)_mm_movemask_epi8(
				        _mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));
				unsigned int fix =
				        (spc & ((spc << 1) | (sp ? 1u : 0u))) &
				        0xffffu;
				unsigned int k = fix ? (unsigned int)__builtin_ctz(fix)
				                     : 16;

				if (k > left)
					k = (unsigned int)left;
				/* The bytes before the first to drop go as
				 * written. */
				_mm_storeu_si128((__m128i *)(out + o), v);
				i += k;
				o += k;
				if (k > 0)
					sp = (spc >> (k - 1)) & 1u;
				if (k < 16 && i < n) {
					/* p[i] is white space after white
					 * space: dropped. */
					i++;
					sp = true;
				}
			}
			if (i >= n || o >= BS_DETECT_BATCH_MAX)
				break;
#endif
			uint8_t c = p[i++];

			if (!fold_ws(c)) {
				out[o++] = c;
				sp = false;
			} else if (c == '\n' && keep_nl) {
				/* A run before the line end was written as a
				 * space already; the line end stays. */
				out[o++] = '\n';
				sp = false;
			} else if (!sp) {
				out[o++] = ' ';
				sp = true;
			}
		}
		msg->bh[b].len = o;
		p += i;
		n -= i;
		if (o == BS_DETECT_BATCH_MAX)
			batch_flush(msg, b);
	}
	msg->bh[b].sp = sp;
}

/*
 * A line (or piece) of target tgt to the databases that serve it: the
 * header's to HDR; the body's to TEXT (folded running text) and LINE.
 */
static void
scan(struct bs_msg *msg, uint32_t tgt, const uint8_t *p, size_t n)
{
	const struct bs_ruleset *rs = msg->ctx->rs;

	if (!msg->scanning)
		return;
	/* Bytes of text handed on (once, whatever the streams). */
	msg->scanned += n;
	if (tgt & BS_TGT_HDR_CHANNEL) {
		if (rs->db_targets[BS_DB_HDR] & tgt)
			batch_add(msg, B_LINE, BS_DB_HDR, tgt, p, n);
		return;
	}
	if (rs->db_targets[BS_DB_TEXT] & tgt)
		batch_add(msg, B_TEXT, BS_DB_TEXT, tgt, p, n);
	if (rs->db_targets[BS_DB_LINE] & tgt)
		batch_add(msg, B_LINE, BS_DB_LINE, tgt, p, n);
}

/* Take the candidate decision; a candidate gets its stream and the held
 * header lines. */
static void
decide(struct bs_msg *msg, bool candidate)
{
	const struct bs_ruleset *rs = msg->ctx->rs;

	msg->decided = true;
	msg->candidate = candidate;
	if (!candidate) {
		msg->skip = true;
		bs_mime_stop(&msg->mime);
		return;
	}
	CNT_INC(msg, detect_candidates);
	/* Streams open at their first batch (most messages need no LINE
	 * stream before their report part, some never). */
	if (rs->n == 0)
		msg->fail |= BS_DF_NO_RULES;
	else
		msg->scanning = true;
	for (size_t i = 0; i + 3 <= msg->hold_len;) {
		uint32_t tgt = msg->hold[i];
		size_t n = (size_t)msg->hold[i + 1] << 8 | msg->hold[i + 2];

		scan(msg, tgt, msg->hold + i + 3, n);
		i += 3 + n;
	}
	msg->hold_len = 0;
}

static void
on_text(void *arg, uint32_t tgt, const uint8_t *p, size_t n)
{
	struct bs_msg *msg = arg;

	if (!msg->decided) {
		if ((tgt & (BS_TGT_SUBJECT | BS_TGT_FROM)) &&
		        (msg->info.auto_flags & GATE_FLAGS) == 0)
			gate_scan(msg, tgt, p, n);
		if ((msg->info.auto_flags & GATE_FLAGS) == 0 && !msg->sig) {
			/* Hold the line until the header is complete. */
			if (n > 0xffff ||
			        msg->hold_len + 3 + n > sizeof(msg->hold)) {
				if (!(msg->fail & BS_DF_HOLD_FULL))
					CNT_INC(msg, detect_hold_full);
				msg->fail |= BS_DF_HOLD_FULL;
				return;
			}
			msg->hold[msg->hold_len] = (uint8_t)tgt;
			msg->hold[msg->hold_len + 1] = (uint8_t)(n >> 8);
			msg->hold[msg->hold_len + 2] = (uint8_t)n;
			memcpy(msg->hold + msg->hold_len + 3, p, n);
			msg->hold_len += 3 + n;
			return;
		}
		decide(msg, true);
	}
	scan(msg, tgt, p, n);
}

static void
on_header_done(void *arg)
{
	struct bs_msg *msg = arg;

	if (!msg->decided)
		decide(msg, msg->null_sender || msg->sig ||
		                    (msg->info.auto_flags & GATE_FLAGS) != 0);
}

struct bs_msg *
bs_msg_begin(struct bs_detect_ctx *ctx, const char *mail_from,
        const char *const *rcpts, unsigned int n_rcpts)
{
	struct bs_msg *msg = ctx->n_pool > 0 ? ctx->pool[--ctx->n_pool] : NULL;

	if (!msg) {
		msg = malloc(bs_msg_size(ctx));
		if (msg)
			ctx->live.msgs_alloc++;
	}
	(void)rcpts;
	(void)n_rcpts;
	if (!msg)
		return NULL;
	ctx->live.msgs++;
	/* Only the message's own fields are cleared here (a quarter of an
	 * ordinary message's cost was clearing 30 KB twice). */
	memset(msg, 0, offsetof(struct bs_msg, mime));
	memset(msg->matched, 0, ((ctx->rs->n + 63) / 64) * 8);
	msg->ctx = ctx;
	msg->null_sender = mail_from && mail_from[0] == '\0';
	msg->daemon_sender = mail_from && is_daemon_sender(mail_from);
	bs_mime_init(&msg->mime, &msg->info, on_text, on_header_done, msg,
	        ctx->rs->targets);
	CNT_INC(msg, detect_msgs);
	CNT_INC(msg, detect_msgs_live);
	if (msg->null_sender || msg->daemon_sender)
		decide(msg, true);
	return msg;
}

int
bs_msg_feed(struct bs_msg *msg, const uint8_t *buf, size_t len)
{
	msg->bytes += len;
	if (msg->skip)
		return 0;
	bs_mime_feed(&msg->mime, buf, len);
	return (msg->fail & (BS_DF_HS | BS_DF_NOMEM)) ? -EIO : 0;
}

static uint8_t
classify(struct bs_msg *msg, struct bs_detect_result *out)
{
	const struct bs_mime_info *in = &msg->info;
	const struct bs_ruleset *rs = msg->ctx->rs;
	uint32_t ev = 0, af = in->auto_flags;
	bool weak_dsn = false;

	if (msg->null_sender)
		ev |= BS_EV_NULL_SENDER;
	if (af & (BS_AUTO_NULL_RP | BS_AUTO_NULL_FROM))
		ev |= BS_EV_NULL_RP;
	if (af & BS_AUTO_DAEMON_FROM)
		ev |= BS_EV_DAEMON_FROM;
	if (af & BS_AUTO_SUBMITTED)
		ev |= BS_EV_AUTO_SUBMITTED;
	if (af & BS_AUTO_FAILED_RCPT)
		ev |= BS_EV_FAILED_RCPT;
	if (af & (BS_AUTO_AUTOREPLY_HDR | BS_AUTO_REPLIED))
		ev |= BS_EV_AUTOREPLY_HDR;
	if (in->dsn.present || strcmp(in->report_type, "delivery-status") == 0)
		ev |= BS_EV_REPORT_DSN;
	if (in->arf_present || strcmp(in->report_type, "feedback-report") == 0)
		ev |= BS_EV_REPORT_ARF;
	if (in->mdn_present ||
	        strcmp(in->report_type, "disposition-notification") == 0)
		ev |= BS_EV_REPORT_MDN;
	if (in->orig.present)
		ev |= BS_EV_ORIGINAL;
	if (msg->daemon_sender)
		ev |= BS_EV_DAEMON_SENDER;
	if (msg->dsn_ev & DEV_FROM)
		ev |= BS_EV_FROM_SIGNATURE;
	/* The gate opened on a Subject or From signature alone. */
	bool sig_only = msg->candidate && !msg->null_sender &&
	                !msg->daemon_sender && (af & GATE_FLAGS) == 0;

	if (sig_only)
		ev |= BS_EV_SIGNATURE_GATE;

	for (unsigned int i = 0; i < rs->n; i++) {
		const struct bs_rule *r = &rs->rules[i];

		if (!(msg->matched[i / 64] & (1ull << (i % 64))))
			continue;
		out->n_rules++;
		if (out->n_rule_ids < BS_DETECT_RULES_MAX)
			out->rule_ids[out->n_rule_ids++] = r->id;
		switch (r->cls) {
		case BS_CLASS_DSN:
			if (r->weak)
				weak_dsn = true;
			else
				ev |= BS_EV_RULE_DSN;
			break;
		case BS_CLASS_AUTOREPLY:
			ev |= BS_EV_RULE_AUTOREPLY;
			break;
		case BS_CLASS_FEEDBACK:
			ev |= BS_EV_RULE_FEEDBACK;
			break;
		case BS_CLASS_CHALLENGE:
			ev |= BS_EV_RULE_CHALLENGE;
			break;
		default:
			break;
		}
	}
	if (weak_dsn && !(ev & BS_EV_RULE_DSN))
		ev |= BS_EV_RULE_DSN_WEAK;
	out->evidence = ev;

	if (!msg->candidate)
		return BS_CLASS_NONE;
	/* Structure first: a report part says what it is. */
	if (ev & BS_EV_REPORT_ARF)
		return BS_CLASS_FEEDBACK;
	if (ev & BS_EV_REPORT_DSN)
		return BS_CLASS_DSN;
	/*
	 * One mail system's wording says bounce, except that a message the
	 * gate let in on its Subject or From alone (ordinary sender, no
	 * automatic header) needs it outside that line: a person may write a
	 * bounce's subject, not its body.
	 */
	if ((msg->dsn_ev & DEV_STRONG_CONTENT) ||
	        ((msg->dsn_ev & DEV_STRONG_SUBJECT) && !sig_only))
		return BS_CLASS_DSN;
	/*
	 * A generic wording (in the text: Subject, body, DSN fields) counts
	 * only beside a bounce's marks that are independent of it, and not
	 * when the message says it is an automatic reply (auto-reply
	 * wording, an X-Autoreply-style header) or is a disposition
	 * notification (RFC 8098, which carries Final-Recipient and may
	 * carry the original by design) and nothing stronger says bounce:
	 * when in doubt we must not call a message a bounce (the verdict
	 * may reject it).  "Auto-Submitted: auto-replied" alone says neither
	 * way: Exim's bounces carry it, as does a delivery agent's
	 * "automatic bounce notification".  Structure alone (a daemon
	 * From beside an attached message) is no wording: weak rules on the
	 * header lines are marks, not text.  For a message the gate let in
	 * on a signature alone only a sender signature corroborates (an
	 * original quoted inline may be a person pasting headers).
	 */
	bool weak_text = (msg->dsn_ev & DEV_WEAK_TEXT) ||
	                 (msg->dsn_ev & DEV_STRONG_SUBJECT);
	uint32_t marks = sig_only ? BS_EV_FROM_SIGNATURE
	                          : BS_EV_NULL_SENDER | BS_EV_NULL_RP |
	                                    BS_EV_DAEMON_FROM | BS_EV_FAILED_RCPT |
	                                    BS_EV_ORIGINAL | BS_EV_DAEMON_SENDER |
	                                    BS_EV_FROM_SIGNATURE;

	if (weak_text && !(af & BS_AUTO_AUTOREPLY_HDR) &&
	        !(ev & (BS_EV_RULE_AUTOREPLY | BS_EV_REPORT_MDN)) && (ev & marks))
		return BS_CLASS_DSN;
	if (ev & BS_EV_RULE_FEEDBACK)
		return BS_CLASS_FEEDBACK;
	if (ev & BS_EV_RULE_CHALLENGE)
		return BS_CLASS_CHALLENGE;
	if (ev &
	        (BS_EV_RULE_AUTOREPLY | BS_EV_AUTOREPLY_HDR | BS_EV_REPORT_MDN))
		return BS_CLASS_AUTOREPLY;
	return BS_CLASS_NONE;
}

/* End of data on stream d (end-anchored matches), keep it for reuse. */
static void
stream_done(struct bs_msg *msg, unsigned int d, bool report)
{
	struct bs_detect_ctx *ctx = msg->ctx;
	hs_stream_t *s = msg->stream[d];

	if (s == NULL)
		return;
	msg->stream[d] = NULL;
	ctx->live.streams--;
	if (ctx->cnt)
		ctx->cnt->v[BS_CNT_detect_streams_live]--;
	if (hs_reset_stream(s, 0, ctx->scratch,
	            report && msg->scanning ? on_match : NULL,
	            msg) != HS_SUCCESS) {
		msg->fail |= BS_DF_HS;
		hs_close_stream(s, ctx->scratch, NULL, NULL);
		ctx->live.streams_alloc--;
		return;
	}
	if (ctx->n_spool[d] < BS_DETECT_POOL_MAX) {
		ctx->spool[d][ctx->n_spool[d]++] = s;
	} else {
		hs_close_stream(s, ctx->scratch, NULL, NULL);
		ctx->live.streams_alloc--;
	}
}

/*
 * The message is done (ended or aborted), whatever state its parser
 * stopped in: keep or free the memory.  The parser holds nothing of its
 * own (charset converters belong to the thread), so an aborted message
 * leaves nothing behind; bs_mime_abort() is called all the same, so that
 * this stays true if the parser ever holds something.
 */
static void
msg_release(struct bs_msg *msg)
{
	struct bs_detect_ctx *ctx = msg->ctx;

	bs_mime_abort(&msg->mime);
	CNT_ADD(msg, detect_charset_opens, msg->mime.cs_opens);
	ctx->live.msgs--;
	if (ctx->cnt)
		ctx->cnt->v[BS_CNT_detect_msgs_live]--;
	if (ctx->n_pool < BS_DETECT_POOL_MAX) {
		ctx->pool[ctx->n_pool++] = msg;
	} else {
		free(msg);
		ctx->live.msgs_alloc--;
	}
}

int
bs_msg_end(struct bs_msg *msg, struct bs_detect_result *out)
{
	/* The result is written, not cleared: its info is copied only as
	 * far as it is used (bs_mime_info_copy()). */
	memset(out, 0, offsetof(struct bs_detect_result, mime));
	if (!msg->skip)
		bs_mime_end(&msg->mime);
	if (!msg->decided)
		on_header_done(msg);
	for (unsigned int b = 0; b < B__N; b++)
		batch_flush(msg, b);
	/* Matches at the end of data fall in the message's last text. */
	msg->cur_tgt = BS_TGT_BODY;
	for (unsigned int d = 0; d < BS_DB__N; d++)
		stream_done(msg, d, true);
	if (msg->fail & BS_DF_HS)
		CNT_INC(msg, detect_fail_hs);
	out->cls = classify(msg, out);
	out->candidate = msg->candidate;
	out->fail = msg->fail;
	out->bytes = msg->bytes;
	out->bytes_scanned = msg->scanned;
	bs_mime_info_copy(&out->mime, &msg->info);
	if (msg->ctx->cnt) {
		struct bs_counters *c = msg->ctx->cnt;

		BS_CNT_ADD(c, detect_bytes, msg->bytes);
		BS_CNT_ADD(c, detect_scanned_bytes, msg->scanned);
		if (msg->info.anomalies)
			BS_CNT_INC(c, detect_mime_anomaly);
		if (msg->info.orig.hdr_raw_cut)
			BS_CNT_INC(c, detect_orig_hdr_cut);
		switch (out->cls) {
		case BS_CLASS_DSN:
			BS_CNT_INC(c, detect_class_dsn);
			break;
		case BS_CLASS_AUTOREPLY:
			BS_CNT_INC(c, detect_class_autoreply);
			break;
		case BS_CLASS_FEEDBACK:
			BS_CNT_INC(c, detect_class_feedback);
			break;
		case BS_CLASS_CHALLENGE:
			BS_CNT_INC(c, detect_class_challenge);
			break;
		default:
			BS_CNT_INC(c, detect_class_none);
			break;
		}
	}
	msg_release(msg);
	return 0;
}

void
bs_msg_abort(struct bs_msg *msg)
{
	if (!msg)
		return;
	for (unsigned int d = 0; d < BS_DB__N; d++)
		stream_done(msg, d, false);
	msg_release(msg);
}
