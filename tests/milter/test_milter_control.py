#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""backstop-milter's control plane: with control.socket and metrics.listen
(the appliance's settings) it serves the appliance's control protocol,
driven here by backstopctl, and /metrics, read by HTTP and checked by
promtool.  miltertest plays the MTA: the counts each reader shows move
exactly as the messages say (a backscatter refused, ordinary mail judged
and passed, an outbound Message-ID learned, a message cut mid-way), the
three readers (socket, /metrics, SIGUSR1) agree, and under messages from
several MTA connections at once repeated reads never go down and end
exactly at the number of messages.  status, config show, ledger stats,
ledger save and verdict test answer; rules reload, config reload and
flows top are "unavailable"; peer credentials are checked; a second
milter on a live control socket is refused at start.

  test_milter_control.py MILTER RULES BACKSTOPCTL"""
import atexit
import json
import os
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import bstest  # noqa: E402
import mtlib  # noqa: E402

milter_bin, rules, ctl_bin = sys.argv[1:4]
c = bstest.Checker("milter_control")
bstest.require("milter_control", programs=(mtlib.MILTERTEST, "promtool",
                                           ctl_bin))
tmp = bstest.tmpdir()
os.chmod(tmp, 0o755)  # the uid 'nobody' must reach the socket
L = mtlib.lua_str
NOBODY = 65534

sock = os.path.join(tmp, "ctl.sock")
mport = mtlib.free_port()
snap = os.path.join(tmp, "ledger.snap")
CFG = ("protected_domains: [example.com]\n"
       "relays: [out.example.com]\n"
       "control: {socket: %s, socket_mode: \"0666\"}\n"
       "metrics: {listen: \"127.0.0.1:%d\"}\n"
       "ledger: {snapshot: %s}\n"
       "milter: {max_messages: 8}\n" % (sock, mport, snap))


bounce = mtlib.backscatter
ORDINARY = mtlib.crlf(b"From: bob@remote.example.org\nTo: alice@example.com\n"
                      b"Message-ID: <o1@remote.example.org>\n"
                      b"Subject: lunch\n\nAt noon?\n")
OUTBOUND = mtlib.crlf(b"From: alice@example.com\nTo: bob@remote.example.org\n"
                      b"Message-ID: <learn.1@example.com>\nSubject: hi\n\n"
                      b"hi\n")


full = mtlib.full


def lua_ok(what, lua):
    return mtlib.lua_checked(c, what, lua)


def ctl(*args, user=None):
    pre = None
    if user is not None:
        def pre():
            os.setgroups([])
            os.setgid(user)
            os.setuid(user)
    r = subprocess.run([ctl_bin, "--socket", sock] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60, preexec_fn=pre)
    return r.returncode, r.stdout, r.stderr


def ctl_json(*args):
    rc, out, err = ctl("--json", *args)
    if rc != 0:
        c.true("backstopctl %s: %s" % (" ".join(args), err.strip()), False)
        return {}
    return json.loads(out)["result"]


def stats():
    return ctl_json("stats")["counters"]


def get_metrics():
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def samples(text):
    """{family name: value} of the worker="0" samples (and unlabelled)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        k, v = line.rsplit(" ", 1)
        if k.endswith('{worker="0"}'):
            k = k[:-len('{worker="0"}')]
        out[k] = float(v)
    return out


def metric_of(name, kinds):
    return "backstop_%s%s" % (name, "" if kinds[name] == "gauge"
                              else "_total")


def wait_for(what, fn, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn():
            return True
        time.sleep(0.1)
    c.true("%s (waited %ds)" % (what, timeout), False)
    return False


# -- start: the socket, /metrics, zero counts ----------------------------
m = mtlib.Milter(milter_bin, tmp, CFG, role="both", name="ctl",
                 args=("--rules", rules))
started = [m]


@atexit.register
def _kill():
    """A check that crashes must not leave a milter behind."""
    for p in started:
        if p.alive():
            p.p.kill()
            p.p.wait()


c.true("control socket announced", "control socket: %s" % sock in
       m.stderr())
if not os.path.exists(sock):
    c.true("control socket %s exists" % sock, False)
    c.done()
st = os.stat(sock)
c.true("control socket is a socket", stat.S_ISSOCK(st.st_mode))
c.eq("control socket mode as configured", stat.S_IMODE(st.st_mode), 0o666)

s0 = stats()
# The verdict_latency_* and hold_latency_* rows are parts of histogram
# families, not families of their own.
names = [n for n in s0 if not n.startswith(("verdict_latency_",
                                             "hold_latency_"))]
code, ctype, text = get_metrics()
c.eq("GET /metrics", code, 200)
c.eq("exposition content type", ctype,
     "text/plain; version=0.0.4; charset=utf-8")
kinds = {}
for line in text.splitlines():
    if line.startswith("# TYPE backstop_"):
        _, _, n, t = line.split()
        kinds[n] = t
kind = {}
missing = []
for n in names:
    if "backstop_%s_total" % n in kinds:
        kind[n] = "counter"
    elif "backstop_%s" % n in kinds:
        kind[n] = "gauge"
    else:
        missing.append(n)
c.eq("/metrics: a family per counter of the table (the appliance's names)",
     missing, [])
c.true("counter table rows reach stats (%d)" % len(names), len(names) > 100)
r = subprocess.run(["promtool", "check", "metrics"], input=text,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   text=True)
c.eq("promtool check metrics (%s)" % r.stdout.strip()[:300], r.returncode, 0)
c.true("build_info names the program",
       'backstop_build_info{program="backstop-milter",version="' in text)
c.eq("milter rows start at 0", {k: v for k, v in s0.items()
                                if k.startswith("milter_")},
     {k: 0 for k in s0 if k.startswith("milter_")})

# -- messages, then the counts -------------------------------------------
spec = m.spec
lua = full(spec, "bs", bounce())                      # refused
lua += full(spec, "ord", ORDINARY, mail_from="<bob@remote.example.org>")
lua += full(spec, "out", OUTBOUND, rcpt="<bob@remote.example.org>",
            mail_from="<alice@example.com>",
            macros={"{daemon_name}": "ORIGINATING"})  # learned
fields, body = mtlib.split_message(bounce(b"<cut@example.com>"))
lua += "cut = open(%s)\n" % L(spec.encode())
lua += "check(mt.mailfrom(cut, '<>'), 'm')\n"
lua += "check(mt.rcptto(cut, '<alice@example.com>'), 'r')\n"
for n, v in fields:
    lua += "check(mt.header(cut, %s, %s), 'h')\n" % (L(n), L(v))
lua += "mt.disconnect(cut, false)\n"                  # cut mid-message
r = lua_ok("messages", lua)
c.eq("backscatter refused", r.get("bs"), "replycode")
c.eq("ordinary mail passed", r.get("ord"), "continue")
c.eq("outbound accepted at its end of header", r.get("out"), "accept")

WANT = {"milter_connections": 4, "milter_messages": 4, "milter_judged": 2,
        "milter_refused": 1, "milter_outbound": 1, "milter_learned": 1,
        "milter_unfinished": 1, "milter_in_flight": 0,
        "verdict_backscatter": 1, "verdict_refuse": 1,
        "verdict_not_bounce": 1, "ledger_recorded": 1, "ledger_inserts": 1,
        "ledger_entries": 1, "milter_overload": 0, "milter_nomem": 0}


def delta(s):
    return {k: s.get(k, 0) - s0.get(k, 0) for k in WANT}


# The cut message is noticed when libmilter reads the close; the ledger's
# writer inserts within 100 ms.
wait_for("counts settle", lambda: delta(stats()) == WANT)
s1 = stats()
c.eq("stats: the counts the messages make", delta(s1), WANT)

code, _, text1 = get_metrics()
m1 = samples(text1)
c.eq("/metrics: the same counts", {
    k: m1.get(metric_of(k, kind), -1) - s0.get(k, 0) for k in WANT}, WANT)
c.eq("stats: every judged message timed",
     s1["verdict_latency_count"] - s0["verdict_latency_count"], 2)
c.eq("/metrics: the verdict latency histogram counts every judged message",
     m1.get("backstop_verdict_latency_seconds_count"),
     s1["verdict_latency_count"])
c.eq("/metrics: +Inf bucket = count",
     m1.get('backstop_verdict_latency_seconds_bucket{le="+Inf"}'),
     s1["verdict_latency_count"])
# Nothing moves now: every reader shows the same sum (but the snapshot's
# age, a clock).
s2 = stats()
usr1 = m.counters()
CLOCKS = ("ledger_snapshot_age_seconds",)
diff = [k for k in names if k not in CLOCKS and
        not (s2[k] == m1.get(metric_of(k, kind)) == usr1.get(k))]
c.eq("socket, /metrics and SIGUSR1 agree on every counter", diff, [])
r = subprocess.run(["promtool", "check", "metrics"], input=text1,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   text=True)
c.eq("promtool check metrics after traffic (%s)" % r.stdout.strip()[:300],
     r.returncode, 0)

rc, out, err = ctl("stats")
c.eq("backstopctl stats (human)", rc, 0)
c.true("human stats: milter_refused 1", any(
    line.split() == ["milter_refused", "1"] for line in out.splitlines()))
pw = ctl_json("stats", "--per-worker")
c.eq("stats --per-worker: one block, the sum",
     pw.get("workers", [{}])[0].get("counters", {}).get("milter_refused"), 1)

# -- the other commands ---------------------------------------------------
st = ctl_json("status")
c.eq("status: program", st.get("program"), "backstop-milter")
c.eq("status: pid", st.get("pid"), m.p.pid)
c.eq("status: role", st.get("role"), "both")
c.eq("status: listen", st.get("listen"), spec)
c.eq("status: generation", st.get("generation"), 1)
c.true("status: rules loaded", st.get("rules", {}).get("loaded") is True and
       st["rules"].get("count", 0) > 0)
c.eq("status: messages", st.get("messages"),
     {"max": 8, "in_flight": 0, "judged": 2, "refused": 1})
c.eq("status: connections", st.get("connections", {}).get("total"), 4)
c.true("status: a counter block per connection open at once (1..4)",
       1 <= st.get("connections", {}).get("counter_blocks", 0) <= 4)
c.eq("status: ledger", st.get("ledger"), True)

cs = {e["key"]: e for e in ctl_json("config", "show").get("settings", [])}
c.eq("config show: milter.max_messages", cs.get("milter.max_messages",
                                               {}).get("value"), "8")
c.eq("config show: control.socket", cs.get("control.socket",
                                          {}).get("value"), sock)
c.eq("config show: nothing live", [k for k, e in cs.items() if e["live"]],
     [])
rc, out, _ = ctl("config", "show")
c.true("config show (human): YAML lines",
       "milter.max_messages: 8" in out.splitlines())

ls = ctl_json("ledger", "stats")
c.eq("ledger stats: the learned id", (ls.get("recorded"), ls.get("entries")),
     (1, 1))
c.eq("ledger stats: the shared ledger's figures too",
     (ls.get("imported"), ls.get("peer_stale")), (0, False))
c.true("no snapshot before the save", not os.path.exists(snap))
sv = ctl_json("ledger", "save")
c.eq("ledger save", sv.get("saved"), True)
c.true("ledger save: the snapshot written", os.path.exists(snap) and
       os.path.getsize(snap) > 16)
c.eq("ledger stats: one save", ctl_json("ledger", "stats").get(
    "snapshot_saves"), 1)

eml = os.path.join(tmp, "bounce.eml")
with open(eml, "wb") as f:
    f.write(bounce())
vt = ctl_json("verdict", "test", eml, "--mail-from=",
              "--rcpt=alice@example.com")
c.eq("verdict test: the milter's answer for the same message",
     (vt.get("class"), vt.get("verdict"), vt.get("action")),
     ("dsn", "backscatter", "refuse"))
c.eq("verdict test: for the protected domain", vt.get("verdict_domain"),
     "example.com")
c.eq("verdict test counts nothing", delta(stats()), WANT)
c.eq("verdict test: missing file fails", ctl("verdict", "test",
                                           eml + ".none")[0], 1)

for args in (("rules", "reload"), ("config", "reload"), ("flows", "top")):
    rc, out, err = ctl(*args)
    c.eq("%s: refused" % " ".join(args), rc, 1)
    c.true("%s: unavailable in backstop-milter (%s)" % (" ".join(args),
                                                       err.strip()),
           "not available in backstop-milter (unavailable)" in err)
rc, out, _ = ctl("help")
c.true("help lists the table", rc == 0 and "verdict test" in out)

# Peer credentials: the mode lets anyone connect, SO_PEERCRED does not.
rc, out, err = ctl("status", user=NOBODY)
c.eq("other uid: refused", rc, 1)
c.true("other uid: denied (%s)" % err.strip(), "denied" in err)
c.eq("denied counted in status", ctl_json("status").get("control",
                                                        {}).get("denied"), 1)
wait_for("denied counted in /metrics", lambda: samples(get_metrics()[2]).get(
    "backstop_control_denied_total") == 1.0)
c.true("control requests counted in /metrics",
       samples(get_metrics()[2]).get("backstop_control_requests_total", 0)
       >= 10)

# A second milter on the same control socket is refused at start.
m2 = None
try:
    cfg2 = CFG.replace(str(mport), str(mtlib.free_port())).replace(
        snap, snap + ".2")
    m2 = mtlib.Milter(milter_bin, tmp, cfg2, name="second",
                      args=("--rules", rules))
    started.append(m2)
    c.true("a second milter on a live control socket is refused", False)
except RuntimeError as e:
    c.true("a second milter on a live control socket is refused (%s)" % e,
           "another process serves it" in str(e))
if m2 is not None:
    m2.stop()

# -- concurrent MTA connections while readers read ------------------------
N, K = 4, 15
base = stats()
stop = threading.Event()
seen = {"reads": 0, "down": [], "inflight": [], "errors": []}
WATCH = ["milter_connections", "milter_messages", "milter_judged",
         "milter_refused", "verdict_backscatter"]


def reader():
    last = {}
    while not stop.is_set():
        try:
            ms = samples(get_metrics()[2])
            ss = stats()
        except (OSError, ValueError) as e:
            seen["errors"].append(str(e))
            continue
        seen["reads"] += 1
        for src, vals in (("metrics", {k: ms.get(metric_of(k, kind))
                                       for k in WATCH}),
                          ("socket", {k: ss.get(k) for k in WATCH})):
            for k, v in vals.items():
                if v < last.get((src, k), 0):
                    seen["down"].append((src, k, last[(src, k)], v))
                last[(src, k)] = v
        fl = ms.get("backstop_milter_in_flight")
        if not 0 <= fl <= 8:
            seen["inflight"].append(fl)


def mta(i):
    lua = "".join(full(spec, "p%d_%d" % (i, k),
                       bounce(b"<p%d.%d@example.com>" % (i, k)))
                  for k in range(K))
    rc, replies, _, err = mtlib.run_lua(lua, timeout=120)
    if rc != 0 or sorted(set(replies.values())) != ["replycode"]:
        seen["errors"].append("mta %d: rc %d %s %s" % (i, rc, replies,
                                                       err[-200:]))


rt = threading.Thread(target=reader)
rt.start()
mts = [threading.Thread(target=mta, args=(i,)) for i in range(N)]
for t in mts:
    t.start()
for t in mts:
    t.join(180)
time.sleep(0.3)
stop.set()
rt.join(60)
c.eq("concurrent: every MTA's messages refused, every read answered",
     seen["errors"], [])
c.true("concurrent: reads while counting (%d)" % seen["reads"],
       seen["reads"] >= 3)
c.eq("concurrent: no count ever went down", seen["down"], [])
c.eq("concurrent: messages in flight within milter.max_messages",
     seen["inflight"], [])
end = stats()
c.eq("concurrent: the counts end at the messages sent",
     {k: end[k] - base[k] for k in WATCH + ["milter_in_flight"]},
     dict({k: N * K for k in WATCH}, milter_in_flight=0))
ms = samples(get_metrics()[2])
c.eq("concurrent: /metrics ends at the same counts",
     {k: ms.get(metric_of(k, kind)) - base[k] for k in WATCH},
     {k: N * K for k in WATCH})

rc, usr = m.stop()
c.eq("clean exit", rc, 0)
c.eq("exit report: the same counts", {k: usr.get(k) - base[k]
                                      for k in WATCH}, {k: N * K
                                                        for k in WATCH})
c.true("control socket removed at exit", not os.path.exists(sock))
try:
    get_metrics()
    c.true("/metrics closed at exit", False)
except (OSError, urllib.error.URLError):
    pass
c.done()
