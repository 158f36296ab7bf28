#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The demo: install what is missing, build, generate a capture of SMTP
# sessions carrying real bounces and ordinary mail from ../shared/corpus
# (plus other traffic: IPv6, VLANs, fragments, broken frames), run backstop
# on it through net_pcap, and show what it did and what it found; then
# the inline action: a backscatter bounce refused (550 5.7.1 to the
# remote, RST to the server) and a legitimate one delivered, with reasons.
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
		--messages "${msgs[@]}" --max 8 --with-mixed 2>/dev/null
else
	echo "demo: no ../shared/corpus; using built-in messages"
	/usr/bin/python3 scripts/gen_pcap.py mixed "$out/all.pcap" --seed 2026 \
		2>/dev/null
fi

# One port carrying both directions in capture order.  (Two net_pcap
# ports, one per direction, would replay each file at its own pace and
# lose the order between them: a server would ACK data the filter has
# not seen yet, which on a real wire cannot happen, and the filter
# rightly stops inspecting such flows.)
echo "== backstop on $out/all.pcap (one port: what comes in goes back out)"
build/backstop --no-huge --no-pci -m 256 -l 0-1 --file-prefix bsdemo \
	--log-level user1,info \
	--vdev "net_pcap0,rx_pcap=$out/all.pcap,tx_pcap=$out/out.pcap" \
	-- --idle-exit 300 --event-log "$out/events.jsonl" --event-digest \
	>"$out/report.txt" 2>"$out/log.txt"
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
for k in ("smtp_flows", "smtp_txn_done", "smtp_uninspected",
          "reasm_unreliable", "seg_dropped_conflict"):
    print("   %-16s %s" % (k, rep.get(k, "?")))
print("== messages (from the event log: one JSON line per transaction)")
import json
recs = [json.loads(l) for l in open(os.path.join(out, "events.jsonl"))]
print("   %-4s %-22s %-9s %-42s %s" % ("#", "client", "from", "subject",
                                       "class"))
for i, r in enumerate(recs, 1):
    top = r.get("detect", {}).get("top", {})
    subj = top.get("subject", "")
    subj = subj if len(subj) <= 40 else subj[:37] + "..."
    print("   %-4d %-22s %-9s %-42s %s" % (
        i, "%s:%d" % (r["flow"]["src"], r["flow"]["sport"]),
        "<>" if r["mail_from"] == "" else "<sender>", subj,
        r.get("class", "-")))
classes = {}
for r in recs:
    classes[r.get("class", "-")] = classes.get(r.get("class", "-"), 0) + 1
print("   classes: " + ", ".join("%s %d" % kv for kv in sorted(classes.items())))
print("   bounces found: %s (counter txn_bounces)" % rep.get("txn_bounces", "?"))
a = bstest.read_pcap(os.path.join(out, "all.pcap"))
b = bstest.read_pcap(os.path.join(out, "out.pcap"))
same = bstest.frames_diff(b, a) is None
print("== check: %d frames in, %d out, %s" % (
    len(a), len(b), "byte-exact" if same else "WITH DIFFERENCES"))
print("   files in %s" % out)
sys.exit(0 if same else 1)
PY

# The inline action: a backscatter bounce refused, a legitimate one
# delivered, with the reasons (scripts/demo_action.py says why the capture
# is generated: the legitimate bounce's BATV tag is today's).
act="$out/action"
mkdir -p "$act"
/usr/bin/python3 scripts/demo_action.py gen "$act"
echo "== backstop inline on $act/action.pcap (policy: $act/action.yaml)"
build/backstop --no-huge --no-pci -m 256 -l 0-1 --file-prefix bsdemo \
	--vdev "net_pcap0,rx_pcap=$act/action.pcap,tx_pcap=$act/out.pcap" \
	-- --idle-exit 300 --config "$act/action.yaml" \
	--event-log "$act/events.jsonl" >"$act/report.txt" 2>"$act/log.txt"
/usr/bin/python3 scripts/demo_action.py show "$act"
