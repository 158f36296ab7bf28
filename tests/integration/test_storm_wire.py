#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Storm mode through the packet path (wirelab: backstop on an af_packet
inline pair, sessions written with real time between them).

The protected domain has no evidence configured, so a bounce to it is
`unknown` (delivered).  A burst of bounces to one address (storm window
4 s in 4 slots, threshold 10 per address) turns that address's bounces
into `backscatter` with reason `storm` within a couple of ticks, while a
bounce to another address of the domain stays `unknown`; once the burst
has left the window, bounces to the address are `unknown` again.  The
storm's start and end are counted and logged.
"""
import os  # noqa: F401
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402
import wirelab  # noqa: E402

c = bstest.Checker("storm_wire")
w = wirelab.Wire("storm_wire")
# mode monitor: this test is about the verdicts' evidence, logged for
# every session; with the inline action the backscatter ones would be
# refused on the wire (test_action, test_e2e_action), and every frame
# is to come through here.
CFG = """protected_domains: [example.com]
mode: monitor
ledger.learn_outbound: false
storm:
  window_s: 4
  slots: 4
  rcpt_threshold: 10
  domain_threshold: 100000
"""
VICTIM = "victim@example.com"


def verdict_of(rec):
    return (rec.get("verdict"), rec.get("reasons"))


try:
    w.start(CFG)
    sent = []     # (address, time)
    ok = True
    n_burst = 36
    for i in range(n_burst):
        ok &= w.session("", VICTIM, wirelab.ndr("burst%d@example.com" % i,
                                                rcpt=VICTIM))
        sent.append(VICTIM)
        if i == n_burst - 4:
            # In the middle of the storm: a neighbour of the victim.
            ok &= w.session("", "other@example.com",
                            wirelab.ndr("other@example.com",
                                        rcpt="other@example.com"))
            sent.append("other@example.com")
        time.sleep(0.08)
    # The window (4 s) and one slot (1 s) pass; a tick ends the storm.
    time.sleep(7.5)
    ok &= w.session("", VICTIM, wirelab.ndr("after@example.com",
                                            rcpt=VICTIM))
    sent.append(VICTIM)
    c.true("every frame forwarded", ok)
    rep, recs = w.stop()
    err = w.last_stderr
    got = [(r["rcpt"][0], verdict_of(r)) for r in recs]
    c.eq("one record per bounce", len(got), len(sent))
    c.eq("records in order of sending", [g[0] for g in got], sent)
    victim = [v for a, v in got if a == VICTIM]
    unknown = ("unknown", [])
    storm = ("backscatter", ["storm"])
    c.eq("the first bounces (below half the threshold) are unknown",
         victim[:5], [unknown] * 5)
    first = victim.index(storm) if storm in victim else None
    c.true("the burst turned into a storm (%s)" % victim, first is not None)
    if first is not None:
        c.true("the storm came within the threshold and two ticks "
               "(bounce %d)" % first, first <= 30)
        c.eq("once on, every bounce of the burst is backscatter (storm)",
             victim[first:n_burst], [storm] * (n_burst - first))
    c.eq("a neighbour in the same domain is not in the storm",
         [v for a, v in got if a != VICTIM], [unknown])
    c.eq("after the window, the address is unknown again", victim[-1],
         unknown)
    c.eq("storm started once", rep.get("storm_started"), 1)
    c.eq("storm ended once", rep.get("storm_ended"), 1)
    c.eq("no storm now", rep.get("storm_active"), 0)
    c.eq("every protected bounce noted", rep.get("storm_notes"), len(sent))
    c.eq("reason storm counted", rep.get("verdict_reason_storm"),
         n_burst - first if first is not None else -1)
    c.true("start and end logged", "storm started: address" in err and
           "storm ended" in err and VICTIM in err)
finally:
    w.close()
c.done()
