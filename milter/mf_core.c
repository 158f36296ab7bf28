/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * backstop-milter's core (include/backstop/milter.h): the slot pool, the
 * reassembly of header fields and body chunks into the message bytes
 * detection reads in DATA, the verdict at the end of the message and the
 * learning of outbound Message-IDs.
 *
 * The message the detector gets is the one the MTA holds: each header
 * field rebuilt as "name:value" CRLF in the order the MTA passes them
 * (folded lines LF -> CRLF), the empty line, then the body chunks as they
 * come (the MTA sends CRLF lines, dot-unstuffed).  Postfix passes the
 * Received field it adds itself first; detection reads the top-level
 * header only to decide whether the message is automatic, so that field
 * changes nothing.
 *
 * Fail-open (docs/MILTER.md): every way a message is let through without
 * a verdict has a counter; nothing here refuses anything but a verdict
 * whose action is refuse, and only at the end of the message.
 */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu-qsbr.h>

#include "backstop/milter.h"

/* One slot of the pool: what one message in flight needs. */
struct mf_slot {
	struct bs_counters cnt; /* first: 64-byte aligned */
	struct bs_detect_ctx *det;
	struct bs_verdict_ctx *vc;
	struct bs_verdict_env env;
	struct bs_ledger_part *lpart;
	struct bs_storm_part *spart;
	struct bs_mf *mf;
	uint64_t now_s; /* the verdict's clock, set before judging */
	struct mf_slot *next_free;
	struct bs_detect_result res;
};

/*
 * A connection's counter block (the milter_* rows it counts).  Claimed
 * by a connection when it starts and given back when it ends, with its
 * values: the next connection to claim it counts on from there, and the
 * reader sums every block ever made.  One writer at a time (the thread
 * serving the connection; the pool's mutex orders successive owners),
 * plain stores; the set of blocks only grows, to the most connections
 * ever open at once, and is freed with the core.
 */
struct mf_cblk {
	struct bs_counters cnt; /* first: 64-byte aligned */
	struct mf_cblk *all_next;  /* every block; immutable once linked */
	struct mf_cblk *free_next; /* under the pool's mutex */
};

struct bs_mf {
	/* Counts made outside any connection (the glue out of memory for
	 * one): rare, relaxed atomic adds. */
	struct bs_counters spill;
	struct bs_mf_params p;
	unsigned int n_slots;
	struct mf_slot **slots;
	pthread_mutex_t mu;
	struct mf_slot *free_list;
	struct mf_cblk *blocks;      /* head of all_next; release store */
	struct mf_cblk *free_blocks; /* under mu */
};

enum txn_state {
	TX_IDLE = 0, /* no MAIL yet (or after the end of a message) */
	TX_ENVELOPE, /* MAIL and RCPTs; no content yet */
	TX_CONTENT,  /* a slot held, content being fed */
	TX_DONE,     /* answered ACCEPT early: ignore the rest */
};

struct bs_mf_txn {
	struct bs_mf *mf;
	struct bs_counters *cnt; /* this connection's block */
	uint8_t state;
	bool outbound;
	bool learn;           /* outbound from a protected sender */
	bool in_header;
	char mail_from[BS_SMTP_ADDR_MAX];
	struct bs_smtp_rcpt *rcpt;
	uint32_t nrcpt, rcpt_cap;
	struct mf_slot *slot;
	struct bs_msg *msg;
	uint64_t bytes;       /* fed to detection */
	char msgid[BS_MF_MSGID_MAX];
	size_t msgid_len;     /* 0: none; SIZE_MAX: too long */
};

/*
 * Count in the connection's own block: a plain load and store (no lock
 * prefix, no shared cache line), written as relaxed atomics so that the
 * reader's concurrent loads are defined behaviour.  Gauges go down by
 * adding -1 (unsigned wrap): the sum over blocks is what is read.
 */
static inline void
cnt_add(struct bs_counters *c, enum bs_counter k, uint64_t n)
{
	__atomic_store_n(&c->v[k], __atomic_load_n(&c->v[k],
		__ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

#define TX_INC(t, name) cnt_add((t)->cnt, BS_CNT_##name, 1)
#define TX_DEC(t, name) cnt_add((t)->cnt, BS_CNT_##name, UINT64_MAX)

/* ---- RCU: registered once per thread, offline unless judging ---- */

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static __thread bool rcu_registered;

static void
rcu_thread_gone(void *arg)
{
	(void)arg;
	if (rcu_registered) {
		rcu_unregister_thread();
		rcu_registered = false;
	}
}

static void
rcu_key_init(void)
{
	(void)pthread_key_create(&rcu_key, rcu_thread_gone);
}

void
bs_mf_thread_rcu(void)
{
	if (rcu_registered)
		return;
	pthread_once(&rcu_once, rcu_key_init);
	rcu_register_thread();
	rcu_thread_offline();
	rcu_registered = true;
	/* A non-NULL value makes the destructor run at thread exit. */
	(void)pthread_setspecific(rcu_key, (void *)1);
}

/* ---- the verdict's environment, per slot ---- */

static enum bs_ledger_answer
env_ledger(void *arg, const char *id, size_t n)
{
	struct mf_slot *s = arg;
	return bs_ledger_lookup(s->mf->p.ledger, id, n, s->now_s);
}

static void
env_bounce(void *arg, const char *rcpt, size_t n)
{
	struct mf_slot *s = arg;
	bs_storm_note(s->spart, rcpt, n);
}

static uint64_t
wall_s(const struct bs_mf *mf)
{
	return mf->p.now_s != 0 ? mf->p.now_s : (uint64_t)time(NULL);
}

/* Storm rates are per millisecond of the same wall clock as its ticks. */
static uint64_t
wall_ms(const struct bs_mf *mf)
{
	if (mf->p.now_s != 0)
		return mf->p.now_s * 1000u;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool
env_storm_ms(void *arg, const char *rcpt, size_t n)
{
	struct mf_slot *s = arg;
	return bs_storm_active(s->mf->p.storm, rcpt, n, wall_ms(s->mf));
}

/* ---- the pool ---- */

unsigned int
bs_mf_slots(const struct bs_config *cfg)
{
	return cfg->milter_max_messages;
}

static void
slot_free(struct mf_slot *s)
{
	if (s == NULL)
		return;
	bs_verdict_ctx_free(s->vc);
	bs_detect_ctx_free(s->det);
	free(s);
}

struct bs_mf *
bs_mf_create(const struct bs_mf_params *p, char *err, size_t errlen)
{
	struct bs_mf *mf = aligned_alloc(64, sizeof(*mf));
	if (mf == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memset(mf, 0, sizeof(*mf));
	mf->p = *p;
	mf->n_slots = bs_mf_slots(p->cfg);
	pthread_mutex_init(&mf->mu, NULL);
	mf->slots = calloc(mf->n_slots, sizeof(*mf->slots));
	if (mf->slots == NULL)
		goto nomem;
	for (unsigned int i = 0; i < mf->n_slots; i++) {
		struct mf_slot *s = aligned_alloc(64, sizeof(*s));
		if (s == NULL)
			goto nomem;
		memset(s, 0, sizeof(*s));
		mf->slots[i] = s;
		s->mf = mf;
		if (p->rules != NULL) {
			s->det = bs_detect_ctx_create(p->rules);
			if (s->det == NULL)
				goto nomem;
			bs_detect_ctx_set_counters(s->det, &s->cnt);
		}
		s->vc = bs_verdict_ctx_create(p->pol, &s->cnt);
		if (s->vc == NULL) {
			snprintf(err, errlen, "verdict context: out of memory "
				"or OpenSSL");
			bs_mf_free(mf);
			return NULL;
		}
		if (p->ledger != NULL) {
			s->lpart = bs_ledger_part(p->ledger, i);
			s->env.ledger = env_ledger;
		}
		if (p->storm != NULL) {
			s->spart = bs_storm_part(p->storm, i);
			s->env.storm = env_storm_ms;
			s->env.bounce = env_bounce;
		}
		s->env.arg = s;
		s->next_free = mf->free_list;
		mf->free_list = s;
	}
	return mf;
nomem:
	snprintf(err, errlen, "out of memory (%u slots)", mf->n_slots);
	bs_mf_free(mf);
	return NULL;
}

void
bs_mf_free(struct bs_mf *mf)
{
	if (mf == NULL)
		return;
	if (mf->slots != NULL)
		for (unsigned int i = 0; i < mf->n_slots; i++)
			slot_free(mf->slots[i]);
	free(mf->slots);
	for (struct mf_cblk *b = mf->blocks, *n; b != NULL; b = n) {
		n = b->all_next;
		free(b);
	}
	pthread_mutex_destroy(&mf->mu);
	free(mf);
}

static struct mf_slot *
slot_get(struct bs_mf_txn *t)
{
	struct bs_mf *mf = t->mf;
	pthread_mutex_lock(&mf->mu);
	struct mf_slot *s = mf->free_list;
	if (s != NULL)
		mf->free_list = s->next_free;
	pthread_mutex_unlock(&mf->mu);
	if (s != NULL)
		TX_INC(t, milter_in_flight);
	return s;
}

static void
slot_put(struct bs_mf_txn *t, struct mf_slot *s)
{
	struct bs_mf *mf = t->mf;
	pthread_mutex_lock(&mf->mu);
	s->next_free = mf->free_list;
	mf->free_list = s;
	pthread_mutex_unlock(&mf->mu);
	TX_DEC(t, milter_in_flight);
}

static void
add_block(struct bs_counters *out, const struct bs_counters *b)
{
	for (unsigned int k = 0; k < BS_CNT__MAX; k++)
		out->v[k] += __atomic_load_n(&b->v[k], __ATOMIC_RELAXED);
}

void
bs_mf_counters(const struct bs_mf *mf, struct bs_counters *out)
{
	memset(out, 0, sizeof(*out));
	/* Per-writer blocks, summed here (counters.h): the slots' (the
	 * detection and verdict rows, written by the slot's holder), the
	 * connections' (the milter rows) and the rare spill block. */
	for (unsigned int i = 0; i < mf->n_slots; i++)
		add_block(out, &mf->slots[i]->cnt);
	for (const struct mf_cblk *b = __atomic_load_n(&mf->blocks,
			__ATOMIC_ACQUIRE); b != NULL; b = b->all_next)
		add_block(out, &b->cnt);
	add_block(out, &mf->spill);
	uint64_t now = wall_s(mf);
	bs_ledger_counters(mf->p.ledger, now, out);
	if (mf->p.storm != NULL)
		bs_storm_counters(mf->p.storm, out);
}

unsigned int
bs_mf_counter_blocks(const struct bs_mf *mf)
{
	unsigned int n = 0;
	for (const struct mf_cblk *b = __atomic_load_n(&mf->blocks,
			__ATOMIC_ACQUIRE); b != NULL; b = b->all_next)
		n++;
	return n;
}

void
bs_mf_connection(struct bs_mf_txn *t)
{
	TX_INC(t, milter_connections);
}

void
bs_mf_txn_inc(struct bs_mf_txn *t, enum bs_counter c)
{
	cnt_add(t->cnt, c, 1);
}

void
bs_mf_inc(struct bs_mf *mf, enum bs_counter c)
{
	__atomic_fetch_add(&mf->spill.v[c], 1, __ATOMIC_RELAXED);
}

/* ---- transactions ---- */

/* A counter block for a new connection: a returned one, or a new one
 * linked into the list the reader walks. */
static struct mf_cblk *
block_get(struct bs_mf *mf)
{
	pthread_mutex_lock(&mf->mu);
	struct mf_cblk *b = mf->free_blocks;
	if (b != NULL) {
		mf->free_blocks = b->free_next;
	} else if ((b = aligned_alloc(64, sizeof(*b))) != NULL) {
		memset(b, 0, sizeof(*b));
		b->all_next = mf->blocks;
		/* Zeroed and linked before it is visible. */
		__atomic_store_n(&mf->blocks, b, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&mf->mu);
	return b;
}

static void
block_put(struct bs_mf *mf, struct mf_cblk *b)
{
	pthread_mutex_lock(&mf->mu);
	b->free_next = mf->free_blocks;
	mf->free_blocks = b;
	pthread_mutex_unlock(&mf->mu);
}

struct bs_mf_txn *
bs_mf_txn_new(struct bs_mf *mf)
{
	struct bs_mf_txn *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	struct mf_cblk *b = block_get(mf);
	if (b == NULL) {
		free(t);
		return NULL;
	}
	t->mf = mf;
	t->cnt = &b->cnt;
	return t;
}

/* Drop the message in flight, if any; the envelope is kept. */
static void
drop_message(struct bs_mf_txn *t)
{
	if (t->msg != NULL) {
		bs_msg_abort(t->msg);
		t->msg = NULL;
	}
	if (t->slot != NULL) {
		slot_put(t, t->slot);
		t->slot = NULL;
	}
}

/* The transaction ends without its end of message. */
static void
txn_unfinished(struct bs_mf_txn *t)
{
	if (t->state == TX_CONTENT)
		TX_INC(t, milter_unfinished);
	drop_message(t);
	t->state = TX_IDLE;
	t->nrcpt = 0;
}

void
bs_mf_txn_free(struct bs_mf_txn *t)
{
	if (t == NULL)
		return;
	txn_unfinished(t);
	/* The block is the first member of its struct mf_cblk. */
	block_put(t->mf, (struct mf_cblk *)(void *)t->cnt);
	free(t->rcpt);
	free(t);
}

void
bs_mf_txn_abort(struct bs_mf_txn *t)
{
	txn_unfinished(t);
}

/* addr without its angle brackets (and surrounding blanks). */
static size_t
strip_addr(const char *addr, const char **out)
{
	size_t n = strlen(addr);
	while (n > 0 && (*addr == ' ' || *addr == '\t')) {
		addr++;
		n--;
	}
	while (n > 0 && (addr[n - 1] == ' ' || addr[n - 1] == '\t'))
		n--;
	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>') {
		addr++;
		n -= 2;
	}
	*out = addr;
	return n;
}

/* Is the domain of addr (after the last '@') protected? */
static bool
addr_protected(const struct bs_mf *mf, const char *addr, size_t n)
{
	const char *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (addr[i] == '@')
			at = addr + i;
	if (at == NULL)
		return false;
	return bs_verdict_policy_protects(mf->p.pol, at + 1,
		(size_t)(addr + n - at - 1));
}

void
bs_mf_txn_mail(struct bs_mf_txn *t, const char *addr, bool originating)
{
	const char *a;
	size_t n;

	txn_unfinished(t);
	n = strip_addr(addr != NULL ? addr : "", &a);
	if (n >= sizeof(t->mail_from))
		n = sizeof(t->mail_from) - 1; /* longer than any path */
	memcpy(t->mail_from, a, n);
	t->mail_from[n] = '\0';
	t->outbound = t->mf->p.role == BS_MF_OUTBOUND ||
		(t->mf->p.role == BS_MF_BOTH && originating);
	t->learn = t->outbound && t->mf->p.ledger != NULL &&
		addr_protected(t->mf, t->mail_from, n);
	t->msgid_len = 0;
	t->bytes = 0;
	t->in_header = true;
	t->state = TX_ENVELOPE;
}

void
bs_mf_txn_rcpt(struct bs_mf_txn *t, const char *addr)
{
	const char *a;
	size_t n;

	if (t->state != TX_ENVELOPE)
		return;
	if (t->nrcpt >= t->mf->p.cfg->smtp_rcpt_max) {
		TX_INC(t, milter_rcpt_over_cap);
		return;
	}
	if (t->nrcpt == t->rcpt_cap) {
		uint32_t nc = t->rcpt_cap ? t->rcpt_cap * 2 : 4;
		if (nc > t->mf->p.cfg->smtp_rcpt_max)
			nc = t->mf->p.cfg->smtp_rcpt_max;
		struct bs_smtp_rcpt *r = realloc(t->rcpt, nc * sizeof(*r));
		if (r == NULL) {
			TX_INC(t, milter_rcpt_over_cap);
			return;
		}
		t->rcpt = r;
		t->rcpt_cap = nc;
	}
	n = strip_addr(addr != NULL ? addr : "", &a);
	if (n >= BS_SMTP_ADDR_MAX)
		n = BS_SMTP_ADDR_MAX - 1;
	struct bs_smtp_rcpt *r = &t->rcpt[t->nrcpt++];
	memcpy(r->addr, a, n);
	r->addr[n] = '\0';
	r->len = (uint16_t)n;
	r->reply = 250; /* the MTA passes only recipients it accepted */
}

/* Accept now, unjudged; the rest of the message is not needed. */
static enum bs_mf_act
give_up(struct bs_mf_txn *t)
{
	drop_message(t);
	t->state = TX_DONE;
	return BS_MF_ACCEPT;
}

/*
 * The message's first content: an outbound message needs only its
 * header (the Message-ID); an inbound one a slot and a detection
 * message.  Returns CONTINUE, or ACCEPT when it is let through unjudged.
 */
static enum bs_mf_act
content_begin(struct bs_mf_txn *t)
{
	struct bs_mf *mf = t->mf;

	if (t->state == TX_DONE)
		return BS_MF_ACCEPT;
	if (t->state == TX_CONTENT)
		return BS_MF_CONTINUE;
	if (t->state == TX_IDLE) {
		/* Content without MAIL (a client of the protocol that skips
		 * steps): the envelope is unknown, judge on nothing. */
		t->mail_from[0] = '\0';
		t->outbound = mf->p.role == BS_MF_OUTBOUND;
		t->learn = false;
	}
	TX_INC(t, milter_messages);
	t->state = TX_CONTENT;
	t->bytes = 0;
	t->in_header = true;
	if (t->outbound) {
		TX_INC(t, milter_outbound);
		return t->learn ? BS_MF_CONTINUE : give_up(t);
	}
	if (mf->p.rules == NULL) {
		TX_INC(t, milter_no_rules);
		return give_up(t);
	}
	t->slot = slot_get(t);
	if (t->slot == NULL) {
		TX_INC(t, milter_overload);
		return give_up(t);
	}
	t->msg = bs_msg_begin(t->slot->det, t->mail_from, NULL, 0);
	if (t->msg == NULL) {
		TX_INC(t, milter_nomem);
		return give_up(t);
	}
	return BS_MF_CONTINUE;
}

/* Feed n bytes, within milter.max_scan_bytes. */
static enum bs_mf_act
feed(struct bs_mf_txn *t, const uint8_t *p, size_t n)
{
	if (t->msg == NULL)
		return BS_MF_CONTINUE; /* outbound: header only */
	if (n > t->mf->p.cfg->milter_max_scan_bytes - t->bytes) {
		TX_INC(t, milter_scan_cap);
		return give_up(t);
	}
	t->bytes += n;
	bs_msg_feed(t->msg, p, n);
	return BS_MF_CONTINUE;
}

/* Feed s[0..n) with each bare LF made CRLF. */
static enum bs_mf_act
feed_crlf(struct bs_mf_txn *t, const char *s, size_t n)
{
	uint8_t buf[512];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k + 2 > sizeof(buf)) {
			if (feed(t, buf, k) != BS_MF_CONTINUE)
				return BS_MF_ACCEPT;
			k = 0;
		}
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			buf[k++] = '\r';
		buf[k++] = (uint8_t)s[i];
	}
	return k > 0 ? feed(t, buf, k) : BS_MF_CONTINUE;
}

static bool
name_is(const char *name, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

enum bs_mf_act
bs_mf_txn_header(struct bs_mf_txn *t, const char *name, size_t nlen,
	const char *value, size_t vlen, bool leadspc)
{
	enum bs_mf_act a = content_begin(t);
	if (a != BS_MF_CONTINUE)
		return a;
	if (!t->in_header)
		return BS_MF_CONTINUE; /* a header after eoh: not ours to add */
	if (t->learn && t->msgid_len == 0 &&
			name_is(name, nlen, "Message-ID")) {
		if (vlen < sizeof(t->msgid)) {
			memcpy(t->msgid, value, vlen);
			t->msgid_len = vlen;
		} else {
			t->msgid_len = SIZE_MAX;
		}
	}
	if (t->msg == NULL)
		return BS_MF_CONTINUE;
	if (feed(t, (const uint8_t *)name, nlen) != BS_MF_CONTINUE ||
			feed(t, (const uint8_t *)(leadspc ? ":" : ": "),
				leadspc ? 1 : 2) != BS_MF_CONTINUE ||
			feed_crlf(t, value, vlen) != BS_MF_CONTINUE ||
			feed(t, (const uint8_t *)"\r\n", 2) != BS_MF_CONTINUE)
		return BS_MF_ACCEPT;
	return BS_MF_CONTINUE;
}

/* Learn the outbound message's Message-ID (end of its header). */
static enum bs_mf_act
learn(struct bs_mf_txn *t)
{
	struct bs_mf *mf = t->mf;

	if (t->msgid_len == 0 || t->msgid_len == SIZE_MAX) {
		TX_INC(t, milter_outbound_no_msgid);
		return give_up(t);
	}
	struct mf_slot *s = slot_get(t);
	if (s == NULL) {
		TX_INC(t, milter_overload);
		return give_up(t);
	}
	if (bs_ledger_record(s->lpart, t->msgid, t->msgid_len,
			wall_s(mf)) == 0)
		TX_INC(t, milter_learned);
	slot_put(t, s);
	return give_up(t);
}

enum bs_mf_act
bs_mf_txn_eoh(struct bs_mf_txn *t)
{
	enum bs_mf_act a = content_begin(t);
	if (a != BS_MF_CONTINUE)
		return a;
	if (!t->in_header)
		return BS_MF_CONTINUE;
	t->in_header = false;
	/* Outbound: the header holds all there is to learn. */
	if (t->outbound)
		return learn(t);
	return feed(t, (const uint8_t *)"\r\n", 2);
}

enum bs_mf_act
bs_mf_txn_body(struct bs_mf_txn *t, const uint8_t *buf, size_t len)
{
	enum bs_mf_act a = content_begin(t);
	if (a != BS_MF_CONTINUE)
		return a;
	if (t->in_header) {
		/* No end of header was signalled (SMFIP_NOEOH or a client
		 * that skips it): the body starts after the empty line. */
		a = bs_mf_txn_eoh(t);
		if (a != BS_MF_CONTINUE)
			return a;
	}
	return feed(t, buf, len);
}

/* The reply text: what was judged and why, bounded and printable. */
static void
reply_text(const struct bs_verdict_result *vr, char *buf, size_t len)
{
	int k = snprintf(buf, len, "Backscatter refused: this bounce "
		"answers no message sent from %s (",
		vr->domain[0] != '\0' ? vr->domain : "this domain");
	size_t o = k > 0 && (size_t)k < len ? (size_t)k : 0;
	bool first = true;
	for (unsigned int r = 0; r < BS_VR__MAX; r++) {
		if (!(vr->reasons & (1ULL << r)))
			continue;
		const char *nm = bs_verdict_reason_name(
			(enum bs_verdict_reason)r);
		k = snprintf(buf + o, len - o, "%s%s", first ? "" : " ", nm);
		if (k < 0 || (size_t)k >= len - o)
			break;
		o += (size_t)k;
		first = false;
	}
	if (o + 2 <= len) {
		buf[o++] = ')';
		buf[o] = '\0';
	}
	/* The domain came from the configuration, reasons are fixed
	 * names: still, no byte the MTA would misread leaves here. */
	for (size_t i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == '%' ||
				(unsigned char)buf[i] >= 0x7f)
			buf[i] = '?';
}

enum bs_mf_act
bs_mf_txn_eom(struct bs_mf_txn *t, struct bs_mf_answer *out)
{
	struct bs_mf *mf = t->mf;

	memset(out, 0, sizeof(*out));
	out->act = BS_MF_ACCEPT;
	enum bs_mf_act a = content_begin(t); /* a message with no content */
	if (a == BS_MF_CONTINUE && t->in_header) {
		a = bs_mf_txn_eoh(t);
	}
	if (a != BS_MF_CONTINUE || t->msg == NULL) {
		/* Accepted unjudged, or outbound (learned at eoh). */
		drop_message(t);
		t->state = TX_IDLE;
		return BS_MF_ACCEPT;
	}
	struct mf_slot *s = t->slot;
	uint64_t t0 = bs_mono_ns();
	bs_msg_end(t->msg, &s->res);
	t->msg = NULL;
	out->cls = s->res.cls;
	if (s->res.fail & (BS_DF_NOMEM | BS_DF_HS | BS_DF_NO_RULES)) {
		if (s->res.fail & BS_DF_NO_RULES)
			TX_INC(t, milter_no_rules);
		else
			TX_INC(t, milter_detect_failed);
		drop_message(t);
		t->state = TX_IDLE;
		return BS_MF_ACCEPT;
	}

	struct bs_verdict_input in;
	bs_verdict_input_init(&in, NULL, &s->res, wall_s(mf));
	in.mail_from = t->mail_from;
	in.rcpt = t->rcpt;
	in.nrcpt = t->nrcpt;
	s->now_s = in.now_s;
	/* The ledger and storm reads are QSBR read-side: online only for
	 * the verdict (see milter.h). */
	bs_mf_thread_rcu();
	rcu_thread_online();
	bs_verdict_judge(s->vc, &s->env, &in, &out->vr);
	rcu_thread_offline();
	BS_LAT_NOTE(&s->cnt, verdict_latency, bs_mono_ns() - t0);
	out->judged = true;
	TX_INC(t, milter_judged);
	drop_message(t);
	t->state = TX_IDLE;
	if (out->vr.action == BS_ACTION_REFUSE) {
		reply_text(&out->vr, out->reply, sizeof(out->reply));
		out->act = BS_MF_REJECT;
		TX_INC(t, milter_refused);
	}
	return (enum bs_mf_act)out->act;
}

/* Append printf output at *o (within len; *o grows past len when cut). */
static void
jput(char *buf, size_t len, size_t *o, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
jput(char *buf, size_t len, size_t *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(*o < len ? buf + *o : NULL, *o < len ? len - *o : 0,
		fmt, ap);
	va_end(ap);
	*o += k > 0 ? (size_t)k : 0;
}

static void
jstr(char *buf, size_t len, size_t *o, const char *s, size_t n)
{
	*o += bs_json_string(*o < len ? buf + *o : NULL, *o < len ? len - *o : 0,
		s, n);
}

size_t
bs_mf_txn_json(const struct bs_mf_txn *t, const struct bs_mf_answer *a,
	char *buf, size_t len)
{
	size_t o = 0;
	jput(buf, len, &o, "{\"ts\":%llu,\"mail_from\":",
		(unsigned long long)wall_s(t->mf));
	jstr(buf, len, &o, t->mail_from, strlen(t->mail_from));
	jput(buf, len, &o, ",\"rcpt\":[");
	for (uint32_t i = 0; i < t->nrcpt; i++) {
		if (i > 0)
			jput(buf, len, &o, ",");
		jstr(buf, len, &o, t->rcpt[i].addr, t->rcpt[i].len);
	}
	jput(buf, len, &o, "],\"outbound\":%s,\"class\":\"%s\","
		"\"judged\":%s", t->outbound ? "true" : "false",
		bs_class_name((enum bs_class)a->cls),
		a->judged ? "true" : "false");
	if (a->judged) {
		jput(buf, len, &o, ",");
		o += bs_verdict_result_json(&a->vr, o < len ? buf + o : NULL,
			o < len ? len - o : 0);
	}
	jput(buf, len, &o, "}");
	return o;
}
