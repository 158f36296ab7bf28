#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""backstop-milter fails open and learns: each way a message passes
unjudged is accepted and counted (no free slot: milter.max_messages;
longer than milter.max_scan_bytes; no rule set; the MTA timing out and
closing mid-message);
a client that disconnects abruptly at every step of a transaction, and
one that sends torn or garbage packets, and an MTA that gives up
mid-message (its milter timeout), leave it alive and judging;
with --role both it learns the Message-IDs of originating mail of a
protected sender (and only those) and a bounce quoting one is legit;
two milters share one ledger through their snapshots; a UNIX socket
listener works.  The client is miltertest except for the torn packets
(a raw socket here: miltertest only sends well-formed ones).

  test_milter_robust.py MILTER RULES"""
import os
import shutil
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import bstest  # noqa: E402
import mtlib  # noqa: E402

milter_bin, rules = sys.argv[1:3]
c = bstest.Checker("milter_robust")
bstest.require("milter_robust", programs=(mtlib.MILTERTEST,))
tmp = bstest.tmpdir()
L = mtlib.lua_str

BASE = ("protected_domains: [example.com]\n"
        "relays: [out.example.com]\n")


bounce = mtlib.backscatter


def full(m, name, msg=None, **kw):
    return mtlib.full(m.spec, name, msg, **kw)


def lua_ok(what, lua):
    return mtlib.lua_checked(c, what, lua)


# -- overload: one slot, held by a message in its header ----------------
m = mtlib.Milter(milter_bin, tmp, BASE + "milter: {max_messages: 1}\n",
                 name="overload", args=("--rules", rules))
fields, body = mtlib.split_message(bounce())
lua = "a = open(%s)\ncheck(mt.mailfrom(a, '<>'), 'm')\n" % L(m.spec.encode())
lua += "check(mt.rcptto(a, '<alice@example.com>'), 'r')\n"
for n, v in fields:
    lua += "check(mt.header(a, %s, %s), 'h')\n" % (L(n), L(v))
lua += "check(mt.eoh(a), 'eoh')\n"          # a reply: the slot is taken
lua += full(m, "b")                          # no slot: accepted unjudged
lua += "check(mt.bodystring(a, %s), 'b')\ncheck(mt.eom(a), 'eom')\n" % L(body)
lua += 'print("REPLY a " .. mt.getreply(a))\nmt.disconnect(a)\n'
r = lua_ok("overload", lua)
c.eq("overload: the message without a slot is accepted (at its eoh)",
     r.get("b"), "accept")
c.eq("overload: the one holding the slot is refused", r.get("a"),
     "replycode")
cnt = m.counters()
c.eq("overload: milter_overload", cnt.get("milter_overload"), 1)
c.eq("overload: milter_refused", cnt.get("milter_refused"), 1)
c.eq("overload: in flight 0", cnt.get("milter_in_flight"), 0)
m.stop()

# -- scan cap ----------------------------------------------------------
m = mtlib.Milter(milter_bin, tmp, BASE + "milter: {max_scan_bytes: 2048}\n",
                 name="cap", args=("--rules", rules))
big = bounce(pad=100)
fields, body = mtlib.split_message(big)
lua = "a = open(%s)\ncheck(mt.mailfrom(a, '<>'), 'm')\n" % L(m.spec.encode())
lua += "check(mt.rcptto(a, '<alice@example.com>'), 'r')\n"
for n, v in fields:
    lua += "check(mt.header(a, %s, %s), 'h')\n" % (L(n), L(v))
lua += "check(mt.eoh(a), 'eoh')\ncheck(mt.bodystring(a, %s), 'b')\n" % L(body)
lua += 'print("REPLY body " .. mt.getreply(a))\nmt.disconnect(a)\n'
lua += full(m, "small")
r = lua_ok("cap", lua)
c.eq("cap: past max_scan_bytes the body is answered accept", r.get("body"),
     "accept")
c.eq("cap: a short one is still judged", r.get("small"), "replycode")
cnt = m.counters()
c.eq("cap: milter_scan_cap", cnt.get("milter_scan_cap"), 1)
c.eq("cap: judged only the short one", cnt.get("milter_judged"), 1)
m.stop()

# -- no rule set: everything accepted, counted --------------------------
m = mtlib.Milter(milter_bin, tmp, BASE, name="norules",
                 args=("--rules", os.path.join(tmp, "missing.rules")))
c.true("norules: says so at start", "NO RULES" in m.stderr())
r = lua_ok("norules", full(m, "x"))
c.eq("norules: forged bounce accepted", r.get("x"), "accept")
cnt = m.counters()
c.eq("norules: milter_no_rules", cnt.get("milter_no_rules"), 1)
c.eq("norules: nothing refused", cnt.get("milter_refused"), 0)
m.stop()

# -- the MTA times out (it closes mid-message), then abrupt disconnects
# at every step ------------------------------------------------------------
m = mtlib.Milter(milter_bin, tmp, BASE + "milter: {timeout_s: 1}\n",
                 name="steps", args=("--rules", rules))
fields, body = mtlib.split_message(bounce())
lua = "a = open(%s)\ncheck(mt.mailfrom(a, '<>'), 'm')\n" % L(m.spec.encode())
lua += "check(mt.rcptto(a, '<alice@example.com>'), 'r')\n"
lua += "check(mt.header(a, %s, %s), 'h')\ncheck(mt.eoh(a), 'eoh')\n" % (
    L(fields[0][0]), L(fields[0][1]))
lua += "mt.sleep(2)\n"  # the MTA's milter timeout runs out...
lua += "mt.disconnect(a, false)\n"  # ...and it closes mid-message
lua_ok("timeout", lua)
time.sleep(0.5)
cnt = m.counters()
c.eq("timeout: the message the MTA gave up on is unfinished",
     cnt.get("milter_unfinished"), 1)
c.eq("timeout: nothing refused", cnt.get("milter_refused"), 0)
c.eq("timeout: slot returned", cnt.get("milter_in_flight"), 0)

STEPS = ["connect", "conninfo", "mailfrom", "rcpt", "header", "eoh", "body"]
for k, step in enumerate(STEPS):
    lua = "a = mt.connect(%s, 40, 0.25)\n" % L(m.spec.encode())
    seq = [("conninfo", "check(mt.conninfo(a, 'h', '192.0.2.1'), 'c')"),
           ("mailfrom", "check(mt.mailfrom(a, '<>'), 'm')"),
           ("rcpt", "check(mt.rcptto(a, '<alice@example.com>'), 'r')"),
           ("header", "check(mt.header(a, %s, %s), 'h')" % (
               L(fields[0][0]), L(fields[0][1]))),
           ("eoh", "check(mt.eoh(a), 'eoh')"),
           ("body", "check(mt.bodystring(a, %s), 'b')" % L(body[:200]))]
    for name, code in seq[:k]:
        lua += code + "\n"
    lua += "mt.disconnect(a, false)\n"  # abrupt: no QUIT
    lua_ok("disconnect after %s" % step, lua)
time.sleep(0.5)
r = lua_ok("after disconnects", full(m, "z"))
c.eq("after every disconnect: still judging", r.get("z"), "replycode")
c.true("after every disconnect: alive", m.alive())
cnt = m.counters()
# header (begins the content), eoh, body: three messages cut, plus the
# one the timeout cut.
c.eq("disconnects: unfinished messages", cnt.get("milter_unfinished"), 4)
c.eq("disconnects: slots returned", cnt.get("milter_in_flight"), 0)

# -- torn and garbage packets (raw socket) ------------------------------
port = int(m.spec.split(":")[1].split("@")[0])


def raw(data, close_early=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(data)
        if not close_early:
            s.settimeout(2)
            try:
                s.recv(4096)
            except (socket.timeout, OSError):
                pass
    finally:
        s.close()


def pkt(cmd, payload=b""):
    return struct.pack(">I", len(payload) + 1) + cmd + payload


neg = pkt(b"O", struct.pack(">III", 6, 0x1ff, 0x1fffff))
raw(b"\xff\xff\xff\xff" + b"A" * 100)                 # absurd length
raw(struct.pack(">I", 1000) + b"B" * 10, True)         # torn packet
raw(neg + pkt(b"C", b"host\x004\x00\x19\x00192.0.2.1\x00") +
    pkt(b"M", b"<>\x00") + pkt(b"R", b"<alice@example.com>\x00") +
    pkt(b"L", b"Subject\x00 x\x00") + pkt(b"N") +
    struct.pack(">I", 50000) + b"B" + b"x" * 100, True)  # torn body chunk
raw(neg + pkt(b"L", b"no-nul-terminator") + pkt(b"B", b"\x00" * 64) +
    pkt(b"E"))                                         # out of order
raw(neg + pkt(b"Z", b"\x00\x01\x02") + pkt(b"M"))       # unknown command
raw(bytes(range(256)) * 8, True)
# A header field longer than miltertest can send (about 1 KB).
raw(neg + pkt(b"M", b"<>\x00") + pkt(b"R", b"<alice@example.com>\x00") +
    pkt(b"L", b"X-Long\x00 " + b"y" * 60000 + b"\x00") + pkt(b"N") +
    pkt(b"B", bounce()) + pkt(b"E"))
time.sleep(0.5)
c.true("torn packets: alive", m.alive())
r = lua_ok("after torn packets", full(m, "y"))
c.eq("after torn packets: still judging", r.get("y"), "replycode")
cnt = m.counters()
c.eq("torn packets: slots returned", cnt.get("milter_in_flight"), 0)
rc, _ = m.stop()
c.eq("steps: clean exit", rc, 0)

# -- learning with --role both ------------------------------------------
m = mtlib.Milter(milter_bin, tmp, BASE, role="both", name="learn",
                 args=("--rules", rules))
out = mtlib.crlf(b"From: alice@example.com\nTo: bob@remote.example.org\n"
                 b"Message-ID: <learn.1@Example.COM>\nSubject: hi\n\nhi\n")
out2 = out.replace(b"learn.1", b"notlearned.2")
lua = full(m, "out", out, rcpt="<bob@remote.example.org>",
           mail_from="<alice@example.com>",
           macros={"{daemon_name}": "ORIGINATING"})
lua += full(m, "out_auth", out.replace(b"learn.1", b"learn.3"),
            rcpt="<bob@remote.example.org>", mail_from="<alice@example.com>",
            macros={"{auth_authen}": "alice"})
# The same sender from outside (no macro): inbound, judged, not learned.
lua += full(m, "spoof", out2, rcpt="<carol@example.com>",
            mail_from="<alice@example.com>")
lua_ok("learn", lua)
time.sleep(0.6)  # the ledger's writer drains every 100 ms
lua = full(m, "hit", bounce(b"<learn.1@example.com>"))
lua += full(m, "hit_auth", bounce(b"<learn.3@example.com>"))
lua += full(m, "miss", bounce(b"<notlearned.2@example.com>"))
r = lua_ok("learn bounces", lua)
c.eq("learn: bounce quoting a learned id is legit (delivered)",
     r.get("hit"), "continue")
c.eq("learn: learned from an authenticated client too", r.get("hit_auth"),
     "continue")
c.eq("learn: the id sent from outside was not learned", r.get("miss"),
     "replycode")
ev = m.event_lines()
c.true("learn: ledger_hit reason",
       any("ledger_hit" in e.get("reasons", []) for e in ev))
cnt = m.counters()
c.eq("learn: milter_learned", cnt.get("milter_learned"), 2)
c.eq("learn: milter_outbound", cnt.get("milter_outbound"), 2)
c.eq("learn: ledger_inserts", cnt.get("ledger_inserts"), 2)
m.stop()

# -- two milters share one ledger ----------------------------------------
key = os.path.join(tmp, "ledger.key")
with open(key, "wb") as f:
    f.write(os.urandom(32))
snap_a, snap_b = os.path.join(tmp, "a.ledger"), os.path.join(tmp, "b.ledger")
ca = BASE + ("ledger: {snapshot: %s, secret_file: %s, snapshot_period_s: 1}\n"
             % (snap_a, key))
cb = BASE + ("ledger: {snapshot: %s, secret_file: %s, import_period_s: 1}\n"
             "milter: {ledger_snapshot: %s}\n" % (snap_a, key, snap_b))
ma = mtlib.Milter(milter_bin, tmp, ca, role="outbound", name="share_a",
                  args=("--rules", rules))
mb = mtlib.Milter(milter_bin, tmp, cb, role="inbound", name="share_b",
                  args=("--rules", rules))
lua_ok("share: learn in A", full(ma, "o", out.replace(b"learn.1", b"shared.1"),
                                 rcpt="<bob@remote.example.org>",
                                 mail_from="<alice@example.com>"))
got = None
deadline = time.time() + 15
while time.time() < deadline:
    time.sleep(1)
    if mb.counters().get("ledger_imported", 0) >= 1:
        break
r = lua_ok("share: bounce to B", full(mb, "b",
                                      bounce(b"<shared.1@example.com>")))
c.eq("share: B delivers the bounce for mail A saw leave", r.get("b"),
     "continue")
cb_cnt = mb.counters()
c.true("share: B merged A's entries", cb_cnt.get("ledger_imported", 0) >= 1)
c.eq("share: no import failure", cb_cnt.get("ledger_import_failures"), 0)
c.true("share: B wrote its own snapshot",
       mb.stop()[0] == 0 and os.path.exists(snap_b))
# A second program on A's snapshot is refused (one writer per file).
try:
    mtlib.Milter(milter_bin, tmp, ca, role="outbound", name="share_c",
                 args=("--rules", rules))
    c.true("share: a second writer of one snapshot is refused", False)
except RuntimeError as e:
    c.true("share: a second writer of one snapshot is refused (%s)" % e,
           "written by another program" in str(e))
ma.stop()

# -- a UNIX socket ---------------------------------------------------------
m = mtlib.Milter(milter_bin, tmp, BASE, name="unix", unix=True,
                 args=("--rules", rules, "--socket-mode", "0666"))
r = lua_ok("unix", full(m, "u"))
c.eq("unix socket: judged", r.get("u"), "replycode")
c.eq("unix socket: mode", os.stat(m.spec[5:]).st_mode & 0o777, 0o666)
m.stop()

if os.environ.get("BS_KEEP") is None:
    shutil.rmtree(tmp, ignore_errors=True)
c.done()
