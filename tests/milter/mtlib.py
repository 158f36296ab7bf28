# SPDX-License-Identifier: BSD-3-Clause
"""Drive backstop-milter with an independent milter client: OpenDKIM's
miltertest (Debian package miltertest), which speaks the MTA's side of
the milter protocol from a Lua script.

Milter starts backstop-milter on a loopback TCP port with a YAML
configuration, an event log and its counters on standard output
(SIGUSR1).  lua_message() turns a message file into the Lua calls an MTA
makes: MAIL, RCPTs, one header call per field (value as the protocol
carries it: after the colon, leading space kept, folds joined by LF),
end of header, the body in chunks, end of message; the reply is
printed as "REPLY <name> <code>".  run_lua() runs one script.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time

MILTERTEST = "/usr/bin/miltertest"
# Replies (libmilter's mfdef.h): continue, accept, reply code, reject.
REPLY = {99: "continue", 97: "accept", 121: "replycode", 114: "reject",
         116: "tempfail", 100: "discard"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def lua_str(b):
    """A Lua string literal holding exactly the bytes b."""
    out = ['"']
    for c in b:
        ch = chr(c)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= c < 127:
            out.append(ch)
        else:
            out.append("\\%03d" % c)  # 3 digits: a digit may follow
    out.append('"')
    return "".join(out)


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def split_message(msg):
    """(fields, body): fields [(name, value)] as the milter protocol
    passes them; body the bytes after the empty line (CRLF)."""
    m = crlf(msg)
    end = m.find(b"\r\n\r\n")
    if end < 0:
        head, body = m, b""
    else:
        head, body = m[:end + 2], m[end + 4:]
    fields = []
    for line in head.split(b"\r\n"):
        if line == b"":
            continue
        if line[:1] in (b" ", b"\t") and fields:
            n, v = fields[-1]
            fields[-1] = (n, v + b"\n" + line)
        elif b":" in line:
            n, _, v = line.partition(b":")
            fields.append((n, v))
    return fields, body


def lua_message(conn, mail_from, rcpts, msg, name, macros=None,
                chunk=60000):
    """Lua for one transaction on connection variable conn.  macros:
    {"{daemon_name}": "ORIGINATING"} sent with MAIL.  stop_after: a step
    name after which the script disconnects abruptly instead."""
    # An answer of accept ends the message for the milter (an MTA then
    # sends no more of it): the steps are a function that returns there.
    fn = "tx_%s" % "".join(ch if ch.isalnum() else "_" for ch in name)
    lines = ["local function %s()" % fn]
    if macros:
        args = ", ".join("%s, %s" % (lua_str(k.encode()), lua_str(v.encode()))
                         for k, v in macros.items())
        lines.append("mt.macro(%s, SMFIC_MAIL, %s)" % (conn, args))
    lines.append("check(mt.mailfrom(%s, %s), 'mailfrom')" %
                 (conn, lua_str(mail_from.encode())))
    for r in rcpts:
        lines.append("check(mt.rcptto(%s, %s), 'rcpt')" %
                     (conn, lua_str(r.encode())))
    fields, body = split_message(msg)
    for n, v in fields:
        lines.append("check(mt.header(%s, %s, %s), 'header')" %
                     (conn, lua_str(n), lua_str(v)))
    stop = "if mt.getreply(%s) == SMFIR_ACCEPT then return end" % conn
    lines.append("check(mt.eoh(%s), 'eoh')" % conn)
    lines.append(stop)
    for i in range(0, len(body), chunk):
        lines.append("check(mt.bodystring(%s, %s), 'body')" %
                     (conn, lua_str(body[i:i + chunk])))
        lines.append(stop)
    lines.append("check(mt.eom(%s), 'eom')" % conn)
    lines.append("end")
    lines.append("%s()" % fn)
    lines.append('print("REPLY %s " .. mt.getreply(%s))' % (name, conn))
    return "\n".join(lines) + "\n"


LUA_HEAD = """
function check(r, what)
  if r ~= nil then error(what .. ": " .. tostring(r)) end
end
function open(spec)
  local c = mt.connect(spec, 40, 0.25)
  if c == nil then error("connect " .. spec) end
  check(mt.conninfo(c, "remote.example.org", "192.0.2.9"), "conninfo")
  return c
end
"""


def backscatter(msgid=b"<a1@example.com>", pad=0):
    """A DSN for mail 'from' alice@example.com whose Received chain
    passes none of the relays out.example.com (backscatter unless
    something proves it legit); pad lines of padding make it longer."""
    return crlf(
        b"From: Mail Delivery System <MAILER-DAEMON@remote.example.org>\n"
        b"To: alice@example.com\n"
        b"Subject: Undelivered Mail Returned to Sender\n"
        b"Content-Type: multipart/report; report-type=delivery-status;\n"
        b"\tboundary=\"XX\"\n\n"
        b"--XX\nContent-Type: text/plain\n\n"
        b"I'm sorry to have to inform you that your message could not\n"
        b"be delivered to one or more recipients.\n" +
        b"padding padding padding padding padding padding\n" * pad +
        b"\n--XX\nContent-Type: message/delivery-status\n\n"
        b"Reporting-MTA: dns; remote.example.org\n\n"
        b"Final-Recipient: rfc822; bob@remote.example.org\n"
        b"Action: failed\nStatus: 5.1.1\n\n"
        b"--XX\nContent-Type: message/rfc822\n\n"
        b"Received: from spam.example.net (spam.example.net [203.0.113.7])\n"
        b"\tby mx.remote.example.org (Postfix) with ESMTP id 1234\n"
        b"From: alice@example.com\nTo: bob@remote.example.org\n"
        b"Message-ID: " + msgid + b"\nSubject: hi\n\nhello\n--XX--\n")


def full(spec, name, msg=None, rcpt="<alice@example.com>", mail_from="<>",
         macros=None):
    """Lua for one connection to spec with one whole transaction of msg
    (default backscatter()), then a disconnect."""
    return ("%s = open(%s)\n" % (name, lua_str(spec.encode())) +
            lua_message(name, mail_from, [rcpt], msg or backscatter(), name,
                        macros=macros) +
            "mt.disconnect(%s)\n" % name)


def lua_checked(checker, what, lua, timeout=60):
    """run_lua(lua); checker records that miltertest ran cleanly.
    Returns the replies."""
    rc, replies, out, err = run_lua(lua, timeout=timeout)
    checker.eq("%s: miltertest ran (%s)" % (what, err[-300:]), rc, 0)
    return replies


def run_lua(body, timeout=60):
    """Run one miltertest script; returns (returncode, {name: reply},
    stdout, stderr)."""
    fd, path = tempfile.mkstemp(suffix=".lua", prefix="bsmt-")
    with os.fdopen(fd, "w") as f:
        f.write(LUA_HEAD + body)
    try:
        r = subprocess.run([MILTERTEST, "-s", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
    finally:
        os.unlink(path)
    replies = {}
    for line in r.stdout.splitlines():
        if line.startswith("REPLY "):
            _, name, code = line.split()
            replies[name] = REPLY.get(int(float(code)), code)
    return r.returncode, replies, r.stdout, r.stderr


class Milter:
    """backstop-milter on a loopback port (or a UNIX socket)."""

    def __init__(self, binary, workdir, config, role="inbound", args=(),
                 unix=False, name="milter", prefix=(), port=None):
        self.dir = workdir
        self.cfg = os.path.join(workdir, name + ".yaml")
        with open(self.cfg, "w") as f:
            f.write(config)
        if unix:
            self.spec = "unix:" + os.path.join(workdir, name + ".sock")
        else:
            self.spec = "inet:%d@127.0.0.1" % (port or free_port())
        self.events = os.path.join(workdir, name + ".events")
        self.out_path = os.path.join(workdir, name + ".out")
        self.err_path = os.path.join(workdir, name + ".err")
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        cmd = list(prefix) + [binary, "--config", self.cfg, "--listen", self.spec,
               "--role", role, "--event-log", self.events] + list(args)
        self.p = subprocess.Popen(cmd, stdout=self.out, stderr=self.err)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("backstop-milter exited %d: %s" %
                                   (self.p.returncode, self.stderr()))
            if "listening on" in self.stderr():
                return
            time.sleep(0.05)
        raise RuntimeError("backstop-milter did not start: %s" %
                           self.stderr())

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def alive(self):
        return self.p.poll() is None

    def counters(self):
        """Every counter, printed by the milter on SIGUSR1."""
        before = os.path.getsize(self.out_path)
        self.p.send_signal(signal.SIGUSR1)
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(self.out_path) as f:
                f.seek(before)
                text = f.read()
            if "milter_in_flight " in text:
                break
            time.sleep(0.05)
        c = {}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if v.isdigit():
                c[k] = int(v)
        return c

    def event_lines(self):
        if not os.path.exists(self.events):
            return []
        with open(self.events) as f:
            return [json.loads(x) for x in f if x.strip()]

    def stop(self):
        """SIGTERM (libmilter's clean stop); returns the exit counters."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise RuntimeError("backstop-milter ignored SIGTERM")
        self.out.close()
        self.err.close()
        c = {}
        with open(self.out_path) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                if v.isdigit():
                    c[k] = int(v)
        return self.p.returncode, c
