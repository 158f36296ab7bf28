/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Storm detection, slow path (storm.h): creation, the tick that sums the
 * workers' sketches into a sliding window and judges the tracked keys,
 * the RCU publication of what workers read, and the optional thread.
 *
 * The window is n_slots = slots + 1 time slots of window/slots each: the
 * one filling now and `slots` full ones, so a count stays in the window
 * for at least window_s and at most window_s + one slot.  `win` is their
 * running sum (add what is collected, subtract a slot as it is retired),
 * so a tick costs O(cells x workers), independent of the number of
 * slots.  Two snapshots alternate: the one published at tick k-1 is
 * being read; the one from k-2 is free after this tick's grace period.
 */
#include "../dataplane/verdict/storm_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <sodium.h>

#include "backstop/counters.h"

void
bs_storm_params_default(struct bs_storm_params *p)
{
	memset(p, 0, sizeof(*p));
	p->window_s = BS_STORM_DEF_WINDOW_S;
	p->slots = BS_STORM_DEF_SLOTS;
	p->rcpt_threshold = BS_STORM_DEF_RCPT_THRESHOLD;
	p->domain_threshold = BS_STORM_DEF_DOMAIN_THRESHOLD;
	p->rcpt_width = BS_STORM_DEF_RCPT_WIDTH;
	p->domain_width = BS_STORM_DEF_DOMAIN_WIDTH;
	p->depth = BS_STORM_DEF_DEPTH;
	p->max_tracked = BS_STORM_DEF_MAX_TRACKED;
	p->n_parts = 1;
	p->tick_ms = BS_STORM_DEF_TICK_MS;
	p->ring_size = BS_STORM_DEF_RING_SIZE;
}

static void
storm_log(const struct bs_storm *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
storm_log(const struct bs_storm *s, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->p.log != NULL)
		s->p.log(s->p.log_arg, level, msg);
	else
		fprintf(stderr, "backstop: storm: %s\n", msg);
}

static bool
pow2(uint32_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

static uint32_t
log2u(uint32_t v)
{
	uint32_t b = 0;
	while ((1u << b) < v)
		b++;
	return b;
}

struct bs_storm *
bs_storm_create(const struct bs_storm_params *pin, char *err, size_t errlen)
{
	struct bs_storm_params p = *pin;
	if (p.n_parts == 0)
		p.n_parts = 1;
	if (p.window_s == 0 || p.slots == 0 || p.slots > 3600 ||
			(uint64_t)p.window_s * 1000 % p.slots != 0) {
		snprintf(err, errlen, "storm: window_s %u must be > 0 and a "
				"whole number of milliseconds per slot (slots %u, "
				"1..3600)", p.window_s, p.slots);
		return NULL;
	}
	if (p.rcpt_threshold == 0 || p.domain_threshold == 0) {
		snprintf(err, errlen, "storm: thresholds must be > 0");
		return NULL;
	}
	if (!pow2(p.rcpt_width) || !pow2(p.domain_width) ||
			p.rcpt_width > (1u << 20) || p.domain_width > (1u << 20) ||
			p.depth == 0 ||
			p.depth * log2u(p.rcpt_width) > 128 ||
			p.depth * log2u(p.domain_width) > 128) {
		snprintf(err, errlen, "storm: widths must be powers of two up "
				"to 2^20 and depth x log2(width) at most 128 (the "
				"hash's bits)");
		return NULL;
	}
	if (p.max_tracked == 0 || p.max_tracked > 65536 || p.tick_ms == 0 ||
			!pow2(p.ring_size) || p.n_parts > 1024) {
		snprintf(err, errlen, "storm: max_tracked 1..65536, tick_ms > 0, "
				"ring_size a power of two, n_parts <= 1024");
		return NULL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "storm: libsodium failed to start");
		return NULL;
	}
	struct bs_storm *s = aligned_alloc(64, sizeof(*s));
	if (s == NULL)
		goto nomem;
	memset(s, 0, sizeof(*s));
	s->p = p;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	randombytes_buf(s->key, sizeof(s->key));
	s->depth = p.depth;
	s->width[STORM_RCPT] = p.rcpt_width;
	s->width[STORM_DOMAIN] = p.domain_width;
	s->bits[STORM_RCPT] = log2u(p.rcpt_width);
	s->bits[STORM_DOMAIN] = log2u(p.domain_width);
	s->row0[STORM_RCPT] = 0;
	s->row0[STORM_DOMAIN] = p.depth * p.rcpt_width;
	s->cells = p.depth * (p.rcpt_width + p.domain_width);
	s->thr[STORM_RCPT] = p.rcpt_threshold;
	s->thr[STORM_DOMAIN] = p.domain_threshold;
	/* Fail open if the slow path has not published for this long. */
	s->stale_ms = (uint64_t)p.tick_ms * 10;
	if (s->stale_ms < 30000)
		s->stale_ms = 30000;
	s->slot_ms = (uint64_t)p.window_s * 1000 / p.slots;
	s->n_slots = p.slots + 1;

	size_t set_bytes = (size_t)s->cells * sizeof(uint32_t);
	s->n_parts = p.n_parts;
	s->parts = aligned_alloc(64, p.n_parts * sizeof(*s->parts));
	if (s->parts == NULL)
		goto nomem;
	memset(s->parts, 0, p.n_parts * sizeof(*s->parts));
	for (uint32_t w = 0; w < p.n_parts; w++) {
		struct bs_storm_part *pt = &s->parts[w];
		pt->s = s;
		pt->mask = p.ring_size - 1;
		pt->sk[0] = calloc(2, set_bytes);
		pt->ring = calloc(p.ring_size, sizeof(*pt->ring));
		if (pt->sk[0] == NULL || pt->ring == NULL)
			goto nomem;
		pt->sk[1] = pt->sk[0] + s->cells;
	}
	s->slot = calloc(s->n_slots, set_bytes);
	s->win = calloc(1, set_bytes);
	s->tr = calloc(p.max_tracked, sizeof(*s->tr));
	if (s->slot == NULL || s->win == NULL || s->tr == NULL)
		goto nomem;
	uint32_t set_n = 1;
	while (set_n < 2 * p.max_tracked)
		set_n <<= 1;
	for (int i = 0; i < 2; i++) {
		s->snaps[i].cells = calloc(1, set_bytes);
		s->snaps[i].set = calloc(set_n, sizeof(struct storm_skey));
		s->snaps[i].set_mask = set_n - 1;
		if (s->snaps[i].cells == NULL || s->snaps[i].set == NULL)
			goto nomem;
	}
	s->bytes_part = sizeof(struct bs_storm_part) + 2 * set_bytes +
		(uint64_t)p.ring_size * sizeof(struct storm_cand);
	s->bytes_total = sizeof(*s) + p.n_parts * s->bytes_part +
		(uint64_t)(s->n_slots + 1 + 2) * set_bytes +
		(uint64_t)p.max_tracked * sizeof(struct storm_track) +
		2ull * set_n * sizeof(struct storm_skey);
	return s;
nomem:
	snprintf(err, errlen, "storm: out of memory");
	bs_storm_destroy(s);
	return NULL;
}

void
bs_storm_destroy(struct bs_storm *s)
{
	if (s == NULL)
		return;
	if (s->parts != NULL)
		for (uint32_t w = 0; w < s->n_parts; w++) {
			free(s->parts[w].sk[0]);
			free(s->parts[w].ring);
		}
	free(s->parts);
	free(s->slot);
	free(s->win);
	free(s->tr);
	for (int i = 0; i < 2; i++) {
		free(s->snaps[i].cells);
		free(s->snaps[i].set);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

struct bs_storm_part *
bs_storm_part(struct bs_storm *s, unsigned int idx)
{
	return idx < s->n_parts ? &s->parts[idx] : NULL;
}

/* Untrusted bytes for a log line: printable ASCII, the rest as \xNN. */
static void
escape(char *out, size_t cap, const char *in, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x21 && c < 0x7f && c != '\\' && c != '"')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	out[o] = '\0';
}

static void
track_add(struct bs_storm *s, const struct storm_cand *c)
{
	for (uint32_t i = 0; i < s->n_tr; i++)
		if (s->tr[i].kind == c->kind &&
				s->tr[i].h.w[0] == c->h.w[0] &&
				s->tr[i].h.w[1] == c->h.w[1])
			return;
	if (s->n_tr == s->p.max_tracked) {
		storm_inc(&s->track_full, 1);
		return;
	}
	struct storm_track *t = &s->tr[s->n_tr++];
	memset(t, 0, sizeof(*t));
	t->h = c->h;
	t->kind = c->kind;
	t->len = c->len <= BS_STORM_NAME_MAX ? c->len : BS_STORM_NAME_MAX;
	memcpy(t->name, c->name, t->len);
}

static void
judge(struct bs_storm *s, uint64_t now_ms)
{
	uint32_t active = 0;
	for (uint32_t i = 0; i < s->n_tr;) {
		struct storm_track *t = &s->tr[i];
		uint32_t est = storm_est(s, s->win, t->kind, &t->h);
		uint32_t thr = s->thr[t->kind];
		char name[4 * BS_STORM_NAME_MAX + 1];
		const char *what = t->kind == STORM_RCPT ? "address" : "domain";
		if (!t->active && est >= thr) {
			t->active = true;
			t->since_ms = now_ms;
			t->peak = est;
			storm_inc(&s->started, 1);
			escape(name, sizeof(name), t->name, t->len);
			storm_log(s, LOG_NOTICE, "storm started: %s \"%s\": %u "
				"bounces in %u s (threshold %u); unjudgeable "
				"bounces to it are now backscatter", what, name,
				est, s->p.window_s, thr);
		} else if (t->active) {
			if (est > t->peak)
				t->peak = est;
			if ((uint64_t)est * 2 < thr) {
				t->active = false;
				storm_inc(&s->ended, 1);
				escape(name, sizeof(name), t->name, t->len);
				storm_log(s, LOG_NOTICE, "storm ended: %s \"%s\" "
					"after %llu s (peak %u bounces in %u s)",
					what, name,
					(unsigned long long)((now_ms -
						t->since_ms) / 1000),
					t->peak, s->p.window_s);
			}
		}
		if (!t->active && (uint64_t)est * 2 < thr) {
			s->tr[i] = s->tr[--s->n_tr]; /* cooled off */
			continue;
		}
		active += t->active;
		i++;
	}
	__atomic_store_n(&s->active, active, __ATOMIC_RELAXED);
	__atomic_store_n(&s->tracked, s->n_tr, __ATOMIC_RELAXED);
}

static void
publish(struct bs_storm *s, uint64_t now_ms)
{
	/* Relaxed atomic stores, not memcpy: see storm_skey. */
	struct storm_snap *sn = &s->snaps[s->spare];
	for (uint32_t c = 0; c < s->cells; c++)
		__atomic_store_n(&sn->cells[c], s->win[c], __ATOMIC_RELAXED);
	for (uint32_t j = 0; j <= sn->set_mask; j++)
		__atomic_store_n(&sn->set[j].meta, 0, __ATOMIC_RELAXED);
	uint64_t n_active = 0;
	for (uint32_t i = 0; i < s->n_tr; i++) {
		const struct storm_track *t = &s->tr[i];
		uint32_t j = (uint32_t)t->h.w[0] & sn->set_mask;
		while (storm_ld(&sn->set[j].meta) & SKEY_USED)
			j = (j + 1) & sn->set_mask;
		__atomic_store_n(&sn->set[j].h, t->h.w[0], __ATOMIC_RELAXED);
		__atomic_store_n(&sn->set[j].meta, SKEY_USED |
			(uint64_t)t->kind << 8 | (uint64_t)t->active << 16,
			__ATOMIC_RELAXED);
		n_active += t->active;
	}
	__atomic_store_n(&sn->n_active, n_active, __ATOMIC_RELAXED);
	__atomic_store_n(&sn->published_ms, now_ms, __ATOMIC_RELAXED);
	rcu_assign_pointer(s->snap, sn);
	s->spare ^= 1;
}

void
bs_storm_tick(struct bs_storm *s, uint64_t now_ms)
{
	if (!s->ticked) {
		s->ticked = true;
		s->slot_start_ms = now_ms;
	}
	/* Flip: workers count into the other half from now on; once every
	 * worker has passed a quiescent state none writes the old one, and
	 * no reader holds the snapshot published two ticks ago. */
	uint64_t old = s->epoch & 1;
	__atomic_store_n(&s->epoch, s->epoch + 1, __ATOMIC_RELEASE);
	synchronize_rcu();

	/* Slide first, so what was counted since the last tick lands in
	 * the slot of now. */
	if (now_ms >= s->slot_start_ms &&
			now_ms - s->slot_start_ms >= s->n_slots * s->slot_ms) {
		memset(s->slot, 0, (size_t)s->n_slots * s->cells *
			sizeof(uint32_t));
		memset(s->win, 0, (size_t)s->cells * sizeof(uint32_t));
		s->slot_start_ms = now_ms;
	}
	while (now_ms >= s->slot_start_ms &&
			now_ms - s->slot_start_ms >= s->slot_ms) {
		s->cur = (s->cur + 1) % s->n_slots;
		uint32_t *sl = s->slot + (size_t)s->cur * s->cells;
		for (uint32_t c = 0; c < s->cells; c++)
			s->win[c] -= sl[c];
		memset(sl, 0, (size_t)s->cells * sizeof(uint32_t));
		s->slot_start_ms += s->slot_ms;
	}
	if (now_ms < s->slot_start_ms)
		s->slot_start_ms = now_ms; /* the clock went back */

	uint32_t *cur = s->slot + (size_t)s->cur * s->cells;
	for (uint32_t w = 0; w < s->n_parts; w++) {
		uint32_t *h = s->parts[w].sk[old];
		for (uint32_t c = 0; c < s->cells; c++) {
			uint32_t v = __atomic_load_n(&h[c], __ATOMIC_RELAXED);
			if (v == 0)
				continue;
			__atomic_store_n(&h[c], 0, __ATOMIC_RELAXED);
			/* Saturate: a count past 2^32 is a storm anyway. */
			cur[c] = cur[c] + v < cur[c] ? UINT32_MAX : cur[c] + v;
			s->win[c] = s->win[c] + v < s->win[c] ? UINT32_MAX :
				s->win[c] + v;
		}
		struct bs_storm_part *pt = &s->parts[w];
		uint64_t tail = pt->tail;
		uint64_t head = __atomic_load_n(&pt->head, __ATOMIC_ACQUIRE);
		for (; tail != head; tail++)
			track_add(s, &pt->ring[tail & pt->mask]);
		__atomic_store_n(&pt->tail, tail, __ATOMIC_RELEASE);
	}
	judge(s, now_ms);
	publish(s, now_ms);
	storm_inc(&s->ticks, 1);
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *
storm_main(void *arg)
{
	struct bs_storm *s = arg;
	pthread_mutex_lock(&s->mu);
	while (!s->stop_req) {
		pthread_mutex_unlock(&s->mu);
		bs_storm_tick(s, wall_ms());
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		uint64_t ns = (uint64_t)dl.tv_nsec +
			(uint64_t)s->p.tick_ms * 1000000u;
		dl.tv_sec += (time_t)(ns / 1000000000u);
		dl.tv_nsec = (long)(ns % 1000000000u);
		pthread_mutex_lock(&s->mu);
		while (!s->stop_req &&
				pthread_cond_timedwait(&s->cv, &s->mu, &dl) == 0)
			;
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
bs_storm_start(struct bs_storm *s)
{
	if (s->running)
		return -EALREADY;
	s->stop_req = false;
	int rc = pthread_create(&s->thread, NULL, storm_main, s);
	if (rc != 0)
		return -rc;
	s->running = true;
	return 0;
}

void
bs_storm_stop(struct bs_storm *s)
{
	if (s == NULL || !s->running)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop_req = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->running = false;
}

void
bs_storm_stats(const struct bs_storm *s, struct bs_storm_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (uint32_t w = 0; w < s->n_parts; w++) {
		st->notes += storm_ld(&s->parts[w].notes);
		st->candidates_dropped += storm_ld(&s->parts[w].dropped);
	}
	st->started = storm_ld(&s->started);
	st->ended = storm_ld(&s->ended);
	st->active = storm_ld(&s->active);
	st->track_full = storm_ld(&s->track_full);
	st->ticks = storm_ld(&s->ticks);
	st->tracked = storm_ld(&s->tracked);
	st->bytes_part = s->bytes_part;
	st->bytes_total = s->bytes_total;
}

void
bs_storm_counters(const struct bs_storm *s, struct bs_counters *c)
{
	if (s == NULL)
		return;
	struct bs_storm_stats st;
	bs_storm_stats(s, &st);
	BS_CNT_ADD(c, storm_notes, st.notes);
	BS_CNT_ADD(c, storm_started, st.started);
	BS_CNT_ADD(c, storm_ended, st.ended);
	BS_CNT_ADD(c, storm_active, st.active);
	BS_CNT_ADD(c, storm_candidates_dropped, st.candidates_dropped);
	BS_CNT_ADD(c, storm_track_full, st.track_full);
}
