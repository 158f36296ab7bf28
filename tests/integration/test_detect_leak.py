#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Aborted messages leak nothing: SMTP sessions that end inside DATA (RST
from either side, the client's FIN, a cut in the header) carrying bounces
with Latin-1 and other legacy-charset parts, and plain mail with one, are
replayed by net_pcap (infinite_rx=1) for several seconds; the resident
size of backstop, sampled from /proc/PID/status after a warm-up, must stay
flat.  The same sessions completed are the control.  A leak of one charset
converter per aborted message (glibc's gconv buffers are ~32 KiB) grows
the process by tens of MB per second here."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

SECONDS = 7        # run length
WARMUP = 2.5       # seconds before the first sample that counts
BOUND_KB = 4096    # allowed growth after the warm-up
MIN_ABORTED = 20000  # fewer aborted messages: the run proves nothing

c = bstest.Checker("detect_leak")
d = bstest.tmpdir()
# One port carries both directions (net_null answers nothing): no port
# faces the servers, direction comes from the addresses (inside_port 2).
conf = os.path.join(d, "lone.yaml")
with open(conf, "w") as f:
    f.write("dataplane:\n  inside_port: 2\n")


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def replay(name, pcap):
    """Run backstop on pcap replayed forever; return (samples after the
    warm-up as (t, kB), exit report)."""
    cmd = [bstest.backstop_bin(), "--no-huge", "--no-pci", "-m", "256",
           "-l", "0-1", "--file-prefix", "bsleak%d%s" % (os.getpid(), name),
           "--log-level", "lib.eal,warning",
           "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap,
           "--vdev", "net_null0,no-rx=1", "--",
           "--config", conf, "--duration", str(SECONDS)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    t0 = time.time()
    samples = []
    while p.poll() is None and time.time() - t0 < SECONDS + 30:
        time.sleep(0.25)
        t = time.time() - t0
        kb = rss_kb(p.pid)
        # The last half second may be the shutdown: not the steady state.
        if kb is not None and WARMUP <= t <= SECONDS - 0.5:
            samples.append((t, kb))
    out, err = p.communicate(timeout=60)
    c.eq("%s: backstop exit status" % name, p.returncode, 0)
    if p.returncode != 0:
        sys.stderr.write(out[-2000:] + err[-2000:])
    rep = {}
    for line in out.splitlines():
        m = re.match(r"^([a-z_0-9]+) ([0-9]+)$", line)
        if m:
            rep[m.group(1)] = int(m.group(2))
    return samples, rep


def check_flat(name, samples, rep, key, minimum):
    c.true("%s: enough RSS samples after the warm-up (%d)" %
           (name, len(samples)), len(samples) >= 8)
    c.true("%s: %s=%s, at least %d (else the run proves nothing)" %
           (name, key, rep.get(key), minimum), rep.get(key, 0) >= minimum)
    if not samples:
        return
    first, last = samples[0][1], samples[-1][1]
    peak = max(kb for _, kb in samples)
    rate = (last - first) / max(samples[-1][0] - samples[0][0], 0.1)
    print("%s: VmRSS %d kB at %.1fs, %d kB at %.1fs, peak %d kB "
          "(%.0f kB/s), %s %s" % (name, first, samples[0][0], last,
                                  samples[-1][0], peak, rate, key,
                                  rep.get(key)))
    c.true("%s: VmRSS grew %d kB after the warm-up (bound %d kB)" %
           (name, peak - first, BOUND_KB), peak - first <= BOUND_KB)
    # Nothing held by messages is left once they are all gone: at exit
    # the workers have ended every flow.
    for g in ("detect_msgs_live", "detect_streams_live"):
        c.eq("%s: %s at exit" % (name, g), rep.get(g), 0)


aborted = os.path.join(d, "aborted.pcap")
complete = os.path.join(d, "complete.pcap")
bstest.gen("abort", aborted, "--seed", "7", "--count", "72")
bstest.gen("abort", complete, "--seed", "7", "--count", "72", "--complete")

s, rep = replay("aborted", aborted)
check_flat("aborted", s, rep, "smtp_txn_aborted", MIN_ABORTED)
# The aborted messages were bounce candidates, converted text, and the
# per-thread converter cache kept its descriptors (12 charsets: a handful
# of opens per worker, not one per message).
c.true("aborted: candidates were scanned (detect_candidates=%s)" %
       rep.get("detect_candidates"), rep.get("detect_candidates", 0) > 0)
c.true("aborted: converters opened %s times, at most 16 per worker" %
       rep.get("detect_charset_opens"),
       0 < rep.get("detect_charset_opens", 0) <= 16 * rep.get("workers", 1))
s, rep = replay("complete", complete)
check_flat("complete", s, rep, "detect_msgs", MIN_ABORTED // 4)
c.true("complete: bounces found (detect_class_dsn=%s)" %
       rep.get("detect_class_dsn"), rep.get("detect_class_dsn", 0) > 0)
c.done()
