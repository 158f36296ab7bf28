/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The Prometheus endpoint's HTTP side (include/backstop/metrics.h):
 * libmicrohttpd serving GET /metrics on its own thread, for every program
 * that exports metrics (the appliance, backstop-milter).  The program
 * supplies the text (bs_metrics_text() over its own counter blocks and
 * figures); this file knows nothing of workers or milter threads.
 *
 * One polling thread, few connections, short timeouts: Prometheus
 * scrapes once per interval and nobody else should hold the endpoint.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "backstop/metrics.h"

struct bs_metrics_http {
	struct MHD_Daemon *mhd;
	bs_metrics_text_fn fn;
	void *ctx;
	char not_found[96];
};

static enum MHD_Result
on_http(void *cls, struct MHD_Connection *conn, const char *url,
	const char *method, const char *version, const char *upload_data,
	size_t *upload_data_size, void **con_cls)
{
	struct bs_metrics_http *h = cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	unsigned int code = MHD_HTTP_OK;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		static const char m[] = "only GET\n";
		resp = MHD_create_response_from_buffer(sizeof(m) - 1,
			(void *)(uintptr_t)m, MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") == 0) {
		size_t len = 0;
		char *text = h->fn(h->ctx, &len);
		if (text == NULL)
			return MHD_NO;
		resp = MHD_create_response_from_buffer(len, text,
			MHD_RESPMEM_MUST_FREE);
		if (resp == NULL)
			free(text);
		else
			MHD_add_response_header(resp, "Content-Type",
				"text/plain; version=0.0.4; charset=utf-8");
	} else {
		resp = MHD_create_response_from_buffer(strlen(h->not_found),
			h->not_found, MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_FOUND;
	}
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* "127.0.0.1:9469", "[::1]:9469", "0.0.0.0:9469" -> an address. */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl,
	char *err, size_t errlen)
{
	char host[128];
	const char *port;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (e == NULL || e[1] != ':' || (size_t)(e - s - 1) >=
				sizeof(host))
			goto bad;
		memcpy(host, s + 1, (size_t)(e - s - 1));
		host[e - s - 1] = '\0';
		port = e + 2;
	} else {
		const char *c = strrchr(s, ':');
		if (c == NULL || (size_t)(c - s) >= sizeof(host))
			goto bad;
		memcpy(host, s, (size_t)(c - s));
		host[c - s] = '\0';
		port = c + 1;
	}
	struct addrinfo hints = {
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
		.ai_socktype = SOCK_STREAM,
	}, *ai = NULL;
	if (*port == '\0' || getaddrinfo(host, port, &hints, &ai) != 0 ||
			ai == NULL)
		goto bad;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
bad:
	snprintf(err, errlen, "metrics.listen: '%.64s' is not ADDR:PORT "
		"(numeric, e.g. 127.0.0.1:9469 or [::1]:9469)", s);
	return -1;
}

struct bs_metrics_http *
bs_metrics_http_start(const char *listen, const char *program,
	bs_metrics_text_fn fn, void *ctx, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (parse_listen(listen, &ss, &sl, err, errlen) < 0)
		return NULL;
	struct bs_metrics_http *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->fn = fn;
	h->ctx = ctx;
	snprintf(h->not_found, sizeof(h->not_found), "%.64s: see /metrics\n",
		program);
	unsigned int port = ss.ss_family == AF_INET6
		? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
		: ntohs(((struct sockaddr_in *)&ss)->sin_port);
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
		on_http, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
		MHD_OPTION_END);
	if (h->mhd == NULL) {
		snprintf(err, errlen, "metrics.listen %.64s: cannot listen "
			"(address in use or not local?)", listen);
		free(h);
		return NULL;
	}
	(void)sl;
	return h;
}

void
bs_metrics_http_stop(struct bs_metrics_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}
