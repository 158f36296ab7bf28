#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmark: backstop beside dpdk-testpmd (io forwarding) on the same
# input, vdevs and core, in one run, several times; then the cost of
# following SMTP sessions on SMTP-only traffic; then the fast path's rate
# while rules are reloaded back to back; then detection alone
# (scripts/bench_classify.sh: the classifier vs raw Hyperscan, and the
# rule pack vs a one-literal database, same bytes and mode).
#
# Input: a generated capture that looks like an ISP link in front of
# mail servers (gen_pcap.py link: many concurrent flows, web, QUIC, DNS,
# a quarter IPv6, ~10% SMTP frames, MX sessions of realistic sizes, a few
# per cent bounces, both directions interleaved), replayed forever by
# net_pcap (infinite_rx=1) on port 0; port 1 is net_null without RX, so
# both programs do the same work: receive on 0, forward to 1.  Both
# directions arrive on one port, so no port faces the servers
# (dataplane.inside_port: 2).  Rates are each program's own per-second RX
# counts in steady state (first second dropped), median per run; ratios
# are taken per run (the programs of a run are back to back) and their
# median printed.
#
#   scripts/bench.sh [--runs N] [--seconds S] [--flows N] [--packets N]
#                    [--compare BUILD_DIR] [--parts LIST]
#
# --compare BUILD_DIR runs BUILD_DIR/backstop beside build/backstop in
# every run (before/after in one run: "base_" figures); --parts picks
# parts: link,flood,smtp,mem,reload,classify (default: all).
#
# Prints one "name: value" line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5 secs=6 flows=10000 packets=200000 base="" parts="link,flood,smtp,mem,reload,classify"
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--seconds) secs=$2; shift 2 ;;
	--flows) flows=$2; shift 2 ;;
	--packets) packets=$2; shift 2 ;;
	--compare) base=$2; shift 2 ;;
	--parts) parts=$2; shift 2 ;;
	*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
want() { case ",$parts," in *",$1,"*) return 0 ;; esac; return 1; }
scripts/setup.sh
scripts/build.sh
command -v dpdk-testpmd >/dev/null ||
	{ echo "bench.sh: dpdk-testpmd missing (Debian package dpdk-dev)" >&2; exit 1; }
if [ -n "$base" ] && [ ! -x "$base/backstop" ]; then
	echo "bench.sh: --compare $base: no $base/backstop" >&2
	exit 2
fi
corpus="$PWD/../shared/corpus"
[ -d "$corpus/ndr" ] && [ -d "$corpus/not-ndr" ] ||
	{ echo "bench.sh: corpus missing at $corpus (ndr/, not-ndr/)" >&2; exit 1; }

work=$(mktemp -d /tmp/backstop-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
eal=(--no-huge --no-pci -m 1400 -l 0-1 --log-level lib.eal,warning)

# Median of the numbers on stdin (after dropping the first).
median() { tail -n +2 | sort -n | awk '{a[NR]=$1} END{if(NR==0){print 0}else if(NR%2){printf "%d\n", a[(NR+1)/2]}else{printf "%d\n", (a[NR/2]+a[NR/2+1])/2}}'; }
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]}else{printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b>0)?a/b:0}'; }
frames_of() { /usr/bin/python3 -c "import json;print(json.load(open('$1'))['frames_total'])"; }
# A capture's vdevs and a pool that holds it (net_pcap keeps the whole
# capture in mbufs) plus room for the bursts in flight.
vdevs_of() { echo "--vdev net_pcap0,rx_pcap=$1,infinite_rx=1 --vdev net_null0,no-rx=1"; }
pool_of() { echo $(( ($1 + 8192) | 1023 )); }

# Run a program (the command after $1) for secs seconds of forwarding
# (plus the time net_pcap takes to load the capture), then stop it with
# SIGINT; log in $1.  Prints the CPU time (ns) its worker lcore's thread
# ran, from the scheduler (/proc/PID/task/TID/schedstat): on a shared
# machine a program that is preempted loses wall-clock rate but not
# CPU time, so packets per CPU-second compare two programs fairly even
# when other work shares the core.
run_for() {
	local log=$1 pid ns=0 t
	shift
	"$@" >"$log" 2>&1 &
	pid=$!
	sleep $((secs + 2))
	for t in /proc/$pid/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = rte-worker-1 ] &&
			ns=$(cut -d' ' -f1 "$t/schedstat")
	done
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" || true
	echo "$ns"
}
# Packets per CPU-second of the worker: total packets $1, CPU ns $2.
per_cpu() { awk -v n="$1" -v ns="$2" 'BEGIN{printf "%d", (ns>0)?n*1e9/ns:0}'; }

# testpmd's io-forwarding rate on capture $1 (frames $2): "wall cpu",
# wall the median of its per-second RX rates, cpu per CPU-second.
tp_rate() {
	local ns wall n
	# shellcheck disable=SC2046
	ns=$(run_for "$work/tp.log" dpdk-testpmd "${eal[@]}" --file-prefix bstp \
		$(vdevs_of "$1") -- --forward-mode=io --stats-period 1 \
		--total-num-mbufs="$(pool_of "$2")" --no-mlockall)
	# Port 0's "Rx-pps:" line in each periodic block; the first blocks
	# come while the capture is still loading (0 pps): skip them.
	wall=$(awk '/Port statistics/ {p=""} /NIC statistics for port 0/ {p=1} p && /Rx-pps:/ {if ($2 > 0) print $2; p=""}' \
		"$work/tp.log" | median)
	n=$(awk '/Accumulated forward statistics/ {a=1} a && /RX-packets:/ {print $2; exit}' "$work/tp.log")
	echo "$wall $(per_cpu "${n:-0}" "$ns")"
}
# backstop's rate: binary $1, capture $2, config $3 (extra args after):
# "wall cpu" as for testpmd.
bs_rate() {
	local bin=$1 cap=$2 cfg=$3 ns wall n
	shift 3
	# shellcheck disable=SC2046
	ns=$(run_for "$work/bs.log" "$bin" "${eal[@]}" --file-prefix bsbench \
		$(vdevs_of "$cap") -- --config "$cfg" --stats-period 1 "$@")
	wall=$(awk '/^stats: rx_pps/ {print $3}' "$work/bs.log" | median)
	n=$(awk '$1 == "rx_packets" {print $2; exit}' "$work/bs.log")
	echo "$wall $(per_cpu "${n:-0}" "$ns")"
}
cfg() { # name pool [extra yaml lines]
	local f="$work/$1.yaml"
	printf 'dataplane:\n  mbuf_pool_size: %s\n  inside_port: 2\n' "$2" > "$f"
	shift 2
	for l in "$@"; do printf '%s\n' "$l" >> "$f"; done
	echo "$f"
}

# ---- Part 1: the link capture: testpmd, pass-through, full path. ----
declare -A R # R[figure]="v1 v2 ..." (one value per run)
add() { R[$1]="${R[$1]:-} $2"; }
figure() { med ${R[$1]}; }
bins=(build/backstop)
[ -n "$base" ] && bins+=("$base/backstop")
prefix() { [ "$1" = build/backstop ] && echo "" || echo "base_"; }

if want link || want flood; then
	/usr/bin/python3 scripts/gen_pcap.py link "$work/link.pcap" --seed 11 \
		--flows "$flows" --packets "$packets" --messages "$corpus/ndr" \
		"$corpus/not-ndr" --manifest "$work/link.json" 2>/dev/null
	nframes=$(frames_of "$work/link.json")
	lpool=$(pool_of "$nframes")
	pt_cfg=$(cfg pt "$lpool" "smtp.inspect: false")
	full_cfg=$(cfg full "$lpool")
fi
if want flood; then
	# A flood of backscatter: every SMTP session carries a bounce.
	/usr/bin/python3 scripts/gen_pcap.py link "$work/flood.pcap" --seed 14 \
		--flows "$flows" --packets "$packets" --bounce-share 1 \
		--messages "$corpus/ndr" "$corpus/not-ndr" \
		--manifest "$work/flood.json" 2>/dev/null
	fframes=$(frames_of "$work/flood.json")
	fpool=$(pool_of "$fframes")
	flood_cfg=$(cfg flood "$fpool")
fi
# Each rate is a pair "wall cpu"; NAME gets the per-CPU-second figure,
# NAME_wall the wall-clock one.
addp() { set -- "$1" $2; add "$1" "$3"; add "${1}_wall" "$2"; }
ratiop() { set -- "$1" $2 $3; add "$1" "$(ratio "$3" "$5")"; add "${1}_wall" "$(ratio "$2" "$4")"; }
cpu_of() { set -- $1; echo "$2"; }
for r in $(seq 1 "$runs"); do
	want link || break
	tp=$(tp_rate "$work/link.pcap" "$nframes")
	if [ "$(cpu_of "$tp")" = 0 ]; then
		echo "run $r: testpmd did not forward; log:" >&2
		tail -5 "$work/tp.log" >&2
		continue
	fi
	addp testpmd_pps "$tp"
	line="run $r: testpmd_pps $(cpu_of "$tp")"
	for b in "${bins[@]}"; do
		p=$(prefix "$b")
		pt=$(bs_rate "$b" "$work/link.pcap" "$pt_cfg")
		full=$(bs_rate "$b" "$work/link.pcap" "$full_cfg")
		addp "${p}passthrough_pps" "$pt"
		addp "${p}full_pps" "$full"
		ratiop "${p}passthrough_ratio_vs_testpmd" "$pt" "$tp"
		ratiop "${p}full_ratio_vs_testpmd" "$full" "$tp"
		line="$line ${p}passthrough $(cpu_of "$pt") ($(ratio "$(cpu_of "$pt")" "$(cpu_of "$tp")")) ${p}full $(cpu_of "$full") ($(ratio "$(cpu_of "$full")" "$(cpu_of "$tp")"))"
	done
	echo "$line" >&2
done
for r in $(seq 1 "$runs"); do
	want flood || break
	tp=$(tp_rate "$work/flood.pcap" "$fframes")
	[ "$(cpu_of "$tp")" = 0 ] && continue
	addp flood_testpmd_pps "$tp"
	line="run $r: flood testpmd_pps $(cpu_of "$tp")"
	for b in "${bins[@]}"; do
		p=$(prefix "$b")
		fl=$(bs_rate "$b" "$work/flood.pcap" "$flood_cfg")
		addp "${p}flood_full_pps" "$fl"
		ratiop "${p}flood_full_ratio_vs_testpmd" "$fl" "$tp"
		line="$line ${p}flood_full $(cpu_of "$fl") ($(ratio "$(cpu_of "$fl")" "$(cpu_of "$tp")"))"
	done
	echo "$line" >&2
done

# ---- Part 2: reassembly + SMTP + detection on SMTP-only traffic. ----
# The same program on a capture of many interleaved SMTP sessions
# carrying corpus mail (half bounces, half ordinary), once following SMTP
# (default) and once with SMTP on an unused port (pure pass-through),
# side by side in each run.
if want smtp || want reload; then
	/usr/bin/python3 scripts/gen_pcap.py smtp "$work/smtp.pcap" --seed 12 \
		--messages "$corpus/ndr/sisimai" "$corpus/not-ndr/mail-gem" \
		--max 150 --manifest "$work/sman.json" 2>/dev/null
	sframes=$(frames_of "$work/sman.json")
	sbytes=$(stat -c %s "$work/smtp.pcap")
	spool=$(pool_of "$sframes")
	s_on=$(cfg s_on "$spool")
	s_off=$(cfg s_off "$spool" "smtp.ports: [9]")
fi
for r in $(seq 1 "$runs"); do
	want smtp || break
	line="run $r: smtp"
	for b in "${bins[@]}"; do
		p=$(prefix "$b")
		off=$(bs_rate "$b" "$work/smtp.pcap" "$s_off")
		on=$(bs_rate "$b" "$work/smtp.pcap" "$s_on")
		[ "$(cpu_of "$off")" = 0 ] && continue
		addp "${p}smtp_engine_pps" "$on"
		ratiop "${p}smtp_engine_ratio_vs_passthrough" "$on" "$off"
		# Bytes/s of frames (capture bytes per frame, less pcap headers).
		add "${p}smtp_engine_bytes_per_s" "$(awk -v p="$(cpu_of "$on")" -v b="$sbytes" -v n="$sframes" 'BEGIN{printf "%d", p*(b-24-16*n)/n}')"
		line="$line ${p}passthrough_pps $(cpu_of "$off") ${p}engine_pps $(cpu_of "$on") ratio $(ratio "$(cpu_of "$on")" "$(cpu_of "$off")")"
	done
	echo "$line" >&2
done

# ---- Part 3: memory per established SMTP flow between transactions. ----
# tests/smtp/mem_smtp: sessions driven through the engine to the point
# between two transactions (message accepted, next MAIL not sent); heap
# bytes (mallinfo2) per flow, plus the flow table's bytes per entry.
if want mem; then
	for b in "${bins[@]}"; do
		p=$(prefix "$b")
		d=$(dirname "$b")
		if [ -x "$d/tests/smtp/mem_smtp" ]; then
			"$d/tests/smtp/mem_smtp" 2000 | sed "s/^/${p}/" >"$work/mem.$p.txt"
		fi
	done
fi

# ---- Part 4: reloads under load. ----
# The full path on the SMTP capture, once undisturbed and once while
# `rules reload` (the default pack, recompiled each time) runs back to
# back on the control socket; side by side per run.  Each reply gives
# the reload's latency: request to every worker on the new set (compile,
# per-worker scratch, pointer swap, RCU grace period).
reload_ms=() publish_ms=()
for r in $(seq 1 "$runs"); do
	want reload || break
	s_ctl=$(cfg s_ctl "$spool" "control.socket: $work/ctl.sock")
	quiet=$(bs_rate build/backstop "$work/smtp.pcap" "$s_ctl")
	quiet=${quiet%% *} # wall: what the compile's CPU costs the worker
	# shellcheck disable=SC2046
	build/backstop "${eal[@]}" --file-prefix bsbench $(vdevs_of "$work/smtp.pcap") -- \
		--config "$s_ctl" --duration "$secs" --stats-period 1 \
		>"$work/busy.log" 2>&1 &
	bpid=$!
	for _ in $(seq 1 50); do [ -S "$work/ctl.sock" ] && break; sleep 0.1; done
	n=0
	# The operator's tool runs where the control thread does (the main
	# lcore's CPU, 0 with -l 0-1), not on the worker's core.
	while kill -0 "$bpid" 2>/dev/null; do
		taskset -c 0 build/backstopctl --socket "$work/ctl.sock" --json rules reload \
			>>"$work/reloads.jsonl" 2>/dev/null && n=$((n + 1))
	done
	wait "$bpid" || true
	busy=$(awk '/^stats: rx_pps/ {print $3}' "$work/busy.log" | median)
	[ "$quiet" = 0 ] && continue
	add reloads_per_run "$n"
	add throughput_ratio_during_reloads "$(ratio "$busy" "$quiet")"
	echo "run $r: engine_pps $quiet during_reloads_pps $busy ratio $(ratio "$busy" "$quiet") reloads $n" >&2
done
if [ -s "$work/reloads.jsonl" ]; then
	mapfile -t reload_ms < <(/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("ok"):
        print("%.1f" % r["result"]["total_ms"])' "$work/reloads.jsonl")
	# The swap and grace period alone (the rest is the compile).
	mapfile -t publish_ms < <(/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("ok"):
        print("%.3f" % r["result"]["publish_ms"])' "$work/reloads.jsonl")
fi

echo "runs: $runs"
echo "seconds_per_run: $secs"
if want link; then
	/usr/bin/python3 - "$work/link.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
n = m["frames_total"]
print("capture_frames: %d" % n)
print("capture_bytes_per_frame: %d" % (m["frame_bytes"] // n))
print("capture_flows_concurrent: %d" % m["flows_concurrent_mean"])
print("capture_smtp_frame_share: %.3f" % (m["smtp_packets"] / n))
print("capture_smtp_sessions: %d" % m["smtp_sessions"])
print("capture_smtp_messages: %d" % m.get("smtp_messages", 0))
print("capture_smtp_bounces: %d" % m["smtp_bounces"])
print("capture_ipv6_frame_share: %.3f" % (m["ipv6_frames"] / n))
PY
fi
for k in testpmd_pps passthrough_pps full_pps passthrough_ratio_vs_testpmd \
	full_ratio_vs_testpmd flood_testpmd_pps flood_full_pps \
	flood_full_ratio_vs_testpmd smtp_engine_pps smtp_engine_bytes_per_s \
	smtp_engine_ratio_vs_passthrough; do
	for p in "" base_; do
		for w in "" _wall; do
			f=$p$k$w
			[ -n "${R[$f]:-}" ] || continue
			case $k in
			*_pps|*_per_s) echo "$f${w:+}_median: $(figure "$f")" | sed 's/_wall_median/_median_wall/' ;;
			*) echo "$f: $(figure "$f")"
			   echo "${f}_min: $(printf '%s\n' ${R[$f]} | sort -n | head -1)"
			   echo "${f}_max: $(printf '%s\n' ${R[$f]} | sort -n | tail -1)" ;;
			esac
		done
	done
done
[ -n "${R[smtp_engine_pps]:-}" ] && echo "smtp_capture_frames: $sframes"
cat "$work"/mem.*.txt 2>/dev/null || true
if [ -n "${R[throughput_ratio_during_reloads]:-}" ]; then
	echo "reloads_per_run_median: $(figure reloads_per_run)"
	echo "reload_latency_ms_median: $(printf '%s\n' "${reload_ms[@]}" | sort -n | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]}else{printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}}')"
	echo "reload_latency_ms_max: $(printf '%s\n' "${reload_ms[@]}" | sort -n | tail -1)"
	echo "reload_publish_ms_median: $(printf '%s\n' "${publish_ms[@]}" | sort -n | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]}else{printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}}')"
	echo "reload_publish_ms_max: $(printf '%s\n' "${publish_ms[@]}" | sort -n | tail -1)"
	echo "throughput_ratio_during_reloads: $(figure throughput_ratio_during_reloads)"
fi
# Detection alone (tests/detect/bench_classify.c, medians of as many runs).
if want classify; then
	scripts/bench_classify.sh build 32 "$runs" 2>/dev/null |
		grep -E '^(classify_mbps|classify_null_sender_mbps|hs_raw_mbps|hs_one_literal_mbps|hs_factors_mbps|ratio_classify_vs_raw|ratio_hs_pack_vs_one_literal|ratio_hs_factors_vs_one_literal|classify_ns_per_message|classify_ordinary_ns_per_message):' || true
fi
