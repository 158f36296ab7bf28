#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# The inline action's cost, measured in the worker (docs/performance.md):
#   - the hold: how long the segment that ends a message stays in the
#     worker (from the start of its parsing to its release or refusal:
#     detection's end, the verdict, and for a refusal the action), beside
#     the same for every other segment of the followed flows;
#   - the refusal path alone (building the RST and the reply, the slot,
#     the records);
# each a histogram the worker fills with rte_rdtsc() and backstop prints
# at exit (latency_{hold,other,refuse}_{n,p50_ns,p99_ns,max_ns,mean_ns}).
# A capture of N sessions of each kind (backscatter NDR, legitimate NDR
# with a valid BATV tag, ordinary mail) runs RUNS times in mode inline and
# in mode monitor alternately (side by side: the machine is shared and
# noisy), and the medians of the runs are printed.
#
#   scripts/bench_action.sh [N [RUNS]]      (defaults 300 and 5)
#   KINDS="backscatter legit ordinary"        the kinds of sessions (all)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
runs=${2:-5}
[ -x build/backstop ] || scripts/build.sh
out=$(mktemp -d /tmp/backstop-bench-action.XXXXXX)
trap 'rm -rf "$out"' EXIT

/usr/bin/python3 - "$out" "$n" ${KINDS:-backscatter legit ordinary} <<'PY'
import importlib.util, os, random, sys
spec = importlib.util.spec_from_file_location("demo_action",
                                              "scripts/demo_action.py")
da = importlib.util.module_from_spec(spec)
spec.loader.exec_module(da)
out, n, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rnd = random.Random(7)
ordinary = da.gen.dot_stuff(b"From: bob@remote.example.org\nTo: alice@"
                            b"example.com\nSubject: hi\n\n" +
                            b"hello, a line of ordinary mail\n" * 40)
convs = []
for i in range(n):
    cli = "10.%d.%d.%d" % (1 + i // 65025, (i // 255) % 255, 1 + i % 255)
    if "backscatter" in kinds:
        convs.append(da.session(rnd, "backscatter", "alice@example.com",
                                port=20000 + i, client=cli))
    if "legit" in kinds:
        convs.append(da.session(rnd, "legit", da.prvs("alice@example.com"),
                                port=30000 + i, client=cli))
    if "ordinary" in kinds:
        convs.append(da.session(rnd, "legit", "alice@example.com",
                                port=40000 + i, client=cli, body=ordinary))
frames = da.gen.interleave_lists(rnd, convs)
da.gen.write(os.path.join(out, "bench.pcap"), frames)
with open(os.path.join(out, "inline.yaml"), "w") as f:
    f.write(da.CONFIG.replace("  burst_size: 1\n", ""))
with open(os.path.join(out, "monitor.yaml"), "w") as f:
    f.write(da.CONFIG.replace("  burst_size: 1\n", "") + "mode: monitor\n")
print("bench_action: %d sessions (%s), %d frames" % (
    len(convs), " ".join(kinds), len(frames)))
PY

for r in $(seq 1 "$runs"); do
	for mode in inline monitor; do
		nice -n 10 build/backstop --no-huge --no-pci -m 512 -l 0-1 \
			--file-prefix "bsba$$" \
			--vdev "net_pcap0,rx_pcap=$out/bench.pcap,tx_pcap=/dev/null" \
			-- --idle-exit 300 --config "$out/$mode.yaml" \
			>"$out/$mode.$r.txt" 2>"$out/$mode.$r.log"
	done
done

/usr/bin/python3 - "$out" "$runs" <<'PY'
import statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
keys = ["latency_%s_%s" % (h, q) for h in ("hold", "other", "refuse")
        for q in ("n", "p50_ns", "p99_ns", "mean_ns", "max_ns")]
keys += ["action_refused", "action_monitor", "verdict_backscatter",
         "verdict_legit", "verdict_not_bounce"]
for mode in ("inline", "monitor"):
    vals = {k: [] for k in keys}
    for r in range(1, runs + 1):
        rep = {}
        for line in open("%s/%s.%d.txt" % (out, mode, r)):
            k, _, v = line.strip().partition(" ")
            rep[k] = v
        for k in keys:
            if k in rep:
                vals[k].append(int(rep[k]))
    print("== mode %s: medians of %d runs (runs: min..max)" % (mode, runs))
    for k in keys:
        v = vals[k]
        if v:
            print("   %-24s %10d   (%d..%d)" % (k, statistics.median(v),
                                                min(v), max(v)))
PY
