#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The workers judge each message as backstop-classify does.

Real bounces, auto-replies and ordinary mail from the shared corpus,
rewritten to answer mail of the protected domain example.net (so that
relays and BATV have something to say), are sent through backstop
(net_pcap, one port: no side known, so every message is judged) under a
policy with BATV enforcement, a relay glob and verdict.unknown: refuse;
no ledger and no storm (backstop-classify has neither).  Every record's
verdict, action, reasons and verdict domain must equal what
backstop-classify --config prints for the same file and envelope, and
the counters must add up."""
import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("verdict_wire")
bstest.require("verdict_wire", corpus=True)
d = bstest.tmpdir()
classify = os.path.join(os.path.dirname(bstest.backstop_bin()),
                        "backstop-classify")
DOM = re.compile(rb"example\.(?:ne\.jp|co\.jp|jp|org|com)")
PICK = (("ndr/sisimai", "ndr", 40), ("autoreply/sisimai", "autoreply", 10),
        ("not-ndr/mail-gem", "ham", 8))
files = {}   # sha256 -> (path, kind)
n_sent = 0
for src, kind, n in PICK:
    sd = os.path.join(bstest.CORPUS, src)
    out = os.path.join(d, kind)
    os.makedirs(out)
    names = sorted(f for f in os.listdir(sd)
                   if os.path.isfile(os.path.join(sd, f)) and
                   not f.startswith(("LICENSE", "README")))[:n]
    for f in names:
        with open(os.path.join(sd, f), "rb") as fh:
            m = DOM.sub(b"example.net", fh.read())
        # As the wire carries it: CRLF lines, ending in CRLF.
        m = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if not m.endswith(b"\r\n"):
            m += b"\r\n"
        p = os.path.join(out, f)
        with open(p, "wb") as fh:
            fh.write(m)
        # Two corpus files may become the same message: one entry.
        files[hashlib.sha256(m).hexdigest()] = (p, kind)
        n_sent += 1

conf = os.path.join(d, "c.yaml")
with open(conf, "w") as f:
    f.write("""protected_domains: [example.net]
dataplane.inside_port: 2
ledger.learn_outbound: false
storm.enabled: false
verdict.unknown: refuse
relays: ["*.example.net"]
batv:
  enforce: true
  keys: [{id: 1, secret: "wire-test-key"}]
""")
pc = os.path.join(d, "s.pcap")
bstest.gen("smtp", pc, "--messages", os.path.join(d, "ndr"),
           os.path.join(d, "autoreply"), os.path.join(d, "ham"),
           "--seed", "3")
ev = os.path.join(d, "ev.jsonl")
_, rep, _, _, _ = bstest.run(
    ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, os.path.join(d, "o.pcap"))],
    ["--idle-exit", "300", "--config", conf, "--event-log", ev,
     "--event-digest"])
recs = [json.loads(line) for line in open(ev)]
c.eq("one record per message", len(recs), n_sent)

# backstop-classify on the same files, with the envelope gen_pcap sent.
want = {}
for kind, mail_from in (("ndr", ""), ("autoreply", ""),
                        ("ham", "sender@example.org")):
    paths = sorted(p for p, k in files.values() if k == kind)
    paths += sorted(os.path.join(d, kind, f) for f in
                    os.listdir(os.path.join(d, kind))
                    if os.path.join(d, kind, f) not in paths)
    r = subprocess.run([classify, "--config", conf, "--mail-from",
                        mail_from, "--rcpt", "user@example.net"] + paths,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    c.eq("backstop-classify %s exit (%s)" % (kind, r.stderr[-200:]),
         r.returncode, 0)
    for line in r.stdout.splitlines():
        j = json.loads(line)
        want[j["file"]] = j

KEYS = ("verdict", "action", "reasons", "verdict_domain")
same = 0
kinds = {}
for r in recs:
    path, kind = files.get(r.get("sha256"), (None, None))
    if path is None:
        c.true("record of a message sent (%s)" % r.get("sha256"), False)
        continue
    got = tuple(json.dumps(r.get(k)) for k in KEYS)
    exp = tuple(json.dumps(want[path].get(k)) for k in KEYS)
    if got == exp:
        same += 1
    else:
        c.eq("verdict of %s" % os.path.basename(path), got, exp)
    kinds[r.get("verdict")] = kinds.get(r.get("verdict"), 0) + 1
c.eq("every verdict equals backstop-classify's", same, n_sent)
print("verdicts: %s" % kinds)
c.true("the sample exercises several verdicts (%s)" % kinds,
       len(kinds) >= 3)
c.eq("counters: one verdict per message",
     sum(rep.get("verdict_" + k, 0) for k in ("legit", "backscatter",
                                              "unknown", "not_bounce")),
     n_sent)
for k, n in (("legit", "legit"), ("backscatter", "backscatter"),
             ("unknown", "unknown"), ("not-bounce", "not_bounce")):
    c.eq("counter verdict_%s" % n, rep.get("verdict_" + n, 0),
         kinds.get(k, 0))
c.eq("counter verdict_refuse", rep.get("verdict_refuse", 0),
     sum(1 for r in recs if r.get("action") == "refuse"))
# The verdict latency histogram's rows: every judged message timed once,
# in exactly one bucket, and the time spent is plausible.
buckets = [k for k in rep if k.startswith("verdict_latency_le_")]
c.true("latency buckets exported (%d)" % len(buckets), len(buckets) >= 10)
c.eq("latency: one timing per verdict", rep.get("verdict_latency_count"),
     n_sent)
c.eq("latency: each timing in one bucket",
     sum(rep[k] for k in buckets) + rep.get("verdict_latency_over", 0),
     n_sent)
mean_ns = rep.get("verdict_latency_sum_ns", 0) / max(n_sent, 1)
c.true("latency: mean %.0f ns between 100 ns and 100 ms" % mean_ns,
       100 < mean_ns < 1e8)
c.done()
