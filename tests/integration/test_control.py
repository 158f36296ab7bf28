#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""The control socket and backstopctl on a running backstop with traffic:
every command's output and exit code; malformed, oversized and
concurrent requests get clear errors and leave the daemon serving; a
client of another uid is refused (SO_PEERCRED) while a member of
control.socket_group is let in; a failed compile keeps the running
generation and names the rule's line; SIGHUP and `config reload` apply
live settings and list those that need a restart; the counters are also
DPDK telemetry commands."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402
import ctltest  # noqa: E402

c = bstest.Checker("control")
bstest.require("control", root=True, corpus=True)
d = bstest.tmpdir()
os.chmod(d, 0o755)  # the other-uid clients must reach the socket
pc = os.path.join(d, "s.pcap")
corpus = os.path.join(bstest.CORPUS, "ndr", "sisimai")
bstest.gen("smtp", pc, "--messages", corpus, "--max", "20", "--seed", "3")
NOBODY, NOGROUP, USERS = 65534, 65534, 100

dm = ctltest.Daemon(d, ["net_pcap0,rx_pcap=%s,infinite_rx=1" % pc,
                        "net_null0,no-rx=1"],
                    extra_cfg="control.socket_mode: '0666'\n"
                              "control.socket_group: nogroup\n"
                              # one capture carries both directions
                              "dataplane.inside_port: 2\n"
                              "protected_domains: [example.jp]\n")
time.sleep(1)

# status, human and JSON.
rc, out, err = dm.ctl("status")
c.eq("status exit", rc, 0)
c.true("status shows generation 1", any(
    line.split()[:2] == ["generation", "1"] for line in out.splitlines()))
rc, out, err = dm.ctl("--json", "status")
st = json.loads(out)
c.true("status --json ok", st["ok"])
c.eq("two ports", len(st["result"]["ports"]), 2)
c.eq("one worker", len(st["result"]["workers"]), 1)
c.true("rules loaded", st["result"]["rules"]["count"] > 100)

# stats: every counter of the table, one line each.
names = [line.split("`")[1] for line in subprocess.run(
    [bstest.backstop_bin(), "--list-counters"], stdout=subprocess.PIPE,
    text=True).stdout.splitlines() if line.startswith("| `")]
rc, out, err = dm.ctl("stats")
c.eq("stats exit", rc, 0)
got = dict(line.split() for line in out.splitlines())
c.eq("stats lists every counter", sorted(got), sorted(names))
c.true("traffic counted", int(got["rx_packets"]) > 0)
rc, out, err = dm.ctl("stats", "--per-worker")
c.true("per-worker header", out.splitlines()[0].split()[:3] ==
       ["counter", "total", "worker0"])
rc, out, err = dm.ctl("--json", "stats", "--per-worker")
js = json.loads(out)["result"]
c.eq("per-worker blocks", len(js["workers"]), 1)

# flows top.
rc, out, err = dm.ctl("--json", "flows", "top", "3")
ft = json.loads(out)["result"]["flows"]
c.true("flows top lists flows", 1 <= len(ft) <= 3)
c.true("flows top sorted by bytes", all(
    ft[i]["bytes"] >= ft[i + 1]["bytes"] for i in range(len(ft) - 1)))
c.true("flows top: server port 25", all(f["sport"] == 25 for f in ft))
rc, out, err = dm.ctl("flows", "top", "0")
c.eq("flows top 0 is a usage error", rc, 2)

# config show, help, usage and connection errors.
rc, out, err = dm.ctl("config", "show")
c.true("config show has the socket", ("control.socket: %s" % dm.sock)
       in out.splitlines())
rc, out, err = dm.ctl("help")
c.true("help lists rules reload", "rules reload [FILE]" in out)
c.eq("unknown command exit", dm.ctl("reboot")[0], 2)
r = subprocess.run([ctltest.ctl_bin(), "--socket", d + "/none.sock",
                    "status"], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)
c.eq("no daemon exit", r.returncode, 3)
# A protected domain: the ledger runs (learn_outbound by default) and
# its commands answer; without a snapshot path, ledger save says so.
rc, out, err = dm.ctl("ledger", "stats")
c.eq("ledger stats exit (%s)" % err.strip(), rc, 0)
c.true("ledger stats: empty and warming (%s)" % out.replace("\n", " "),
       re.search(r"^entries\s+0$", out, re.M) is not None and
       re.search(r"^warming\s+yes$", out, re.M) is not None)
rc, out, err = dm.ctl("ledger", "save")
c.eq("ledger save without a path exit", rc, 1)
c.true("ledger save: no snapshot path (%s)" % err.strip(),
       "no snapshot path is configured" in err)

# verdict test: a corpus bounce classified and judged with the running
# rules and policy (example.jp is protected in this configuration).
eml = "lhost-activehunter-01.eml"   # a Postfix-like DSN for example.jp
rc, out, err = dm.ctl("--json", "verdict", "test", os.path.join(corpus, eml),
                      "--mail-from=", "--rcpt=kijitora@example.jp")
c.eq("verdict test exit (%s)" % err.strip(), rc, 0)
vt = json.loads(out)["result"] if rc == 0 else {}
c.eq("verdict test: a bounce", vt.get("class"), "dsn")
c.eq("verdict test: judged for the protected domain",
     vt.get("verdict_domain"), "example.jp")
c.true("verdict test: a verdict with reasons",
       vt.get("verdict") in ("legit", "backscatter", "unknown") and
       isinstance(vt.get("reasons"), list))
c.eq("verdict test: missing file", dm.ctl("verdict", "test",
                                          d + "/none.eml")[0], 1)
c.eq("verdict test: FILE required", dm.ctl("verdict", "test")[0], 2)

# A failed compile names the rule's line and keeps generation 1.
bad = os.path.join(d, "bad.rules")
with open(bad, "w") as f:
    f.write("100 dsn body i /delivery failed/ fine\n"
            "101 dsn body i /(unclosed/ broken\n")
rc, out, err = dm.ctl("rules", "reload", bad)
c.eq("bad rules exit", rc, 1)
c.true("error names file and line", "bad.rules:2" in err)
c.true("generation 1 keeps running", "generation 1 keeps running" in err)
st = dm.request({"cmd": "status"})["result"]
c.eq("still generation 1", st["generation"], 1)
c.eq("failed reload counted", st["reloads"]["rules_failed"], 1)
good = os.path.join(d, "good.rules")
with open(good, "w") as f:
    f.write("100 dsn body i /delivery failed/ fine\n")
rc, out, err = dm.ctl("--json", "rules", "reload", good)
rr = json.loads(out)["result"]
c.eq("reload -> generation 2", rr["generation"], 2)
c.eq("one rule", rr["rules"], 1)

# Malformed requests over the raw protocol; the daemon keeps serving.
for raw, code in ((b"hello\n", "bad_json"), (b"[]\n", "bad_json"),
                  (b'{"cmd":"x"}\n', "unknown_command"),
                  (b'{"cmd":"stats","args":{"zz":1}}\n', "bad_argument"),
                  (b'{"cmd":"stats","bad":1}\n', "bad_request"),
                  (b'{"cmd":"flows top","args":{"n":"x"}}\n',
                   "bad_argument")):
    r = dm.request(None, raw=raw)
    c.eq("error for %r" % raw[:30], (r["ok"], r["error"]), (False, code))
s = dm.connect()
s.sendall(b"{" + b" " * (70 << 10) + b"\n")
r = ctltest.read_line(s)
c.true("oversized line refused", '"too_large"' in r)
try:
    rest = s.recv(10)
except ConnectionResetError:  # closed with our excess bytes unread
    rest = b""
c.eq("then closed", rest, b"")
s.close()

# Concurrent clients, pipelined requests, a silent one holding a slot.
idle = dm.connect()
errors = []


def client(k):
    try:
        s = dm.connect()
        req = "".join(json.dumps({"cmd": "stats" if i % 2 else "status",
                                  "id": "%d-%d" % (k, i)}) + "\n"
                      for i in range(20))
        s.sendall(req.encode())
        f = s.makefile("r")
        for i in range(20):
            r = json.loads(f.readline())
            if not r["ok"] or r["id"] != "%d-%d" % (k, i):
                errors.append((k, i, r.get("id")))
        s.close()
    except Exception as e:  # noqa: BLE001
        errors.append((k, repr(e)))


th = [threading.Thread(target=client, args=(k,)) for k in range(20)]
for t in th:
    t.start()
for t in th:
    t.join(60)
c.eq("20 concurrent clients x 20 requests, in order", errors, [])
idle.close()

# Peer credentials: a member of control.socket_group is let in, another
# uid is refused although the socket's mode (0666) lets it connect.
rc, out, err = dm.ctl("status", user=NOBODY)
c.eq("uid nobody, gid nogroup (socket group) allowed", rc, 0)


def as_other():
    os.setgroups([])
    os.setgid(USERS)
    os.setuid(NOBODY)


r = subprocess.run([ctltest.ctl_bin(), "--socket", dm.sock, "status"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   preexec_fn=as_other)
c.eq("other uid refused: exit 1", r.returncode, 1)
c.true("other uid refused: denied", "not allowed" in r.stderr and
       "denied" in r.stderr)
st = dm.request({"cmd": "status"})["result"]
c.true("denied counted", st["control"]["denied"] >= 1)

# DPDK telemetry: the same counters, beside the ports'.
tsock = "/var/run/dpdk/%s/dpdk_telemetry.v2" % dm.prefix
ts = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
ts.connect(tsock)
json.loads(ts.recv(65536))
ts.send(b"/backstop/stats")
tel = json.loads(ts.recv(1 << 20))["/backstop/stats"]
c.eq("telemetry has every counter", sorted(tel), sorted(names))
c.true("telemetry counts traffic", tel["rx_packets"] > 0)
ts.send(b"/backstop/status")
c.eq("telemetry generation", json.loads(ts.recv(65536))[
    "/backstop/status"]["generation"], 2)
ts.close()

# config reload: a live setting and a restart-only one.
with open(dm.cfg, "a") as f:
    f.write("smtp.inspect: false\nflow.table_size: 4096\n")
rc, out, err = dm.ctl("--json", "config", "reload")
cr = json.loads(out)["result"]
c.eq("config reload generation", cr["generation"], 3)
c.true("smtp.inspect applied", "smtp.inspect" in cr["changed"])
c.true("table size needs a restart", "flow.table_size" in
       cr["restart_needed"])
c.true("back to the configured rules", cr["rules"] > 100)
show = dict(line.split(": ", 1) for line in
            dm.ctl("config", "show")[1].splitlines())
c.eq("live value shown", show["smtp.inspect"], "false")
c.eq("running value kept", show["flow.table_size"], "65536")

# SIGHUP reloads the configuration too.
dm.p.send_signal(signal.SIGHUP)
gen = 0
for _ in range(300):
    time.sleep(0.1)
    gen = dm.request({"cmd": "status"})["result"]["generation"]
    if gen == 4:
        break
c.eq("SIGHUP -> generation 4", gen, 4)

rc, rep, out = dm.stop()
c.eq("clean exit", rc, 0)
c.eq("socket removed", os.path.exists(dm.sock), False)
c.true("reload logged", "SIGHUP: configuration reloaded" in dm.stderr())
c.done()
