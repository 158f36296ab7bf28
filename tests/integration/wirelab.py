# SPDX-License-Identifier: BSD-3-Clause
"""A lab for integration tests that need the real packet path and real
time between sessions (the ledger learns an id on one connection and a
bounce quotes it on another a moment later; storm windows; TTLs):

    [ns] w0 ==veth== w0p --(net_af_packet0: Internet side)-- backstop
    [ns] w1 ==veth== w1p --(net_af_packet1: protected side)--   |

backstop forwards between w0p and w1p (inline pair 0<->1, port 1 faces
the protected servers: dataplane.inside_port 1).  An injector process in
the namespace (wire_inject.py) writes crafted frames (scapy, via
gen_pcap's TcpConv) into w0 or w1 and reads what comes out of the other
end; the namespace has no addresses, so no kernel answers anything.
A session of an inbound connection (server inside) has its client's
frames written on side 0 and the server's on side 1; outbound, the
reverse.  Order across the sides is kept by waiting, at each change of
side, until the last frame came out of the other end.  Root only.
"""
import importlib.util
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402
import ctltest  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "gen_pcap", os.path.join(bstest.SRC, "scripts", "gen_pcap.py"))
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


class Wire:
    def __init__(self, name):
        bstest.require(name, root=True, programs=("ip",),
                       python_modules=("scapy",))
        t = str(os.getpid() % 100000)
        self.ns = "bsw%s" % t
        self.ifs = ("bw%sa" % t, "bw%sb" % t)          # in the namespace
        self.peers = ("bw%sA" % t, "bw%sB" % t)        # backstop's ports
        self.dir = bstest.tmpdir()
        self.rnd = random.Random(4242)
        self.inj = None
        self.dm = None
        self.port = 30000
        self.n_start = 0
        sh("ip", "netns", "del", self.ns, check=False)
        sh("ip", "netns", "add", self.ns)
        for a, b in zip(self.ifs, self.peers):
            sh("ip", "link", "del", b, check=False)
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", self.ns)
            for cmd in (("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1"
                         % a),
                        ("ip", "link", "set", a, "promisc", "on"),
                        ("ip", "link", "set", a, "up")):
                sh("ip", "netns", "exec", self.ns, *cmd, check=False)
            sh("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % b,
               check=False)
            sh("ip", "link", "set", b, "up")
        self.inj = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, bstest.PY,
             os.path.join(HERE, "wire_inject.py")] + list(self.ifs),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if json.loads(self.inj.stdout.readline()).get("ready") is not True:
            raise RuntimeError("injector did not start")

    # -- backstop -------------------------------------------------------
    def start(self, cfg, metrics=False):
        """Start backstop with cfg (YAML text; control socket added;
        metrics: /metrics too, at self.dm.metrics_port)."""
        self.n_start += 1
        self.events = os.path.join(self.dir, "events%d.jsonl" %
                                   self.n_start)
        self.dm = ctltest.Daemon(
            self.dir, ["net_af_packet0,iface=%s" % self.peers[0],
                       "net_af_packet1,iface=%s" % self.peers[1]],
            extra_cfg=cfg, opts=["--event-log", self.events],
            metrics=metrics)
        # The ports come up asynchronously: a frame must get through.
        for _ in range(50):
            if self.send(0, self._filler(), wait=True):
                break
        else:
            raise RuntimeError("no path through backstop")
        return self.dm

    def stop(self):
        rc, rep, out = self.dm.stop()
        self.last_stderr = self.dm.stderr()
        self.last_stdout = out
        self.dm = None
        if rc != 0:
            raise RuntimeError("backstop exited %d" % rc)
        return rep, self.records()

    def records(self):
        out = []
        if os.path.exists(self.events):
            with open(self.events) as f:
                for line in f:
                    r = json.loads(line)
                    if "event" not in r:
                        out.append(r)
        return out

    # -- frames ---------------------------------------------------------
    def _cmd(self, obj):
        self.inj.stdin.write(json.dumps(obj) + "\n")
        self.inj.stdin.flush()
        return json.loads(self.inj.stdout.readline())

    def _filler(self):
        self.rnd.random()
        return bytes(gen.ether(0) / gen.IP(src="192.0.2.99",
                                           dst="192.0.2.98") /
                     gen.UDP(sport=9, dport=9) /
                     gen.Raw(b"%d" % self.rnd.randrange(1 << 30)))

    def send(self, side, frame, wait=False):
        return self._cmd({"op": "send", "side": side, "frame": frame.hex(),
                          "wait": wait})["ok"]

    def take(self):
        fr = self._cmd({"op": "take"})["frames"]
        return [[bytes.fromhex(h) for h in fr[0]],
                [bytes.fromhex(h) for h in fr[1]]]

    def quiet(self, ms=200):
        self._cmd({"op": "quiet", "ms": ms})

    def play(self, conv, server_inside=True):
        """Send a conversation's frames through backstop in order."""
        cside = 0 if server_inside else 1
        frames = [(bytes(f), cside if fc else 1 - cside)
                  for f, fc in conv.pkts]
        ok = True
        for i, (f, side) in enumerate(frames):
            last = i + 1 == len(frames) or frames[i + 1][1] != side
            ok &= self.send(side, f, wait=last)
        return ok

    def session(self, mail_from, rcpt, msg, server_inside=True,
                reply=b"250 2.0.0 Ok: queued", v6=False):
        """One SMTP session (gen_pcap's, with the final reply given);
        returns whether every frame came through."""
        self.port += 1
        if server_inside:
            cli, srv = ("2001:db8:1::10", "2001:db8:2::25") if v6 else \
                ("203.0.113.10", "198.51.100.25")
        else:
            cli, srv = ("2001:db8:2::30", "2001:db8:1::25") if v6 else \
                ("198.51.100.30", "203.0.113.25")
        conv = gen.TcpConv(self.rnd, cli, srv, self.port, 25, v6=v6)
        smtp_session(conv, mail_from, rcpt, msg, reply)
        return self.play(conv, server_inside)

    def close(self):
        try:
            if self.dm is not None:
                self.dm.stop()
        finally:
            if self.inj is not None:
                self.inj.kill()
                self.inj.wait()
            sh("ip", "netns", "del", self.ns, check=False)
            for b in self.peers:
                sh("ip", "link", "del", b, check=False)


def smtp_session(conv, mail_from, rcpt, msg, reply=b"250 2.0.0 Ok: queued"):
    """gen_pcap's session, with the reply to the end of data given."""
    if isinstance(rcpt, str):
        rcpt = [rcpt]
    conv.handshake()
    conv.send(False, b"220 mx.example ESMTP\r\n")
    conv.send(True, b"EHLO client.example\r\n")
    conv.send(False, b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
    conv.send(True, b"MAIL FROM:<" + mail_from.encode() + b">\r\n")
    conv.send(False, b"250 2.1.0 Ok\r\n")
    for r in rcpt:
        conv.send(True, b"RCPT TO:<" + r.encode() + b">\r\n")
        conv.send(False, b"250 2.1.5 Ok\r\n")
    conv.send(True, b"DATA\r\n")
    conv.send(False, b"354 End data with <CR><LF>.<CR><LF>\r\n")
    conv.send(True, gen.dot_stuff(msg) + b".\r\n")
    conv.send(False, reply + b"\r\n")
    conv.send(True, b"QUIT\r\n")
    conv.send(False, b"221 2.0.0 Bye\r\n")
    conv.close()


# -- messages ------------------------------------------------------------
def outbound(msgid, sender="alice@example.com",
             to="bob@remote.example.org"):
    return (("From: Alice <%s>\nTo: %s\nSubject: report %s\n"
             "Date: Mon, 01 Dec 2025 10:00:00 +0000\nMessage-ID: <%s>\n\n"
             "The quarterly report.\n") % (sender, to, msgid, msgid)
            ).encode()


def ndr(orig_msgid, orig_from="alice@example.com",
        rcpt="alice@example.com", remote="mx.remote.example.org"):
    """A Postfix non-delivery report quoting an original by its id."""
    return ("""Return-Path: <>
From: MAILER-DAEMON@%(remote)s (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: %(rcpt)s
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="B1"
Message-Id: <ndr.%(id)s@%(remote)s>

This is a MIME-encapsulated message.

--B1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host %(remote)s.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<nobody@remote.example.org>: unknown user: "nobody"

--B1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; %(remote)s

Final-Recipient: rfc822; nobody@remote.example.org
Original-Recipient: rfc822;nobody@remote.example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: X-Postfix; unknown user: "nobody"

--B1
Content-Description: Undelivered Message
Content-Type: message/rfc822

From: Alice <%(from)s>
To: nobody@remote.example.org
Subject: report
Date: Mon, 01 Dec 2025 10:00:00 +0000
Message-ID: <%(id)s>

The quarterly report.

--B1--
""" % {"remote": remote, "rcpt": rcpt, "from": orig_from,
       "id": orig_msgid}).encode()


def ooo(in_reply_to, to="alice@example.com", frm="bob@remote.example.org"):
    """An out-of-office reply: no original, answers by In-Reply-To."""
    return ("""From: Bob <%s>
To: %s
Subject: Out of Office: report
Auto-Submitted: auto-replied
X-Autoreply: yes
In-Reply-To: <%s>
References: <%s>
Message-ID: <ooo.%s>

I am out of the office until Monday and will read your message then.
""" % (frm, to, in_reply_to, in_reply_to, in_reply_to)).encode()
