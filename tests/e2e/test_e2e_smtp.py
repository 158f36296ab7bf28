#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""End to end: SMTP features through backstop, against a real Postfix.

- PIPELINING (swaks --pipeline): the record is the same as without it;
- several recipients, one refused by the server (relay denied): the
  record lists only the accepted ones;
- a transaction rejected at RCPT (no accepted recipient, no DATA): no
  record;
- STARTTLS (swaks -tls): the message is delivered, backstop counts the
  session as encrypted and writes no record (it cannot see the content).
"""
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import bstest  # noqa: E402
import netlab  # noqa: E402

c = bstest.Checker("e2e_smtp")
netlab.require_lab("e2e_smtp")

lab = netlab.Lab(bstest.backstop_bin())
evlog = os.path.join(lab.dir, "events.jsonl")
lab.extra_opts = ["--event-log", evlog, "--event-digest"]
body = os.path.join(lab.dir, "m.eml")
with open(body, "w") as f:
    f.write("From: alice@example.org\nTo: user@example.net\n"
            "Subject: features\n\n.dot at start\nhello\n")
with open(body, "rb") as f:
    m = f.read().replace(b"\n", b"\r\n") + b"\r\n"
digest = hashlib.sha256(m).hexdigest()
try:
    lab.up()
    lab.start_backstop()
    lab.start_postfix(tls=True)
    r = lab.swaks("--pipeline", "--from", "p@example.org", "--to",
                  "user@example.net", "--data", "@" + body)
    c.eq("pipelined session accepted", r.returncode, 0)
    r = lab.swaks("--from", "multi@example.org", "--to",
                  "user@example.net,other@example.net,x@elsewhere.test",
                  "--data", "@" + body)
    c.eq("session with a refused recipient accepted", r.returncode, 0)
    r = lab.swaks("--from", "rej@example.org", "--to", "x@elsewhere.test",
                  "--data", "@" + body)
    c.true("all-refused session fails at RCPT", r.returncode != 0)
    r = lab.swaks("-tls", "--from", "tls@example.org", "--to",
                  "user@example.net", "--data", "@" + body)
    c.eq("STARTTLS session accepted", r.returncode, 0)
    # One copy per accepted recipient: 1 + 2 + 1 (the mailbox map sends
    # every example.net address to one maildir).
    got = lab.wait_delivered(4)
    c.eq("four copies delivered", len(got), 4)
    rep = lab.stop_backstop()
    with open(evlog) as f:
        recs = {r["mail_from"]: r for r in map(json.loads, f)}
    c.eq("records: pipelined and multi-recipient only",
         sorted(recs), ["multi@example.org", "p@example.org"])
    p = recs.get("p@example.org", {})
    c.eq("pipelined: digest of the dot-stuffed line unstuffed",
         p.get("sha256"), digest)
    c.eq("pipelined: size", p.get("size"), len(m))
    c.eq("pipelined: reply", p.get("reply"), 250)
    mu = recs.get("multi@example.org", {})
    c.eq("multi: only accepted recipients",
         mu.get("rcpt"), ["user@example.net", "other@example.net"])
    c.eq("STARTTLS counted", rep.get("smtp_starttls"), 1)
    c.eq("nothing dropped", rep.get("tx_dropped"), 0)
    c.eq("no conflicting segment", rep.get("seg_dropped_conflict"), 0)
finally:
    lab.close()
c.done()
