#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The Prometheus endpoint: /metrics has a family for every counter of the
table (per worker) and the per-port and control-plane figures; `promtool
check metrics` passes; and a real Prometheus server (Debian's) scrapes it,
its HTTP API then returning backstop series with the traffic's values."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402
import ctltest  # noqa: E402

c = bstest.Checker("metrics")
bstest.require("metrics", programs=("promtool", "prometheus"),
               corpus=True)
d = bstest.tmpdir()
pc = os.path.join(d, "s.pcap")
bstest.gen("smtp", pc, "--messages",
           os.path.join(bstest.CORPUS, "ndr", "sisimai"), "--max", "10",
           "--seed", "4")
dm = ctltest.Daemon(d, ["net_pcap0,rx_pcap=%s,infinite_rx=1" % pc,
                        "net_null0,no-rx=1"], metrics=True,
                    extra_cfg="dataplane.inside_port: 2\n")
base = "http://127.0.0.1:%d" % dm.metrics_port
time.sleep(1)


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, None, ""


code, ctype, text = get(base + "/metrics")
c.eq("GET /metrics", code, 200)
c.eq("exposition content type", ctype,
     "text/plain; version=0.0.4; charset=utf-8")
names = [line.split("`")[1] for line in subprocess.run(
    [bstest.backstop_bin(), "--list-counters"], stdout=subprocess.PIPE,
    text=True).stdout.splitlines() if line.startswith("| `") and
    "histogram part" not in line]
types = {}
for line in text.splitlines():
    if line.startswith("# TYPE "):
        _, _, n, t = line.split()
        types[n] = t
missing = [n for n in names if "backstop_%s_total" % n not in types and
           "backstop_%s" % n not in types]
c.eq("a family per counter", missing, [])
c.eq("verdict latency: a histogram",
     types.get("backstop_verdict_latency_seconds"), "histogram")
c.eq("hold latency: a histogram",
     types.get("backstop_hold_latency_seconds"), "histogram")
c.true("counters end in _total", all(
    n.endswith("_total") for n, t in types.items() if t == "counter"))
samples = {}
for line in text.splitlines():
    if line and not line.startswith("#"):
        k, v = line.rsplit(" ", 1)
        samples[k] = float(v)
c.true("rx counted", samples.get('backstop_rx_packets_total{worker="0"}',
                                 0) > 0)
c.true("per-port series", any(k.startswith("backstop_port_rx_packets_total"
                                           "{port=\"0\",name=\"net_pcap0\"")
                              for k in samples))
c.eq("generation", samples.get("backstop_rules_generation"), 1.0)
# Process-wide rows (ledger, storm): one sample without a worker label.
c.eq("process-wide row: one unlabeled sample",
     [k for k in samples if k.startswith("backstop_ledger_entries")],
     ["backstop_ledger_entries"])
c.eq("process-wide counter: one unlabeled sample",
     [k for k in samples if k.startswith("backstop_storm_notes_total")],
     ["backstop_storm_notes_total"])
r = subprocess.run(["promtool", "check", "metrics"], input=text,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
c.eq("promtool check metrics (%s)" % r.stdout.strip()[:300], r.returncode, 0)
c.eq("other path: 404", get(base + "/")[0], 404)
c.eq("POST: 405", get(base + "/metrics", "POST")[0], 405)

# A real Prometheus scrapes it.
pport = ctltest.free_port()
pcfg = os.path.join(d, "prometheus.yml")
with open(pcfg, "w") as f:
    f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: backstop\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n" % dm.metrics_port)
plog = open(os.path.join(d, "prometheus.log"), "w")
prom = subprocess.Popen(["prometheus", "--config.file=" + pcfg,
                         "--storage.tsdb.path=" + os.path.join(d, "tsdb"),
                         "--web.listen-address=127.0.0.1:%d" % pport],
                        stdout=plog, stderr=subprocess.STDOUT)


def query(q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (
        pport, urllib.parse.urlencode({"query": q}))
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())["data"]["result"]
    except (OSError, ValueError, KeyError):
        return None


res = up = None
deadline = time.time() + 90
while time.time() < deadline:
    time.sleep(1)
    up = query('up{job="backstop"}')
    res = query('sum(backstop_rx_packets_total{job="backstop"})')
    if res and up and up[0]["value"][1] == "1":
        break
c.true("prometheus: target up", bool(up) and up[0]["value"][1] == "1")
c.true("prometheus: backstop series with traffic",
       bool(res) and float(res[0]["value"][1]) > 0)
gen = query("backstop_rules_generation")
c.true("prometheus: generation series", bool(gen) and
       gen[0]["value"][1] == "1")
prom.terminate()
prom.wait(timeout=30)
plog.close()
if not (res and up):
    with open(os.path.join(d, "prometheus.log")) as f:
        sys.stdout.write(f.read()[-3000:])
rc, rep, out = dm.stop()
c.eq("clean exit", rc, 0)
c.done()
