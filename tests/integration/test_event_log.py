#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The event log on captures of real mail: one JSON line per transaction
with the envelope, size and SHA-256 the generator computed itself from the
message files, identical whether each session travels in full-size
segments or in tiny, reordered and duplicated ones."""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("event_log")
d = bstest.tmpdir()
corpus = os.path.join(bstest.SRC, "..", "shared", "corpus")
dirs = [os.path.join(corpus, x) for x in ("ndr/sisimai", "not-ndr/mail-gem",
                                          "autoreply/sisimai")]
dirs = [x for x in dirs if os.path.isdir(x)]
PER_DIR = 6


def expected():
    """(mail_from, size, sha256) per message, as gen_pcap sends them."""
    want = []
    for dd in dirs:
        names = sorted(f for f in os.listdir(dd)
                       if os.path.isfile(os.path.join(dd, f)) and
                       not f.startswith(("LICENSE", "README")))[:PER_DIR]
        for f in names:
            with open(os.path.join(dd, f), "rb") as fh:
                m = fh.read()
            m = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if not m.endswith(b"\r\n"):
                m += b"\r\n"
            bounce = "/ndr/" in dd or "/autoreply/" in dd
            want.append(("" if bounce else "sender@example.org", len(m),
                         hashlib.sha256(m).hexdigest()))
    return sorted(want)


def run(chaos):
    """chaos > 0: tiny chaotic segments; chaos < 0: jumbo segments of
    -chaos bytes (net_pcap hands them over as chained mbufs)."""
    pc = os.path.join(d, "s%d.pcap" % chaos)
    ev = os.path.join(d, "ev%d.jsonl" % chaos)
    args = ["--messages"] + dirs + ["--max", str(PER_DIR), "--seed", "9"]
    if chaos > 0:
        args += ["--chaos", str(chaos)]
    elif chaos < 0:
        args += ["--mss", str(-chaos)]
    bstest.gen("smtp", pc, *args)
    out = os.path.join(d, "o%d.pcap" % chaos)
    _, rep, _, _, _ = bstest.run(
        ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, out)],
        ["--idle-exit", "300", "--event-log", ev, "--event-digest"])
    rep["_forwarded_exact"] = bstest.frames_diff(bstest.read_pcap(out),
                                                 bstest.read_pcap(pc))
    recs = []
    with open(ev) as f:
        for line in f:
            recs.append(json.loads(line))
    return rep, recs


want = expected()
c.true("corpus present", len(want) >= 10)
for chaos in (0, 7, -8960):
    rep, recs = run(chaos)
    tag = "chaos %d" % chaos
    c.eq(tag + ": one record per message", len(recs), len(want))
    got = sorted((r["mail_from"], r["size"], r.get("sha256")) for r in recs)
    c.eq(tag + ": envelope, size and SHA-256 of every message", got, want)
    c.true(tag + ": every reply 250", all(r["reply"] == 250 for r in recs))
    c.true(tag + ": recipients", all(r["rcpt"] == ["user@example.net"]
                                     for r in recs))
    c.true(tag + ": flow endpoints", all(
        r["flow"]["dst"] == "198.51.100.25" and r["flow"]["dport"] == 25
        for r in recs))
    c.eq(tag + ": records counted", rep.get("event_log_records"), len(want))
    c.eq(tag + ": every frame forwarded byte-exact",
         rep["_forwarded_exact"], None)
    c.eq(tag + ": nothing uninspected", rep.get("smtp_uninspected"), 0)
    c.eq(tag + ": nothing dropped", rep.get("event_log_dropped"), 0)
    c.eq(tag + ": no segment dropped (duplicates are identical)",
         rep.get("seg_dropped_conflict"), 0)
    if chaos < 0:
        c.true(tag + ": jumbo frames arrived as chained mbufs (%s)" %
               rep.get("pkt_multiseg"), rep.get("pkt_multiseg", 0) > 0)
# Port reuse: the same 4-tuple carries one session after another; each
# SYN after a FIN starts a new flow, and every message still gets its
# record.
pc, ev = os.path.join(d, "reuse.pcap"), os.path.join(d, "reuse.jsonl")
bstest.gen("smtp", pc, "--messages", dirs[0], "--max", "4", "--same-port",
           "--seed", "2")
_, rep, _, _, _ = bstest.run(
    ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, os.path.join(d, "o.pcap"))],
    ["--idle-exit", "300", "--event-log", ev])
with open(ev) as f:
    n = sum(1 for _ in f)
c.eq("port reuse: one record per session", n, 4)
c.eq("port reuse: flows restarted", rep.get("flow_reused"), 3)

# Bypass: smtp.inspect false tracks flows but follows no session.
conf = os.path.join(d, "bypass.yaml")
with open(conf, "w") as f:
    f.write("smtp:\n  inspect: false\n")
ev = os.path.join(d, "bypass.jsonl")
_, rep, _, _, _ = bstest.run(
    ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, os.path.join(d, "o.pcap"))],
    ["--idle-exit", "300", "--event-log", ev, "--config", conf])
c.eq("bypass: no records", os.path.getsize(ev), 0)
c.eq("bypass: no session followed", rep.get("smtp_flows"), 0)
c.eq("bypass: flows still tracked", rep.get("flow_created"), 4)
c.done()
