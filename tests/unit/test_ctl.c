/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the control protocol and socket server (ctl.h): every
 * malformed request gets its error code and the connection stays usable;
 * replies come in request order; an oversized line is refused and
 * closed; clients beyond the cap are told "busy"; the socket is created
 * with the configured mode and a live socket is never stolen; and the
 * metrics exposition has a family per counter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <cmocka.h>

#include "backstop/ctl.h"
#include "backstop/metrics.h"

static int calls;

static int
h_stats(void *ctx, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	(void)ctx;
	calls++;
	const json_t *pw = json_object_get(args, "per_worker");
	if (pw != NULL && !json_is_boolean(pw))
		return bs_ctl_fail(e, BS_CTL_E_BAD_ARG, "per_worker: boolean");
	json_object_set_new(result, "calls", json_integer(calls));
	json_object_set_new(result, "per_worker", json_boolean(json_is_true(pw)));
	return 0;
}

static int
h_fail(void *ctx, const json_t *args, json_t *result, struct bs_ctl_err *e)
{
	(void)ctx;
	(void)args;
	(void)result;
	return bs_ctl_fail(e, BS_CTL_E_FAILED, "rules.txt:3: rule 7: nope");
}

static struct bs_ctl_handlers H = {
	.fn = { [BS_CTL_STATS] = h_stats, [BS_CTL_RULES_RELOAD] = h_fail },
};

/* Handle text, return the parsed reply (caller decrefs). */
static json_t *
ask(const char *text)
{
	size_t len;
	char *line = bs_ctl_handle_line(&H, text, strlen(text), &len);
	assert_non_null(line);
	assert_int_equal(line[len - 1], '\n');
	assert_int_equal(strlen(line), len);
	assert_null(memchr(line, '\n', len - 1));
	json_t *r = json_loads(line, 0, NULL);
	assert_non_null(r);
	free(line);
	return r;
}

static void
expect_error(const char *text, const char *code)
{
	json_t *r = ask(text);
	assert_true(json_is_false(json_object_get(r, "ok")));
	const char *got = json_string_value(json_object_get(r, "error"));
	if (got == NULL || strcmp(got, code) != 0)
		fail_msg("%s: got %s, want %s", text, got ? got : "(none)", code);
	assert_non_null(json_string_value(json_object_get(r, "message")));
	json_decref(r);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("", BS_CTL_E_BAD_JSON);
	expect_error("{", BS_CTL_E_BAD_JSON);
	expect_error("[1,2]", BS_CTL_E_BAD_JSON);
	expect_error("\"stats\"", BS_CTL_E_BAD_JSON);
	expect_error("{\"cmd\":\"stats\"} {}", BS_CTL_E_BAD_JSON);
	expect_error("{}", BS_CTL_E_BAD_REQUEST);
	expect_error("{\"cmd\":1}", BS_CTL_E_BAD_REQUEST);
	expect_error("{\"cmd\":\"stats\",\"x\":1}", BS_CTL_E_BAD_REQUEST);
	expect_error("{\"cmd\":\"stats\",\"args\":[]}", BS_CTL_E_BAD_REQUEST);
	expect_error("{\"cmd\":\"stats\",\"id\":[1]}", BS_CTL_E_BAD_REQUEST);
	expect_error("{\"cmd\":\"stats\",\"cmd\":\"status\"}", BS_CTL_E_BAD_JSON);
	expect_error("{\"cmd\":\"reboot\"}", BS_CTL_E_UNKNOWN);
	/* NUL inside a string is refused by the parser (no JSON_ALLOW_NUL). */
	expect_error("{\"cmd\":\"stats\\u0000x\"}", BS_CTL_E_BAD_JSON);
	expect_error("{\"cmd\":\"stats\",\"args\":{\"file\":\"x\"}}",
		BS_CTL_E_BAD_ARG);
	expect_error("{\"cmd\":\"stats\",\"args\":{\"per_worker\":3}}",
		BS_CTL_E_BAD_ARG);
	expect_error("{\"cmd\":\"ledger save\"}", BS_CTL_E_UNAVAILABLE);
	expect_error("{\"cmd\":\"rules reload\"}", BS_CTL_E_FAILED);
	/* Invalid UTF-8 is not JSON. */
	expect_error("{\"cmd\":\"st\xff\"}", BS_CTL_E_BAD_JSON);
}

static void
test_ok(void **state)
{
	(void)state;
	json_t *r = ask("{\"cmd\":\"stats\",\"args\":{\"per_worker\":true},"
		"\"id\":\"a1\"}");
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(r, "id")), "a1");
	json_t *res = json_object_get(r, "result");
	assert_true(json_is_true(json_object_get(res, "per_worker")));
	json_decref(r);
	/* The id is echoed on errors too. */
	r = ask("{\"cmd\":\"nope\",\"id\":42}");
	assert_int_equal(json_integer_value(json_object_get(r, "id")), 42);
	json_decref(r);
	/* help lists every command of the table. */
	r = ask("{\"cmd\":\"help\"}");
	json_t *cmds = json_object_get(json_object_get(r, "result"), "commands");
	assert_int_equal(json_array_size(cmds), BS_CTL__MAX);
	json_decref(r);
	assert_int_equal(bs_ctl_cmd_find("rules reload"), BS_CTL_RULES_RELOAD);
	assert_int_equal(bs_ctl_cmd_find("rules"), -1);
	mode_t m;
	assert_int_equal(bs_ctl_parse_mode("0660", &m), 0);
	assert_int_equal(m, 0660);
	assert_int_equal(bs_ctl_parse_mode("0800", &m), -1);
	assert_int_equal(bs_ctl_parse_mode("", &m), -1);
	assert_int_equal(bs_ctl_parse_mode("1777", &m), -1);
}

/* ---- the server, in a thread ---- */

static char sock_path[108];
static volatile bool srv_stop;

static void *
serve(void *arg)
{
	struct bs_ctl_server *s = arg;
	while (!srv_stop)
		bs_ctl_server_poll(s, 20, -1);
	return NULL;
}

static int
dial(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Read one line (up to 64 KiB) with a timeout; "" on EOF. */
static char *
read_line(int fd)
{
	static char buf[65536];
	size_t n = 0;
	while (n + 1 < sizeof(buf)) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 5000) <= 0)
			fail_msg("no reply");
		ssize_t r = recv(fd, buf + n, 1, 0);
		if (r <= 0)
			break;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return buf;
}

static void
send_all(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void
test_server(void **state)
{
	(void)state;
	char err[256];
	snprintf(sock_path, sizeof(sock_path), "/tmp/test_ctl_%d.sock",
		(int)getpid());
	struct bs_ctl_server_params p = { .path = sock_path, .mode = 0640,
		.gid = (gid_t)-1 };
	struct bs_ctl_server *s = bs_ctl_server_create(&p, &H, err,
		sizeof(err));
	if (s == NULL)
		fail_msg("%s", err);
	struct stat st;
	assert_int_equal(stat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0640);
	/* A second server on a live path is refused. */
	assert_null(bs_ctl_server_create(&p, &H, err, sizeof(err)));
	assert_non_null(strstr(err, "another process"));

	srv_stop = false;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, serve, s), 0);

	/* Pipelined requests (one write): replies in order, and a bad one
	 * in between leaves the connection serving. */
	int fd = dial();
	const char *req = "{\"cmd\":\"stats\",\"id\":1}\n"
		"garbage\r\n"
		"{\"cmd\":\"stats\",\"id\":3}\n";
	send_all(fd, req, strlen(req));
	assert_non_null(strstr(read_line(fd), "\"id\":1"));
	assert_non_null(strstr(read_line(fd), "bad_json"));
	assert_non_null(strstr(read_line(fd), "\"id\":3"));

	/* An oversized line: one too_large reply, then the close. */
	char *big = malloc(BS_CTL_REQ_MAX + 10);
	memset(big, 'x', BS_CTL_REQ_MAX + 10);
	send_all(fd, big, BS_CTL_REQ_MAX + 10);
	free(big);
	assert_non_null(strstr(read_line(fd), "too_large"));
	assert_string_equal(read_line(fd), "");
	close(fd);

	/* Clients beyond the cap are told busy; the others are served. */
	int fds[BS_CTL_CLIENTS_MAX + 1];
	for (int i = 0; i < BS_CTL_CLIENTS_MAX; i++) {
		fds[i] = dial();
		send_all(fds[i], "{\"cmd\":\"stats\"}\n", 16);
		assert_non_null(strstr(read_line(fds[i]), "\"ok\":true"));
	}
	fds[BS_CTL_CLIENTS_MAX] = dial();
	assert_non_null(strstr(read_line(fds[BS_CTL_CLIENTS_MAX]), "busy"));
	for (int i = 0; i <= BS_CTL_CLIENTS_MAX; i++)
		close(fds[i]);
	/* Slots come back once those clients are gone. */
	for (int tries = 0; tries < 100; tries++) {
		usleep(20000);
		if (bs_ctl_server_clients(s) == 0)
			break;
	}
	assert_int_equal(bs_ctl_server_clients(s), 0);
	fd = dial();
	send_all(fd, "{\"cmd\":\"stats\"}\n", 16);
	assert_non_null(strstr(read_line(fd), "\"ok\":true"));
	close(fd);

	srv_stop = true;
	pthread_join(th, NULL);
	bs_ctl_server_free(s);
	/* The path is removed; a stale socket file is replaced. */
	assert_int_equal(access(sock_path, F_OK), -1);
	int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(sfd); /* bound, never listening: stale */
	s = bs_ctl_server_create(&p, &H, err, sizeof(err));
	assert_non_null(s);
	bs_ctl_server_free(s);
}

static void
test_metrics(void **state)
{
	(void)state;
	struct bs_counters w0 = { .v = { 0 } }, w1 = { .v = { 0 } };
	w0.v[BS_CNT_rx_packets] = 5;
	w1.v[BS_CNT_rx_packets] = 7;
	w1.v[BS_CNT_flow_active] = 3;
	/* Verdict latency: 2 at <= 2us and 1 at <= 10us on worker 0, 4 at
	 * <= 10us and 1 beyond the last bucket on worker 1. */
	w0.v[BS_CNT_verdict_latency_le_2us] = 2;
	w0.v[BS_CNT_verdict_latency_le_10us] = 1;
	w0.v[BS_CNT_verdict_latency_count] = 3;
	w0.v[BS_CNT_verdict_latency_sum_ns] = 12000;
	w1.v[BS_CNT_verdict_latency_le_10us] = 4;
	w1.v[BS_CNT_verdict_latency_over] = 1;
	w1.v[BS_CNT_verdict_latency_count] = 5;
	w1.v[BS_CNT_verdict_latency_sum_ns] = 500000000;
	const struct bs_counters *blk[2] = { &w0, &w1 };
	uint64_t rx[2] = { 1, 2 }, tx[2] = { 3, 4 }, dr[2] = { 0, 0 };
	struct bs_metrics_port port = { .id = 0, .name = "net\"x", .rx = rx,
		.tx = tx, .tx_dropped = dr, .ibytes = 99 };
	struct bs_metrics_src src = { .version = "t", .n_workers = 2,
		.workers = blk, .n_ports = 1, .ports = &port,
		.generation = 4, .reloads_ok = { 2, 1 } };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(bs_metrics_write(f, &src), 0);
	fclose(f);
	assert_non_null(strstr(buf, "# TYPE backstop_rx_packets_total counter\n"));
	assert_non_null(strstr(buf, "backstop_rx_packets_total{worker=\"1\"} 7\n"));
	assert_non_null(strstr(buf, "# TYPE backstop_flow_active gauge\n"));
	assert_non_null(strstr(buf, "backstop_flow_active{worker=\"1\"} 3\n"));
	assert_non_null(strstr(buf, "backstop_port_nic_rx_bytes_total{port=\"0\","
		"name=\"net\\\"x\"} 99\n"));
	assert_non_null(strstr(buf, "backstop_rules_generation 4\n"));
	assert_non_null(strstr(buf,
		"backstop_reloads_total{kind=\"config\",result=\"ok\"} 1\n"));
	/* Process-wide rows: one sample, no worker label (0 without a
	 * process block). */
	assert_non_null(strstr(buf, "backstop_ledger_entries 0\n"));
	assert_null(strstr(buf, "backstop_ledger_entries{"));
	/* One family per counter row, nothing else named per counter. */
	unsigned int fams = 0;
	for (char *p = buf; (p = strstr(p, "# TYPE backstop_")) != NULL; p++)
		fams++;
	unsigned int rows = 0; /* rows with a family of their own */
	for (unsigned int i = 0; i < BS_CNT__MAX; i++)
		rows += bs_counter_desc[i].kind != BS_CNT_KIND_HIST;
	assert_true(fams > rows + 2); /* + the histograms, ports, ... */
	for (unsigned int i = 0; i < BS_CNT__MAX; i++) {
		char want[160];
		snprintf(want, sizeof(want), "# HELP backstop_%s", bs_counter_desc[i].name);
		/* A histogram's rows are in its family, not on their own. */
		if (bs_counter_desc[i].kind == BS_CNT_KIND_HIST)
			assert_null(strstr(buf, want));
		else
			assert_non_null(strstr(buf, want));
	}
	/* The histogram: summed over workers, cumulative, +Inf = count. */
	assert_non_null(strstr(buf,
		"# TYPE backstop_verdict_latency_seconds histogram\n"));
	assert_non_null(strstr(buf,
		"backstop_verdict_latency_seconds_bucket{le=\"2e-06\"} 2\n"));
	assert_non_null(strstr(buf,
		"backstop_verdict_latency_seconds_bucket{le=\"5e-06\"} 2\n"));
	assert_non_null(strstr(buf,
		"backstop_verdict_latency_seconds_bucket{le=\"1e-05\"} 7\n"));
	assert_non_null(strstr(buf,
		"backstop_verdict_latency_seconds_bucket{le=\"0.05\"} 7\n"));
	assert_non_null(strstr(buf,
		"backstop_verdict_latency_seconds_bucket{le=\"+Inf\"} 8\n"));
	assert_non_null(strstr(buf,
		"backstop_verdict_latency_seconds_count 8\n"));
	assert_non_null(strstr(buf,
		"backstop_verdict_latency_seconds_sum 0.50001200000000001\n"));
	assert_non_null(strstr(buf,
		"# TYPE backstop_hold_latency_seconds histogram\n"));
	assert_non_null(strstr(buf,
		"backstop_hold_latency_seconds_count 0\n"));
	free(buf);

	struct bs_counters proc = { .v = { 0 } };
	proc.v[BS_CNT_ledger_entries] = 9;
	proc.v[BS_CNT_storm_notes] = 4;
	src.process = &proc;
	f = open_memstream(&buf, &len);
	assert_int_equal(bs_metrics_write(f, &src), 0);
	fclose(f);
	assert_non_null(strstr(buf, "backstop_ledger_entries 9\n"));
	assert_non_null(strstr(buf, "backstop_storm_notes_total 4\n"));
	assert_null(strstr(buf, "backstop_storm_notes_total{"));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_server),
		cmocka_unit_test(test_metrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
