#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""End to end: the SMTP engine changes state where a real Postfix does.

A raw SMTP client (smtp_raw.py, exact bytes; swaks cannot send these)
in the client namespace talks to Postfix through backstop.  Each session
is an odd but legal sequence; for each the test checks Postfix's actual
replies, what Postfix delivered, and what backstop's event log says,
and at the end backstop's counters: the engine agreed with Postfix on
every one (no reply it could not explain: smtp_desync_reply 0), and the
one session built to disagree (a bare-LF end of data, which Postfix 3.7
honours) is the one counted as a desync.

- RSET with an argument (501, the transaction stays);
- blanks before the verb and tabs between words (Postfix skips and
  splits at them);
- EHLO/HELO without an argument or refused by a HELO restriction (501,
  554: the transaction and the HELO name stay);
- DATA refused (503, 554, 501) and retried: the message is followed;
- MAIL refused and retried in one pipelined write, a nested MAIL (503)
  whose recipient counts for the first transaction;
- BDAT after HELO (CHUNKING not announced: Postfix reads the chunk);
- the same corpus bounce sent with DATA, with one BDAT and with several
  chunks pipelined with the envelope in one write: same class, same
  detection result, delivered intact;
- a refused chunk (no valid recipient: 554, then 551 for the rest): the
  transaction ends (the next RCPT gets 503);
- CHUNKING disabled (smtpd_discard_ehlo_keywords) and a malformed BDAT:
  Postfix answers 521 and hangs up; nothing after it is taken.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import bstest  # noqa: E402
import netlab  # noqa: E402

c = bstest.Checker("e2e_states")
netlab.require_lab("e2e_states")

corpus = os.path.join(bstest.SRC, "..", "shared", "corpus", "ndr",
                      "sisimai")
bounce_path = os.path.join(corpus, "lhost-postfix-01.eml")
if not os.path.exists(bounce_path):
    print("FAIL e2e_states: corpus bounce %s missing" % bounce_path)
    sys.exit(1)
with open(bounce_path, "rb") as f:
    raw = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
if not raw.endswith(b"\r\n"):
    raw += b"\r\n"
BOUNCE = raw.decode("latin-1")


def stuffed(text):
    """A message as DATA carries it (dot-stuffed, then CRLF.CRLF)."""
    lines = text.split("\r\n")
    return "\r\n".join("." + l if l.startswith(".") else l
                       for l in lines[:-1]) + "\r\n.\r\n"


def body(tag):
    return "Subject: %s\r\n\r\nhello %s\r\n" % (tag, tag)


EHLO = [["send", "EHLO client.example.org\r\n"], ["replies", 1]]


def send(*parts):
    return [["send", "".join(parts)]]


def rep(n):
    return [["replies", n]]


lab = netlab.Lab(bstest.backstop_bin())
evlog = os.path.join(lab.dir, "events.jsonl")
lab.extra_opts = ["--event-log", evlog, "--event-digest"]
# A HELO restriction applied at HELO time, so that a refused EHLO can be
# tried in the middle of a transaction.
helo_checks = {
    "smtpd_delay_reject": "no",
    "smtpd_helo_restrictions": "check_helo_access "
                               "inline:{bad.example=REJECT}, "
                               "reject_invalid_helo_hostname",
}


def session(what, steps, want):
    """Run steps; check Postfix's reply codes (greeting first)."""
    r = lab.raw_smtp(steps)
    got = [code for code, _ in r["replies"]]
    c.eq("%s: Postfix's replies (%s)" % (what, r.get("error", "")), got,
         want)
    return r


try:
    lab.up()
    lab.start_backstop()
    lab.start_postfix(extra=helo_checks)
    copies = 0

    session("RSET x", EHLO + send("MAIL FROM:<rset@example.org>\r\n") +
            rep(1) + send("RSET x\r\n") + rep(1) +
            send("RCPT TO:<u@example.net>\r\n") + rep(1) +
            send("DATA\r\n") + rep(1) + send(stuffed(body("rset"))) +
            rep(1) + send("QUIT\r\n") + rep(1),
            [220, 250, 250, 501, 250, 354, 250, 221])
    copies += 1

    session("blanks around verbs", [["send", "EHLO\tclient.example.org\r\n"],
                                    ["replies", 1]] +
            send(" MAIL FROM:<blank@example.org>\r\n") + rep(1) +
            send("\tRCPT\tTO:<u@example.net>\r\n") + rep(1) +
            send("RSET\tx\r\n") + rep(1) + send(" DATA\r\n") + rep(1) +
            send(stuffed(body("blank"))) + rep(1) + send("QUIT\r\n") +
            rep(1), [220, 250, 250, 250, 501, 354, 250, 221])
    copies += 1

    session("EHLO refused", EHLO +
            send("MAIL FROM:<ehlo@example.org>\r\n") + rep(1) +
            send("EHLO\r\n") + rep(1) +
            send("RCPT TO:<u@example.net>\r\n") + rep(1) +
            send("EHLO bad.example\r\n") + rep(1) +
            send("HELO a..b\r\n") + rep(1) +
            send("DATA\r\n") + rep(1) + send(stuffed(body("ehlo"))) +
            rep(1) +
            # Accepted, EHLO resets: the RCPT after it has no MAIL.
            send("MAIL FROM:<gone@example.org>\r\n") + rep(1) +
            send("EHLO other.example.org\r\n") + rep(1) +
            send("RCPT TO:<u@example.net>\r\n") + rep(1) +
            send("QUIT\r\n") + rep(1),
            [220, 250, 250, 501, 250, 554, 501, 354, 250, 250, 250, 503,
             221])
    copies += 1

    session("DATA refused and retried", EHLO + send("DATA\r\n") + rep(1) +
            send("MAIL FROM:<data@example.org>\r\n") + rep(1) +
            send("DATA\r\n") + rep(1) +
            send("RCPT TO:<x@elsewhere.test>\r\n") + rep(1) +
            send("DATA\r\n") + rep(1) +
            send("RCPT TO:<u@example.net>\r\n") + rep(1) +
            send("DATA x\r\n") + rep(1) + send("DATA\r\n") + rep(1) +
            send(stuffed(body("data"))) + rep(1) + send("QUIT\r\n") +
            rep(1),
            [220, 250, 503, 250, 554, 454, 554, 250, 501, 354, 250, 221])
    copies += 1

    session("MAIL refused, retried, nested (pipelined)", EHLO +
            send("MAIL FROM:<bad\r\nMAIL FROM:<mail@example.org>\r\n"
                 "RCPT TO:<u@example.net>\r\n"
                 "MAIL FROM:<nested@example.org>\r\n"
                 "RCPT TO:<v@example.net>\r\nDATA\r\n") + rep(6) +
            send(stuffed(body("mail"))) + rep(1) + send("QUIT\r\n") +
            rep(1),
            [220, 250, 501, 250, 250, 503, 250, 354, 250, 221])
    copies += 2

    # BDAT after HELO: CHUNKING was never announced, Postfix still
    # reads the chunk (the pipelined envelope and the chunk in one
    # write).  The chunk's bytes look like commands.
    chunk = "RSET\r\nMAIL FROM:<hidden@example.org>\r\n"
    session("BDAT after HELO", [["send", "HELO client.example.org\r\n"],
                                ["replies", 1]] +
            send("MAIL FROM:<helo-bdat@example.org>\r\n"
                 "RCPT TO:<u@example.net>\r\n",
                 "BDAT %d LAST\r\n" % len(chunk), chunk) + rep(3) +
            send("QUIT\r\n") + rep(1), [220, 250, 250, 250, 250, 221])
    copies += 1

    # The same bounce three ways, to three recipients (the records tell
    # them apart; every example.net address lands in one maildir).
    session("bounce via DATA", EHLO + send("MAIL FROM:<>\r\n") + rep(1) +
            send("RCPT TO:<b1@example.net>\r\n") + rep(1) +
            send("DATA\r\n") + rep(1) + send(stuffed(BOUNCE)) + rep(1) +
            send("QUIT\r\n") + rep(1), [220, 250, 250, 250, 354, 250, 221])
    session("bounce via BDAT LAST", EHLO + send("MAIL FROM:<>\r\n") +
            rep(1) + send("RCPT TO:<b2@example.net>\r\n") + rep(1) +
            send("BDAT %d LAST\r\n" % len(raw), BOUNCE) + rep(1) +
            send("QUIT\r\n") + rep(1), [220, 250, 250, 250, 250, 221])
    cuts = [0, 17, len(raw) // 3, len(raw) // 3 + 1, len(raw)]
    chunks = "".join("BDAT %d%s\r\n%s" % (b - a, " LAST" if b == len(raw)
                                           else "", BOUNCE[a:b])
                     for a, b in zip(cuts, cuts[1:]))
    session("bounce via BDAT chunks, pipelined", EHLO +
            send("MAIL FROM:<>\r\nRCPT TO:<b3@example.net>\r\n", chunks) +
            rep(2 + len(cuts) - 1) + send("QUIT\r\n") + rep(1),
            [220, 250, 250, 250] + [250] * (len(cuts) - 1) + [221])
    copies += 3

    session("BDAT refused", EHLO +
            send("MAIL FROM:<refused@example.org>\r\n"
                 "RCPT TO:<x@elsewhere.test>\r\nBDAT 6\r\nMAIL F"
                 "BDAT 4 LAST\r\nRCPT") + rep(4) +
            send("RCPT TO:<u@example.net>\r\n") + rep(1) +
            send("QUIT\r\n") + rep(1),
            [220, 250, 250, 454, 554, 551, 503, 221])

    r = session("malformed BDAT", EHLO +
                send("MAIL FROM:<malformed@example.org>\r\n") + rep(1) +
                send("BDAT x\r\nRCPT TO:<u@example.net>\r\nDATA\r\n") +
                rep(1), [220, 250, 250, 521])
    c.true("malformed BDAT: Postfix hung up", r["eof"])

    # A bare LF before "." ends DATA for Postfix 3.7 (smtpd reads LF as
    # a line end): the engine, which ends only at CRLF.CRLF, sees the
    # server reply inside DATA and stops inspecting.  The one desync.
    session("bare LF end of data", EHLO +
            send("MAIL FROM:<lf@example.org>\r\nRCPT TO:<u@example.net>\r\n"
                 "DATA\r\n") + rep(3) + send("Subject: lf\r\n\r\nx\n.\n") +
            rep(1) + send("QUIT\r\n") + rep(1),
            [220, 250, 250, 250, 354, 250, 221])
    copies += 1

    lab.postconf(smtpd_discard_ehlo_keywords="chunking")
    r = session("CHUNKING disabled", EHLO +
                send("MAIL FROM:<nochunk@example.org>\r\n"
                     "RCPT TO:<u@example.net>\r\n") + rep(2) +
                send("BDAT 30 LAST\r\nRSET\r\nMAIL FROM:<a@example.org>\r\n"
                     "RCPT TO:<u@example.net>\r\nDATA\r\n") + rep(1),
                [220, 250, 250, 250, 521])
    c.true("CHUNKING disabled: Postfix hung up", r["eof"])

    got = lab.wait_delivered(copies)
    c.eq("messages delivered", len(got), copies)
    delivered = b"\n".join(got)
    for tag in ("rset", "blank", "ehlo", "data", "mail"):
        c.true("%s: message delivered" % tag,
               ("hello %s" % tag).encode() in delivered)
    c.true("BDAT after HELO: chunk delivered as the message",
           b"MAIL FROM:<hidden@example.org>" in delivered)
    # Postfix stores LF line ends and drops a Return-Path header
    # (message_drop_headers); the rest must be stored unchanged.
    bounce_lf = raw.replace(b"\r\n", b"\n")
    if bounce_lf.lower().startswith(b"return-path:"):
        bounce_lf = bounce_lf[bounce_lf.index(b"\n") + 1:]
    c.eq("bounce delivered whole three times",
         sum(1 for m in got if m.endswith(bounce_lf)), 3)

    rep_ = lab.stop_backstop()
    with open(evlog) as f:
        recs = [json.loads(x) for x in f]
    by_from = {r["mail_from"]: r for r in recs if r["mail_from"]}
    c.eq("records: one per message on the wire",
         sorted(by_from), sorted(["rset@example.org", "blank@example.org",
                                  "ehlo@example.org",
                                  "data@example.org", "mail@example.org",
                                  "helo-bdat@example.org",
                                  "refused@example.org"]))
    for k in ("rset", "blank", "ehlo", "data"):
        r = by_from.get("%s@example.org" % k, {})
        c.eq("%s: recipient" % k, r.get("rcpt"), ["u@example.net"])
        c.eq("%s: reply" % k, r.get("reply"), 250)
        c.eq("%s: size" % k, r.get("size"), len(body(k)))
    c.eq("EHLO refused: HELO name kept",
         by_from.get("ehlo@example.org", {}).get("helo"),
         "client.example.org")
    c.eq("nested MAIL: its recipient counts for the first",
         by_from.get("mail@example.org", {}).get("rcpt"),
         ["u@example.net", "v@example.net"])
    r = by_from.get("helo-bdat@example.org", {})
    c.eq("BDAT after HELO: size", r.get("size"), len(chunk))
    c.eq("BDAT after HELO: reply", r.get("reply"), 250)
    r = by_from.get("refused@example.org", {})
    c.eq("refused chunk: reply", r.get("reply"), 554)
    c.eq("refused chunk: no recipient", r.get("rcpt"), [])
    bounces = {r["rcpt"][0]: r for r in recs
               if r["mail_from"] == "" and r["rcpt"]}
    c.eq("bounce records", sorted(bounces),
         ["b1@example.net", "b2@example.net", "b3@example.net"])
    ref = bounces.get("b1@example.net", {})
    c.true("bounce via DATA classed as a bounce (%s)" % ref.get("class"),
           ref.get("class") not in (None, "none"))
    for k in ("b2@example.net", "b3@example.net"):
        r = bounces.get(k, {})
        c.eq("%s: class as via DATA" % k, r.get("class"), ref.get("class"))
        c.eq("%s: detection as via DATA" % k, r.get("detect"),
             ref.get("detect"))
        c.eq("%s: digest as via DATA" % k, r.get("sha256"),
             ref.get("sha256"))
    c.eq("backstop exit", rep_.get("exit"), 0)
    c.eq("no reply the engine could not explain",
         rep_.get("smtp_desync_reply"), 0)
    c.eq("one desync (the bare-LF session)", rep_.get("smtp_desync"), 1)
    c.eq("one session uninspected", rep_.get("smtp_uninspected"), 1)
    c.eq("BDAT read as commands: malformed, CHUNKING disabled",
         rep_.get("smtp_bdat_unannounced"), 2)
    c.eq("no budget hit", rep_.get("smtp_session_budget"), 0)
    c.eq("session memory back to zero", rep_.get("smtp_session_bytes"), 0)
    c.eq("nothing dropped", rep_.get("tx_dropped"), 0)
    c.eq("no conflicting segment", rep_.get("seg_dropped_conflict"), 0)
finally:
    lab.close()
c.done()
