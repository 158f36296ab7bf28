/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Harness for the SMTP engine tests and fuzzers (see harness.h).  The
 * random segmenter keeps causality between directions (a turn's bytes
 * are all sent before the peer's next turn, as a real server cannot
 * answer a command it has not received) and scrambles everything else.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "backstop/pkt.h"

uint64_t
h_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

void
h_script_add(struct h_script *s, int dir, const void *p, size_t n)
{
	if (s->n > 0 && s->t[s->n - 1].dir == dir) {
		struct h_turn *t = &s->t[s->n - 1];

		t->data = realloc(t->data, t->len + n + 1);
		memcpy(t->data + t->len, p, n);
		t->len += n;
		return;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->t = realloc(s->t, s->cap * sizeof(*s->t));
	}
	s->t[s->n].dir = dir;
	s->t[s->n].data = malloc(n + 1);
	memcpy(s->t[s->n].data, p, n);
	s->t[s->n].len = n;
	s->n++;
}

void
h_script_str(struct h_script *s, int dir, const char *str)
{
	h_script_add(s, dir, str, strlen(str));
}

void
h_script_free(struct h_script *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->t[i].data);
	free(s->t);
	memset(s, 0, sizeof(*s));
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
h_script_parse(struct h_script *s, const char *text, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t e = i;
		int dir, crlf = 1;
		uint8_t *buf;
		size_t o = 0;

		while (e < len && text[e] != '\n')
			e++;
		if (e - i >= 2 && (text[i] == 'C' || text[i] == 'S') &&
			text[i + 1] == ':') {
			size_t j = i + 2;

			dir = text[i] == 'S';
			if (j < e && text[j] == ' ')
				j++;
			buf = malloc(e - j + 2);
			for (; j < e; j++) {
				char c = text[j];

				if (c != '\\' || j + 1 >= e) {
					buf[o++] = (uint8_t)c;
					continue;
				}
				c = text[++j];
				if (c == 'r')
					buf[o++] = '\r';
				else if (c == 'n')
					buf[o++] = '\n';
				else if (c == 't')
					buf[o++] = '\t';
				else if (c == '!')
					crlf = 0;
				else if (c == 'x' && j + 2 < e &&
					hexval(text[j + 1]) >= 0 &&
					hexval(text[j + 2]) >= 0) {
					buf[o++] = (uint8_t)(hexval(text[j + 1])
						* 16 + hexval(text[j + 2]));
					j += 2;
				} else
					buf[o++] = (uint8_t)c;
			}
			if (crlf) {
				buf[o++] = '\r';
				buf[o++] = '\n';
			}
			h_script_add(s, dir, buf, o);
			free(buf);
		} else if (e > i && text[i] != '#') {
			return -1;
		}
		i = e + 1;
	}
	return 0;
}

static void
out_append(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*b = realloc(*b, *cap);
	}
	memcpy(*b + *len, s, n);
	*len += n;
	(*b)[*len] = '\0';
}

static void
trace(struct h_out *o, const char *s)
{
	out_append(&o->trace, &o->tlen, &o->tcap, s, strlen(s));
	out_append(&o->trace, &o->tlen, &o->tcap, "\n", 1);
}

/*
 * Per-transaction event order: begin [msg_begin data* [eom]] end.
 * h_state: 0 transaction begun, 1 message begun, 2 message ended.
 */
static const struct bs_smtp_record *h_open[8];
static int h_state[8];

static int
slot_of(const struct bs_smtp_record *r, int create)
{
	for (int i = 0; i < 8; i++)
		if (h_open[i] == r)
			return i;
	if (!create)
		return -1;
	for (int i = 0; i < 8; i++)
		if (h_open[i] == NULL) {
			h_open[i] = r;
			h_state[i] = 0;
			return i;
		}
	return -1;
}

static void
ev_begin(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *r)
{
	struct h_out *o = arg;

	(void)f;
	o->begins++;
	if (slot_of(r, 0) >= 0 || slot_of(r, 1) < 0)
		o->order_err = __LINE__;
	trace(o, "begin");
}

static void
ev_msg_begin(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *r)
{
	struct h_out *o = arg;
	int s = slot_of(r, 0);

	(void)f;
	o->msg_begins++;
	if (s < 0 || h_state[s] != 0 || r->size != 0)
		o->order_err = __LINE__;
	else
		h_state[s] = 1;
	trace(o, "msg_begin");
}

static void
ev_data(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *r,
	const uint8_t *p, uint32_t n)
{
	struct h_out *o = arg;
	int s = slot_of(r, 0);

	(void)f;
	(void)p;
	if (s < 0 || h_state[s] != 1 || n == 0)
		o->order_err = __LINE__;
	o->data_bytes += n;
}

static void
ev_eom(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *r,
	void *pkt)
{
	struct h_out *o = arg;
	int s = slot_of(r, 0);

	(void)f;
	(void)pkt;
	o->eoms++;
	if (s < 0 || h_state[s] != 1)
		o->order_err = __LINE__;
	else
		h_state[s] = 2;
	trace(o, "eom");
}

static void
ev_end(void *arg, struct bs_smtp_flow *f, const struct bs_smtp_record *r)
{
	struct h_out *o = arg;
	int s = slot_of(r, 0);
	char buf[BS_SMTP_JSON_MAX(128)];
	char *big = buf;
	size_t cap = BS_SMTP_JSON_MAX(r->nrcpt);
	int n;

	(void)f;
	o->ends++;
	if (s < 0) {
		o->order_err = __LINE__;
	} else {
		/* A complete message was begun and ended; an incomplete one
		 * is aborted here (begun, never ended). */
		if (r->complete != (h_state[s] == 2))
			o->order_err = __LINE__;
		if (h_state[s] == 1)
			o->msg_aborts++;
		h_open[s] = NULL;
	}
	if (!r->complete) {
		trace(o, "end aborted");
		return;
	}
	o->complete++;
	if (cap > sizeof(buf))
		big = malloc(cap);
	n = bs_smtp_record_json(r, big, cap);
	if (n < 0)
		o->order_err = __LINE__;
	else
		out_append(&o->json, &o->len, &o->cap, big, (size_t)n);
	if (big != buf)
		free(big);
	trace(o, "end");
}

static const struct bs_smtp_events h_events = {
	.on_txn_begin = ev_begin,
	.on_message_begin = ev_msg_begin,
	.on_data = ev_data,
	.on_end_of_message = ev_eom,
	.on_txn_end = ev_end,
};

struct h_seg {
	uint32_t off, len;
};

static void
feed(struct bs_smtp_ctx *ctx, struct bs_smtp_flow *f, struct h_out *out,
	struct bs_seg *sg, uint64_t now)
{
	if (bs_smtp_flow_input(ctx, f, sg, now) == BS_SEG_DROP)
		out->drops++;
	if (bs_smtp_ctx_held(ctx) > out->held_max)
		out->held_max = bs_smtp_ctx_held(ctx);
	if (bs_smtp_ctx_session_bytes(ctx) > out->session_peak)
		out->session_peak = bs_smtp_ctx_session_bytes(ctx);
}

/* Drive one flow through the script: handshake, turns, optional FIN. */
static void
h_segments(struct bs_smtp_ctx *ctx, struct bs_smtp_flow *f,
	const struct h_script *s, const struct h_opts *o, uint64_t seed,
	struct h_out *out, uint64_t *nowp)
{
	uint32_t nxt[2] = { o->isn_c + 1, o->isn_s + 1 };
	uint64_t now = *nowp, rs = seed;
	struct bs_seg sg;

	memset(&sg, 0, sizeof(sg));
	sg.win = 65535;
	if (!o->no_handshake) {
		sg.flags = BS_TCP_SYN;
		sg.seq = o->isn_c;
		sg.to_server = 1;
		feed(ctx, f, out, &sg, now);
		sg.flags = BS_TCP_SYN | BS_TCP_ACK;
		sg.seq = o->isn_s;
		sg.ack = nxt[0];
		sg.to_server = 0;
		feed(ctx, f, out, &sg, now);
		sg.flags = BS_TCP_ACK;
		sg.seq = nxt[0];
		sg.ack = nxt[1];
		sg.to_server = 1;
		feed(ctx, f, out, &sg, now);
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct h_turn *t = &s->t[i];
		int d = t->dir;
		struct h_seg *segs;
		size_t ns = 0, cap = t->len + 16;
		uint32_t max = o->maxseg ? o->maxseg : 1460;

		segs = malloc(cap * sizeof(*segs));
		if (seed != 0) {
			static const uint32_t sizes[] = { 1, 2, 7, 64, 536,
				1460, 9000 };
			max = sizes[h_rand(&rs) % 7];
		}
		for (uint32_t off = 0; off < t->len;) {
			uint32_t l = max;

			if (seed != 0)
				l = 1 + (uint32_t)(h_rand(&rs) % max);
			if (l > t->len - off)
				l = (uint32_t)(t->len - off);
			segs[ns].off = off;
			segs[ns].len = l;
			ns++;
			off += l;
		}
		if (seed != 0 && t->len > 0) {
			/* Duplicates and overlaps (same bytes). */
			size_t extra = h_rand(&rs) % 4;

			for (size_t k = 0; k < extra && ns < cap; k++) {
				uint32_t a = (uint32_t)(h_rand(&rs) % t->len);
				uint32_t l = 1 + (uint32_t)(h_rand(&rs) %
					(t->len - a));

				if (l > 3000)
					l = 3000;
				segs[ns].off = a;
				segs[ns].len = l;
				ns++;
			}
			for (size_t k = ns; k > 1; k--) {
				size_t j = h_rand(&rs) % k;
				struct h_seg tmp = segs[k - 1];

				segs[k - 1] = segs[j];
				segs[j] = tmp;
			}
		}
		for (size_t k = 0; k < ns; k++) {
			sg.data = t->data + segs[k].off;
			sg.len = segs[k].len;
			sg.seq = nxt[d] + segs[k].off;
			sg.ack = nxt[!d];
			sg.flags = BS_TCP_ACK | BS_TCP_PSH;
			sg.to_server = d == 0;
			sg.pkt = (void *)(uintptr_t)(k + 1);
			feed(ctx, f, out, &sg, now);
		}
		nxt[d] += (uint32_t)t->len;
		free(segs);
		/* The clock moves per turn, so every segmentation stamps
		 * records alike. */
		now += 1000;
	}
	if (o->fin) {
		for (int d = 0; d < 2; d++) {
			sg.data = NULL;
			sg.len = 0;
			sg.seq = nxt[d];
			sg.ack = nxt[!d] + (d == 1);
			sg.flags = BS_TCP_ACK | BS_TCP_FIN;
			sg.to_server = d == 0;
			feed(ctx, f, out, &sg, now);
		}
	}
	*nowp = now;
}

static const struct bs_smtp_endpoints h_ep = { .l3 = BS_L3_IPV4,
	.client = { 192, 0, 2, 1 }, .server = { 198, 51, 100, 25 },
	.cport = 40000, .sport = 25 };

int
h_run(const struct h_script *s, const struct h_opts *o, uint64_t seed,
	struct h_out *out)
{
	struct bs_smtp_params p;
	struct bs_smtp_ctx *ctx;
	struct bs_smtp_flow *f;
	uint64_t now = 1700000000000ULL;

	memset(out, 0, sizeof(*out));
	memset(h_open, 0, sizeof(h_open));
	if (o->params != NULL) {
		p = *o->params;
	} else {
		bs_smtp_params_default(&p);
		p.smtp_ooo_flow_bytes = 16 << 20;
		p.smtp_ooo_global_bytes = 64 << 20;
	}
	p.smtp_event_digest = o->digest != 0;
	ctx = bs_smtp_ctx_create(&p, &h_events, out, &out->cnt);
	if (ctx == NULL)
		return -1;
	f = bs_smtp_flow_new(ctx, &h_ep);
	if (f == NULL) {
		bs_smtp_ctx_free(ctx);
		return -1;
	}
	h_segments(ctx, f, s, o, seed, out, &now);
	out->inspected = bs_smtp_flow_inspected(f);
	out->session_bytes = bs_smtp_ctx_session_bytes(ctx);
	bs_smtp_flow_free(ctx, f, now);
	/* Every held byte and every charged byte returned. */
	if (bs_smtp_ctx_held(ctx) != 0 || bs_smtp_ctx_session_bytes(ctx) != 0 ||
		out->cnt.v[BS_CNT_smtp_session_bytes] != 0)
		out->order_err = __LINE__;
	bs_smtp_ctx_free(ctx);
	for (int i = 0; i < 8; i++)
		if (h_open[i] != NULL)
			out->order_err = __LINE__;
	return 0;
}

int
h_run_txn(struct bs_txn_stage *st, const struct h_script *s,
	const struct h_opts *o, uint64_t seed, struct h_out *out)
{
	struct bs_smtp_flow *f;
	uint64_t now = 1700000000000ULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *mf;

	memset(out, 0, sizeof(*out));
	f = bs_txn_flow_new(st, &h_ep);
	if (f == NULL)
		return -1;
	h_segments(st->smtp, f, s, o, seed, out, &now);
	out->inspected = bs_smtp_flow_inspected(f);
	st->now_ms = now;
	out->session_bytes = bs_smtp_ctx_session_bytes(st->smtp);
	bs_txn_flow_free(st, f);
	if (st->detect_inflight != 0 || st->det_live != 0 ||
		bs_smtp_ctx_held(st->smtp) != 0 ||
		bs_smtp_ctx_session_bytes(st->smtp) != 0)
		out->order_err = __LINE__;
	mf = open_memstream(&buf, &len);
	if (mf == NULL)
		return -1;
	if (st->events != NULL)
		bs_evring_drain(st->events, mf);
	fclose(mf);
	if (len > 0) {
		out->json = buf;
		out->len = out->cap = len;
	} else {
		free(buf);
	}
	return 0;
}

void
h_out_free(struct h_out *out)
{
	free(out->json);
	free(out->trace);
	memset(out, 0, sizeof(*out));
}

uint8_t *
h_read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *b = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 &&
		fseek(fp, 0, SEEK_SET) == 0) {
		b = malloc((size_t)n + 1);
		if (b != NULL && fread(b, 1, (size_t)n, fp) != (size_t)n) {
			free(b);
			b = NULL;
		} else if (b != NULL) {
			b[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(fp);
	return b;
}

uint8_t *
h_smtp_body(const uint8_t *msg, size_t len, size_t *outlen, uint8_t **crlf,
	size_t *crlf_len)
{
	uint8_t *w = malloc(len * 3 + 8), *c = malloc(len * 2 + 8);
	size_t o = 0, k = 0;
	int bol = 1;

	for (size_t i = 0; i < len; i++) {
		uint8_t ch = msg[i];

		if (ch == '\r')
			continue; /* normalise any CRLF/CR to LF first */
		if (bol && ch == '.')
			w[o++] = '.';
		if (ch == '\n') {
			w[o++] = '\r';
			c[k++] = '\r';
			bol = 1;
		} else {
			bol = 0;
		}
		w[o++] = ch;
		c[k++] = ch;
	}
	if (k > 0 && c[k - 1] != '\n') {
		w[o++] = '\r';
		w[o++] = '\n';
		c[k++] = '\r';
		c[k++] = '\n';
	}
	*outlen = o;
	*crlf = c;
	*crlf_len = k;
	return w;
}

void
h_sha256_hex(const uint8_t *p, size_t n, char hex[65])
{
	uint8_t md[32];
	unsigned int l = 0;

	EVP_Digest(p, n, md, &l, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}
