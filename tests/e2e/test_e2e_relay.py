#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""End to end: real mail through backstop.

swaks in a client namespace talks SMTP to a real Postfix in a server
namespace, over kernel TCP stacks, through backstop running as an inline
pair of net_af_packet ports.  Every message must be delivered intact
(IPv4 and IPv6, ordinary mail and bounces with the null sender, a large
message), and backstop's counters must show the sessions it followed and
nothing dropped.  Its event log must hold one record per message with
the envelope, the size and the SHA-256 of exactly the bytes the client
sent (computed here from the files)."""
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import bstest  # noqa: E402
import netlab  # noqa: E402

c = bstest.Checker("e2e_relay")
netlab.require_lab("e2e_relay")

corpus = os.path.join(bstest.SRC, "..", "shared", "corpus")
msgs = []
for sub, n in (("not-ndr/mail-gem", 2), ("ndr/sisimai", 3)):
    d = os.path.join(corpus, sub)
    if os.path.isdir(d):
        fs = sorted(f for f in os.listdir(d) if f.endswith(".eml"))[:n]
        msgs += [(os.path.join(d, f), "/ndr/" in d) for f in fs]

def wire_form(path):
    """The message as the server receives it in DATA (unstuffed): CRLF
    lines, plus the empty line swaks puts between the file's last CRLF
    and its own CRLF.CRLF (checked against Postfix's copy below)."""
    with open(path, "rb") as f:
        m = f.read()
    m = m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not m.endswith(b"\r\n"):
        m += b"\r\n"
    return m + b"\r\n"


lab = netlab.Lab(bstest.backstop_bin())
evlog = os.path.join(lab.dir, "events.jsonl")
lab.extra_opts = ["--event-log", evlog, "--event-digest"]
want = []
bodies = []  # what Postfix must have stored, LF line ends
try:
    lab.up()
    lab.start_backstop()
    lab.start_postfix()
    sent = 0
    # Ordinary messages and bounces from the corpus, over IPv4.
    for path, bounce in msgs:
        r = lab.swaks("--from", "<>" if bounce else "alice@example.org",
                      "--to", "user@example.net", "--data", "@" + path)
        c.eq("%s accepted (swaks exit, %s)" % (os.path.basename(path),
                                               r.stdout[-200:]),
             r.returncode, 0)
        sent += 1
        m = wire_form(path)
        # Postfix stores LF line ends and drops a Return-Path header
        # (message_drop_headers); the rest must be stored unchanged.
        lf = m.replace(b"\r\n", b"\n")
        if lf.lower().startswith(b"return-path:"):
            lf = lf[lf.index(b"\n") + 1:]
        bodies.append(lf)
        want.append(("" if bounce else "alice@example.org", len(m),
                     hashlib.sha256(m).hexdigest()))
    # IPv6, and a message of many segments.
    big = os.path.join(lab.dir, "big.eml")
    with open(big, "w") as f:
        f.write("Subject: big\r\nFrom: a@example.org\r\n\r\n")
        for i in range(20000):
            f.write("line %06d of a long message\r\n" % i)
    r = lab.swaks("--from", "alice@example.org", "--to", "user@example.net",
                  "--data", "@" + big, server=netlab.SRV6)
    c.eq("large message over IPv6 accepted", r.returncode, 0)
    sent += 1
    m = wire_form(big)
    want.append(("alice@example.org", len(m), hashlib.sha256(m).hexdigest()))
    got = lab.wait_delivered(sent)
    c.eq("every message delivered", len(got), sent)
    c.true("large message delivered whole",
           any(b"line 019999 of a long message" in m for m in got))
    # Postfix prepends its own headers (Return-Path, Delivered-To, ...).
    c.true("every corpus message stored byte for byte",
           all(any(m.endswith(b) for m in got) for b in bodies))
    rep = lab.stop_backstop()
    c.eq("backstop exit", rep.get("exit"), 0)
    c.true("SMTP flows followed (%s)" % rep.get("flow_created"),
           rep.get("flow_created", 0) >= sent)
    c.eq("every SMTP session closed", rep.get("flow_closed"),
         rep.get("flow_created"))
    c.eq("nothing dropped", rep.get("tx_dropped"), 0)
    c.eq("rx = tx", rep.get("tx_packets"), rep.get("rx_packets"))
    c.eq("no table overflow", rep.get("flow_table_full"), 0)
    with open(evlog) as f:
        recs = [json.loads(x) for x in f]
    c.eq("one record per message", len(recs), sent)
    c.eq("records: envelope, size and SHA-256 of what the client sent",
         sorted((r["mail_from"], r["size"], r.get("sha256")) for r in recs),
         sorted(want))
    c.true("records: accepted by the server (250)",
           all(r["reply"] == 250 for r in recs))
    c.true("records: recipient", all(r["rcpt"] == ["user@example.net"]
                                     for r in recs))
    c.true("records: IPv6 session seen", any(":" in r["flow"]["src"]
                                              for r in recs))
    c.eq("no session left uninspected", rep.get("smtp_uninspected"), 0)
finally:
    lab.close()
c.done()
