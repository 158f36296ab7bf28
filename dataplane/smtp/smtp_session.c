/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SMTP session engine: the per-worker context, the life of a flow and of
 * its mail transactions, and the events given to the next stage.
 *
 * Reassembly (reasm.c) hands each direction's bytes here in order; the
 * client direction goes to smtp_cmd.c, the server's to smtp_reply.c.
 * Replies are matched to commands through a FIFO of pending commands,
 * which is what makes PIPELINING work: a server answers in command order
 * (RFC 2920 3.1), so the n-th reply belongs to the n-th command.
 *
 * Transactions live from MAIL FROM until their final reply; up to
 * BS_SMTP_TXN_OPEN_MAX overlap, because with pipelining a client may
 * start the next MAIL before the reply to the previous message arrives,
 * or before the reply that says whether its previous MAIL counted.
 * Pending commands name their transaction by number, so replies to an
 * aborted transaction (RSET) are ignored without dangling pointers.
 *
 * Memory: everything a session allocates is charged first to the
 * worker's session budget (smtp.session_budget_bytes); a flow that would
 * pass it is uninspected, so a flood of sessions holding memory cannot
 * grow the process.  Out-of-order data has reassembly's own budget.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/coverage.h"
#include "smtp_int.h"

void
bs_smtp_params_default(struct bs_smtp_params *p)
{
	/* Parse the defaults of the rows, so they are written only once. */
	memset(p, 0, sizeof(*p));
#define BS_SMTP_DEF_U32(field, def) p->field = (uint32_t)strtoul(def, NULL, 10);
#define BS_SMTP_DEF_U64(field, def) p->field = strtoull(def, NULL, 10);
#define BS_SMTP_DEF_BOOL(field, def) p->field = strcmp(def, "true") == 0;
#define BS_SMTP_DEF_(field, key, type, def, lo, hi, help)                    \
	BS_SMTP_DEF_##type(field, def)
	BS_CFG_SMTP(BS_SMTP_DEF_)
#undef BS_SMTP_DEF_
#undef BS_SMTP_DEF_U32
#undef BS_SMTP_DEF_U64
#undef BS_SMTP_DEF_BOOL
}

/* Largest power of two not above v (0 for 0). */
static uint32_t
pow2_floor(uint32_t v)
{
	uint32_t r = 1;

	if (v == 0)
		return 0;
	while (r <= v / 2)
		r <<= 1;
	return r;
}

struct bs_smtp_ctx *
bs_smtp_ctx_create(const struct bs_smtp_params *params,
	const struct bs_smtp_events *ev, void *arg, struct bs_counters *cnt)
{
	struct bs_smtp_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL || cnt == NULL) {
		free(ctx);
		return NULL;
	}
	ctx->p = *params;
	/* Lines shorter than a verb and its CRLF cannot be followed. */
	if (ctx->p.smtp_cmd_line_max < 64)
		ctx->p.smtp_cmd_line_max = 64;
	if (ctx->p.smtp_reply_line_max < 64)
		ctx->p.smtp_reply_line_max = 64;
	if (ctx->p.smtp_pipeline_max < BS_SMTP_PEND_BASE)
		ctx->p.smtp_pipeline_max = BS_SMTP_PEND_BASE;
	/* The flow's 16-bit ring indices and reply line count (smtp_int.h);
	 * the config rows have the same bounds. */
	if (ctx->p.smtp_pipeline_max > 32768)
		ctx->p.smtp_pipeline_max = 32768;
	if (ctx->p.smtp_reply_lines_max > UINT16_MAX - 1)
		ctx->p.smtp_reply_lines_max = UINT16_MAX - 1;
	if (ctx->p.smtp_rcpt_max < 1)
		ctx->p.smtp_rcpt_max = 1;
	if (ev != NULL)
		ctx->ev = *ev;
	ctx->arg = arg;
	ctx->cnt = cnt;
	ctx->reasm.ooo_global_max = ctx->p.smtp_ooo_global_bytes;
	ctx->reasm.ooo_flow_max = ctx->p.smtp_ooo_flow_bytes;
	ctx->reasm.ooo_segs_max = BS_REASM_OOO_SEGS(ctx->p.smtp_ooo_flow_bytes);
	ctx->reasm.gap_timeout_ms = ctx->p.smtp_gap_timeout_ms;
	ctx->reasm.history = pow2_floor(ctx->p.smtp_history_bytes);
	/* Rings of the flows in an exchange now: up to 1 MiB kept. */
	bs_blkpool_init(&ctx->reasm.hist_pool, ctx->reasm.history,
		ctx->reasm.history ? (1u << 20) / ctx->reasm.history : 0);
	bs_blkpool_init(&ctx->pend_pool,
		BS_SMTP_PEND_BASE * sizeof(struct bs_smtp_pend), 4096);
	bs_blkpool_init(&ctx->flow_pool, sizeof(struct bs_smtp_flow), 1024);
	bs_blkpool_init(&ctx->txn_pool, sizeof(struct bs_smtp_txn), 256);
	bs_blkpool_init(&ctx->rcpt_pool,
		BS_SMTP_RCPT_BASE * sizeof(struct bs_smtp_rcpt), 256);
	ctx->reasm.cnt = cnt;
	return ctx;
}

void
bs_smtp_ctx_free(struct bs_smtp_ctx *ctx)
{
	if (ctx == NULL)
		return;
	bs_reasm_ctx_drain(&ctx->reasm);
	bs_blkpool_drain(&ctx->pend_pool);
	bs_blkpool_drain(&ctx->flow_pool);
	bs_blkpool_drain(&ctx->txn_pool);
	bs_blkpool_drain(&ctx->rcpt_pool);
	free(ctx);
}

void
bs_smtp_ctx_set_clock_offset(struct bs_smtp_ctx *ctx, int64_t off_ms)
{
	ctx->p.clock_offset_ms = off_ms;
}

uint64_t
bs_smtp_ctx_held(const struct bs_smtp_ctx *ctx)
{
	return ctx->reasm.ooo_held;
}

uint64_t
bs_smtp_ctx_session_bytes(const struct bs_smtp_ctx *ctx)
{
	return ctx->sess_bytes;
}

/* --- session budget ----------------------------------------------- */

static int
ctx_charge(struct bs_smtp_ctx *ctx, uint64_t n)
{
	if (n > ctx->p.smtp_session_budget_bytes ||
		ctx->sess_bytes > ctx->p.smtp_session_budget_bytes - n)
		return -ENOBUFS;
	ctx->sess_bytes += n;
	BS_CNT_ADD(ctx->cnt, smtp_session_bytes, n);
	return 0;
}

static void
ctx_uncharge(struct bs_smtp_ctx *ctx, uint64_t n)
{
	ctx->sess_bytes -= n;
	BS_CNT_ADD(ctx->cnt, smtp_session_bytes, (uint64_t)0 - n);
}

int
bs_smtp_mem_charge(struct bs_smtp_flow *f, uint64_t n)
{
	if (!f->inspected)
		return -EPIPE; /* its buffers are about to be released */
	if (ctx_charge(f->ctx, n) < 0) {
		bs_smtp_uninspect(f, BS_WHY_BUDGET);
		return -ENOBUFS;
	}
	f->mem += n;
	return 0;
}

void
bs_smtp_mem_uncharge(struct bs_smtp_flow *f, uint64_t n)
{
	f->mem -= n;
	ctx_uncharge(f->ctx, n);
}

/*
 * Reassembly takes a direction's history ring on first delivery and
 * gives it back once the receiver has acknowledged every byte in it
 * (reasm.c): keep the charge in step with what it holds.
 */
static void
hist_charge(struct bs_smtp_flow *f)
{
	uint32_t h = f->ctx->reasm.history;

	for (unsigned int d = 0; d < 2 && f->inspected; d++) {
		uint8_t bit = (uint8_t)(1u << d);
		bool has = f->r.dir[d].hist != NULL;

		if (has == ((f->hist_charged & bit) != 0))
			continue;
		if (!has) {
			bs_smtp_mem_uncharge(f, h);
			f->hist_charged &= (uint8_t)~bit;
			continue;
		}
		if (bs_smtp_mem_charge(f, h) < 0)
			return;
		f->hist_charged |= bit;
	}
}

static void
reasm_release(struct bs_smtp_flow *f)
{
	bs_reasm_release(&f->ctx->reasm, &f->r);
	for (unsigned int d = 0; d < 2; d++)
		if (f->hist_charged & (1u << d))
			bs_smtp_mem_uncharge(f, f->ctx->reasm.history);
	f->hist_charged = 0;
}

size_t
bs_smtp_flow_size(void)
{
	return sizeof(struct bs_smtp_flow);
}

struct bs_smtp_flow *
bs_smtp_flow_new(struct bs_smtp_ctx *ctx, const struct bs_smtp_endpoints *ep)
{
	struct bs_smtp_flow *f;

	if (ctx_charge(ctx, sizeof(*f)) < 0) {
		BS_CNT_INC(ctx->cnt, smtp_session_budget);
		return NULL;
	}
	f = bs_blkpool_get(&ctx->flow_pool);
	if (f == NULL) {
		ctx_uncharge(ctx, sizeof(*f));
		BS_CNT_INC(ctx->cnt, smtp_nomem);
		return NULL;
	}
	memset(f, 0, sizeof(*f));
	f->mem = sizeof(*f);
	bs_reasm_init(&f->r);
	f->ctx = ctx;
	if (ep != NULL)
		f->ep = *ep;
	f->inspected = 1;
	BS_CNT_INC(ctx->cnt, smtp_flows);
	return f;
}

void *
bs_smtp_flow_user(const struct bs_smtp_flow *f)
{
	return f->user;
}

void
bs_smtp_flow_set_user(struct bs_smtp_flow *f, void *user)
{
	f->user = user;
}

uint32_t
bs_smtp_flow_ext(const struct bs_smtp_flow *f)
{
	return f->ext;
}

int
bs_smtp_flow_why(const struct bs_smtp_flow *f)
{
	if (f->inspected)
		return -1;
	switch (f->why == 0 ? BS_WHY_REASM : (enum bs_smtp_why)(f->why - 1)) {
	case BS_WHY_STARTTLS:
		return BS_COV_STARTTLS;
	case BS_WHY_MIDSTREAM:
		return BS_COV_MIDSTREAM;
	case BS_WHY_DESYNC:
	case BS_WHY_REPLY:
		return BS_COV_DESYNC;
	case BS_WHY_REASM:
		return BS_COV_REASM;
	default:
		return BS_COV_CAPS; /* pipeline, wait, nomem, txn, budget */
	}
}

bool
bs_smtp_flow_inspected(const struct bs_smtp_flow *f)
{
	return f->inspected != 0;
}

uint32_t
bs_smtp_flow_pending(const struct bs_smtp_flow *f)
{
	return f->pend_n;
}

uint32_t
bs_smtp_flow_pending_other(const struct bs_smtp_flow *f, uint32_t seq)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < f->pend_n; i++) {
		const struct bs_smtp_pend *p =
			&f->pend[(f->pend_head + i) % f->pend_cap];
		n += p->txn != 0 && p->txn != seq;
	}
	return n;
}

uint32_t
bs_smtp_flow_rcv_nxt(const struct bs_smtp_flow *f, bool to_server)
{
	return bs_reasm_rcv_nxt(&f->r, to_server ? BS_REASM_C2S
						 : BS_REASM_S2C);
}

bool
bs_smtp_flow_closed(const struct bs_smtp_flow *f)
{
	return f->r.reset || f->closed == 3;
}

/* End every open transaction (flow over or uninspected). */
static void
txn_end_all(struct bs_smtp_flow *f)
{
	while (f->open != NULL)
		bs_smtp_txn_end(f, f->open, 0);
}

/*
 * *dst (a HELO name of *len bytes, charged) becomes a copy of p[0..n),
 * NUL-terminated; n == 0 releases it.  Over the session budget or out
 * of memory the flow is uninspected and *dst left empty.
 */
void
bs_smtp_helo_set(struct bs_smtp_flow *f, char **dst, uint16_t *len,
	const uint8_t *p, size_t n)
{
	if (*dst != NULL)
		bs_smtp_mem_uncharge(f, (uint64_t)*len + 1);
	free(*dst);
	*dst = NULL;
	*len = 0;
	if (n == 0 || bs_smtp_mem_charge(f, n + 1) < 0)
		return;
	char *s = malloc(n + 1);
	if (s == NULL) {
		bs_smtp_mem_uncharge(f, n + 1);
		bs_smtp_uninspect(f, BS_WHY_NOMEM);
		return;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	*dst = s;
	*len = (uint16_t)n;
}

/* Bytes a direction's line buffer holds at most. */
static inline uint32_t
line_cap(const struct bs_smtp_ctx *ctx, unsigned int dir)
{
	return dir == 0 ? ctx->p.smtp_cmd_line_max : ctx->p.smtp_reply_line_max;
}

static void
line_release(struct bs_smtp_flow *f, unsigned int dir)
{
	if (f->line[dir] == NULL)
		return;
	bs_smtp_mem_uncharge(f, sizeof(struct bs_smtp_line) +
		line_cap(f->ctx, dir));
	free(f->line[dir]);
	f->line[dir] = NULL;
}

/* Give the ring back (to the pool if it is a first ring). */
static void
pend_release(struct bs_smtp_flow *f)
{
	struct bs_smtp_ctx *ctx = f->ctx;

	if (f->pend == NULL)
		return;
	bs_smtp_mem_uncharge(f, (uint64_t)f->pend_cap * sizeof(*f->pend));
	bs_blkpool_free(&ctx->pend_pool, f->pend,
		f->pend_cap * sizeof(*f->pend));
	f->pend = NULL;
	f->pend_cap = 0;
}

/* Free what the session holds besides reassembly and transactions. */
static void
session_release(struct bs_smtp_flow *f)
{
	bs_smtp_helo_set(f, &f->helo, &f->helo_len, NULL, 0);
	bs_smtp_helo_set(f, &f->helo_pending, &f->helo_pending_len, NULL, 0);

	pend_release(f);
	f->pend_n = f->pend_head = f->pend_resets = 0;
	if (f->hold != NULL)
		bs_smtp_mem_uncharge(f, f->hold_len);
	free(f->hold);
	f->hold = NULL;
	f->hold_len = 0;
	for (unsigned int i = 0; i < 2; i++)
		line_release(f, i);
}

void
bs_smtp_uninspect(struct bs_smtp_flow *f, enum bs_smtp_why why)
{
	struct bs_counters *cnt = f->ctx->cnt;

	if (!f->inspected)
		return;
	f->inspected = 0;
	f->why = (uint8_t)(why + 1);
	BS_CNT_INC(cnt, smtp_uninspected);
	switch (why) {
	case BS_WHY_MIDSTREAM:
		BS_CNT_INC(cnt, smtp_midstream);
		break;
	case BS_WHY_STARTTLS:
		BS_CNT_INC(cnt, smtp_starttls);
		break;
	case BS_WHY_DESYNC:
		BS_CNT_INC(cnt, smtp_desync);
		break;
	case BS_WHY_PIPELINE:
		BS_CNT_INC(cnt, smtp_pipeline_overflow);
		break;
	case BS_WHY_WAIT:
		BS_CNT_INC(cnt, smtp_wait_overflow);
		break;
	case BS_WHY_NOMEM:
		BS_CNT_INC(cnt, smtp_nomem);
		break;
	case BS_WHY_TXN_OPEN:
		BS_CNT_INC(cnt, smtp_txn_open_over);
		break;
	case BS_WHY_REPLY:
		BS_CNT_INC(cnt, smtp_desync);
		BS_CNT_INC(cnt, smtp_desync_reply);
		break;
	case BS_WHY_BUDGET:
		BS_CNT_INC(cnt, smtp_session_budget);
		break;
	case BS_WHY_REASM:
		break; /* reasm_* counters say why */
	}
	/* Buffers are freed by the caller of reassembly, not from here. */
	txn_end_all(f);
}

/* Reassembly's consumer: one direction's next bytes. */
static void
deliver_cb(void *arg, unsigned int dir, const uint8_t *p, uint32_t n,
	void *pkt)
{
	struct bs_smtp_flow *f = arg;

	if (!f->inspected)
		return;
	if (f->r.midstream) {
		/* The state before our first byte is unknown: we could be
		 * inside a message and read its lines as commands. */
		bs_smtp_uninspect(f, BS_WHY_MIDSTREAM);
		return;
	}
	if (p == NULL) {
		f->closed |= (uint8_t)(1u << dir);
		return;
	}
	if (dir == BS_REASM_C2S) {
		bs_smtp_client_input(f, p, n, pkt);
	} else {
		size_t off = 0;

		while (off < n && f->inspected)
			off += bs_smtp_line_feed(f, 1, p + off, n - off, pkt);
	}
}

enum bs_seg_verdict
bs_smtp_flow_input(struct bs_smtp_ctx *ctx, struct bs_smtp_flow *f,
	const struct bs_seg *seg, uint64_t now_ms)
{
	enum bs_seg_verdict v;

	if (!f->inspected)
		return BS_SEG_PASS;
	ctx->now = now_ms;
	v = bs_reasm_input(&ctx->reasm, &f->r, seg, now_ms, deliver_cb, f);
	if (f->inspected && f->r.unreliable)
		bs_smtp_uninspect(f, BS_WHY_REASM);
	if (f->inspected && f->r.midstream)
		bs_smtp_uninspect(f, BS_WHY_MIDSTREAM);
	if (f->inspected)
		hist_charge(f);
	if (!f->inspected) {
		/* Safe point: reassembly is not walking its lists now. */
		reasm_release(f);
		session_release(f);
	} else if (f->r.reset) {
		txn_end_all(f);
	}
	return v;
}

void
bs_smtp_flow_free(struct bs_smtp_ctx *ctx, struct bs_smtp_flow *f,
	uint64_t now_ms)
{
	if (f == NULL)
		return;
	ctx->now = now_ms;
	txn_end_all(f);
	reasm_release(f);
	session_release(f);
	/* What is left is the flow itself. */
	ctx_uncharge(ctx, f->mem);
	bs_blkpool_put(&ctx->flow_pool, f);
}

/* --- transactions ------------------------------------------------- */

/* Give back t's recipient array (a first one to the pool). */
static void
rcpt_put(struct bs_smtp_ctx *ctx, struct bs_smtp_txn *t)
{
	bs_blkpool_free(&ctx->rcpt_pool, t->rec.rcpt,
		t->rcpt_cap * sizeof(*t->rec.rcpt));
	t->rec.rcpt = NULL;
}

struct bs_smtp_txn *
bs_smtp_txn_new(struct bs_smtp_flow *f)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	struct bs_smtp_txn *t, **tail;
	uint32_t cost = sizeof(*t) +
		(ctx->p.smtp_event_digest ? BS_SMTP_MD_COST : 0);

	if (f->n_open >= BS_SMTP_TXN_OPEN_MAX) {
		bs_smtp_uninspect(f, BS_WHY_TXN_OPEN);
		return NULL;
	}
	if (bs_smtp_mem_charge(f, cost) < 0)
		return NULL;
	t = bs_blkpool_get(&ctx->txn_pool);
	if (t == NULL) {
		bs_smtp_mem_uncharge(f, cost);
		bs_smtp_uninspect(f, BS_WHY_NOMEM);
		return NULL;
	}
	memset(t, 0, sizeof(*t));
	t->mem = cost;
	if (ctx->p.smtp_event_digest) {
		t->md = EVP_MD_CTX_new();
		if (t->md == NULL ||
			EVP_DigestInit_ex(t->md, EVP_sha256(), NULL) != 1) {
			EVP_MD_CTX_free(t->md);
			bs_blkpool_put(&ctx->txn_pool, t);
			bs_smtp_mem_uncharge(f, cost);
			bs_smtp_uninspect(f, BS_WHY_NOMEM);
			return NULL;
		}
	}
	t->rec.seq = ++f->txn_seq;
	t->rec.ep = f->ep;
	if (f->helo_len > 0)
		memcpy(t->rec.helo, f->helo, f->helo_len);
	t->rec.helo[f->helo_len] = '\0';
	t->rec.helo_len = f->helo_len;
	t->rec.ext = f->ext;
	t->state = BS_TS_MAIL;
	for (tail = &f->open; *tail != NULL; tail = &(*tail)->open_next)
		;
	*tail = t;
	f->n_open++;
	BS_CNT_INC(ctx->cnt, smtp_txn_begin);
	return t;
}

struct bs_smtp_txn *
bs_smtp_txn_find(struct bs_smtp_flow *f, uint32_t seq)
{
	if (seq == 0)
		return NULL;
	for (struct bs_smtp_txn *t = f->open; t != NULL; t = t->open_next)
		if (t->rec.seq == seq)
			return t;
	return NULL;
}

/*
 * Append a recipient to t (reply 0: pending).  *idx gets its index, or
 * UINT32_MAX when past smtp.rcpt_max (counted, not kept).  Returns 0, or
 * < 0 when memory or the budget ran out (the flow is uninspected).
 */
int
bs_smtp_txn_rcpt_add(struct bs_smtp_flow *f, struct bs_smtp_txn *t,
	const char *addr, uint16_t len, uint32_t *idx)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	struct bs_smtp_rcpt *r;

	*idx = UINT32_MAX;
	if (t->rec.nrcpt >= ctx->p.smtp_rcpt_max) {
		t->rec.rcpt_dropped++;
		BS_CNT_INC(ctx->cnt, smtp_rcpt_over_cap);
		return 0;
	}
	if (t->rec.nrcpt == t->rcpt_cap) {
		uint32_t ncap = t->rcpt_cap ? t->rcpt_cap * 2
					    : BS_SMTP_RCPT_BASE;
		uint64_t more;

		if (ncap > ctx->p.smtp_rcpt_max)
			ncap = ctx->p.smtp_rcpt_max;
		more = (uint64_t)(ncap - t->rcpt_cap) * sizeof(*r);
		if (bs_smtp_mem_charge(f, more) < 0)
			return -ENOBUFS;
		r = bs_blkpool_alloc(&ctx->rcpt_pool, ncap * sizeof(*r));
		if (r == NULL) {
			bs_smtp_mem_uncharge(f, more);
			bs_smtp_uninspect(f, BS_WHY_NOMEM);
			return -ENOMEM;
		}
		if (t->rec.nrcpt > 0)
			memcpy(r, t->rec.rcpt, t->rec.nrcpt * sizeof(*r));
		rcpt_put(ctx, t);
		t->mem += (uint32_t)more;
		t->rec.rcpt = r;
		t->rcpt_cap = ncap;
	}
	*idx = t->rec.nrcpt++;
	r = &t->rec.rcpt[*idx];
	memcpy(r->addr, addr, len);
	r->addr[len] = '\0';
	r->len = len;
	r->reply = 0;
	return 0;
}

/*
 * A MAIL the server refused as nested: the commands seen after it were
 * put in its transaction, but the server gives them to the one it has.
 * Move from's recipients (all still awaiting their replies) into into,
 * and point the pending commands at into.  from keeps nothing.
 */
void
bs_smtp_txn_merge(struct bs_smtp_flow *f, struct bs_smtp_txn *from,
	struct bs_smtp_txn *into)
{
	uint32_t n = from->rec.nrcpt;
	uint32_t *map = NULL;

	if (n > 0) {
		map = malloc(n * sizeof(*map));
		if (map == NULL) {
			bs_smtp_uninspect(f, BS_WHY_NOMEM);
			return;
		}
	}
	for (uint32_t i = 0; i < n && f->inspected; i++) {
		const struct bs_smtp_rcpt *r = &from->rec.rcpt[i];

		bs_smtp_txn_rcpt_add(f, into, r->addr, r->len, &map[i]);
	}
	if (!f->inspected) {
		/* Out of memory or budget: both transactions are gone. */
		free(map);
		return;
	}
	into->rec.rcpt_dropped += from->rec.rcpt_dropped;
	from->rec.nrcpt = 0;
	from->rec.rcpt_dropped = 0;
	for (uint32_t k = 0; k < f->pend_n && f->inspected; k++) {
		struct bs_smtp_pend *e = &f->pend[(f->pend_head + k) %
			f->pend_cap];

		if (e->txn != from->rec.seq)
			continue;
		e->txn = into->rec.seq;
		if (e->cmd == BS_SMTP_CMD_RCPT && e->rcpt != UINT32_MAX)
			e->rcpt = e->rcpt < n ? map[e->rcpt] : UINT32_MAX;
	}
	free(map);
	if (f->cur == from)
		f->cur = into;
}

void
bs_smtp_txn_message_begin(struct bs_smtp_flow *f, struct bs_smtp_txn *t)
{
	struct bs_smtp_ctx *ctx = f->ctx;

	if (t == NULL || t->msg_begun)
		return;
	t->msg_begun = 1;
	if (ctx->ev.on_message_begin != NULL)
		ctx->ev.on_message_begin(ctx->arg, f, &t->rec);
}

void
bs_smtp_txn_content(struct bs_smtp_flow *f, const uint8_t *p, uint32_t n)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	struct bs_smtp_txn *t = f->data_txn;

	if (t == NULL || n == 0)
		return;
	t->rec.size += n;
	BS_CNT_ADD(ctx->cnt, smtp_message_bytes, n);
	if (t->md != NULL)
		EVP_DigestUpdate(t->md, p, n);
	if (ctx->ev.on_data != NULL)
		ctx->ev.on_data(ctx->arg, f, &t->rec, p, n);
}

void
bs_smtp_txn_end_message(struct bs_smtp_flow *f, void *pkt)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	struct bs_smtp_txn *t = f->data_txn;

	f->data_txn = NULL;
	if (t == NULL)
		return;
	if (f->cur == t)
		f->cur = NULL;
	t->rec.complete = 1;
	if (t->md != NULL) {
		unsigned int mdlen = 0;

		if (EVP_DigestFinal_ex(t->md, t->rec.sha256, &mdlen) == 1 &&
			mdlen == sizeof(t->rec.sha256))
			t->rec.has_sha256 = 1;
		EVP_MD_CTX_free(t->md);
		t->md = NULL;
	}
	if (ctx->ev.on_end_of_message != NULL)
		ctx->ev.on_end_of_message(ctx->arg, f, &t->rec, pkt);
}

void
bs_smtp_txn_end(struct bs_smtp_flow *f, struct bs_smtp_txn *t,
	uint16_t reply)
{
	struct bs_smtp_ctx *ctx = f->ctx;

	for (struct bs_smtp_txn **pp = &f->open; *pp != NULL;
		pp = &(*pp)->open_next)
		if (*pp == t) {
			*pp = t->open_next;
			f->n_open--;
			break;
		}
	if (f->cur == t)
		f->cur = NULL;
	if (f->active == t)
		f->active = NULL;
	if (f->data_txn == t)
		f->data_txn = NULL;
	t->rec.reply = reply;
	t->rec.ts_ms = ctx->now + (uint64_t)ctx->p.clock_offset_ms;
	if (t->rec.complete)
		BS_CNT_INC(ctx->cnt, smtp_txn_done);
	else
		BS_CNT_INC(ctx->cnt, smtp_txn_aborted);
	if (ctx->ev.on_txn_end != NULL)
		ctx->ev.on_txn_end(ctx->arg, f, &t->rec);
	EVP_MD_CTX_free(t->md);
	rcpt_put(ctx, t);
	bs_smtp_mem_uncharge(f, t->mem);
	bs_blkpool_put(&ctx->txn_pool, t);
}

/* --- pending commands --------------------------------------------- */

int
bs_smtp_pend_push(struct bs_smtp_flow *f, uint8_t cmd, uint32_t txn,
	uint32_t rcpt, uint8_t flags)
{
	struct bs_smtp_pend *e;

	if (!f->inspected)
		return -EPIPE;
	if (f->pend_n == f->pend_cap) {
		uint32_t ncap = f->pend_cap ? f->pend_cap * 2
					    : BS_SMTP_PEND_BASE;
		struct bs_smtp_pend *np;
		uint64_t more;

		if (f->pend_n >= f->ctx->p.smtp_pipeline_max) {
			bs_smtp_uninspect(f, BS_WHY_PIPELINE);
			return -ENOBUFS;
		}
		if (ncap > f->ctx->p.smtp_pipeline_max)
			ncap = f->ctx->p.smtp_pipeline_max;
		more = (uint64_t)(ncap - f->pend_cap) * sizeof(*np);
		if (bs_smtp_mem_charge(f, more) < 0)
			return -ENOBUFS;
		np = bs_blkpool_alloc(&f->ctx->pend_pool, ncap * sizeof(*np));
		if (np == NULL) {
			bs_smtp_mem_uncharge(f, more);
			bs_smtp_uninspect(f, BS_WHY_NOMEM);
			return -ENOMEM;
		}
		/* Unroll the ring into the new array. */
		for (uint32_t i = 0; i < f->pend_n; i++)
			np[i] = f->pend[(f->pend_head + i) % f->pend_cap];
		bs_blkpool_free(&f->ctx->pend_pool, f->pend,
			f->pend_cap * sizeof(*f->pend));
		f->pend = np;
		f->pend_cap = (uint16_t)ncap;
		f->pend_head = 0;
	}
	e = &f->pend[(f->pend_head + f->pend_n) % f->pend_cap];
	e->cmd = cmd;
	e->flags = flags;
	e->pad = 0;
	e->txn = txn;
	e->rcpt = rcpt;
	f->pend_n++;
	if (flags & BS_PF_RESET)
		f->pend_resets++;
	return 0;
}

/*
 * The ring is given back once no reply is due, so a session between
 * exchanges holds none; the next command takes a warm one from the pool.
 */
struct bs_smtp_pend
bs_smtp_pend_pop(struct bs_smtp_flow *f)
{
	struct bs_smtp_pend e = f->pend[f->pend_head];

	f->pend_head = (uint16_t)((f->pend_head + 1) % f->pend_cap);
	f->pend_n--;
	if (e.flags & BS_PF_RESET)
		f->pend_resets--;
	if (f->pend_n == 0) {
		f->pend_head = 0;
		pend_release(f);
	}
	return e;
}

/* --- lines -------------------------------------------------------- */

/*
 * Feed bytes of direction dir in line mode; handle at most one complete
 * line, so that a command can change how the following bytes are read.
 * Returns the bytes consumed (> 0 when n > 0).  A line ends at LF; a CR
 * before it is removed, a bare LF is counted (Postfix accepts it in
 * commands, and so do most clients' reply parsers).  Bytes past the cap
 * are skipped and counted; the kept part is still parsed, as Postfix
 * does with its line_length_limit.
 */
size_t
bs_smtp_line_feed(struct bs_smtp_flow *f, unsigned int dir, const uint8_t *p,
	size_t n, void *pkt)
{
	struct bs_smtp_ctx *ctx = f->ctx;
	struct bs_smtp_line *l = f->line[dir];
	uint32_t cap = line_cap(ctx, dir);
	const uint8_t *lf = memchr(p, '\n', n);
	size_t take = lf != NULL ? (size_t)(lf - p) + 1 : n;
	const uint8_t *line;
	size_t len, total;

	if (lf != NULL && l == NULL) {
		/* Whole line in this buffer: parse it in place. */
		line = p;
		len = total = take;
	} else {
		size_t room, cp;

		if (l == NULL) {
			if (bs_smtp_mem_charge(f, sizeof(*l) + cap) < 0)
				return n;
			l = malloc(sizeof(*l) + cap);
			if (l == NULL) {
				bs_smtp_mem_uncharge(f, sizeof(*l) + cap);
				bs_smtp_uninspect(f, BS_WHY_NOMEM);
				return n;
			}
			l->len = l->total = 0;
			f->line[dir] = l;
		}
		room = cap - l->len;
		cp = take < room ? take : room;
		memcpy(l->buf + l->len, p, cp);
		l->len += (uint32_t)cp;
		l->total = l->total + take > UINT32_MAX ? UINT32_MAX :
			l->total + (uint32_t)take;
		if (lf == NULL)
			return take;
		line = l->buf;
		len = l->len;
		total = l->total;
	}
	/* len includes the LF unless the line was cut. */
	if (total > cap) {
		BS_CNT_INC(ctx->cnt, smtp_line_too_long);
		if (len > cap)
			len = cap;
	} else {
		len--; /* LF */
		if (len > 0 && line[len - 1] == '\r')
			len--;
		else
			BS_CNT_INC(ctx->cnt, smtp_bare_lf);
	}
	if (dir == 0)
		bs_smtp_cmd_line(f, line, len, pkt);
	else
		bs_smtp_reply_line(f, line, len, pkt);
	/* The line spanned segments and was put together in l: give it
	 * back now, so that an idle flow holds none (such lines are few: a
	 * reply or a pipelined batch cut by the sender's writes; keeping
	 * the buffer cost every such flow cap bytes for its whole life).
	 * The parser may have released it already (uninspected). */
	if (l != NULL && f->line[dir] == l)
		line_release(f, dir);
	return take;
}
