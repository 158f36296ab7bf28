/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A transaction record as one JSON line for the event log.
 *
 * Everything in a record came from the network, so every string is
 * escaped: quote and backslash, control characters, and any byte that is
 * not part of well-formed UTF-8 (each such byte b is written \u00XX, so
 * the line stays valid JSON and valid UTF-8 whatever the sender wrote).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "backstop/json.h"
#include "backstop/pkt.h"
#include "smtp_int.h"

struct jbuf {
	char *p;
	size_t len, off;
	int err;
};

static void
jput(struct jbuf *b, const char *s, size_t n)
{
	if (b->err || b->len - b->off <= n) {
		b->err = 1;
		return;
	}
	memcpy(b->p + b->off, s, n);
	b->off += n;
	b->p[b->off] = '\0';
}

static void
jputs(struct jbuf *b, const char *s)
{
	jput(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
jprintf(struct jbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->off, b->len - b->off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->len - b->off) {
		b->err = 1;
		return;
	}
	b->off += (size_t)n;
}

static void
jput_cb(void *b, const char *s, size_t n)
{
	jput(b, s, n);
}

static void
jstr(struct jbuf *b, const char *str, size_t n)
{
	bs_json_escape(str, n, jput_cb, b);
}

static void
jaddr(struct jbuf *b, uint8_t l3, const uint8_t *a)
{
	char s[INET6_ADDRSTRLEN];

	if (inet_ntop(l3 == BS_L3_IPV6 ? AF_INET6 : AF_INET, a, s,
		    sizeof(s)) == NULL)
		snprintf(s, sizeof(s), "?");
	jstr(b, s, strlen(s));
}

int
bs_smtp_record_json(const struct bs_smtp_record *r, char *buf, size_t len)
{
	struct jbuf b = { buf, len, 0, 0 };
	time_t sec = (time_t)(r->ts_ms / 1000);
	struct tm tm;
	char ts[80];
	int first = 1;

	if (len == 0)
		return -ENOSPC;
	buf[0] = '\0';
	if (gmtime_r(&sec, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, (unsigned int)(r->ts_ms % 1000));
	jputs(&b, "{\"ts\":");
	jstr(&b, ts, strlen(ts));
	jputs(&b, ",\"flow\":{\"src\":");
	jaddr(&b, r->ep.l3, r->ep.client);
	jprintf(&b, ",\"sport\":%u,\"dst\":", r->ep.cport);
	jaddr(&b, r->ep.l3, r->ep.server);
	jprintf(&b, ",\"dport\":%u},\"helo\":", r->ep.sport);
	jstr(&b, r->helo, r->helo_len);
	jputs(&b, ",\"mail_from\":");
	jstr(&b, r->mail_from, r->mail_from_len);
	jputs(&b, ",\"rcpt\":[");
	for (uint32_t i = 0; i < r->nrcpt; i++) {
		if (r->rcpt[i].reply < 200 || r->rcpt[i].reply >= 300)
			continue;
		if (!first)
			jputs(&b, ",");
		first = 0;
		jstr(&b, r->rcpt[i].addr, r->rcpt[i].len);
	}
	jprintf(&b, "],\"size\":%" PRIu64 ",\"reply\":%u", r->size, r->reply);
	if (r->has_sha256) {
		char hex[65];

		for (unsigned int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", r->sha256[i]);
		jputs(&b, ",\"sha256\":\"");
		jput(&b, hex, 64);
		jputs(&b, "\"");
	}
	jputs(&b, "}\n");
	if (b.err)
		return -ENOSPC;
	return (int)b.off;
}

const char *
bs_smtp_cmd_name(int cmd)
{
	static const char *const names[] = {
		[BS_SMTP_CMD_GREETING] = "greeting",
		[BS_SMTP_CMD_EHLO] = "EHLO",
		[BS_SMTP_CMD_HELO] = "HELO",
		[BS_SMTP_CMD_MAIL] = "MAIL",
		[BS_SMTP_CMD_RCPT] = "RCPT",
		[BS_SMTP_CMD_DATA] = "DATA",
		[BS_SMTP_CMD_DOT] = "end-of-data",
		[BS_SMTP_CMD_BDAT] = "BDAT",
		[BS_SMTP_CMD_RSET] = "RSET",
		[BS_SMTP_CMD_NOOP] = "NOOP",
		[BS_SMTP_CMD_QUIT] = "QUIT",
		[BS_SMTP_CMD_STARTTLS] = "STARTTLS",
		[BS_SMTP_CMD_AUTH] = "AUTH",
		[BS_SMTP_CMD_OTHER] = "other",
	};

	if (cmd < 0 || (size_t)cmd >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[cmd];
}
