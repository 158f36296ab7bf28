#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The outbound ledger through the packet path (wirelab: backstop on an
af_packet inline pair, sessions written into it with real time between
them).

The protected domain example.com is authoritative (ledger.authoritative:
a miss once the ledger is warm is evidence of forgery) and has no other
evidence configured, so every verdict below is the ledger's.  TTL 12 s
(ledger.ttl_s), so warm-up and expiry happen within the test:

phase 1, first start (no snapshot, warming):
  - outbound mail from alice@example.com (server outside, accepted with
    250) is learned; mail the remote refused (554) is not; mail from a
    foreign sender is not; inbound mail is not;
  - an NDR quoting a learned id: legit (ledger_hit); an out-of-office
    reply whose In-Reply-To is a learned id (no original at all): legit;
  - an NDR quoting an id never learned, or one the remote refused:
    unknown (ledger_warming: a miss while warming is no evidence, even
    for an authoritative domain);
  - ledger stats and ledger save answer on the control socket; the
    counters are exported in stats;
phase 2, restart (clean snapshot): the learned id still hits; a miss is
  still warming;
phase 3, after the TTL: the ledger is warm: an unknown id is a miss
  (backscatter, ledger_miss); the id learned in phase 1 has expired (a
  miss too); an id learned now hits.
"""
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402
import wirelab  # noqa: E402

c = bstest.Checker("ledger_wire")
TTL = 12
w = wirelab.Wire("ledger_wire")
snap = os.path.join(w.dir, "ledger.snap")
# mode monitor: this test is about the verdicts' evidence, logged for
# every session; with the inline action the backscatter ones would be
# refused on the wire (test_action, test_e2e_action), and every frame
# is to come through here.
CFG = """protected_domains: [example.com]
mode: monitor
ledger:
  authoritative: true
  ttl_s: %d
  snapshot: %s
storm.enabled: false
""" % (TTL, snap)


def verdicts(recs):
    """(verdict, reasons) per judged record, keyed by the id quoted."""
    out = {}
    for r in recs:
        det = r.get("detect", {})
        key = det.get("original", {}).get("message_id") or \
            det.get("top", {}).get("in_reply_to")
        if "verdict" in r and key:
            out[key] = (r["verdict"], r["reasons"])
    return out


def learned(recs):
    return sorted(r["detect"]["top"]["message_id"] for r in recs
                  if r.get("learned"))


try:
    dm = w.start(CFG, metrics=True)
    t0 = time.time()
    ok = True
    ok &= w.session("alice@example.com", "bob@remote.example.org",
                    wirelab.outbound("out1.a@example.com"),
                    server_inside=False)
    ok &= w.session("prvs=0123abcdef=alice@example.com",
                    "carol@remote.example.org",
                    wirelab.outbound("out2.b@Example.COM"),
                    server_inside=False)
    ok &= w.session("alice@example.com", "bob@remote.example.org",
                    wirelab.outbound("out3.refused@example.com"),
                    server_inside=False,
                    reply=b"554 5.7.1 Message refused")
    ok &= w.session("zed@foreign.example.net", "bob@remote.example.org",
                    wirelab.outbound("out4.foreign@foreign.example.net",
                                     sender="zed@foreign.example.net"),
                    server_inside=False)
    ok &= w.session("someone@remote.example.org", "alice@example.com",
                    wirelab.outbound("in5.inbound@remote.example.org",
                                     sender="someone@remote.example.org",
                                     to="alice@example.com"))
    time.sleep(0.6)   # the writer drains every 100 ms
    for mid in ("out1.a@example.com", "out3.refused@example.com",
                "never.sent@example.com", "in5.inbound@remote.example.org"):
        ok &= w.session("", "alice@example.com", wirelab.ndr(mid))
    ok &= w.session("", "alice@example.com", wirelab.ndr(
        "out4.foreign@foreign.example.net",
        orig_from="zed@foreign.example.net"))
    ok &= w.session("", "alice@example.com",
                    wirelab.ooo("out2.b@example.com"))
    ok &= w.session("", "alice@example.com",
                    wirelab.ooo("never.answered@example.com"))
    c.true("phase 1: every frame forwarded", ok)
    rc, out, err = dm.ctl("ledger", "stats")
    c.eq("ledger stats answers (%s)" % err.strip(), rc, 0)
    c.true("ledger stats: 2 entries (%s)" % out.strip().replace("\n", " "),
           re.search(r"^entries\s+2$", out, re.M) is not None)
    rc, out, err = dm.ctl("ledger", "save")
    c.eq("ledger save answers (%s)" % err.strip(), rc, 0)
    c.true("ledger save wrote the snapshot", os.path.exists(snap))
    st = dm.request({"cmd": "stats"})
    cnt = st.get("result", st).get("counters", {})
    c.eq("stats exports the ledger's entries", cnt.get("ledger_entries"), 2)
    c.eq("stats exports the ledger's records",
         cnt.get("ledger_recorded"), 2)
    c.eq("stats: the ledger is warming", cnt.get("ledger_warming"), 1)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" %
                                dm.metrics_port, timeout=30) as r:
        text = r.read().decode()
    c.true("/metrics exports the ledger's entries once per process",
           re.search(r"^backstop_ledger_entries 2$", text, re.M) and
           "backstop_ledger_entries{" not in text)
    c.true("/metrics exports the ledger's records",
           re.search(r"^backstop_ledger_recorded_total 2$", text, re.M))
    rep, recs = w.stop()
    v = verdicts(recs)
    c.eq("learned: accepted outbound mail of the protected domain only",
         learned(recs), ["<out1.a@example.com>", "<out2.b@Example.COM>"])
    c.eq("NDR quoting a learned id: legit",
         v.get("<out1.a@example.com>"), ("legit", ["ledger_hit"]))
    c.eq("out-of-office reply to a learned id (In-Reply-To): legit",
         v.get("<out2.b@example.com>"),
         ("legit", ["no_original", "ledger_hit"]))
    for mid in ("<out3.refused@example.com>", "<never.sent@example.com>"):
        c.eq("NDR quoting %s while warming: unknown" % mid, v.get(mid),
             ("unknown", ["ledger_warming"]))
    c.eq("NDR quoting a foreign sender's id: unknown",
         v.get("<out4.foreign@foreign.example.net>"),
         ("unknown", ["original_foreign", "ledger_warming"]))
    c.eq("out-of-office reply to an unknown id while warming: unknown",
         v.get("<never.answered@example.com>"),
         ("unknown", ["no_original", "ledger_warming"]))
    c.eq("an NDR quoting an inbound message's id: unknown (inbound mail "
         "is not learned)", v.get("<in5.inbound@remote.example.org>"),
         ("unknown", ["ledger_warming"]))
    c.eq("outbound messages are never judged",
         [r for r in recs if "verdict" in r and
          r["flow"]["dport"] == 25 and r["flow"]["dst"] == "203.0.113.25"],
         [])
    c.eq("report: ledger_recorded", rep.get("ledger_recorded"), 2)
    c.eq("report: ledger_inserts", rep.get("ledger_inserts"), 2)
    c.eq("report: verdict_legit", rep.get("verdict_legit"), 2)
    c.eq("report: reason ledger_hit", rep.get("verdict_reason_ledger_hit"),
         2)
    c.true("report: the final snapshot was written",
           rep.get("ledger_snapshot_saves", 0) >= 2)

    # Phase 2: a restart keeps what was learned (clean snapshot).
    w.start(CFG)
    ok = w.session("", "alice@example.com", wirelab.ndr("out1.a@example.com"))
    ok &= w.session("", "alice@example.com",
                    wirelab.ndr("never.sent@example.com"))
    rep, recs = w.stop()
    v = verdicts(recs)
    c.true("phase 2 ran within the TTL (%.1f s)" % (time.time() - t0),
           time.time() - t0 < TTL - 1)
    c.true("phase 2: every frame forwarded", ok)
    c.eq("after a restart: the learned id still hits",
         v.get("<out1.a@example.com>"), ("legit", ["ledger_hit"]))
    c.eq("after a restart: a miss is still warming",
         v.get("<never.sent@example.com>"), ("unknown", ["ledger_warming"]))
    c.eq("after a restart: the entries were loaded",
         rep.get("ledger_entries"), 2)

    # Phase 3: past the TTL since the first start and since learning.
    time.sleep(max(0.0, t0 + TTL + 2.2 - time.time()))
    w.start(CFG)
    ok = w.session("alice@example.com", "bob@remote.example.org",
                   wirelab.outbound("out6.late@example.com"),
                   server_inside=False)
    time.sleep(0.6)
    for mid in ("out6.late@example.com", "out1.a@example.com",
                "never.sent@example.com"):
        ok &= w.session("", "alice@example.com", wirelab.ndr(mid))
    ok &= w.session("", "alice@example.com",
                    wirelab.ooo("never.answered@example.com"))
    rep, recs = w.stop()
    v = verdicts(recs)
    c.true("phase 3: every frame forwarded", ok)
    c.eq("warm: an id learned now hits", v.get("<out6.late@example.com>"),
         ("legit", ["ledger_hit"]))
    c.eq("warm: an id past its TTL is a miss: backscatter",
         v.get("<out1.a@example.com>"), ("backscatter", ["ledger_miss"]))
    c.eq("warm: an id never sent is a miss: backscatter",
         v.get("<never.sent@example.com>"), ("backscatter", ["ledger_miss"]))
    c.eq("warm: an auto-reply to an unknown id, without an original, is "
         "no forgery: unknown", v.get("<never.answered@example.com>"),
         ("unknown", ["no_original", "ledger_miss"]))
    c.eq("warm: the ledger says so", rep.get("ledger_warming"), 0)
    c.true("the expired entry was counted",
           rep.get("ledger_expirations", 0) >= 1 or
           rep.get("ledger_entries", 0) <= 2)
finally:
    w.close()
c.done()
