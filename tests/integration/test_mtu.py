#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""dataplane.mtu: jumbo frames end to end through a port, and clear
start-up errors when a PMD cannot take the frames the MTU asks for.

- net_pcap with mtu 9000 and a capture of SMTP sessions in 9000-byte
  frames: every frame forwarded byte-exact, every session followed and
  logged, each frame in one mbuf (net_pcap cannot scatter, so backstop
  sizes its mbufs for whole frames);
- the same capture at the default MTU arrives as chained mbufs, which
  the engine follows piece by piece (the same records);
- an MTU outside the setting's range is a configuration error;
- net_af_packet (DPDK 22.11 takes at most 1518-byte frames from it)
  with mtu 9000: start-up fails naming the frame size and the limit."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

bstest.require("mtu", corpus=True)
c = bstest.Checker("mtu")
d = bstest.tmpdir()
pc = os.path.join(d, "jumbo.pcap")
# The largest bounces that fit the generator's 64 KB window (it sends
# without waiting for ACKs).
ndr = os.path.join(bstest.CORPUS, "ndr", "sisimai")
big = sorted((os.path.join(ndr, f) for f in os.listdir(ndr)
              if f.endswith(".eml") and
              os.path.getsize(os.path.join(ndr, f)) < 60000),
             key=os.path.getsize)[-6:]
bstest.gen("smtp", pc, "--messages", *big, "--mss", "8960", "--seed", "4")
want = bstest.read_pcap(pc)
c.true("capture has jumbo frames", max(len(f) for f in want) > 9000)


def conf(text):
    p = os.path.join(d, "c%d.yaml" % abs(hash(text)))
    with open(p, "w") as f:
        f.write(text)
    return p


def records(path):
    with open(path) as f:
        return sorted((r["mail_from"], r["size"]) for r in map(json.loads, f))


runs = {}
for mtu in (9000, None):
    out = os.path.join(d, "out%s.pcap" % mtu)
    ev = os.path.join(d, "ev%s.jsonl" % mtu)
    opts = ["--idle-exit", "300", "--event-log", ev]
    if mtu:
        opts += ["--config", conf("dataplane:\n  mtu: %d\n" % mtu)]
    _, rep, _, _, err = bstest.run(
        ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, out)], opts)
    tag = "mtu %s" % (mtu or "default")
    c.eq(tag + ": every frame forwarded byte-exact",
         bstest.frames_diff(bstest.read_pcap(out), want), None)
    c.eq(tag + ": every session followed", rep.get("smtp_flows"), 6)
    c.eq(tag + ": nothing uninspected", rep.get("smtp_uninspected"), 0)
    runs[mtu] = (rep, records(ev))
    if mtu:
        c.true(tag + ": the port log names the MTU", "mtu 9000" in err)
c.eq("mtu 9000: one mbuf per frame", runs[9000][0].get("pkt_multiseg"), 0)
c.true("default mtu: jumbo frames arrive chained",
       runs[None][0].get("pkt_multiseg", 0) > 0)
c.eq("both: the same records", runs[9000][1], runs[None][1])
c.eq("six records", len(runs[9000][1]), 6)

rc, _, _, out, err = bstest.run(
    ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, os.path.join(d, "x.pcap"))],
    ["--config", conf("dataplane.mtu: 50\n")], check=False)
c.true("mtu 50: refused as out of range", rc != 0 and
       "dataplane.mtu" in err)

if os.geteuid() == 0:
    a, b = "bsma%d" % (os.getpid() % 10000), "bsmb%d" % (os.getpid() % 10000)
    subprocess.run(["ip", "link", "del", a], stderr=subprocess.DEVNULL)
    subprocess.check_call(["ip", "link", "add", a, "type", "veth", "peer",
                           "name", b])
    try:
        subprocess.check_call(["ip", "link", "set", a, "up"])
        rc, _, _, out, err = bstest.run(
            ["net_af_packet0,iface=%s" % a],
            ["--config", conf("dataplane.mtu: 9000\n"), "--duration", "1"],
            check=False)
        c.true("af_packet mtu 9000: start-up refused, naming the limit "
               "(%s)" % err.strip().splitlines()[-1:],
               rc != 0 and "needs 9018-byte frames; the PMD takes at most "
               "1518" in err)
    finally:
        subprocess.run(["ip", "link", "del", a], stderr=subprocess.DEVNULL)
else:
    c.true("root for the net_af_packet case", False)
c.done()
