#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Backstop believes only what the protected server's kernel (Linux)
would believe, through the whole packet path, on crafted captures:

- handshake order: the client's ACK seen before the SYN-ACK is still a
  handshake, not a mid-stream pickup;
- checksums: a segment with a bad TCP or IPv4 checksum (that the server
  discards) neither feeds reassembly nor closes the flow, while every
  valid one (IPv6 extension headers, VLANs, IPv4 options) is followed;
- RST and FIN: a RST in the window but not at rcv_nxt, FINs ahead of the
  stream and a SYN after them neither close nor restart the flow;
- identity: the same 5-tuple on other VLANs (outer or inner tag) is
  another connection;
- direction: on an inline pair, a packet claiming to come from the server
  but arriving on the client's side is not the server's word (forwarded,
  counted); the server's side is reported (inside, outside); a lone
  reflecting port has no side.

Every capture carries one ordinary session whose message must be logged
as sent, and every frame must leave unchanged."""
import importlib.util
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "gen_pcap", os.path.join(bstest.SRC, "scripts", "gen_pcap.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

c = bstest.Checker("tcp_belief")
d = bstest.tmpdir()
rnd = random.Random(1234)
SENDER = "alice@example.org"


def session(cli, port, mail_from=SENDER.encode(), **kw):
    conv = gen.TcpConv(rnd, cli, "198.51.100.25", port, 25, **kw)
    gen.smtp_session(conv, mail_from=mail_from)
    return conv


def find(conv, payload_start, from_cli=True):
    """Index in conv.pkts of the first segment whose payload starts so."""
    for i, (f, fc) in enumerate(conv.pkts):
        if fc == from_cli and f.haslayer("Raw") and \
                f["Raw"].load.startswith(payload_start):
            return i
    raise KeyError(payload_start)


def rebuild(f):
    return gen.Ether(bytes(f))


def run(name, frames, expect, conf=None, frames_exact=True):
    pc, out = os.path.join(d, name + ".pcap"), os.path.join(d, name + ".o")
    ev = os.path.join(d, name + ".jsonl")
    gen.write(pc, frames)
    opts = ["--idle-exit", "300", "--event-log", ev]
    if conf:
        opts += ["--config", conf]
    _, rep, _, _, _ = bstest.run(
        ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, out)], opts)
    if frames_exact:
        c.eq(name + ": every frame forwarded byte-exact",
             bstest.frames_diff(bstest.read_pcap(out),
                                bstest.read_pcap(pc)), None)
    check(name, rep, expect)
    return rep, records(ev)


def check(name, rep, expect):
    for k, v in expect.items():
        c.eq("%s: %s" % (name, k), rep.get(k), v)


def records(ev):
    with open(ev) as f:
        return [json.loads(x) for x in f]


def logged(recs, sender=SENDER):
    return [(r["mail_from"], r["reply"]) for r in recs
            if r["mail_from"] == sender]


# 1. Handshake order: SYN, then the client's ACK, then the SYN-ACK.
a = session("203.0.113.10", 41000)
a.pkts[1], a.pkts[2] = a.pkts[2], a.pkts[1]
rep, recs = run("hs_order", a.pkts, {"smtp_midstream": 0,
                                     "smtp_uninspected": 0})
c.eq("hs_order: the message is logged", logged(recs), [(SENDER, 250)])

# 2. Checksums.  Before the real MAIL command, a copy at the same sequence
# number carrying the null sender with a bad TCP checksum; before DATA, a
# RST at exactly rcv_nxt with a bad IPv4 header checksum.  Linux drops
# both; believing either would lose or forge the message.
a = session("203.0.113.11", 41001)
i = find(a, b"MAIL FROM:")
good = a.pkts[i][0]
forged = good.copy()
forged["Raw"].load = b"MAIL FROM:<>" + b" " * (len(good["Raw"].load) - 14) \
    + b"\r\n"
del forged["TCP"].chksum
forged = rebuild(forged)
forged["TCP"].chksum ^= 0x5a5a
forged = rebuild(forged)
j = find(a, b"DATA")
dgood = a.pkts[j][0]
rst = rebuild(dgood.copy())
rst["TCP"].flags = "R"
rst["Raw"].load = b""
rst = gen.Ether(bytes(rst)[:54])
del rst["IP"].len
del rst["IP"].chksum
del rst["TCP"].chksum
rst = rebuild(rst)
rst["IP"].chksum ^= 0x0101
rst = rebuild(rst)
a.pkts.insert(j, (rst, True))
a.pkts.insert(i, (forged, True))
rep, recs = run("cksum", a.pkts, {"seg_cksum_bad": 2,
                                  "reasm_overlap_conflict": 0,
                                  "reasm_rst": 0, "seg_rewritten": 0})
c.eq("cksum: the real sender is logged", logged(recs), [(SENDER, 250)])
c.eq("cksum: nothing else", len(recs), 1)
# Every valid frame is believed: IPv6 with extension headers, VLAN, QinQ,
# IPv4 options (the mixed capture's sessions).
pc = os.path.join(d, "mixed.pcap")
man = os.path.join(d, "mixed.json")
bstest.gen("mixed", pc, "--seed", "3", "--manifest", man)
ev = os.path.join(d, "mixed.jsonl")
_, rep, _, _, _ = bstest.run(
    ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, os.path.join(d, "m.o"))],
    ["--idle-exit", "300", "--event-log", ev])
with open(man) as f:
    want = json.load(f)["smtp_sessions"]
c.eq("mixed: no valid segment taken for corrupt", rep.get("seg_cksum_bad"),
     0)
c.eq("mixed: every session logged", len(records(ev)), want)

# 3. RST and FIN the server would not act on.  After EHLO: a RST 10 bytes
# past rcv_nxt (in the window: Linux answers with a challenge ACK), FINs
# from both sides far ahead of their streams (queued, never reached:
# the data passes them), then a bare SYN on the same 4-tuple with another
# ISN (Linux: challenge ACK).  The session goes on and must be followed.
a = session("203.0.113.12", 41002)
k = find(a, b"MAIL FROM:")
mail = a.pkts[k][0]
cseq, sack = mail["TCP"].seq, mail["TCP"].ack


def bare(flags, seq, ack, from_cli=True):
    src, dst = ("203.0.113.12", "198.51.100.25")
    sp, dp = 41002, 25
    if not from_cli:
        src, dst, sp, dp = dst, src, dp, sp
    t = gen.TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack,
                window=65535)
    return (gen.ether(0) / gen.IP(src=src, dst=dst) / t, from_cli)


a.pkts[k:k] = [bare("R", cseq + 10, 0),
               bare("FA", cseq + 30000, sack),
               bare("FA", sack + 30000, cseq, from_cli=False),
               bare("S", cseq + 99999, 0)]
rep, recs = run("rst_fin", a.pkts, {"flow_reused": 0, "flow_closed": 1,
                                    "reasm_rst": 0,
                                    "reasm_rst_challenged": 1,
                                    "smtp_uninspected": 0})
c.eq("rst_fin: the message is logged", logged(recs), [(SENDER, 250)])

# 4. Identity: one 5-tuple on VLAN 100, VLAN 101, QinQ 200/100 and
# 201/100, untagged: five connections, each with its own sender.
convs = []
for n, (vlan, outer, inner) in enumerate([(1, None, 100), (1, None, 101),
                                          (2, 200, 100), (2, 201, 100),
                                          (0, None, None)]):
    conv = session("203.0.113.13", 41003, vlan=vlan,
                   mail_from=b"s%d@example.org" % n)
    for f, _ in conv.pkts:
        if inner is not None:
            f["Dot1Q"].vlan = inner
        if outer is not None:
            f["Dot1AD"].vlan = outer
    convs.append(conv)
frames = gen.interleave(rnd, convs)
rep, recs = run("vlan", frames, {"flow_created": 5,
                                 "reasm_overlap_conflict": 0,
                                 "smtp_uninspected": 0})
c.eq("vlan: five messages, each with its sender",
     sorted((r["mail_from"], r["reply"]) for r in recs),
     [("s%d@example.org" % n, 250) for n in range(5)])


# 5. Direction on an inline pair (two net_pcap ports; burst size 1 and
# filler frames make the order between the ports exact).  The client is
# on port 0, the server on port 1.  A RST at exactly rcv_nxt that claims
# to come from the server arrives on port 0.
def filler(n):
    return gen.ether(0) / gen.IP(src="192.0.2.99", dst="192.0.2.98") / \
        gen.UDP(sport=9, dport=9) / gen.Raw(b"%d" % n)


def alternate(frames):
    """Two per-port lists that, read one frame from each in turn, give
    frames (a list of (frame, port)) in order."""
    out, turn, n = ([], []), 0, 0
    for f, port in frames:
        while turn != port:
            out[turn].append(filler(n))
            n += 1
            turn ^= 1
        out[port].append(f)
        turn ^= 1
    return out


a = session("203.0.113.14", 41004)
k = find(a, b"MAIL FROM:")
mail = a.pkts[k][0]
spoof = bare("RA", mail["TCP"].ack, mail["TCP"].seq, from_cli=False)
spoof = (gen.Ether(bytes(spoof[0])), spoof[1])
spoof[0]["IP"].src, spoof[0]["IP"].dst = "198.51.100.25", "203.0.113.14"
spoof[0]["TCP"].sport, spoof[0]["TCP"].dport = 25, 41004
del spoof[0]["IP"].chksum
del spoof[0]["TCP"].chksum
spoofed = gen.Ether(bytes(spoof[0]))
order = [(f, 0 if fc else 1) for f, fc in a.pkts]
order.insert(k, (spoofed, 0))
p0, p1 = alternate(order)
pa, pb = os.path.join(d, "p0.pcap"), os.path.join(d, "p1.pcap")
gen.write(pa, [(f, True) for f in p0])
gen.write(pb, [(f, True) for f in p1])
for inside, want_in, want_out in (("1", 1, 0), ("0", 0, 1)):
    conf = os.path.join(d, "pair%s.yaml" % inside)
    with open(conf, "w") as f:
        f.write("dataplane:\n  burst_size: 1\n  inside_port: %s\n" % inside)
    ev = os.path.join(d, "pair%s.jsonl" % inside)
    _, rep, ports, _, _ = bstest.run(
        ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pa, pa + ".o"),
         "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (pb, pb + ".o")],
        ["--idle-exit", "300", "--event-log", ev, "--config", conf])
    name = "pair (inside_port %s)" % inside
    check(name, rep, {"seg_wrong_side": 1, "reasm_rst": 0,
                      "flow_server_inside": want_in,
                      "flow_server_outside": want_out})
    c.eq(name + ": the message is logged", logged(records(ev)),
         [(SENDER, 250)])
    c.eq(name + ": port 0's frames leave on port 1, unchanged",
         bstest.read_pcap(pb + ".o"), bstest.read_pcap(pa))
    c.eq(name + ": port 1's frames leave on port 0, unchanged",
         bstest.read_pcap(pa + ".o"), bstest.read_pcap(pb))
# A lone reflecting port has no side: nothing is checked against one.
rep, recs = run("lone", [(f, True) for f, _ in order],
                {"seg_wrong_side": 0, "flow_server_inside": 0,
                 "flow_server_outside": 0})
c.done()
