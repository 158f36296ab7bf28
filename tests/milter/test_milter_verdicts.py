#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""backstop-milter driven by an independent milter client (miltertest) on
the verdict scenarios: real bounces from the corpus rewritten to answer
mail of a protected domain (example.com), with BATV tags made by Exim
(valid, expired, missing under enforce), DKIM signatures made by
independent signers (Mail::DKIM, dkimpy: valid, tampered), relays (a
relay hop, none), nothing checkable (unknown: delivered, or refused by
verdict.unknown: refuse), ordinary mail, an address-verification callout
that never reaches DATA.  Each message must get the reply its verdict
asks for (a custom reply code for refusals, which is the 550 5.7.1 set
with smfi_setreply; continue otherwise), and the verdict the milter logs
must be exactly the one backstop-classify gives for the same file and
envelope (the same engine code).  Counters must add up.

  test_milter_verdicts.py MILTER CLASSIFY RULES EXIM4 FAKETIME MAKE_DKIM"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import bstest  # noqa: E402
import mtlib  # noqa: E402

milter_bin, classify, rules, exim, faketime, make_dkim = sys.argv[1:7]
c = bstest.Checker("milter_verdicts")
bstest.require("milter_verdicts", programs=(mtlib.MILTERTEST, exim,
                                            faketime, "perl"),
               python_modules=("dkim", "nacl"), corpus=True)

tmp = bstest.tmpdir()
corpus = bstest.CORPUS
now = int(time.time())


def rewrite(src, dst, old, new=b"example.com"):
    with open(os.path.join(corpus, src), "rb") as f:
        data = f.read().replace(old, new)
    path = os.path.join(tmp, dst)
    with open(path, "wb") as f:
        f.write(mtlib.crlf(data))
    return path


pf = rewrite("ndr/sisimai/lhost-postfix-04.eml", "pf.eml", b"example.ne.jp")
hd = rewrite("ndr/sisimai/lhost-postfix-09.eml", "hd.eml", b"example.ne.jp")
ex = rewrite("ndr/sisimai/lhost-exim-08.eml", "ex.eml", b"example.jp")
hams = sorted(f for f in os.listdir(os.path.join(corpus, "not-ndr",
                                                 "mail-gem"))
              if f.endswith(".eml"))
ham = rewrite(os.path.join("not-ndr", "mail-gem", hams[0]), "ham.eml",
              b"\x00\x00")

# BATV tags made by Exim at faked dates.
spool = os.path.join(tmp, "spool")
os.makedirs(spool)
with open(os.path.join(tmp, "exim.conf"), "w") as f:
    f.write("spool_directory = %s\nlog_file_path = %s/%%slog\n" % (spool,
                                                                    tmp))


def prvs(addr, at):
    r = subprocess.run([faketime, "@%d" % at, exim, "-C",
                        os.path.join(tmp, "exim.conf"), "-be",
                        "${prvs{%s}{milter-secret}{4}}" % addr],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, check=True)
    return r.stdout.strip()


tag = prvs("shironeko@example.com", now)
old_tag = prvs("shironeko@example.com", now - 30 * 86400)
c.true("Exim made a tag (%s)" % tag,
       re.match(r"^prvs=4\d{3}[0-9a-f]{6}=shironeko@example\.com$", tag))

# DKIM material from independent signers.
dk = os.path.join(tmp, "dkim")
subprocess.run(["/usr/bin/python3", make_dkim, dk], check=True,
               stdout=subprocess.DEVNULL)
with open(os.path.join(dk, "keys.yaml")) as f:
    dkim_keys = f.read()
qp = os.path.join(dk, "qp_bounce.eml")
with open(qp, "rb") as f:
    qpdata = mtlib.crlf(f.read())
with open(qp, "wb") as f:
    f.write(qpdata)
# The same bounce with a signed field changed (Subject, QP-encoded).
tampered = os.path.join(tmp, "tampered.eml")
with open(tampered, "wb") as f:
    f.write(qpdata.replace(b"Quarterly", b"Quarterlx", 1))
c.true("tampered copy differs", qpdata.replace(b"Quarterly", b"Quarterlx",
                                              1) != qpdata)

CONFIGS = {
    "batv": "protected_domains: [example.com]\n"
            "batv: {enforce: true, keys: [{id: 4, secret: milter-secret}]}\n"
            "relays: [out.example.com]\n",
    "relay": "protected_domains: [example.com]\nrelays: [r.example.com]\n",
    "norelay": "protected_domains: [example.com]\n"
               "relays: [out.example.com, \"*.out.example.com\"]\n",
    "dkim": "protected_domains: [example.com]\n" + dkim_keys,
    "plain": "protected_domains: [example.com]\n",
    "refuse": "protected_domains: [example.com]\n"
              "verdict: {unknown: refuse}\n",
}

# (name, config, mail from, rcpts, file, expected reply, expected verdict)
SCEN = [
    ("batv_valid", "batv", "<>", ["<%s>" % tag], pf, "continue", "legit"),
    ("batv_missing", "batv", "<>", ["<shironeko@example.com>"], hd,
     "replycode", "backscatter"),
    ("batv_expired", "batv", "<>", ["<%s>" % old_tag], pf, "replycode",
     "backscatter"),
    ("relay_seen", "relay", "<>", ["<shironeko@example.com>"], pf,
     "continue", "legit"),
    ("relay_absent", "norelay", "<>", ["<shironeko@example.com>"], pf,
     "replycode", "backscatter"),
    ("exim_inline_norelay", "norelay", "<>", ["<neko@example.com>"], ex,
     "replycode", "backscatter"),
    # DKIM needs the embedded original's raw header block (contract 3);
    # until detection keeps it, the verdict must say dkim_unchecked and
    # take no side (checked below against backstop-classify).
    ("dkim_valid", "dkim", "<>", ["<alice@example.com>"], qp, "continue",
     "legit"),
    ("dkim_tampered", "dkim", "<>", ["<alice@example.com>"], tampered,
     "replycode", "backscatter"),
    ("unknown_deliver", "plain", "<>", ["<shironeko@example.com>"], pf,
     "continue", "unknown"),
    ("unknown_refuse", "refuse", "<>", ["<shironeko@example.com>"], pf,
     "replycode", "unknown"),
    ("not_protected", "batv", "<>", ["<someone@unprotected.example>"], pf,
     "continue", "not-bounce"),
    ("ordinary", "batv", "<alice@example.org>", ["<shironeko@example.com>"],
     ham, "continue", "not-bounce"),
]


def no_ledger(reasons):
    """backstop-classify runs without a ledger; the milter has one, still
    warming up here (ledger_warming, no evidence either way)."""
    return [r for r in (reasons or []) if r != "ledger_warming"]


def classify_verdict(cfgfile, mail_from, rcpts, path):
    args = [classify, "--config", cfgfile, "--rules", rules,
            "--mail-from", mail_from]
    for r in rcpts:
        args += ["--rcpt", r]
    r = subprocess.run(args + [path], stdout=subprocess.PIPE, text=True,
                       check=True)
    return json.loads(r.stdout.splitlines()[0])


for cname in sorted(set(s[1] for s in SCEN)):
    m = mtlib.Milter(milter_bin, tmp, CONFIGS[cname], name=cname,
                     args=("--rules", rules))
    mine = [s for s in SCEN if s[1] == cname]
    lua = ""
    for i, (name, _, mf, rc, path, _, _) in enumerate(mine):
        with open(path, "rb") as f:
            msg = f.read()
        lua += "c%d = open(%s)\n" % (i, mtlib.lua_str(m.spec.encode()))
        lua += mtlib.lua_message("c%d" % i, mf, rc, msg, name)
        lua += "mt.disconnect(c%d)\n" % i
    # A callout on the same milter: MAIL FROM:<>, RCPT, then the
    # client quits; it carries no message and is never refused.
    lua += ("k = open(%s)\ncheck(mt.mailfrom(k, '<>'), 'mailfrom')\n"
            "check(mt.rcptto(k, '<shironeko@example.com>'), 'rcpt')\n"
            "print('REPLY callout_rcpt ' .. mt.getreply(k))\n"
            "mt.disconnect(k)\n" % mtlib.lua_str(m.spec.encode()))
    rcode, replies, out, err = mtlib.run_lua(lua)
    c.eq("%s: miltertest ran (%s)" % (cname, err[-300:]), rcode, 0)
    c.eq("%s: callout's RCPT goes on" % cname,
         replies.get("callout_rcpt"), "continue")
    events = m.event_lines()
    c.eq("%s: one event per message" % cname, len(events), len(mine))
    for i, (name, _, mf, rc, path, want_reply, want_v) in enumerate(mine):
        ev = events[i] if i < len(events) else {}
        ref = classify_verdict(m.cfg, "" if mf == "<>" else mf.strip("<>"),
                               rc, path)
        if name.startswith("dkim") and "dkim_unchecked" in ref["reasons"]:
            # This build's detection does not keep the raw header block.
            c.eq("%s: no side taken without the header block" % name,
                 ref["verdict"], "unknown")
            want_reply, want_v = "continue", "unknown"
        c.eq("%s: reply" % name, replies.get(name), want_reply)
        c.eq("%s: verdict" % name, ev.get("verdict", "none"), want_v)
        for k in ("verdict", "action", "class"):
            c.eq("%s: %s as backstop-classify" % (name, k), ev.get(k),
                 ref.get(k))
        c.eq("%s: reasons as backstop-classify" % name,
             no_ledger(ev.get("reasons")), ref.get("reasons"))
    cnt = m.counters()
    refused = sum(1 for e in events if e.get("action") == "refuse")
    c.eq("%s: milter_refused" % cname, cnt.get("milter_refused"), refused)
    c.eq("%s: milter_judged" % cname, cnt.get("milter_judged"), len(mine))
    c.eq("%s: milter_messages (the callout is none)" % cname,
         cnt.get("milter_messages"), len(mine))
    c.eq("%s: milter_connections" % cname, cnt.get("milter_connections"),
         len(mine) + 1)
    c.eq("%s: verdict_backscatter" % cname, cnt.get("verdict_backscatter"),
         sum(1 for e in events if e.get("verdict") == "backscatter"))
    c.eq("%s: nothing in flight" % cname, cnt.get("milter_in_flight"), 0)
    rc_exit, _ = m.stop()
    c.eq("%s: clean exit" % cname, rc_exit, 0)

# Equivalence on the corpus: every bounce of a sample, addressed to a
# protected recipient under the BATV+relay policy, gets from the milter
# exactly the verdict and reasons backstop-classify gives.
sample = sorted(f for f in os.listdir(os.path.join(corpus, "ndr",
                                                    "sisimai"))
                if f.endswith(".eml"))[::12]
m = mtlib.Milter(milter_bin, tmp, CONFIGS["batv"], name="corpus",
                 args=("--rules", rules))
lua = ""
paths = []
skipped = 0
for fn in sample:
    path = os.path.join(tmp, "c_" + fn)
    with open(os.path.join(corpus, "ndr", "sisimai", fn), "rb") as f:
        data = mtlib.crlf(f.read())
    # miltertest overflows a buffer on header fields over about 1 KB (a
    # bug of the client, "stack smashing detected"): such files are left
    # to the raw client of test_milter_robust.py.
    if max([len(n) + len(v) for n, v in
            mtlib.split_message(data)[0]] + [0]) > 1000:
        skipped += 1
        continue
    i = len(paths)
    with open(path, "wb") as f:
        f.write(data)
    paths.append(path)
    lua += "c%d = open(%s)\n" % (i, mtlib.lua_str(m.spec.encode()))
    lua += mtlib.lua_message("c%d" % i, "<>", ["<shironeko@example.com>"],
                             data, "m%d" % i)
    lua += "mt.disconnect(c%d)\n" % i
rcode, replies, out, err = mtlib.run_lua(lua, timeout=300)
c.eq("corpus: miltertest ran (%s)" % err[-300:], rcode, 0)
events = m.event_lines()
c.eq("corpus: one event per message", len(events), len(paths))
c.true("corpus: most of the sample sent (%d skipped)" % skipped,
       len(paths) >= 40)
same = 0
for i, path in enumerate(paths):
    ref = classify_verdict(m.cfg, "", ["shironeko@example.com"], path)
    ev = events[i] if i < len(events) else {}
    ok = all(ev.get(k) == ref.get(k) for k in ("class", "verdict")) and \
        no_ledger(ev.get("reasons")) == ref.get("reasons")
    if not ok:
        print("corpus %s: milter %r, classify %r" % (
            os.path.basename(path),
            {k: ev.get(k) for k in ("class", "verdict", "reasons")},
            {k: ref.get(k) for k in ("class", "verdict", "reasons")}))
    same += ok
    want = "replycode" if ref.get("action") == "refuse" else "continue"
    c.eq("corpus %s: reply" % os.path.basename(path),
         replies.get("m%d" % i), want)
c.eq("corpus: verdicts equal to backstop-classify's (%d files)" %
     len(paths), same, len(paths))
c.true("corpus: some judged backscatter",
       any(e.get("verdict") == "backscatter" for e in events))
m.stop()

if os.environ.get("BS_KEEP") is None:
    shutil.rmtree(tmp, ignore_errors=True)
c.done()
