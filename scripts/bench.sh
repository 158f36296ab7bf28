#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Benchmark: backstop beside dpdk-testpmd (io forwarding) on the same
# input, vdevs and core, in one run, several times; then the cost of
# following SMTP sessions on SMTP-only traffic.
#
# Then the fast path's rate while rules are reloaded back to back, as a
# ratio to the same run without reloads, and the reloads' latency.
#
# Input: a generated capture of many concurrent flows (SMTP and other
# TCP, mixed sizes), replayed forever by net_pcap (infinite_rx=1) on port
# 0; port 1 is net_null without RX, so both programs do the same work:
# receive on 0, forward to 1.  Rates are each program's own per-second RX
# counts in steady state (first second dropped), median per run; the
# ratio is taken per run (the two runs of a pair are back to back) and
# its median printed.
#
#   scripts/bench.sh [--runs N] [--seconds S] [--flows N] [--packets N]
#
# Prints one "name: value" line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5 secs=6 flows=2000 packets=60000
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs=$2; shift 2 ;;
	--seconds) secs=$2; shift 2 ;;
	--flows) flows=$2; shift 2 ;;
	--packets) packets=$2; shift 2 ;;
	*) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
scripts/setup.sh
scripts/build.sh
command -v dpdk-testpmd >/dev/null ||
	{ echo "bench.sh: dpdk-testpmd missing (Debian package dpdk-dev)" >&2; exit 1; }

work=$(mktemp -d /tmp/backstop-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 scripts/gen_pcap.py bench "$work/in.pcap" --seed 11 \
	--flows "$flows" --packets "$packets" --manifest "$work/man.json" 2>/dev/null
nframes=$(/usr/bin/python3 -c "import json;print(json.load(open('$work/man.json'))['frames_total'])")
mbufs=$(( (nframes + 8192) | 1023 ))
# Pass-through: flows tracked, sessions not inspected (smtp.inspect off);
# full: the default configuration, every SMTP session followed.  Both
# directions of every session arrive on port 0, so the ports have no
# inside and outside (inside_port: 2).
cat > "$work/bench.yaml" <<EOC
dataplane:
  mbuf_pool_size: $mbufs
  inside_port: 2
smtp.inspect: false
EOC
cat > "$work/full.yaml" <<EOC
dataplane:
  mbuf_pool_size: $mbufs
  inside_port: 2
EOC
vdevs=(--vdev "net_pcap0,rx_pcap=$work/in.pcap,infinite_rx=1" --vdev "net_null0,no-rx=1")
eal=(--no-huge --no-pci -m 1024 -l 0-1 --log-level lib.eal,warning)

# Median of the numbers on stdin (after dropping the first).
median() { tail -n +2 | sort -n | awk '{a[NR]=$1} END{if(NR==0){print 0}else if(NR%2){printf "%d\n", a[(NR+1)/2]}else{printf "%d\n", (a[NR/2]+a[NR/2+1])/2}}'; }

tp_rates=() bs_rates=() ratios=() full_rates=() full_ratios=()
for r in $(seq 1 "$runs"); do
	timeout -s INT $((secs + 3)) dpdk-testpmd "${eal[@]}" --file-prefix bstp \
		"${vdevs[@]}" -- --forward-mode=io --stats-period 1 \
		--total-num-mbufs="$mbufs" --no-mlockall \
		>"$work/tp.log" 2>&1 || true
	# Port 0's "Rx-pps:" line in each periodic block.
	tp=$(awk '/Port statistics/ {p=""} /NIC statistics for port 0/ {p=1} p && /Rx-pps:/ {print $2; p=""}' "$work/tp.log" | head -n "$secs" | median)
	build/backstop "${eal[@]}" --file-prefix bsbench "${vdevs[@]}" -- \
		--config "$work/bench.yaml" --duration "$secs" --stats-period 1 \
		>"$work/bs.log" 2>&1
	bs=$(awk '/^stats: rx_pps/ {print $3}' "$work/bs.log" | median)
	if [ "$tp" = 0 ] || [ "$bs" = 0 ]; then
		echo "run $r: a program did not forward (testpmd $tp, backstop $bs); logs:" >&2
		tail -5 "$work/tp.log" "$work/bs.log" >&2
		continue
	fi
	build/backstop "${eal[@]}" --file-prefix bsbench "${vdevs[@]}" -- \
		--config "$work/full.yaml" --duration "$secs" --stats-period 1 \
		>"$work/full.log" 2>&1
	full=$(awk '/^stats: rx_pps/ {print $3}' "$work/full.log" | median)
	full_rates+=("$full")
	full_ratios+=("$(awk -v a="$full" -v b="$tp" 'BEGIN{printf "%.3f", a/b}')")
	tp_rates+=("$tp") bs_rates+=("$bs")
	ratios+=("$(awk -v a="$bs" -v b="$tp" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')")
	echo "run $r: testpmd_pps $tp backstop_pps $bs ratio ${ratios[-1]} full_pps $full full_ratio ${full_ratios[-1]}" >&2
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]}else{printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}}'; }
# Reassembly + SMTP + detection cost: the same program on a capture of
# many interleaved SMTP sessions carrying corpus mail, once following SMTP
# (default) and once with SMTP on an unused port (pure pass-through), side
# by side in each run.
corpus="$PWD/../shared/corpus"
smsgs=()
for d in ndr/sisimai not-ndr/mail-gem; do
	[ -d "$corpus/$d" ] && smsgs+=("$corpus/$d")
done
smtp_ratios=() smtp_pps=() smtp_bps=()
if [ ${#smsgs[@]} -gt 0 ]; then
	/usr/bin/python3 scripts/gen_pcap.py smtp "$work/smtp.pcap" --seed 12 \
		--messages "${smsgs[@]}" --max 150 --manifest "$work/sman.json" 2>/dev/null
	sframes=$(/usr/bin/python3 -c "import json;print(json.load(open('$work/sman.json'))['frames_total'])")
	sbytes=$(stat -c %s "$work/smtp.pcap")
	smbufs=$(( (sframes + 8192) | 1023 ))
	printf 'dataplane:\n  mbuf_pool_size: %s\n  inside_port: 2\n' "$smbufs" > "$work/s_on.yaml"
	printf 'dataplane:\n  mbuf_pool_size: %s\n  inside_port: 2\nsmtp.ports: [9]\n' "$smbufs" > "$work/s_off.yaml"
	svdevs=(--vdev "net_pcap0,rx_pcap=$work/smtp.pcap,infinite_rx=1" --vdev "net_null0,no-rx=1")
	for r in $(seq 1 "$runs"); do
		build/backstop "${eal[@]}" --file-prefix bsbench "${svdevs[@]}" -- \
			--config "$work/s_off.yaml" --duration "$secs" --stats-period 1 \
			>"$work/off.log" 2>&1
		off=$(awk '/^stats: rx_pps/ {print $3}' "$work/off.log" | median)
		build/backstop "${eal[@]}" --file-prefix bsbench "${svdevs[@]}" -- \
			--config "$work/s_on.yaml" --duration "$secs" --stats-period 1 \
			>"$work/on.log" 2>&1
		on=$(awk '/^stats: rx_pps/ {print $3}' "$work/on.log" | median)
		[ "$off" = 0 ] && continue
		smtp_pps+=("$on")
		smtp_ratios+=("$(awk -v a="$on" -v b="$off" 'BEGIN{printf "%.3f", a/b}')")
		# Bytes/s of frames (capture bytes per frame, less pcap headers).
		smtp_bps+=("$(awk -v p="$on" -v b="$sbytes" -v n="$sframes" 'BEGIN{printf "%d", p*(b-24-16*n)/n}')")
		echo "run $r: smtp passthrough_pps $off engine_pps $on ratio ${smtp_ratios[-1]}" >&2
	done
fi

# Reloads: the full path on the SMTP capture, once undisturbed and once
# while `rules reload` (the default pack, recompiled each time) runs back
# to back on the control socket; side by side per run.  Each reply gives
# the reload's latency: request to every worker on the new set (compile,
# per-worker scratch, pointer swap, RCU grace period).
reload_ratios=() reload_ms=() publish_ms=() reload_counts=()
if [ ${#smtp_ratios[@]} -gt 0 ]; then
	printf 'dataplane:\n  mbuf_pool_size: %s\n  inside_port: 2\ncontrol.socket: %s\n' \
		"$smbufs" "$work/ctl.sock" > "$work/s_ctl.yaml"
	for r in $(seq 1 "$runs"); do
		build/backstop "${eal[@]}" --file-prefix bsbench "${svdevs[@]}" -- \
			--config "$work/s_ctl.yaml" --duration "$secs" --stats-period 1 \
			>"$work/quiet.log" 2>&1
		quiet=$(awk '/^stats: rx_pps/ {print $3}' "$work/quiet.log" | median)
		build/backstop "${eal[@]}" --file-prefix bsbench "${svdevs[@]}" -- \
			--config "$work/s_ctl.yaml" --duration "$secs" --stats-period 1 \
			>"$work/busy.log" 2>&1 &
		bpid=$!
		for _ in $(seq 1 50); do [ -S "$work/ctl.sock" ] && break; sleep 0.1; done
		n=0
		# The operator's tool runs where the control thread does (the
		# main lcore's CPU, 0 with -l 0-1), not on the worker's core.
		while kill -0 "$bpid" 2>/dev/null; do
			taskset -c 0 build/backstopctl --socket "$work/ctl.sock" --json rules reload \
				>>"$work/reloads.jsonl" 2>/dev/null && n=$((n + 1))
		done
		wait "$bpid" || true
		busy=$(awk '/^stats: rx_pps/ {print $3}' "$work/busy.log" | median)
		[ "$quiet" = 0 ] && continue
		reload_counts+=("$n")
		reload_ratios+=("$(awk -v a="$busy" -v b="$quiet" 'BEGIN{printf "%.3f", a/b}')")
		echo "run $r: engine_pps $quiet during_reloads_pps $busy ratio ${reload_ratios[-1]} reloads $n" >&2
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
fi

echo "capture_frames: $nframes"
echo "capture_flows_concurrent: $flows"
echo "runs: ${#ratios[@]}"
echo "seconds_per_run: $secs"
echo "testpmd_pps_median: $(med "${tp_rates[@]}")"
echo "backstop_pps_median: $(med "${bs_rates[@]}")"
echo "passthrough_ratio_vs_testpmd: $(med "${ratios[@]}")"
echo "passthrough_ratio_min: $(printf '%s\n' "${ratios[@]}" | sort -n | head -1)"
echo "passthrough_ratio_max: $(printf '%s\n' "${ratios[@]}" | sort -n | tail -1)"
echo "full_pps_median: $(med "${full_rates[@]}")"
echo "full_ratio_vs_testpmd: $(med "${full_ratios[@]}")"
if [ ${#smtp_ratios[@]} -gt 0 ]; then
	echo "smtp_capture_frames: $sframes"
	echo "smtp_engine_pps_median: $(med "${smtp_pps[@]}")"
	echo "smtp_engine_bytes_per_s_median: $(med "${smtp_bps[@]}")"
	echo "smtp_engine_ratio_vs_passthrough: $(med "${smtp_ratios[@]}")"
fi
if [ ${#reload_ratios[@]} -gt 0 ]; then
	echo "reloads_per_run_median: $(med "${reload_counts[@]}")"
	echo "reload_latency_ms_median: $(printf '%s\n' "${reload_ms[@]}" | sort -n | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]}else{printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}}')"
	echo "reload_latency_ms_max: $(printf '%s\n' "${reload_ms[@]}" | sort -n | tail -1)"
	echo "reload_publish_ms_median: $(printf '%s\n' "${publish_ms[@]}" | sort -n | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]}else{printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}}')"
	echo "reload_publish_ms_max: $(printf '%s\n' "${publish_ms[@]}" | sort -n | tail -1)"
	echo "throughput_ratio_during_reloads: $(med "${reload_ratios[@]}")"
fi
