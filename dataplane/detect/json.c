/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A detection result as one JSON object: the output of backstop-classify
 * and the body of the event log's bounce records.
 *
 * Strings come from untrusted mail, so every byte is escaped: control
 * characters as \u00XX, and bytes that do not form valid UTF-8 as \u00XX
 * of their Latin-1 reading (a header in ISO-8859-1 stays readable, and the
 * output is always valid JSON and valid UTF-8).  The writer counts what it
 * would need past the end of the buffer, like snprintf, so callers can
 * size a retry.
 */
#include <stdio.h>
#include <string.h>

#include "backstop/detect.h"
#include "backstop/json.h"

struct jw {
	char *buf;
	size_t len, pos;
};

static void
put(struct jw *w, const char *s, size_t n)
{
	if (w->pos < w->len) {
		size_t room = w->len - w->pos;

		memcpy(w->buf + w->pos, s, n < room ? n : room);
	}
	w->pos += n;
}

static void
puts_(struct jw *w, const char *s)
{
	put(w, s, strlen(s));
}

static void
put_cb(void *w, const char *s, size_t n)
{
	put(w, s, n);
}

static void
jstr(struct jw *w, const char *str, size_t n)
{
	bs_json_escape(str, n, put_cb, w);
}

size_t
bs_json_string(char *buf, size_t len, const char *s, size_t n)
{
	struct jw w = {buf, len, 0};

	jstr(&w, s, n);
	if (len > 0)
		buf[w.pos < len ? w.pos : len - 1] = '\0';
	return w.pos;
}

/* "key":"value" (comma first unless first). */
static void
kv(struct jw *w, bool *first, const char *key, const char *val)
{
	if (!*first)
		put(w, ",", 1);
	*first = false;
	jstr(w, key, strlen(key));
	put(w, ":", 1);
	jstr(w, val, strlen(val));
}

static void
kv_opt(struct jw *w, bool *first, const char *key, const char *val)
{
	if (val[0])
		kv(w, first, key, val);
}

static void
kn(struct jw *w, bool *first, const char *key, unsigned long long v)
{
	char num[24];

	if (!*first)
		put(w, ",", 1);
	*first = false;
	jstr(w, key, strlen(key));
	snprintf(num, sizeof(num), ":%llu", v);
	puts_(w, num);
}

static void
kb(struct jw *w, bool *first, const char *key, bool v)
{
	if (!*first)
		put(w, ",", 1);
	*first = false;
	jstr(w, key, strlen(key));
	puts_(w, v ? ":true" : ":false");
}

static void
flag_list(struct jw *w, bool *first, const char *key, uint32_t bits,
        const char *const *names, unsigned int n)
{
	bool f = true;

	if (!*first)
		put(w, ",", 1);
	*first = false;
	jstr(w, key, strlen(key));
	put(w, ":[", 2);
	for (unsigned int i = 0; i < n; i++) {
		if (!(bits & (1u << i)) || !names[i])
			continue;
		if (!f)
			put(w, ",", 1);
		f = false;
		jstr(w, names[i], strlen(names[i]));
	}
	put(w, "]", 1);
}

static const char *const ev_names[] = {
        "null_sender",
        "null_return_path",
        "daemon_from",
        "auto_submitted",
        "report_dsn",
        "report_arf",
        "report_mdn",
        "original",
        "rule_dsn",
        "rule_dsn_weak",
        "rule_autoreply",
        "rule_feedback",
        "rule_challenge",
        "autoreply_header",
        "failed_recipients",
        "daemon_sender",
        "from_signature",
        "signature_gate",
};
static const char *const fail_names[] = {
        "nomem",
        "hyperscan",
        "hold_full",
        "no_rules",
};
static const char *const anom_names[] = {
        "line_split",
        "header_cut",
        "depth",
        "boundary",
        "bad_base64",
        "unterminated",
        "field_cut",
        "no_header_end",
        "orig_header_cut",
};
static const char *const auto_names[] = {
        "auto_submitted",
        "auto_replied",
        "precedence",
        "report_type",
        "daemon_from",
        "null_from",
        "null_return_path",
        "autoreply_header",
        "failed_recipients",
        "notify_sender",
        "auto_subject",
};
static const char *const src_names[] = {"none", "rfc822", "headers", "inline"};

#define N_(a) (unsigned int)(sizeof(a) / sizeof(a[0]))

size_t
bs_detect_result_json(const struct bs_detect_result *r, const char *extra,
        char *buf, size_t len)
{
	struct jw w = {buf, len, 0};
	const struct bs_mime_info *in = &r->mime;
	const struct bs_original *o = &in->orig;
	bool first = true, f;

	put(&w, "{", 1);
	if (extra && extra[0]) {
		puts_(&w, extra);
		/* extra ends with ',' by contract; tolerate it missing. */
		if (extra[strlen(extra) - 1] != ',')
			put(&w, ",", 1);
	}
	kv(&w, &first, "class", bs_class_name(r->cls));
	kb(&w, &first, "candidate", r->candidate);
	put(&w, ",\"rules\":[", 10);
	for (unsigned int i = 0; i < r->n_rule_ids; i++) {
		char num[16];

		snprintf(
		        num, sizeof(num), "%s%u", i ? "," : "", r->rule_ids[i]);
		puts_(&w, num);
	}
	put(&w, "]", 1);
	kn(&w, &first, "n_rules", r->n_rules);
	flag_list(&w, &first, "evidence", r->evidence, ev_names, N_(ev_names));
	if (r->fail)
		flag_list(&w, &first, "fail", r->fail, fail_names,
		        N_(fail_names));
	if (in->anomalies)
		flag_list(&w, &first, "anomalies", in->anomalies, anom_names,
		        N_(anom_names));
	kn(&w, &first, "bytes", r->bytes);
	kn(&w, &first, "scanned", r->bytes_scanned);

	put(&w, ",\"top\":{", 8);
	f = true;
	kv(&w, &f, "from", in->from);
	kv(&w, &f, "subject", in->subject);
	kv_opt(&w, &f, "content_type", in->content_type);
	kv_opt(&w, &f, "report_type", in->report_type);
	kv_opt(&w, &f, "message_id", in->message_id);
	kv_opt(&w, &f, "in_reply_to", in->in_reply_to);
	kv_opt(&w, &f, "references", in->references);
	flag_list(&w, &f, "auto", in->auto_flags, auto_names, N_(auto_names));
	put(&w, "}", 1);

	if (in->dsn.present) {
		const struct bs_dsn *d = &in->dsn;

		put(&w, ",\"dsn\":{", 8);
		f = true;
		kn(&w, &f, "recipients", d->n_rcpt);
		kv_opt(&w, &f, "reporting_mta", d->reporting_mta);
		kv_opt(&w, &f, "final_recipient", d->final_recipient);
		kv_opt(&w, &f, "original_recipient", d->original_recipient);
		kv_opt(&w, &f, "action", d->action);
		kv_opt(&w, &f, "status", d->status);
		kv_opt(&w, &f, "diagnostic_code", d->diagnostic_code);
		put(&w, "}", 1);
	}
	if (in->feedback_type[0])
		kv(&w, &first, "feedback_type", in->feedback_type);

	if (o->present) {
		put(&w, ",\"original\":{", 13);
		f = true;
		kv(&w, &f, "source", src_names[o->source < 4 ? o->source : 0]);
		kv_opt(&w, &f, "message_id", o->message_id);
		kv_opt(&w, &f, "from", o->from);
		kv_opt(&w, &f, "return_path", o->return_path);
		kv_opt(&w, &f, "to", o->to);
		kv_opt(&w, &f, "subject", o->subject);
		kv_opt(&w, &f, "date", o->date);
		kn(&w, &f, "received_seen", o->n_received_seen);
		put(&w, ",\"received\":[", 13);
		for (unsigned int i = 0; i < o->n_received; i++) {
			const struct bs_received *rc = &o->received[i];
			bool g = true;

			put(&w, i ? ",{" : "{", i ? 2 : 1);
			kv_opt(&w, &g, "from", rc->from_host);
			kv_opt(&w, &g, "rdns", rc->from_rdns);
			kv_opt(&w, &g, "ip", rc->from_ip);
			kv_opt(&w, &g, "by", rc->by_host);
			kv(&w, &g, "raw", rc->raw);
			put(&w, "}", 1);
		}
		put(&w, "],\"dkim\":[", 10);
		for (unsigned int i = 0; i < o->n_dkim; i++) {
			if (i)
				put(&w, ",", 1);
			jstr(&w, o->dkim[i], strlen(o->dkim[i]));
		}
		put(&w, "]", 1);
		/* The block itself is for the verdict, not the log. */
		kn(&w, &f, "header_bytes", o->hdr_raw_len);
		if (o->hdr_raw_cut)
			kb(&w, &f, "header_cut", true);
		put(&w, "}", 1);
	}
	put(&w, "}", 1);
	if (len > 0)
		buf[w.pos < len ? w.pos : len - 1] = '\0';
	return w.pos;
}
