#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Hostile SMTP through the whole packet path.  Each case is a capture of
one attack beside one ordinary session; backstop must forward every frame
unchanged (but the one conflicting retransmission it normalises),
count what it saw, and still log the ordinary session's message.

- an overlong command line (100 KB without CRLF);
- an out-of-order flood: segments far ahead of a hole, past the
  per-flow cap;
- a retransmission with different bytes (evasion): rewritten inline to
  the bytes first seen, with a valid checksum, while the server has not
  acknowledged them; passed as it is once it has (its stack drops a
  copy of acknowledged bytes);
- STARTTLS, then bytes that look like SMTP but are encrypted traffic;
- tiny 1-byte segments for a whole session (must still be followed)."""
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

c = bstest.Checker("hostile")
d = bstest.tmpdir()
rnd = random.Random(77)


def ordinary(i):
    conv = gen.TcpConv(rnd, "203.0.113.200", "198.51.100.25", 50000 + i, 25)
    gen.smtp_session(conv)
    return conv


def opening(conv):
    conv.handshake()
    conv.send(False, b"220 mx ESMTP\r\n")
    conv.send(True, b"EHLO attacker\r\n")
    conv.send(False, b"250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n")


def run_case(name, attack, expect, rewrite=None):
    normal = ordinary(len(name))
    frames = gen.interleave(rnd, [attack, normal])
    pc, out = os.path.join(d, name + ".pcap"), os.path.join(d, name + ".o")
    ev = os.path.join(d, name + ".jsonl")
    gen.write(pc, frames)
    _, rep, _, _, _ = bstest.run(
        ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (pc, out)],
        ["--idle-exit", "300", "--event-log", ev])
    want = bstest.read_pcap(pc)
    got = bstest.read_pcap(out)
    if rewrite is None:
        c.eq(name + ": every frame forwarded byte-exact",
             bstest.frames_diff(got, want), None)
    else:
        bad, good = bytes(rewrite[0]), bytes(rewrite[1])
        c.eq(name + ": the conflicting frame leaves as the first copy "
             "(bytes and checksum), every other one unchanged",
             bstest.frames_diff(got, [good if f == bad else f
                                      for f in want]), None)
    for k, v in expect.items():
        if callable(v):
            c.true("%s: %s (%s)" % (name, k, rep.get(k)), v(rep.get(k, 0)))
        else:
            c.eq("%s: %s" % (name, k), rep.get(k), v)
    with open(ev) as f:
        recs = [json.loads(x) for x in f]
    c.true(name + ": the ordinary session is still logged",
           any(r["helo"] == "client.example.org" and r["reply"] == 250
               for r in recs))
    return recs


# 1. Overlong command line.
a = gen.TcpConv(rnd, "203.0.113.66", "198.51.100.25", 40001, 25)
opening(a)
line = b"MAIL FROM:<" + b"x" * 100000
for i in range(0, len(line), 1460):   # acknowledged as it goes, as a
    a.send(True, line[i:i + 1460])    # real server's window demands
a.send(True, b">\r\nQUIT\r\n")
a.close()
run_case("overlong", a, {"smtp_line_too_long": lambda v: v >= 1,
                         "tx_dropped": 0})

# 2. Out-of-order flood past the per-flow cap: a 1-byte hole, then 200 KB
# beyond it; the flow becomes uninspected, nothing is lost.
a = gen.TcpConv(rnd, "203.0.113.67", "198.51.100.25", 40002, 25)
opening(a)
hole_seq = a.cseq
a.cseq = (a.cseq + 1) & 0xffffffff
for _ in range(140):
    a._pkt(True, "PA", b"R" * 1460)
a.cseq = hole_seq
a._pkt(True, "PA", b"Q")
a.close()
run_case("ooo_flood", a, {"reasm_ooo_flow_cap": lambda v: v >= 1,
                          "smtp_uninspected": lambda v: v >= 1,
                          "tx_dropped": 0})

# 3. Conflicting retransmission: the second copy carries other bytes.
def reload(frame, payload):
    f = frame.copy()
    f["Raw"].load = payload
    del f["IP"].len
    del f["IP"].chksum
    del f["TCP"].chksum
    return gen.Ether(bytes(f))


MAIL = b"MAIL FROM:<a@example.org>\r\n"
a = gen.TcpConv(rnd, "203.0.113.68", "198.51.100.25", 40003, 25)
opening(a)
a.send(True, MAIL)
first = a.pkts[-2][0]
# Before the server's ACK of the first copy: the server may lack it.
evil = reload(first, b"MAIL FROM:<>\r\n" + b" " * (len(MAIL) - 14))
a.pkts.insert(len(a.pkts) - 1, (evil, True))
a.send(False, b"250 ok\r\n")
a.send(True, b"QUIT\r\n")
a.close()
run_case("conflict", a, {"seg_dropped_conflict": 0, "seg_rewritten": 1,
                         "reasm_overlap_conflict": lambda v: v >= 1},
         rewrite=(evil, first))

# 3a. The same bytes after the server acknowledged the first copy (and
# answered it): its stack drops them as a duplicate, so they can no
# longer make it see anything else.  No history ring is kept for
# acknowledged bytes: the frame passes as it is, counted as a
# retransmission, not as a conflict, and the first sender is the one
# logged.
a = gen.TcpConv(rnd, "203.0.113.72", "198.51.100.25", 40007, 25)
opening(a)
a.send(True, MAIL)
first = a.pkts[-2][0]
a.send(False, b"250 ok\r\n")
evil = reload(first, b"MAIL FROM:<>\r\n" + b" " * (len(MAIL) - 14))
a.pkts.append((evil, True))
a.send(True, b"RCPT TO:<u@example.net>\r\nDATA\r\n")
a.send(False, b"250 ok\r\n354 go\r\n")
a.send(True, b"Subject: x\r\n\r\nhello\r\n.\r\n")
a.send(False, b"250 queued\r\n")
a.send(True, b"QUIT\r\n")
a.close()
recs = run_case("acked_retrans", a, {"seg_dropped_conflict": 0,
                                     "seg_rewritten": 0,
                                     "reasm_overlap_conflict": 0,
                                     "reasm_retrans_unverified": 0,
                                     "reasm_retrans": lambda v: v >= 1})
c.eq("acked_retrans: the sender first seen is logged",
     [r["mail_from"] for r in recs if r["helo"] == "attacker"],
     ["a@example.org"])

# 3b. The same, but the retransmission also carries new bytes after the
# conflicting ones: a sender must not stall, so they are taken (by the
# server and by us), the old ones go back to what was first seen.
RCPT = b"RCPT TO:<u@example.net>\r\n"
a = gen.TcpConv(rnd, "203.0.113.71", "198.51.100.25", 40006, 25)
opening(a)
a.send(True, MAIL)
first = a.pkts[-2][0]
evil = reload(first, b"MAIL FROM:<>\r\n" + b" " * (len(MAIL) - 14) + RCPT)
a.pkts.insert(len(a.pkts) - 1, (evil, True))
a.cseq = (a.cseq + len(RCPT)) & 0xffffffff
a.send(False, b"250 ok\r\n250 ok\r\n")
a.send(True, b"DATA\r\n")
a.send(False, b"354 go\r\n")
a.send(True, b"Subject: x\r\n\r\nhello\r\n.\r\n")
a.send(False, b"250 queued\r\n")
a.send(True, b"QUIT\r\n")
a.close()
recs = run_case("partial_conflict", a, {"seg_dropped_conflict": 0,
                                        "seg_rewritten": 1},
                rewrite=(evil, reload(first, MAIL + RCPT)))
c.eq("partial_conflict: the first sender and the new recipient are seen",
     [(r["mail_from"], r["rcpt"], r["reply"]) for r in recs
      if r["helo"] == "attacker"], [("a@example.org", ["u@example.net"],
                                     250)])

# 4. STARTTLS, then what looks like SMTP (it is encrypted traffic).
a = gen.TcpConv(rnd, "203.0.113.69", "198.51.100.25", 40004, 25)
opening(a)
a.send(True, b"STARTTLS\r\n")
a.send(False, b"220 2.0.0 Ready to start TLS\r\n")
# A TLS record without LF bytes: read as text it would be one line.
a.send(True, b"\x16\x03\x01\x02\x00" + bytes(rnd.choice(
    [b for b in range(256) if b != 10]) for _ in range(600)) + b"\r\n")
a.send(False, b"500 5.5.2 Error: command not recognized\r\n")
# Inside the TLS session, bytes that read as a whole plain transaction
# with its replies: an engine that kept reading after the 220 would log
# a message from the null sender here.
a.send(True, b"MAIL FROM:<>\r\nRCPT TO:<u@example.net>\r\nDATA\r\n")
a.send(False, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n")
a.send(True, b"Subject: hidden\r\n\r\nnot really plain text\r\n.\r\n")
a.send(False, b"250 2.0.0 queued\r\n")
a.close()
recs = run_case("starttls", a, {"smtp_starttls": 1})
c.eq("starttls: no record from the encrypted session",
     [r for r in recs if r["helo"] == "attacker"], [])

# 5. A whole session in 1-byte segments.
a = gen.TcpConv(rnd, "203.0.113.70", "198.51.100.25", 40005, 25, chaos=1)
gen.smtp_session(a, mail_from=b"", msg=gen.DEFAULT_MSG)
recs = run_case("bytewise", a, {"smtp_uninspected": 0})
c.true("bytewise: the 1-byte session is logged with the null sender",
       any(r["mail_from"] == "" and r["size"] == len(gen.DEFAULT_MSG)
           for r in recs))
c.done()
