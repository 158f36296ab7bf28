#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Reload under load, in the ASan/UBSan build: SMTP sessions carrying
bounces loop through backstop (net_pcap infinite_rx=1) while the rules
are reloaded hundreds of times (and the configuration now and then).

Two rule files with the same expressions under different ids (A: 1xxx,
B: 9xxx) are published in turn, so every event record says by its rule
ids which set scanned it; its "gen" says which set it pinned.  Checks: no
packet lost (RX = TX + counted drops, and no drop at all), every message
finished on the set it started on (ids of its generation's file only,
never a mix), records from many generations, retired sets freed, and no
sanitizer report (use after free, leak) at exit."""
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402
import ctltest  # noqa: E402

RELOADS = int(os.environ.get("RELOADS", "200"))
c = bstest.Checker("reload_load")
asan = os.environ.get("BACKSTOP_ASAN", os.path.join(
    bstest.SRC, "build-fuzz", "backstop"))
bstest.require("reload_load", programs=(asan,), corpus=True)
d = bstest.tmpdir()
pc = os.path.join(d, "s.pcap")
bstest.gen("smtp", pc, "--messages",
           os.path.join(bstest.CORPUS, "ndr", "sisimai"), "--max", "40",
           "--seed", "8")

# A: the default pack's first subject and body rules (few: a compile in
# the sanitizer build takes ~0.2 s for 8 rules, ~2 s for 40); B: the same
# with ids + 8000.
rules = []
with open(os.path.join(bstest.SRC, "rules", "default.rules")) as f:
    for line in f:
        if re.match(r"^\d+\s+\S+\s+(body|subject)\s", line):
            rules.append(line)
        if len(rules) == 8:
            break
fa, fb = os.path.join(d, "a.rules"), os.path.join(d, "b.rules")
with open(fa, "w") as f:
    f.writelines(rules)
with open(fb, "w") as f:
    for line in rules:
        rid, rest = line.split(None, 1)
        f.write("%d %s" % (int(rid) + 8000, rest))
ids_a = {int(x.split()[0]) for x in rules}
ids_b = {i + 8000 for i in ids_a}

ev = os.path.join(d, "ev.jsonl")
env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
           UBSAN_OPTIONS="print_stacktrace=1")
# The policy changes too: each config reload switches the protected
# domain between the capture's recipients' (example.net: bounces judged)
# and another (example.org: every bounce "not_protected").  Nothing here
# refuses (verdict.unknown: deliver, no keys), so traffic is unchanged.
BASE = ("detect.rules: %s\n"
        "dataplane.mbuf_pool_size: 32767\n"
        # one capture carries both directions
        "dataplane.inside_port: 2\n"
        "ledger.learn_outbound: false\n"
        "storm.enabled: false\n" % fa)


def write_cfg(dom):
    with open(dm.cfg, "w") as fh:
        fh.write(cfg_head + BASE + "protected_domains: [%s]\n" % dom)


dm = ctltest.Daemon(d, ["net_pcap0,rx_pcap=%s,infinite_rx=1" % pc,
                        "net_null0,no-rx=1"], binary=asan, mem=512,
                    extra_cfg=BASE + "protected_domains: [example.net]\n",
                    opts=("--event-log", ev), env=env)
with open(dm.cfg) as fh:
    cfg_head = fh.read().split(BASE)[0]   # the control socket's lines
gen_file = {1: fa}
gen_dom = {1: "example.net"}
dom = "example.net"
dom_changed = 0
s = dm.connect()
f = s.makefile("r")
failed = 0
t0 = time.time()
for i in range(RELOADS):
    cfg_reload = i % 25 == 24
    if cfg_reload:
        # back to A, from the file, and the other protected domain
        dom = "example.org" if dom == "example.net" else "example.net"
        write_cfg(dom)
        req = {"cmd": "config reload", "id": i}
        want = fa
    else:
        want = fb if len(gen_file) % 2 else fa
        req = {"cmd": "rules reload", "args": {"file": want}, "id": i}
    s.sendall((json.dumps(req) + "\n").encode())
    r = json.loads(f.readline())
    if not r["ok"] or r["id"] != i:
        failed += 1
        continue
    gen_file[r["result"]["generation"]] = want
    gen_dom[r["result"]["generation"]] = dom
    # (detect.rules may change too: back to A after a rules reload to B)
    if cfg_reload and "protected_domains" in r["result"].get("changed") \
            and r["result"].get("restart_needed") == []:
        dom_changed += 1
    time.sleep(0.005)
elapsed = time.time() - t0
s.close()
c.eq("every reload succeeded", failed, 0)
c.eq("one generation per reload", max(gen_file), RELOADS + 1)
# Let the last messages end, then the old sets must be gone.
retired = None
for _ in range(50):
    time.sleep(0.2)
    st = dm.request({"cmd": "status"})["result"]
    retired = st["rules"]["retired_sets"]
    if retired == 0:
        break
c.true("retired sets freed under traffic (%s left)" % retired,
       retired is not None and retired <= 1)
rc, rep, out = dm.stop()
err = dm.stderr()
c.eq("exit 0", rc, 0)
c.true("no sanitizer report", "Sanitizer" not in err and
       "runtime error" not in err)
if "Sanitizer" in err or "runtime error" in err:
    sys.stdout.write(err[-4000:])
c.true("traffic flowed", rep.get("rx_packets", 0) > 10000)
c.eq("rx = tx + counted drops", rep.get("rx_packets"),
     rep.get("tx_packets", 0) + rep.get("tx_dropped", 0) +
     rep.get("seg_dropped_conflict", 0))
c.eq("no packet dropped", (rep.get("tx_dropped"),
                           rep.get("seg_dropped_conflict")), (0, 0))

recs = []
with open(ev) as fh:
    for line in fh:
        recs.append(json.loads(line))
scanned = [r for r in recs if "gen" in r]
mixed = wrong = 0
gens = set()
for r in scanned:
    ids = set(r["detect"].get("rules", []))
    gens.add(r["gen"])
    if ids & ids_a and ids & ids_b:
        mixed += 1
    want = ids_a if gen_file.get(r["gen"]) == fa else ids_b
    if not ids <= want:
        wrong += 1
reload_ev = [r for r in recs if r.get("event") == "reload"]
c.true("records scanned: %d" % len(scanned), len(scanned) > 500)
c.true("matched rules recorded", sum(
    1 for r in scanned if r["detect"].get("rules")) > 100)
c.true("records from many generations (%d)" % len(gens), len(gens) > 50)
c.eq("no message scanned by two sets", mixed, 0)
c.eq("every message finished on its generation's set", wrong, 0)
c.eq("reloads in the event log", len(reload_ev), RELOADS)
# Verdicts follow the policy of the message's own generation, exactly.
c.eq("config reloads: protected_domains changed, live", dom_changed,
     RELOADS // 25)
# (A bounce to a domain not protected is "not-bounce" with reason
# not_protected; messages that are no bounce are left out.)
judged = [r for r in scanned if "verdict" in r and
          "not_bounce" not in r.get("reasons", [])]
off = [r for r in judged if ("not_protected" in r.get("reasons", [])) !=
       (gen_dom.get(r["gen"]) == "example.org")]
c.true("bounces judged under both policies", len(
    {gen_dom.get(r["gen"]) for r in judged}) == 2)
c.eq("every verdict follows its generation's protected domains",
     [(r["gen"], gen_dom.get(r["gen"]), r.get("reasons")) for r in off[:5]],
     [])
print("%d reloads in %.1f s under traffic; %d records over %d generations"
      % (RELOADS, elapsed, len(scanned), len(gens)))
c.done()
