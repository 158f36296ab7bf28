/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control socket server (see include/backstop/ctl.h): a UNIX stream
 * socket served by one poll() loop on the control thread, never on a
 * worker.
 *
 * Every client is non-blocking with a bounded input buffer (one request
 * line, BS_CTL_REQ_MAX) and a bounded output queue (BS_CTL_OUT_MAX); a
 * client that sends an oversized line gets one error reply and is closed,
 * one that stops reading its replies is closed when its queue is full,
 * one that stays silent for BS_CTL_IDLE_MS is closed.  Peer credentials
 * (SO_PEERCRED) are checked at accept: root, the daemon's own uid and,
 * when a group is configured, clients whose primary group it is; anyone
 * else gets "denied" and is closed, whatever the socket's mode allows.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backstop/ctl.h"

/*
 * Connections waiting to be accepted.  A UNIX socket refuses a connect
 * once its backlog is full (EAGAIN for a non-blocking client), so it
 * holds more than the clients served at once: a burst of CLIENTS_MAX
 * scripts connecting together must all get in (or be told "busy").
 */
#define BS_CTL_BACKLOG (4 * BS_CTL_CLIENTS_MAX)

struct client {
	int fd;
	uint64_t last_ms;
	size_t in_len;
	char *in;            /* BS_CTL_REQ_MAX bytes */
	char *out;           /* queued reply bytes */
	size_t out_len, out_off, out_cap;
	bool closing;        /* close once out is written */
};

struct bs_ctl_server {
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uid_t uid;
	gid_t gid;
	bool gid_allowed;
	struct bs_ctl_handlers h;
	unsigned int n;
	struct client cl[BS_CTL_CLIENTS_MAX];
	uint64_t requests, denied;
};

static uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
bs_ctl_parse_mode(const char *s, mode_t *out)
{
	unsigned int v = 0;
	if (s == NULL || *s == '\0' || strlen(s) > 4)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '7')
			return -1;
		v = v * 8 + (unsigned int)(*s - '0');
	}
	if (v > 0777)
		return -1;
	*out = (mode_t)v;
	return 0;
}

/* Is somebody serving path?  (A stale socket refuses connections.) */
static bool
path_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return live;
}

struct bs_ctl_server *
bs_ctl_server_create(const struct bs_ctl_server_params *p,
	const struct bs_ctl_handlers *h, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (p->path == NULL || p->path[0] == '\0' ||
			strlen(p->path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "control socket path empty or longer "
			"than %zu bytes", sizeof(sa.sun_path) - 1);
		return NULL;
	}
	memcpy(sa.sun_path, p->path, strlen(p->path) + 1);

	struct stat st;
	if (lstat(p->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket",
				p->path);
			return NULL;
		}
		if (path_live(&sa)) {
			snprintf(err, errlen, "%s: another process serves it",
				p->path);
			return NULL;
		}
		unlink(p->path);
	}
	struct bs_ctl_server *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (unsigned int i = 0; i < BS_CTL_CLIENTS_MAX; i++)
		s->cl[i].fd = -1;
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		free(s);
		return NULL;
	}
	/* Created owner-only (umask), then opened up to the configured
	 * mode: there is no moment where it is wider than asked. */
	mode_t old = umask(0177);
	int rc = bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "%s: bind: %s", p->path, strerror(e));
		close(s->lfd);
		free(s);
		return NULL;
	}
	snprintf(s->path, sizeof(s->path), "%s", p->path);
	if ((p->gid != (gid_t)-1 && chown(p->path, (uid_t)-1, p->gid) < 0) ||
			chmod(p->path, p->mode) < 0 ||
			listen(s->lfd, BS_CTL_BACKLOG) < 0) {
		snprintf(err, errlen, "%s: %s", p->path, strerror(errno));
		bs_ctl_server_free(s);
		return NULL;
	}
	s->uid = geteuid();
	s->gid = p->gid;
	s->gid_allowed = p->gid_allowed && p->gid != (gid_t)-1;
	s->h = *h;
	return s;
}

static void
client_close(struct bs_ctl_server *s, struct client *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	s->n--;
}

/* Queue len bytes of reply; false if the client's queue is full. */
static bool
client_queue(struct client *c, const char *buf, size_t len)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len - c->out_off + len > BS_CTL_OUT_MAX)
		return false;
	if (c->out_len + len > c->out_cap) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off,
				c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		char *n = realloc(c->out, cap);
		if (n == NULL)
			return false;
		c->out = n;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	return true;
}

/* Write what the socket takes now; false if the client is gone. */
static bool
client_flush(struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
			c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
				errno == EINTR;
		c->out_off += (size_t)n;
	}
	return true;
}

/* Send a one-off error line and drop the connection (not a slot). */
static void
refuse(int fd, const char *code, const char *msg)
{
	size_t len;
	char *line = bs_ctl_error_line(code, msg, &len);
	if (line != NULL) {
		ssize_t n = send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)n;
		free(line);
	}
	/* Read what the client already sent (a bounded amount): closing
	 * with unread bytes can make the client's read fail before it gets
	 * the reply. */
	shutdown(fd, SHUT_WR);
	char sink[4096];
	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0;
			i++)
		;
	close(fd);
}

static void
do_accept(struct bs_ctl_server *s, uint64_t now)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL,
			SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ucred uc;
		socklen_t ul = sizeof(uc);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0) {
			s->denied++;
			refuse(fd, BS_CTL_E_DENIED, "peer credentials unknown");
			continue;
		}
		if (uc.uid != 0 && uc.uid != s->uid &&
				!(s->gid_allowed && uc.gid == s->gid)) {
			char msg[128];
			snprintf(msg, sizeof(msg), "uid %u is not allowed to use "
				"this socket", (unsigned int)uc.uid);
			s->denied++;
			refuse(fd, BS_CTL_E_DENIED, msg);
			continue;
		}
		if (s->n == BS_CTL_CLIENTS_MAX) {
			refuse(fd, BS_CTL_E_BUSY, "too many control clients");
			continue;
		}
		struct client *c = NULL;
		for (unsigned int i = 0; i < BS_CTL_CLIENTS_MAX; i++)
			if (s->cl[i].fd < 0) {
				c = &s->cl[i];
				break;
			}
		c->in = malloc(BS_CTL_REQ_MAX);
		if (c->in == NULL) {
			refuse(fd, BS_CTL_E_BUSY, "out of memory");
			continue;
		}
		c->fd = fd;
		c->last_ms = now;
		s->n++;
	}
}

/* Answer every complete line in c's input buffer. */
static void
client_lines(struct bs_ctl_server *s, struct client *c)
{
	size_t start = 0;
	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->in_len - start);
		if (nl == NULL)
			break;
		size_t len = (size_t)(nl - (c->in + start));
		/* Tolerate CRLF from interactive tools (socat, nc). */
		size_t l = len > 0 && c->in[start + len - 1] == '\r' ? len - 1
								    : len;
		if (l > 0) {
			size_t rl;
			char *reply = bs_ctl_handle_line(&s->h, c->in + start,
				l, &rl);
			s->requests++;
			if (reply == NULL || !client_queue(c, reply, rl))
				c->closing = true;
			free(reply);
		}
		start += len + 1;
		if (c->closing)
			break;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
	if (c->in_len == BS_CTL_REQ_MAX && !c->closing) {
		size_t rl;
		char msg[96];
		snprintf(msg, sizeof(msg), "request line longer than %u bytes; "
			"closing", BS_CTL_REQ_MAX);
		char *reply = bs_ctl_error_line(BS_CTL_E_TOO_LARGE, msg, &rl);
		if (reply != NULL)
			client_queue(c, reply, rl);
		free(reply);
		c->closing = true;
	}
}

/* Read what there is; false when the client is to be closed now. */
static bool
client_read(struct bs_ctl_server *s, struct client *c, uint64_t now)
{
	while (!c->closing) {
		ssize_t n = recv(c->fd, c->in + c->in_len,
			BS_CTL_REQ_MAX - c->in_len, MSG_DONTWAIT);
		if (n == 0) {
			/* The client is done sending: finish its replies,
			 * then close. */
			c->closing = true;
			return c->out_off < c->out_len;
		}
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ||
				errno == EINTR;
		c->last_ms = now;
		c->in_len += (size_t)n;
		client_lines(s, c);
	}
	return true;
}

int
bs_ctl_server_poll(struct bs_ctl_server *s, int timeout_ms, int extra_fd)
{
	struct pollfd pf[BS_CTL_CLIENTS_MAX + 2];
	struct client *who[BS_CTL_CLIENTS_MAX + 2];
	unsigned int n = 0;
	int extra = -1;

	pf[n] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
	who[n++] = NULL;
	if (extra_fd >= 0) {
		extra = (int)n;
		pf[n] = (struct pollfd){ .fd = extra_fd, .events = POLLIN };
		who[n++] = NULL;
	}
	for (unsigned int i = 0; i < BS_CTL_CLIENTS_MAX; i++) {
		struct client *c = &s->cl[i];
		if (c->fd < 0)
			continue;
		short ev = c->closing ? 0 : POLLIN;
		if (c->out_off < c->out_len)
			ev |= POLLOUT;
		pf[n] = (struct pollfd){ .fd = c->fd, .events = ev };
		who[n++] = c;
	}
	int r = poll(pf, n, timeout_ms);
	uint64_t now = now_ms();
	if (r > 0) {
		for (unsigned int i = 0; i < n; i++) {
			struct client *c = who[i];
			if (c == NULL || pf[i].revents == 0)
				continue;
			bool keep = true;
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
				keep = client_read(s, c, now);
			if (keep)
				keep = client_flush(c);
			if (!keep || (c->closing && c->out_off == c->out_len))
				client_close(s, c);
		}
		if (pf[0].revents & POLLIN)
			do_accept(s, now);
	}
	/* Idle clients give their slot back. */
	for (unsigned int i = 0; i < BS_CTL_CLIENTS_MAX; i++) {
		struct client *c = &s->cl[i];
		if (c->fd >= 0 && now - c->last_ms > BS_CTL_IDLE_MS)
			client_close(s, c);
	}
	return extra >= 0 && r > 0 && (pf[extra].revents & POLLIN) ? 1 : 0;
}

unsigned int
bs_ctl_server_clients(const struct bs_ctl_server *s)
{
	return s->n;
}

uint64_t
bs_ctl_server_requests(const struct bs_ctl_server *s)
{
	return s->requests;
}

uint64_t
bs_ctl_server_denied(const struct bs_ctl_server *s)
{
	return s->denied;
}

void
bs_ctl_server_free(struct bs_ctl_server *s)
{
	if (s == NULL)
		return;
	for (unsigned int i = 0; i < BS_CTL_CLIENTS_MAX; i++)
		if (s->cl[i].fd >= 0)
			client_close(s, &s->cl[i]);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->path[0] != '\0')
		unlink(s->path);
	free(s);
}
