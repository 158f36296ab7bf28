#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Operations: SIGHUP reopens the event log (rotation loses no record)
and reloads the configuration (a reload line, generation 2),
SIGTERM stops cleanly (report printed, net_pcap output complete)."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("signals")
d = bstest.tmpdir()
corpus = os.path.join(bstest.SRC, "..", "shared", "corpus", "not-ndr",
                      "mail-gem")
pc = os.path.join(d, "s.pcap")
bstest.gen("smtp", pc, "--messages", corpus, "--max", "10", "--seed", "5")
ev = os.path.join(d, "ev.jsonl")
out = os.path.join(d, "out.pcap")
# net_pcap replays the capture once; without --idle-exit backstop then
# waits for a signal.
cmd = [bstest.backstop_bin(), "--no-huge", "--no-pci", "-m", "256", "-l",
       "0-1", "--file-prefix", "bssig%d" % os.getpid(),
       "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, out), "--",
       "--event-log", ev]
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)
deadline = time.time() + 20
n1 = 0
while time.time() < deadline:
    time.sleep(0.3)
    if os.path.exists(ev):
        with open(ev) as f:
            n1 = sum(1 for _ in f)
    if n1 >= 5:
        break
# Rotate: move the file away, SIGHUP, then records go to a new file.
os.rename(ev, ev + ".1")
p.send_signal(signal.SIGHUP)
# The reload (a rule compile) and the reopen are done once the reload
# line is in the new file.
deadline = time.time() + 30
while time.time() < deadline:
    time.sleep(0.2)
    if os.path.exists(ev):
        with open(ev) as f:
            if '"event":"reload"' in f.read():
                break
p.send_signal(signal.SIGTERM)
o, e = p.communicate(timeout=30)
c.eq("exit 0 after SIGTERM", p.returncode, 0)
c.true("report printed", "rx_packets" in o)
recs = []
for fn in (ev + ".1", ev):
    if os.path.exists(fn):
        with open(fn) as f:
            recs += [json.loads(x) for x in f]
# SIGHUP also reloads the configuration: one reload line, beside the
# transaction records (docs/OPERATIONS.md).
reloads = [r for r in recs if r.get("event") == "reload"]
recs = [r for r in recs if "event" not in r]
c.eq("no record lost across the rotation", len(recs), 10)
c.eq("SIGHUP reloaded the configuration once", [
    (r["kind"], r["generation"]) for r in reloads], [("config", 2)])
c.true("reopen logged", "event log reopened" in e)
c.eq("output capture complete", len(bstest.read_pcap(out)),
     len(bstest.read_pcap(pc)))
c.done()
