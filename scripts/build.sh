#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Configure (once) and build Backstop in ./build with warnings as errors.
# Quiet when all goes well; a failing step prints its output.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f build/build.ninja ]; then
	meson setup build --werror >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
fi
ninja -C build >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
