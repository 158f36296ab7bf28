#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The inline action in the demo: one backscatter bounce refused, one
legitimate bounce delivered, and why.

Why a capture generated here rather than one from the corpus: whether a
bounce is backscatter depends on the protected domain's own evidence
(here its BATV key: the domain tags every envelope sender it sends), and
a BATV tag carries the day it was made, so the legitimate bounce's tag
is written for today.  Both bounces are the same Postfix non-delivery
report, to alice@example.com; only the envelope recipient differs:

  - legitimate: RCPT TO the BATV-tagged address the domain's own mail
    carried (prvs=...=alice@example.com): the domain sent the original;
  - backscatter: RCPT TO the bare address: a spammer forged alice as the
    sender, and the bounce answers mail example.com never sent.

    demo_action.py gen DIR     writes DIR/action.pcap and DIR/action.yaml
    demo_action.py show DIR    reads DIR/out.pcap, DIR/events.jsonl and
                               DIR/report.txt; prints what happened and
                               exits 1 unless the backscatter was refused
                               and the legitimate bounce delivered intact
"""
import hashlib
import hmac
import importlib.util
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "gen_pcap", os.path.join(HERE, "gen_pcap.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)
from scapy.all import IP, TCP, Ether, Raw, rdpcap  # noqa: E402

KEY = "backstop-demo-key"
CONFIG = """# The demo's policy: example.com is protected, and every envelope
# sender it sends is BATV-tagged with this key, so a bounce to an
# untagged (or wrongly tagged) address answers mail it never sent.
protected_domains: [example.com]
batv: {enforce: true, keys: [{id: 1, secret: "%s"}]}
ledger.learn_outbound: false
storm.enabled: false
dataplane:
  inside_port: 2      # one port carries both sides: judge every message
  burst_size: 1
""" % KEY
CLIENT = {"legit": "203.0.113.10", "backscatter": "203.0.113.66"}
SERVER = "198.51.100.25"


def prvs(addr):
    """The BATV tag example.com's outbound relay writes today."""
    day = (int(time.time()) // 86400 + 7) % 1000
    local, dom = addr.split("@")
    h = hmac.new(KEY.encode(), ("1%03d%s" % (day, addr)).encode(),
                 hashlib.sha1).hexdigest()[:6]
    return "prvs=1%03d%s=%s@%s" % (day, h, local, dom)


def ndr(rcpt, orig):
    """A Postfix non-delivery report for an original sent 'from' alice."""
    return gen.dot_stuff(("""Return-Path: <>
From: MAILER-DAEMON@mx.remote.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: %(rcpt)s
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="B1"
Message-Id: <ndr.%(orig)s@mx.remote.example.org>

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.remote.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<nobody@remote.example.org>: unknown user: "nobody"

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example.org

Final-Recipient: rfc822; nobody@remote.example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: X-Postfix; unknown user: "nobody"

--B1
Content-Description: Undelivered Message
Content-Type: message/rfc822

From: Alice <alice@example.com>
To: nobody@remote.example.org
Subject: %(orig)s
Date: Mon, 01 Dec 2025 10:00:00 +0000
Message-ID: <%(orig)s@example.com>

The original message.

--B1--
""" % {"rcpt": rcpt, "orig": orig}).encode())


def session(rnd, kind, rcpt, port=None, client=None, body=None):
    """One inbound SMTP session carrying an NDR (or body) to rcpt."""
    cv = gen.TcpConv(rnd, client or CLIENT[kind], SERVER,
                     port or 40000 + (1 if kind == "legit" else 2), 25)
    cv.handshake()
    cv.send(False, b"220 mx.example.com ESMTP Postfix\r\n")
    cv.send(True, b"EHLO mx.remote.example.org\r\n")
    cv.send(False, b"250-mx.example.com\r\n250-PIPELINING\r\n250 8BITMIME"
            b"\r\n")
    cv.send(True, b"MAIL FROM:<>\r\n")
    cv.send(False, b"250 2.1.0 Ok\r\n")
    cv.send(True, b"RCPT TO:<%s>\r\n" % rcpt.encode())
    cv.send(False, b"250 2.1.5 Ok\r\n")
    cv.send(True, b"DATA\r\n")
    cv.send(False, b"354 End data with <CR><LF>.<CR><LF>\r\n")
    cv.send(True, (body or ndr(rcpt, "report-" + kind)) + b".\r\n")
    cv.send(False, b"250 2.0.0 Ok: queued as 4F2A1\r\n")
    cv.send(True, b"QUIT\r\n")
    cv.send(False, b"221 2.0.0 Bye\r\n")
    cv.close()
    return list(cv.pkts)


def cmd_gen(d):
    rnd = random.Random(2026)
    frames = session(rnd, "legit", prvs("alice@example.com")) + \
        session(rnd, "backscatter", "alice@example.com")
    gen.write(os.path.join(d, "action.pcap"), frames)
    with open(os.path.join(d, "action.yaml"), "w") as f:
        f.write(CONFIG)


def payload(f):
    return bytes(f[Raw].load) if Raw in f else b""


def cmd_show(d):
    sent = [bytes(f) for f in rdpcap(os.path.join(d, "action.pcap"))]
    out = [Ether(bytes(f)) for f in rdpcap(os.path.join(d, "out.pcap"))]
    recs = [json.loads(l) for l in open(os.path.join(d, "events.jsonl"))]
    rep = {}
    for line in open(os.path.join(d, "report.txt")):
        k, _, v = line.strip().partition(" ")
        rep[k] = v
    ok = True
    print("== the inline action: two bounces to alice@example.com")
    for r in recs:
        if r.get("mail_from") != "" or not r.get("verdict"):
            continue
        kind = [k for k, a in CLIENT.items() if a == r["flow"]["src"]]
        kind = kind[0] if kind else "?"
        print("   %-12s RCPT TO:<%s>  (Message-ID %s)" % (
            kind, ",".join(r.get("rcpt", [])),
            r.get("detect", {}).get("top", {}).get("message_id", "?")))
        print("   %-12s verdict %s, reasons %s, action taken: %s" % (
            "", r.get("verdict"), ",".join(r.get("reasons", [])),
            r.get("taken", "none (delivered)")))
        want = ("legit", None) if kind == "legit" else ("backscatter",
                                                        "refused")
        ok &= (r.get("verdict"), r.get("taken")) == want
    # What each side saw on the wire.
    bsc, leg = CLIENT["backscatter"], CLIENT["legit"]
    to_cli = [f for f in out if IP in f and f[IP].src == SERVER and
              f[IP].dst == bsc and payload(f).startswith(b"550 ")]
    rst = [f for f in out if IP in f and f[IP].src == bsc and
           f[IP].dst == SERVER and TCP in f and f[TCP].flags & 0x04]
    got = set(bytes(f) for f in out)
    legit_in = [b for b in sent if Ether(b)[IP].src == leg or
                Ether(b)[IP].dst == leg]
    legit_out = [bytes(f) for f in out if IP in f and leg in (f[IP].src,
                                                             f[IP].dst)]
    eod = [b for b in sent if Ether(b)[IP].src == bsc and
           payload(Ether(b)).endswith(b"\r\n.\r\n")]
    print("== on the wire")
    if to_cli:
        print("   backscatter: the remote MTA got (as if from the server):")
        for ln in payload(to_cli[0]).decode().split("\r\n"):
            if ln:
                print("      " + ln)
    print("   backscatter: the server got %d RST(s) and never the end of "
          "data (%s)" % (len(rst), "held and dropped" if eod and
                         eod[0] not in got else "FORWARDED"))
    print("   legitimate:  %d of %d frames forwarded to the server and "
          "back, %s" % (
        len(legit_out), len(legit_in), "byte for byte" if
        legit_out == legit_in else "WITH DIFFERENCES"))
    for k in ("action_refused", "action_failopen_shared", "verdict_legit",
              "verdict_backscatter", "latency_hold_p50_ns",
              "latency_hold_p99_ns"):
        if k in rep:
            print("   %-24s %s" % (k, rep[k]))
    ok &= bool(to_cli) and bool(rst) and bool(eod) and eod[0] not in got
    ok &= legit_out == legit_in
    print("== check: %s" % ("backscatter refused (550 5.7.1), legitimate "
                            "bounce delivered" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "show"):
        sys.exit(__doc__)
    if sys.argv[1] == "gen":
        cmd_gen(sys.argv[2])
        sys.exit(0)
    sys.exit(cmd_show(sys.argv[2]))
