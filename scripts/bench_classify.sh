#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# Classification throughput (MB/s) beside a raw Hyperscan streaming scan of
# the same bytes with the same database, in one run.  The corpus messages
# (../shared/corpus) are repeated to at least MIN_MB megabytes and fed in
# 1460-byte segments; each measurement is repeated RUNS times and the
# median is printed.  Output: "name: value" lines, ratios included.
#
#   scripts/bench_classify.sh [BUILD_DIR] [MIN_MB] [RUNS]
#
# Build with optimisation (the default buildtype debugoptimized is -O2) and
# run on an idle core: the figures are only as quiet as the machine.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
min_mb=${2:-64}
runs=${3:-5}
corpus=$root/../shared/corpus
rules=$root/rules/default.rules

if [ ! -d "$build" ]; then
	meson setup "$build" "$root" >/dev/null
fi
ninja -C "$build" tests/detect/bench_classify >/dev/null
echo "build: $build"
echo "rules_file: $rules"
echo "segment_bytes: 1460"
# shellcheck disable=SC2046
"$build/tests/detect/bench_classify" "$rules" "$min_mb" "$runs" \
	$(find "$corpus" -name '*.eml' | sort)
