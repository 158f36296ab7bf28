#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The demo: install what is missing, build, generate a capture of SMTP
# sessions carrying real bounces and ordinary mail from ../shared/corpus
# (plus other traffic: IPv6, VLANs, fragments, broken frames), run backstop
# on it as an inline pair of net_pcap ports, and show what it did.
#
#   scripts/demo.sh [--keep DIR]     keep the captures and the report in DIR
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/setup.sh
scripts/build.sh

out=$(mktemp -d /tmp/backstop-demo.XXXXXX)
if [ "${1:-}" = "--keep" ]; then out="$2"; mkdir -p "$out"; fi
corpus="$top/../shared/corpus"
msgs=()
for d in ndr/sisimai not-ndr/mail-gem autoreply/sisimai; do
	[ -d "$corpus/$d" ] && msgs+=("$corpus/$d")
done
if [ ${#msgs[@]} -gt 0 ]; then
	/usr/bin/python3 scripts/gen_pcap.py smtp "$out/all.pcap" --seed 2026 \
		--messages "${msgs[@]}" --max 8 --with-mixed \
		--split "$out/internet.pcap" "$out/mailserver.pcap" 2>/dev/null
else
	echo "demo: no ../shared/corpus; using built-in messages"
	/usr/bin/python3 scripts/gen_pcap.py mixed "$out/all.pcap" --seed 2026 \
		--split "$out/internet.pcap" "$out/mailserver.pcap" 2>/dev/null
fi

echo "== backstop: port 0 faces the Internet, port 1 the mail server"
build/backstop --no-huge --no-pci -m 256 -l 0-1 --file-prefix bsdemo \
	--log-level user1,info \
	--vdev "net_pcap0,rx_pcap=$out/internet.pcap,tx_pcap=$out/to-internet.pcap" \
	--vdev "net_pcap1,rx_pcap=$out/mailserver.pcap,tx_pcap=$out/to-mailserver.pcap" \
	-- --idle-exit 300 >"$out/report.txt" 2>"$out/log.txt"
grep BACKSTOP "$out/log.txt" | sed 's/^BACKSTOP: /   /'

/usr/bin/python3 - "$out" <<'PY'
import os, sys
sys.path.insert(0, "tests/integration")
import bstest
out = sys.argv[1]
rep, ports = {}, []
for line in open(os.path.join(out, "report.txt")):
    line = line.rstrip("\n")
    if line.startswith("port "):
        ports.append(line)
        continue
    k, _, v = line.partition(" ")
    rep[k] = v
print("== ports")
for p in ports:
    print("  ", p)
print("== traffic")
for k in ("rx_packets", "tx_packets", "tx_dropped", "pkt_ipv4", "pkt_ipv6",
          "pkt_vlan", "pkt_fragment", "pkt_truncated", "pkt_malformed",
          "pkt_non_ip"):
    print("   %-16s %s" % (k, rep.get(k, "?")))
print("== SMTP flows")
for k in ("smtp_packets", "flow_created", "flow_closed", "flow_expired",
          "flow_table_full"):
    print("   %-16s %s" % (k, rep.get(k, "?")))
extra = [k for k in rep if k.startswith(("smtp_", "reasm_", "detect_",
                                         "bounce", "verdict"))
         and k not in ("smtp_packets",) and rep[k] != "0"]
for k in extra:
    print("   %-16s %s" % (k, rep[k]))
a = bstest.read_pcap(os.path.join(out, "internet.pcap"))
b = bstest.read_pcap(os.path.join(out, "to-mailserver.pcap"))
c = bstest.read_pcap(os.path.join(out, "mailserver.pcap"))
d = bstest.read_pcap(os.path.join(out, "to-internet.pcap"))
same = bstest.frames_diff(b, a) is None and bstest.frames_diff(d, c) is None
print("== inline check: %d + %d frames forwarded %s" % (
    len(a), len(c), "byte-exact" if same else "WITH DIFFERENCES"))
print("   files in %s" % out)
sys.exit(0 if same else 1)
PY
