#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The whole packet path classifies mail exactly as the offline
classifier does: corpus messages sent as SMTP sessions through backstop
(full-size segments, and 1..13-byte segments reordered and duplicated)
get, record by record, the same class and the same matched rules as
backstop-classify gives the same bytes.  Also reports how many bounces
the wire path found."""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("pipeline_equiv")
d = bstest.tmpdir()
corpus = os.path.join(bstest.SRC, "..", "shared", "corpus")
PER = {"ndr/sisimai": 60, "ndr/mail-gem": 6, "not-ndr/mail-gem": 30,
       "not-ndr/sisimai": 3, "autoreply/sisimai": 6, "feedback/sisimai": 6}
classify = os.path.join(os.path.dirname(bstest.backstop_bin()),
                        "backstop-classify")

dirs, files = [], []
for sub, n in PER.items():
    dd = os.path.join(corpus, sub)
    if not os.path.isdir(dd):
        continue
    dirs.append(dd)
    names = sorted(f for f in os.listdir(dd)
                   if os.path.isfile(os.path.join(dd, f)) and
                   not f.startswith(("LICENSE", "README")))[:n]
    files += [(sub, os.path.join(dd, f)) for f in names]
c.true("corpus present", len(files) > 50)

# Offline: the exact bytes the server receives, with the same envelope.
offline = {}
for sub, path in files:
    with open(path, "rb") as f:
        m = f.read()
    m = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not m.endswith(b"\r\n"):
        m += b"\r\n"
    digest = hashlib.sha256(m).hexdigest()
    wire = os.path.join(d, digest + ".eml")
    with open(wire, "wb") as f:
        f.write(m)
    bounce = sub.startswith(("ndr/", "autoreply/"))
    r = subprocess.run([classify, "--mail-from",
                        "" if bounce else "sender@example.org", wire],
                       stdout=subprocess.PIPE, text=True, cwd=bstest.SRC)
    j = json.loads(r.stdout)
    offline[digest] = (sub, j["class"], j["rules"])

# Full-size segments for all; tiny chaotic ones for every third file
# (the generator is the slow part).
for chaos, subset in ((0, files), (13, files[::3])):
    pc = os.path.join(d, "s%d.pcap" % chaos)
    ev = os.path.join(d, "ev%d.jsonl" % chaos)
    gen_args = ["--messages"] + [p for _, p in subset] + ["--seed", "4"]
    bstest.gen("smtp", pc, *gen_args + (["--chaos", str(chaos)]
                                         if chaos else []))
    _, rep, _, _, _ = bstest.run(
        ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, os.path.join(d, "o.pcap"))],
        ["--idle-exit", "300", "--event-log", ev, "--event-digest"])
    with open(ev) as f:
        recs = [json.loads(x) for x in f]
    tag = "chaos %d" % chaos
    same = differ = 0
    bounces = {}
    for r in recs:
        o = offline.get(r.get("sha256"))
        if o is None:
            continue  # a file beyond this test's per-folder share
        got = (r.get("class"), r.get("detect", {}).get("rules"))
        if got == (o[1], o[2]):
            same += 1
        else:
            differ += 1
            print("  %s: %s: wire %s, offline %s" % (tag, o[0], got,
                                                     (o[1], o[2])))
        k = o[0].split("/")[0]
        bounces.setdefault(k, [0, 0])
        bounces[k][0] += r.get("class") == "dsn"
        bounces[k][1] += 1
    c.eq(tag + ": every message seen on the wire", same + differ,
         len(subset))
    c.eq(tag + ": wire and offline results differ", differ, 0)
    c.eq(tag + ": no flow left uninspected", rep.get("smtp_uninspected"), 0)
    for k, (b, n) in sorted(bounces.items()):
        print("  %s: %s: %d of %d classed dsn" % (tag, k, b, n))
    if "not-ndr" in bounces:
        c.eq(tag + ": ordinary mail never a bounce", bounces["not-ndr"][0], 0)
c.done()
