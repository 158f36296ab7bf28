/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Prometheus text exposition (see include/backstop/metrics.h).  The
 * counter part is one loop over the counter table; the rest are the few
 * figures that are not per-worker counters (ports, the control plane).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backstop/metrics.h"

#define PFX "backstop_"

static void
family(FILE *f, const char *name, const char *suffix, const char *type,
	const char *help)
{
	fprintf(f, "# HELP " PFX "%s%s ", name, suffix);
	/* HELP text: backslash and newline are the only escapes. */
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fprintf(f, "\n# TYPE " PFX "%s%s %s\n", name, suffix, type);
}

/* A label value: backslash, quote and newline escaped. */
static void
label_value(FILE *f, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\' || *p == '"')
			fputc('\\', f);
		if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
}

static void
counters(FILE *f, const struct bs_metrics_src *s)
{
	for (unsigned int i = 0; i < BS_CNT__MAX; i++) {
		const struct bs_counter_desc *d = &bs_counter_desc[i];
		if (d->kind == BS_CNT_KIND_HIST)
			continue; /* in its histogram (latencies()) */
		bool gauge = d->kind == BS_CNT_KIND_GAUGE;
		const char *sfx = gauge ? "" : "_total";
		if (bs_counter_process[i]) {
			/* Kept once per process (ledger, storm): no worker
			 * label; 0 while nothing keeps it. */
			family(f, d->name, sfx, gauge ? "gauge" : "counter",
				d->help);
			fprintf(f, PFX "%s%s %" PRIu64 "\n", d->name, sfx,
				s->process != NULL ? s->process->v[i] : 0);
			continue;
		}
		family(f, d->name, sfx, gauge ? "gauge" : "counter", d->help);
		for (unsigned int w = 0; w < s->n_workers; w++)
			fprintf(f, PFX "%s%s{worker=\"%u\"} %" PRIu64 "\n",
				d->name, sfx, w, s->workers[w]->v[i]);
	}
}

/* Per port and worker: what the workers counted. */
static void
port_worker(FILE *f, const struct bs_metrics_src *s, const char *name,
	const char *help, size_t off)
{
	family(f, name, "_total", "counter", help);
	for (unsigned int p = 0; p < s->n_ports; p++) {
		const struct bs_metrics_port *pt = &s->ports[p];
		const uint64_t *v = *(const uint64_t *const *)((const char *)pt +
			off);
		for (unsigned int w = 0; w < s->n_workers; w++) {
			fprintf(f, PFX "%s_total{port=\"%u\",name=\"", name,
				pt->id);
			label_value(f, pt->name);
			fprintf(f, "\",worker=\"%u\"} %" PRIu64 "\n", w, v[w]);
		}
	}
}

/* Per port: what the PMD counted. */
static void
port_nic(FILE *f, const struct bs_metrics_src *s, const char *name,
	const char *help, size_t off)
{
	family(f, name, "_total", "counter", help);
	for (unsigned int p = 0; p < s->n_ports; p++) {
		const struct bs_metrics_port *pt = &s->ports[p];
		fprintf(f, PFX "%s_total{port=\"%u\",name=\"", name, pt->id);
		label_value(f, pt->name);
		fprintf(f, "\"} %" PRIu64 "\n",
			*(const uint64_t *)((const char *)pt + off));
	}
}

static void
ports(FILE *f, const struct bs_metrics_src *s)
{
#define PW(n, field, help)                                                   \
	port_worker(f, s, n, help, offsetof(struct bs_metrics_port, field))
#define PN(n, field, help)                                                   \
	port_nic(f, s, n, help, offsetof(struct bs_metrics_port, field))
	PW("port_rx_packets", rx, "Packets received on the port, by worker");
	PW("port_tx_packets", tx, "Packets sent out of the port, by worker");
	PW("port_tx_dropped", tx_dropped,
		"Packets the port's TX queue refused after retries, by worker");
	PN("port_nic_rx_packets", ipackets, "Packets the PMD received");
	PN("port_nic_tx_packets", opackets, "Packets the PMD sent");
	PN("port_nic_rx_bytes", ibytes, "Bytes the PMD received");
	PN("port_nic_tx_bytes", obytes, "Bytes the PMD sent");
	PN("port_nic_rx_missed", imissed,
		"Packets the NIC dropped: RX queue full (imissed)");
	PN("port_nic_rx_errors", ierrors, "Erroneous received packets");
	PN("port_nic_tx_errors", oerrors, "Failed transmissions");
	PN("port_nic_rx_nombuf", rx_nombuf,
		"RX mbuf allocation failures (the pool ran dry)");
#undef PW
#undef PN
}

static void
gauge(FILE *f, const char *name, const char *help, double v)
{
	family(f, name, "", "gauge", help);
	fprintf(f, PFX "%s %.17g\n", name, v);
}

/*
 * A latency histogram, from its rows in the counter table
 * (BS_CNT_LATENCY): every worker's buckets summed, then made cumulative
 * as Prometheus wants them.
 */
static void
latency(FILE *f, const struct bs_metrics_src *s, const char *name,
	const char *help, unsigned int first)
{
	uint64_t cum = 0, count = 0, sum_ns = 0;

	family(f, name, "", "histogram", help);
	for (unsigned int b = 0; b < BS_LATENCY_N; b++) {
		for (unsigned int w = 0; w < s->n_workers; w++)
			cum += s->workers[w]->v[first + b];
		fprintf(f, PFX "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
			bs_latency_le[b], cum);
	}
	for (unsigned int w = 0; w < s->n_workers; w++) {
		count += s->workers[w]->v[first + BS_LATENCY_N + 1];
		sum_ns += s->workers[w]->v[first + BS_LATENCY_N + 2];
	}
	/* Rows are read while workers write them: a bucket may be a burst
	 * ahead of the count; +Inf must be at least every bucket. */
	if (count < cum)
		count = cum;
	fprintf(f, PFX "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, count);
	fprintf(f, PFX "%s_sum %.17g\n", name, (double)sum_ns / 1e9);
	fprintf(f, PFX "%s_count %" PRIu64 "\n", name, count);
}

static void
latencies(FILE *f, const struct bs_metrics_src *s)
{
	latency(f, s, "verdict_latency_seconds",
		"Time from the end of a judged message to its verdict (the end "
		"of detection and the verdict)",
		BS_CNT_verdict_latency_le_2us);
	latency(f, s, "hold_latency_seconds",
		"Time the segment that ends a message stays in the worker "
		"(engine, detection's end, verdict, refusal): its added delay",
		BS_CNT_hold_latency_le_2us);
}

static void
control(FILE *f, const struct bs_metrics_src *s)
{
	family(f, "build_info", "", "gauge",
		"Program (backstop, backstop-milter) and version running");
	fprintf(f, PFX "build_info{program=\"");
	label_value(f, s->program ? s->program : "backstop");
	fprintf(f, "\",version=\"");
	label_value(f, s->version ? s->version : "");
	fprintf(f, "\"} 1\n");
	gauge(f, "start_time_seconds", "Start time, seconds since the epoch",
		s->start_time);
	gauge(f, "workers", "Counter blocks in the worker-labelled families "
		"(the appliance: its worker lcores; backstop-milter: 1, its "
		"threads' blocks summed)", s->n_workers);
	if (s->flow_capacity != NULL) {
		family(f, "flow_table_capacity", "", "gauge",
			"SMTP flows one worker's table holds (flow.table_size)");
		for (unsigned int w = 0; w < s->n_workers; w++)
			fprintf(f, PFX "flow_table_capacity{worker=\"%u\"} %u\n",
				w, s->flow_capacity[w]);
	}
	gauge(f, "rules_generation",
		"Generation of the published rule set and settings (1 at "
		"start, +1 per successful reload)", (double)s->generation);
	gauge(f, "rules", "Rules in the published set", s->rules);
	gauge(f, "rules_compile_seconds",
		"Time the published set took to compile (rules, scratch)",
		s->compile_seconds);
	gauge(f, "rules_retired",
		"Replaced sets still used by messages that started on them",
		s->retired);
	family(f, "reloads", "_total", "counter",
		"Reloads by kind (rules, config) and result");
	static const char *const kind[2] = { "rules", "config" };
	for (unsigned int k = 0; k < 2; k++) {
		fprintf(f, PFX "reloads_total{kind=\"%s\",result=\"ok\"} %"
			PRIu64 "\n", kind[k], s->reloads_ok[k]);
		fprintf(f, PFX "reloads_total{kind=\"%s\",result=\"failed\"} %"
			PRIu64 "\n", kind[k], s->reloads_failed[k]);
	}
	family(f, "control_requests", "_total", "counter",
		"Control socket requests answered");
	fprintf(f, PFX "control_requests_total %" PRIu64 "\n", s->ctl_requests);
	family(f, "control_denied", "_total", "counter",
		"Control socket clients refused (peer credentials)");
	fprintf(f, PFX "control_denied_total %" PRIu64 "\n", s->ctl_denied);
}

int
bs_metrics_write(FILE *f, const struct bs_metrics_src *s)
{
	counters(f, s);
	latencies(f, s);
	ports(f, s);
	control(f, s);
	return ferror(f) ? -EIO : 0;
}

char *
bs_metrics_text(const struct bs_metrics_src *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (f == NULL)
		return NULL;
	int rc = bs_metrics_write(f, s);
	if (fclose(f) != 0 || rc < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
