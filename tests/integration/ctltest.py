# SPDX-License-Identifier: BSD-3-Clause
"""Helpers for control-plane tests: start backstop in the background with
a control socket (and optionally /metrics), talk the JSON-lines protocol
directly, run backstopctl, stop cleanly."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

_n = [0]


def ctl_bin():
    return os.environ.get("BACKSTOPCTL", os.path.join(
        os.path.dirname(bstest.backstop_bin()), "backstopctl"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Daemon:
    """backstop with control.socket in d; vdevs as given."""

    def __init__(self, d, vdevs, extra_cfg="", opts=(), binary=None,
                 metrics=False, mem=256, env=None):
        _n[0] += 1
        self.d = d
        self.sock = os.path.join(d, "ctl.sock")
        self.prefix = "bsctl%d_%d" % (os.getpid(), _n[0])
        self.metrics_port = free_port() if metrics else None
        self.cfg = os.path.join(d, "backstop.yaml")
        with open(self.cfg, "w") as f:
            f.write("control.socket: %s\n" % self.sock)
            if metrics:
                f.write("metrics.listen: 127.0.0.1:%d\n" %
                        self.metrics_port)
            f.write(extra_cfg)
        cmd = [binary or bstest.backstop_bin(), "--no-huge", "--no-pci",
               "-m", str(mem), "-l", "0-1", "--file-prefix", self.prefix,
               "--log-level", "user1,info"]
        for v in vdevs:
            cmd += ["--vdev", v]
        cmd += ["--", "--config", self.cfg] + list(opts)
        self.out = open(os.path.join(d, "stdout.%d" % _n[0]), "w+")
        self.err = open(os.path.join(d, "stderr.%d" % _n[0]), "w+")
        self.p = subprocess.Popen(cmd, stdout=self.out, stderr=self.err,
                                  env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("backstop exited %d: %s" % (
                    self.p.returncode, self.stderr()))
            try:
                r = self.request({"cmd": "status"})
                if r.get("ok"):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("control socket never answered")

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.sock)
        return s

    def request(self, obj, raw=None):
        """Send one request (obj as JSON, or raw bytes), return the reply."""
        s = self.connect()
        try:
            s.sendall(raw if raw is not None else
                      (json.dumps(obj) + "\n").encode())
            return json.loads(read_line(s))
        finally:
            s.close()

    def ctl(self, *args, user=None, check=None):
        """Run backstopctl; returns (rc, stdout, stderr)."""
        pre = None
        if user is not None:
            def pre():
                os.setgid(user)
                os.setuid(user)
        r = subprocess.run([ctl_bin(), "--socket", self.sock] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=120, preexec_fn=pre)
        return r.returncode, r.stdout, r.stderr

    def stderr(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()

    def stop(self, sig=signal.SIGTERM):
        """Stop; returns (returncode, report dict, stdout)."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        self.p.wait(timeout=120)
        self.out.flush()
        self.out.seek(0)
        o = self.out.read()
        rep = {}
        for line in o.splitlines():
            k, _, v = line.partition(" ")
            if v.isdigit():
                rep[k] = int(v)
        return self.p.returncode, rep, o


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode()
