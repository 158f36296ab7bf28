# SPDX-License-Identifier: BSD-3-Clause
"""Helpers for integration tests: run backstop on captures, read pcaps
(standard library only, so comparisons do not depend on the generator's
library), parse the exit report."""
import os
import re
import struct
import subprocess
import sys
import tempfile

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
PY = "/usr/bin/python3"   # Debian's, with python3-scapy
GEN = os.path.join(SRC, "scripts", "gen_pcap.py")

_prefix_n = [0]
_scapy_ok = [False]


def backstop_bin():
    return os.environ.get("BACKSTOP", os.path.join(SRC, "build", "backstop"))


def read_pcap(path):
    """Return the list of frames (bytes) of a classic pcap file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError("%s: short pcap (%d bytes)" % (path, len(data)))
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xa1b2c3d4, 0xa1b23c4d):
        end = "<"
    elif magic in (0xd4c3b2a1, 0x4d3cb2a1):
        end = ">"
    else:
        raise ValueError("%s: not a pcap file" % path)
    off, out = 24, []
    while off < len(data):
        if off + 16 > len(data):
            raise ValueError("%s: cut record header at %d" % (path, off))
        _, _, caplen, _ = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        if off + caplen > len(data):
            raise ValueError("%s: cut record at %d" % (path, off))
        out.append(data[off:off + caplen])
        off += caplen
    return out


def gen(mode, out, *args):
    if not _scapy_ok[0]:
        require("gen_pcap", python_modules=("scapy",))
        _scapy_ok[0] = True
    r = subprocess.run([PY, GEN, mode, out] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise RuntimeError("gen_pcap failed")
    sys.stdout.write(r.stderr)


def run(vdevs, opts=(), eal=(), check=True, timeout=120):
    """Run backstop; return (returncode, report dict, ports, stdout, stderr)."""
    _prefix_n[0] += 1
    lcores = [] if any(e in ("-l", "--lcores") for e in eal) else \
        ["-l", "0-1"]
    cmd = [backstop_bin(), "--no-huge", "--no-pci", "-m", "256"] + lcores + [
           "--file-prefix", "bst%d_%d" % (os.getpid(), _prefix_n[0]),
           "--log-level", "user1,info"] + list(eal)
    for v in vdevs:
        cmd += ["--vdev", v]
    cmd += ["--"] + list(opts)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    rep, ports = {}, {}
    for line in r.stdout.splitlines():
        m = re.match(r"^([a-z_0-9]+) ([0-9.]+)$", line)
        if m:
            rep[m.group(1)] = float(m.group(2)) if "." in m.group(2) \
                else int(m.group(2))
        m = re.match(r"^port (\d+) \((\S+)\): rx (\d+) tx (\d+) "
                     r"tx_dropped (\d+)", line)
        if m:
            ports[int(m.group(1))] = dict(rx=int(m.group(3)),
                                          tx=int(m.group(4)),
                                          drop=int(m.group(5)))
    if check and r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise RuntimeError("backstop exited %d" % r.returncode)
    return r.returncode, rep, ports, r.stdout, r.stderr


class Checker:
    def __init__(self, name):
        self.name, self.failed, self.n = name, 0, 0

    def eq(self, what, got, want):
        self.n += 1
        if got != want:
            self.failed += 1
            print("FAIL %s: %s: got %r, want %r" % (self.name, what, got,
                                                    want))

    def true(self, what, cond):
        self.n += 1
        if not cond:
            self.failed += 1
            print("FAIL %s: %s" % (self.name, what))

    def done(self):
        print("%s: %d checks, %d failed" % (self.name, self.n, self.failed))
        sys.exit(1 if self.failed else 0)


def require(name, root=False, programs=(), perl_modules=(),
            python_modules=(), corpus=False):
    """Fail the test (exit 1) naming every missing prerequisite: a test
    whose tools are absent must not pass or skip silently.  setup.sh
    installs them all; this says which one a machine lacks."""
    import shutil
    missing = []
    if root and os.geteuid() != 0:
        missing.append("root (network namespaces, veth pairs)")
    for p in programs:
        if shutil.which(p) is None and not os.access(p, os.X_OK):
            missing.append("program %s" % p)
    for m in perl_modules:
        if subprocess.run(["perl", "-M" + m, "-e", "1"],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            missing.append("Perl module %s" % m)
    for m in python_modules:
        if subprocess.run([PY, "-c", "import " + m],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            missing.append("Python module %s (for %s)" % (m, PY))
    if corpus and not os.path.isdir(CORPUS):
        missing.append("the shared corpus at %s" % CORPUS)
    if missing:
        print("FAIL %s: missing prerequisite: %s (scripts/setup.sh "
              "installs them)" % (name, "; ".join(missing)))
        sys.exit(1)


CORPUS = os.path.normpath(os.path.join(SRC, "..", "shared", "corpus"))


def tmpdir():
    return tempfile.mkdtemp(prefix="bstest-")


# Every frame gets exactly one parse result.
RESULT_COUNTERS = ("pkt_tcp", "pkt_udp", "pkt_other_l4", "pkt_fragment",
                   "pkt_non_ip", "pkt_truncated", "pkt_malformed")


def frames_diff(got, want):
    """Describe the first difference between two frame lists, or None."""
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return "frame %d differs (%d vs %d bytes)" % (i, len(g), len(w))
    if len(got) != len(want):
        return "%d frames, want %d" % (len(got), len(want))
    return None
