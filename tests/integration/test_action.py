#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The inline action through the packet path, on crafted captures (one
net_pcap port, burst size 1: exact order; no side known, so every
message is judged).

Policy: example.com is protected with BATV enforcement; an untagged NDR
to alice@example.com is backscatter, one to a valid tag is legit.

- a backscatter NDR is refused: the segment carrying its end of data
  never leaves; the server gets a RST at exactly that segment's
  sequence number; the client gets "550 5.7.1 ... (reasons)" and "421",
  with FIN, at the server's next sequence number, acknowledging all it
  sent, with valid IP and TCP checksums and the timestamp option
  echoed; nothing of the connection is forwarded after that (the
  client's QUIT and FIN are absorbed and acknowledged, the server's
  segments dropped and answered with a RST);
- the same over IPv6 inside QinQ VLAN tags;
- the end of data pipelined with QUIT, or with the next MAIL/RCPT/DATA,
  in one segment: one 550, then 421;
- a retransmission of the held segment gets the reply again;
- a late segment that fills a hole and so completes the message is the
  one held (the one after the hole, forwarded earlier, is not);
- a pipelined BDAT (MAIL, RCPT, BDAT LAST and the chunk in one write,
  no reply yet): a 550 for each reply owed;
- a legit NDR and ordinary mail pass byte for byte;
- fail-open, each counted: the end of data in the wait hold (sent before
  the 354), no room for the refused connection (action.refused_max 0),
  a passing message ending in the same segment (before or after the
  bounce), another
  transaction's replies still due, a detection failure (the header hold
  overflowed), detection off;
- mode monitor: nothing changes, the log says monitor; mode tap: nothing
  is forwarded, both sides are reset.
"""
import hashlib
import hmac
import importlib.util
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402
import wirelab  # noqa: E402 (its message templates; no lab is made)

spec = importlib.util.spec_from_file_location(
    "gen_pcap", os.path.join(bstest.SRC, "scripts", "gen_pcap.py"))
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
from scapy.all import (IP, IPv6, TCP, Ether, Raw)  # noqa: E402

c = bstest.Checker("action")
d = bstest.tmpdir()
rnd = random.Random(99)
KEY = "action-test-key"
BASE = """protected_domains: [example.com]
dataplane:
  inside_port: 2
  burst_size: 1
ledger.learn_outbound: false
storm.enabled: false
batv: {enforce: true, keys: [{id: 1, secret: "%s"}]}
""" % KEY


def prvs(addr, key=KEY, kid=1):
    day = (int(time.time()) // 86400 + 7) % 1000
    local, dom = addr.split("@")
    h = hmac.new(key.encode(), ("%d%03d%s" % (kid, day, addr)).encode(),
                 hashlib.sha1).hexdigest()[:6]
    return "prvs=%d%03d%s=%s@%s" % (kid, day, h, local, dom)


def ndr(rcpt="alice@example.com", tag="x"):
    """A Postfix NDR (wirelab's template), dot-stuffed, CRLF."""
    return gen.dot_stuff(wirelab.ndr("orig.%s@example.com" % tag,
                                     rcpt=rcpt))


ORDINARY = gen.dot_stuff(b"From: bob@remote.example.org\nTo: alice@"
                         b"example.com\nSubject: hi\n\nhello\n")


class Sess:
    """A conversation with TCP timestamps on every segment (as Linux
    sends them), so the reply's echo can be checked."""

    def __init__(self, port, v6=False, vlan=0):
        self.cli = "2001:db8:9::1" if v6 else "203.0.113.%d" % (port % 200)
        self.srv = "2001:db8:9::25" if v6 else "198.51.100.25"
        self.conv = gen.TcpConv(rnd, self.cli, self.srv, port, 25, v6=v6,
                                vlan=vlan)
        self.v6 = v6
        self.held = None     # index of the segment that ends the message
        self.s_next = None   # server's next sequence number then
        self.c_next = None   # client's next sequence number after it

    def s(self, data):
        self.conv.send(False, data)

    def c(self, data, end=False):
        self.conv.send(True, data)
        if end:
            k = len(self.conv.pkts) - 2   # the last data segment
            self.held = k
            self.c_next = self.conv.cseq
            self.s_next = self.conv.sseq

    def envelope(self, mail_from="", rcpt="alice@example.com"):
        cv = self.conv
        cv.handshake()
        self.s(b"220 mx.example.com ESMTP\r\n")
        self.c(b"EHLO remote.example.org\r\n")
        self.s(b"250-mx.example.com\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
               b"250 8BITMIME\r\n")
        self.c(b"MAIL FROM:<%s>\r\n" % mail_from.encode())
        self.s(b"250 2.1.0 Ok\r\n")
        self.c(b"RCPT TO:<%s>\r\n" % rcpt.encode())
        self.s(b"250 2.1.5 Ok\r\n")

    def frames(self):
        out = []
        for f, fc in self.conv.pkts:
            t = f["TCP"]
            t.options = [("NOP", None), ("NOP", None),
                         ("Timestamp", (7000 if fc else 9000,
                                        9000 if fc else 7000))]
            out.append((gen.Ether(bytes(f)), fc))
        return out


def data_session(port, msg, rcpt="alice@example.com", after=b"QUIT\r\n",
                 pipelined=False, **kw):
    s = Sess(port, **kw)
    s.envelope(rcpt=rcpt)
    s.c(b"DATA\r\n")
    s.s(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    if pipelined:
        s.c(msg + b".\r\n" + after, end=True)
        s.s(b"250 2.0.0 Ok: queued as X\r\n221 2.0.0 Bye\r\n")
    else:
        s.c(msg + b".\r\n", end=True)
        s.s(b"250 2.0.0 Ok: queued as X\r\n")
        s.c(after)
        s.s(b"221 2.0.0 Bye\r\n")
    s.conv.close()
    return s


def run(name, frames, cfg=BASE):
    pc, out = os.path.join(d, name + ".pcap"), os.path.join(d, name + ".o")
    ev, conf = os.path.join(d, name + ".jsonl"), os.path.join(d,
                                                               name + ".yaml")
    with open(conf, "w") as f:
        f.write(cfg)
    gen.write(pc, frames)
    _, rep, _, _, _ = bstest.run(
        ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, out)],
        ["--idle-exit", "300", "--event-log", ev, "--config", conf])
    recs = [json.loads(line) for line in open(ev)]
    return rep, [Ether(f) for f in bstest.read_pcap(out)], recs


def l3(f):
    return f[IPv6] if IPv6 in f else f[IP]


def from_to(f, src, dst):
    return (IP in f or IPv6 in f) and l3(f).src == src and l3(f).dst == dst


def cksum_ok(f):
    g = f.copy()
    if IP in g:
        del g[IP].chksum
    del g[TCP].chksum
    g = Ether(bytes(g))
    return (IP not in f or g[IP].chksum == f[IP].chksum) and \
        g[TCP].chksum == f[TCP].chksum


def payload(f):
    return bytes(f[Raw].load) if Raw in f else b""


def check_refused(tag, s, out, recs, rep, n550=1, extra=()):
    frames = s.frames()
    held = frames[s.held][0]
    raw_held = bytes(held)
    c.true(tag + ": the held segment never leaves",
           all(bytes(f) != raw_held for f in out))
    # Everything before the held segment left unchanged, in order.
    before = [bytes(f) for f, _ in frames[:s.held]]
    got = [bytes(f) for f in out]
    c.eq(tag + ": what came before left unchanged", got[:len(before)],
         before)
    rst = [f for f in out if from_to(f, s.cli, s.srv) and TCP in f and
           f[TCP].flags & 0x04]
    c.true(tag + ": a RST toward the server", len(rst) >= 1)
    if rst:
        r = rst[0]
        c.eq(tag + ": RST at the held segment's sequence number",
             r[TCP].seq, held[TCP].seq)
        c.true(tag + ": RST checksums valid", cksum_ok(r))
        c.eq(tag + ": RST echoes the client's timestamp", dict(
            (o[0], o[1]) for o in r[TCP].options).get("Timestamp"),
            (7000, 9000))
    rep_f = [f for f in out if from_to(f, s.srv, s.cli) and
             payload(f).startswith(b"550 ")]
    c.true(tag + ": the reply reached the client", len(rep_f) >= 1)
    if rep_f:
        f = rep_f[0]
        p = payload(f)
        lines = p.split(b"\r\n")
        c.eq(tag + ": %d 550 line(s) then 421" % n550,
             [ln[:9] for ln in lines if ln],
             [b"550 5.7.1"] * n550 + [b"421 4.7.0"])
        c.true(tag + ": the 550 names the reasons (%r)" % lines[0],
               b"Backscatter refused" in lines[0] and
               b"example.com" in lines[0] and b"batv_missing" in lines[0])
        c.eq(tag + ": reply at the server's next sequence number",
             f[TCP].seq, s.s_next)
        c.eq(tag + ": reply acknowledges all the client sent",
             f[TCP].ack, s.c_next)
        c.true(tag + ": reply carries FIN", bool(f[TCP].flags & 0x01))
        c.true(tag + ": reply checksums valid", cksum_ok(f))
        c.eq(tag + ": reply echoes the timestamps",
             dict((o[0], o[1]) for o in f[TCP].options).get("Timestamp"),
             (9000, 7000))
    later = [bytes(x) for x, fc in frames[s.held + 1:]]
    c.true(tag + ": nothing of the connection forwarded after it",
           not any(g in later for g in got))
    r = [x for x in recs if x.get("taken") == "refused"]
    c.eq(tag + ": the record says refused", len(r), 1)
    if r:
        c.eq(tag + ": record: backscatter", r[0]["verdict"], "backscatter")
        c.eq(tag + ": record: the server never replied", r[0]["reply"], 0)
    c.eq(tag + ": counted", rep.get("action_refused"), 1)
    c.eq(tag + ": no fail-open", sum(v for k, v in rep.items()
                                     if k.startswith("action_failopen")), 0)


# 1. Refused, IPv4; the client's QUIT and FIN absorbed; the server's
#    replies dropped and answered with RSTs.
s = data_session(41001, ndr())
rep, out, recs = run("refuse", s.frames())
check_refused("refuse", s, out, recs, rep)
# (In a capture the client's later segments acknowledge the replay's
# server bytes, not our reply, so each may get the reply again: at most
# one answer per segment, the last acknowledging all the client sent.)
to_cli = [f for f in out[s.held:] if from_to(f, s.srv, s.cli)]
c.true("refuse: the client's QUIT and FIN acknowledged (%s)" % [
    (f[TCP].flags, f[TCP].ack) for f in to_cli],
    bool(to_cli) and to_cli[-1][TCP].ack == s.conv.cseq and
    len(to_cli) <= 1 + sum(1 for _, fc in s.frames()[s.held + 1:] if fc))
c.true("refuse: later segments absorbed", rep.get("action_client_segs", 0)
       >= 2)
c.true("refuse: the server's segments dropped",
       rep.get("action_server_segs", 0) >= 2)
c.eq("refuse: what was consumed + forwarded = received",
     rep.get("action_consumed", 0) + rep.get("tx_packets", 0),
     rep.get("rx_packets"))
# The hold's histogram rows (exported as backstop_hold_latency_seconds)
# count the held segments the worker timed: as many as its exit report's
# own fine histogram, each in one bucket.
c.true("refuse: held segments timed", rep.get("hold_latency_count", 0) >= 1)
c.eq("refuse: hold rows = the exit report's histogram",
     rep.get("hold_latency_count"), rep.get("latency_hold_n"))
c.eq("refuse: each held segment in one bucket",
     sum(v for k, v in rep.items() if k.startswith("hold_latency_le_")) +
     rep.get("hold_latency_over", 0), rep.get("hold_latency_count"))

# 2. IPv6 in QinQ.
s = data_session(41002, ndr(), v6=True, vlan=2)
rep, out, recs = run("refuse6", s.frames())
check_refused("IPv6 QinQ", s, out, recs, rep)
rf = [f for f in out if from_to(f, s.srv, s.cli) and payload(f)]
c.true("IPv6 QinQ: the reply keeps both VLAN tags",
       bool(rf) and bytes(rf[0])[12:14] == b"\x88\xa8" and
       bytes(rf[0])[16:18] == b"\x81\x00")

# 3. ".\r\nQUIT\r\n" and ".\r\nMAIL FROM:..." in one segment.
for tag, after in (("dot+QUIT", b"QUIT\r\n"),
                   ("dot+MAIL", b"MAIL FROM:<>\r\nRCPT TO:<bob@example.com>"
                                b"\r\nDATA\r\n")):
    s = data_session(41003, ndr(), after=after, pipelined=True)
    rep, out, recs = run(tag.replace("+", "_").replace(".", ""), s.frames())
    check_refused(tag, s, out, recs, rep)

# 4. The held segment retransmitted: the reply again.
s = data_session(41004, ndr())
fr = s.frames()
fr.insert(s.held + 1, fr[s.held])
rep, out, recs = run("retrans", fr)
check_refused("retransmission", s, out, recs, rep)
c.eq("retransmission: answered again", rep.get("action_retransmits"), 1)
c.true("retransmission: the reply again", len([f for f in out if from_to(
    f, s.srv, s.cli) and payload(f).startswith(b"550")]) >= 2)

# 5. A hole filled late: the segment after the hole (with the final dot)
#    comes first and is forwarded; the late one completes the message and
#    is held.
s = Sess(41005)
s.envelope()
s.c(b"DATA\r\n")
s.s(b"354 go ahead\r\n")
msg = ndr()
s.conv._pkt(True, "PA", msg[:400])
s.conv._pkt(True, "PA", msg[400:] + b".\r\n")
s.c_next, s.s_next = s.conv.cseq, s.conv.sseq
s.s(b"250 2.0.0 Ok\r\n")
s.conv.close()
fr = s.frames()
ia = next(i for i, (f, fc) in enumerate(fr) if fc and payload(f) ==
          msg[:400])
ib = ia + 1
# The one after the hole first; the server acknowledges nothing before
# both arrived (it cannot).
fr[ia], fr[ib] = fr[ib], fr[ia]
s.held = ib    # the late segment, now at ib
rep, out, recs = run("hole", fr)
late = fr[ib][0]
c.true("hole: the segment after the hole was forwarded",
       any(bytes(f) == bytes(fr[ia][0]) for f in out))
c.true("hole: the late segment is held", all(bytes(f) != bytes(late)
                                             for f in out))
rst = [f for f in out if from_to(f, s.cli, s.srv) and f[TCP].flags & 4]
c.eq("hole: RST at the late segment (the hole)",
     [f[TCP].seq for f in rst[:1]], [late[TCP].seq])
c.eq("hole: refused", rep.get("action_refused"), 1)
rp = [f for f in out if payload(f).startswith(b"550")]
c.eq("hole: the reply acknowledges both", [f[TCP].ack for f in rp[:1]],
     [s.c_next])

# 6. Pipelined BDAT: MAIL, RCPT, BDAT LAST and the chunk in one write;
#    three replies owed.
s = Sess(41006)
s.conv.handshake()
s.s(b"220 mx.example.com ESMTP\r\n")
s.c(b"EHLO remote.example.org\r\n")
s.s(b"250-mx.example.com\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
m = ndr().replace(b"\r\n..", b"\r\n.")
s.c(b"MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nBDAT %d LAST\r\n"
    % len(m) + m, end=True)
s.s(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n")
s.c(b"QUIT\r\n")
s.s(b"221 Bye\r\n")
s.conv.close()
rep, out, recs = run("bdat", s.frames())
check_refused("pipelined BDAT", s, out, recs, rep, n550=3)

# 7. Passing traffic: a legit NDR (valid tag) and ordinary mail,
#    byte for byte.
a = data_session(41007, ndr(rcpt=prvs("alice@example.com")),
                 rcpt=prvs("alice@example.com"))
b = Sess(41008)
b.envelope(mail_from="bob@remote.example.org")
b.c(b"DATA\r\n")
b.s(b"354 go\r\n")
b.c(ORDINARY + b".\r\n")
b.s(b"250 ok\r\n")
b.conv.close()
fr = a.frames() + b.frames()
rep, out, recs = run("pass", fr)
c.eq("pass: every frame forwarded byte for byte",
     [bytes(f) for f in out], [bytes(f) for f, _ in fr])
c.eq("pass: verdicts", sorted(r.get("verdict") for r in recs),
     ["legit", "not-bounce"])
c.eq("pass: nothing refused", rep.get("action_refused"), 0)


# 8. Fail-open cases: the message passes byte for byte, counted.
def passes(tag, frames, counter, cfg=BASE, failopen=None, want_rec=True):
    rep, out, recs = run(tag, frames, cfg)
    c.eq(tag + ": every frame forwarded byte for byte",
         [bytes(f) for f in out], [bytes(f) for f, _ in frames])
    c.eq(tag + ": counted (%s)" % counter, rep.get(counter), 1)
    c.eq(tag + ": nothing refused", rep.get("action_refused"), 0)
    if failopen:
        c.eq(tag + ": the record says why", [(r.get("taken"),
                                              r.get("failopen"))
                                             for r in recs
                                             if r.get("taken")],
             [("passed", failopen)])
    return rep, recs


# The end of data sent with DATA, before the 354 (wait hold).
s = Sess(41009)
s.envelope()
s.c(b"DATA\r\n" + ndr() + b".\r\n")
s.s(b"354 go\r\n250 2.0.0 Ok\r\n")
s.c(b"QUIT\r\n")
s.s(b"221 Bye\r\n")
s.conv.close()
passes("unheld", s.frames(), "action_failopen_unheld", failopen="unheld")
s = data_session(41010, ndr())
passes("state", s.frames(), "action_failopen_state",
       cfg=BASE + "action.refused_max: 0\n", failopen="state")
# An ordinary message and a bounce, both BDAT LAST, in one segment
# (a jumbo one: net_pcap gives it as a chained mbuf).
s = Sess(41011)
s.conv.mss = 8000
s.conv.handshake()
s.s(b"220 mx ESMTP\r\n")
s.c(b"EHLO r\r\n")
s.s(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
o = ORDINARY.replace(b"\r\n..", b"\r\n.")
m = ndr().replace(b"\r\n..", b"\r\n.")
s.c(b"MAIL FROM:<bob@remote.example.org>\r\nRCPT TO:<alice@example.com>\r\n"
    b"BDAT %d LAST\r\n" % len(o) + o +
    b"MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nBDAT %d LAST\r\n"
    % len(m) + m)
s.s(b"250 ok\r\n" * 6)
s.conv.close()
passes("shared", s.frames(), "action_failopen_shared", failopen="shared")
# The other order: the bounce first, then the ordinary message in the
# same segment.  Refusing the segment would cut the ordinary message
# (already complete on the wire) and answer it with a 421: it passes.
s = Sess(41016)
s.conv.mss = 8000
s.conv.handshake()
s.s(b"220 mx ESMTP\r\n")
s.c(b"EHLO r\r\n")
s.s(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
s.c(b"MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nBDAT %d LAST\r\n"
    % len(m) + m +
    b"MAIL FROM:<bob@remote.example.org>\r\nRCPT TO:<alice@example.com>\r\n"
    b"BDAT %d LAST\r\n" % len(o) + o)
s.s(b"250 ok\r\n" * 6)
s.conv.close()
passes("shared-after", s.frames(), "action_failopen_shared",
       failopen="shared")
# The same in two segments: the first transaction's replies are due.
s = Sess(41012)
s.conv.handshake()
s.s(b"220 mx ESMTP\r\n")
s.c(b"EHLO r\r\n")
s.s(b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
s.conv._pkt(True, "PA", b"MAIL FROM:<bob@remote.example.org>\r\nRCPT TO:"
            b"<alice@example.com>\r\nBDAT %d LAST\r\n" % len(o) + o)
s.conv._pkt(True, "PA", b"MAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\n"
            b"BDAT %d LAST\r\n" % len(m) + m)
s.s(b"250 ok\r\n" * 6)
s.conv.close()
passes("pipelined", s.frames(), "action_failopen_pipelined",
       failopen="pipelined")
# Detection failed: the top-level header held back while the gate was
# undecided overflowed its cap (an ordinary sender, 11 KB of header
# before the first automatic mark).
pad = b"".join(b"X-Pad-%03d: %s\r\n" % (i, b"p" * 80) for i in range(120))
mm = ndr().replace(b"Return-Path: <>\r\n", b"").replace(
    b"From: MAILER-DAEMON@mx.remote.example.org (Mail Delivery System)\r\n",
    b"")
s = Sess(41013)
s.envelope(mail_from="reports@remote.example.org")
s.c(b"DATA\r\n")
s.s(b"354 go\r\n")
s.c(pad + mm + b".\r\n", end=True)
s.s(b"250 ok\r\n")
s.conv.close()
passes("detect", s.frames(), "action_failopen_detect", failopen="detect")
# Detection off: no verdict at all.
s = data_session(41014, ndr())
passes("nodetect", s.frames(), "action_unjudged",
       cfg=BASE + "detect.enabled: false\n")

# 9. Monitor: nothing changes; tap: nothing forwarded, both sides reset.
s = data_session(41015, ndr())
rep, recs = passes("monitor", s.frames(), "action_monitor",
                   cfg=BASE + "mode: monitor\n")
c.eq("monitor: the record says monitor",
     [r.get("taken") for r in recs if r.get("verdict") == "backscatter"],
     ["monitor"])
rep, out, recs = run("tap", s.frames(), BASE + "mode: tap\n")
c.eq("tap: only resets leave", sorted(
    (l3(f).src == s.cli, bool(f[TCP].flags & 4)) for f in out),
    [(False, True), (True, True), (True, True)])
c.true("tap: resets checksums valid", all(cksum_ok(f) for f in out))
c.eq("tap: counted", (rep.get("action_tap_reset"), rep.get("tap_frames")),
     (1, rep.get("rx_packets")))
c.eq("tap: the record says reset", [r.get("taken") for r in recs
                                    if r.get("taken")], ["reset"])
c.done()
