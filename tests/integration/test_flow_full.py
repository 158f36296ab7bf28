#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""A full flow table never stops forwarding: with room for 64 flows and
hundreds of concurrent SMTP sessions, every frame still leaves byte-exact,
the overflow is counted, and the table never holds more than its size."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bstest  # noqa: E402

c = bstest.Checker("flow_full")
d = bstest.tmpdir()
src, out = os.path.join(d, "in.pcap"), os.path.join(d, "out.pcap")
bstest.gen("bench", src, "--seed", "3", "--flows", "400", "--packets",
           "12000")
conf = os.path.join(d, "small.yaml")
with open(conf, "w") as f:
    f.write("flow:\n  table_size: 64\n")
_, rep, _, _, _ = bstest.run(
    ["net_pcap0,rx_pcap=%s,tx_pcap=%s" % (src, out)],
    ["--config", conf, "--idle-exit", "300"])
want = bstest.read_pcap(src)
c.eq("output byte-exact", bstest.frames_diff(bstest.read_pcap(out), want),
     None)
c.true("overflow counted (flow_table_full=%s)" % rep.get("flow_table_full"),
       rep.get("flow_table_full", 0) > 0)
c.true("table full but never above its size (flow_active=%s)" %
       rep.get("flow_active"), 0 < rep.get("flow_active", 1 << 30) <= 64)
c.true("flows were created", rep.get("flow_created", 0) >= 64)
c.eq("tx = rx", rep.get("tx_packets"), len(want))
c.done()
