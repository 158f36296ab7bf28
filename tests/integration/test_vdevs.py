#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""backstop runs on the other software PMDs: net_null (an inline pair fed
by the PMD's own generator, for a fixed duration) and net_af_packet on a
veth pair (root only: frames sent into one end come back out of it)."""
import os
import json
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("vdevs")

_, rep, ports, _, _ = bstest.run(["net_null0", "net_null1"],
                                 ["--duration", "1"])
c.true("net_null: packets received (%s)" % rep.get("rx_packets"),
       rep.get("rx_packets", 0) > 1000)
c.eq("net_null: every packet forwarded or counted",
     rep.get("tx_packets", 0) + rep.get("tx_dropped", 0),
     rep.get("rx_packets"))
c.eq("net_null: port 0 rx leaves on port 1", ports[1]["tx"] + ports[1]["drop"],
     ports[0]["rx"])

# Two workers: net_null has queues and RSS, so each port gets one queue
# per worker (two lcores share a core here: --lcores 1@1,2@1).
_, rep, ports, _, err = bstest.run(["net_null0", "net_null1"],
                                   ["--duration", "1"],
                                   eal=["--lcores", "0@0,1@1,2@1"])
c.eq("two workers forward", rep.get("workers"), 2)
c.true("queues per worker with symmetric RSS logged",
       "2 queue(s), symmetric RSS (verified)" in err)
c.eq("two workers: every packet forwarded or counted",
     rep.get("tx_packets", 0) + rep.get("tx_dropped", 0),
     rep.get("rx_packets"))
c.eq("two workers: per-port sums agree with the counters",
     ports[0]["rx"] + ports[1]["rx"], rep.get("rx_packets"))

if os.geteuid() == 0:
    # A lone af_packet port on one end of a veth pair reflects what the
    # other end sends.
    a, b = "bsva%d" % (os.getpid() % 10000), "bsvb%d" % (os.getpid() % 10000)
    subprocess.run(["ip", "link", "del", a], stderr=subprocess.DEVNULL)
    subprocess.check_call(["ip", "link", "add", a, "type", "veth", "peer",
                           "name", b])
    try:
        for i in (a, b):
            subprocess.check_call(["ip", "link", "set", i, "up"])
            subprocess.run(["ethtool", "-K", i, "tx", "off"],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        d = bstest.tmpdir()
        src = os.path.join(d, "in.pcap")
        bstest.gen("mixed", src, "--seed", "5")
        # Two properties of the kernel path, not of backstop: the PMD's
        # packet socket asks the kernel to reassemble IPv4 fragments
        # (PACKET_FANOUT_FLAG_DEFRAG), and the reassembled datagram is
        # above the MTU on the way out; and the kernel strips VLAN tags
        # into metadata, so the PMD re-inserts an 802.1ad outer tag as
        # 802.1Q.  Runts below 60 bytes are padded by the sender.
        def kernel_path_ok(f):
            is_v4_frag = f[12:14] == b"\x08\x00" and (
                int.from_bytes(f[20:22], "big") & 0x3fff)
            return len(f) >= 60 and not is_v4_frag and \
                f[12:14] != b"\x88\xa8"
        want = [f for f in bstest.read_pcap(src) if kernel_path_ok(f)]
        sniff = subprocess.Popen(
            ["tcpdump", "-i", b, "-Q", "in", "-w", os.path.join(d, "got.pcap"),
             "-U", "ether src 02:00:00:00:00:01"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bs = subprocess.Popen(
            [bstest.backstop_bin(), "--no-huge", "--no-pci", "-m", "256",
             "-l", "0-1", "--file-prefix", "bsaf%d" % os.getpid(), "--vdev",
             "net_af_packet0,iface=%s" % a, "--", "--duration", "6"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        inj = os.path.join(d, "inj.pcap")
        from_raw = subprocess.run(
            [bstest.PY, "-c",
             "import sys\nfrom scapy.all import rdpcap, sendp\n"
             "import json\n"
             "keep=set(bytes.fromhex(h) for h in json.loads(sys.argv[3]))\n"
             "p=[x for x in rdpcap(sys.argv[1]) if bytes(x) in keep]\n"
             "sendp(p, iface=sys.argv[2], verbose=False)\n", src, b,
             json.dumps([f.hex() for f in want])])
        c.eq("frames injected", from_raw.returncode, 0)
        out, err = bs.communicate(timeout=60)
        time.sleep(0.5)
        sniff.terminate()
        sniff.wait(timeout=10)
        rep = {}
        for line in out.splitlines():
            k, _, v = line.partition(" ")
            if v.isdigit():
                rep[k] = int(v)
        c.eq("af_packet: backstop exit", bs.returncode, 0)
        c.true("af_packet: received all injected frames (%s of %d)" % (
            rep.get("rx_packets"), len(want)),
            rep.get("rx_packets", 0) >= len(want))
        got = bstest.read_pcap(os.path.join(d, "got.pcap"))
        c.eq("af_packet: reflected frames byte-exact, in order",
             bstest.frames_diff(got, want), None)
    finally:
        subprocess.run(["ip", "link", "del", a], stderr=subprocess.DEVNULL)
else:
    print("vdevs: af_packet case needs root; skipped")
c.done()
