#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Run every test: installs what is missing, builds (gcc, -Werror), runs the
# unit, integration, corpus and end-to-end suites, then builds the fuzz
# targets with clang (ASan/UBSan, libFuzzer) and runs each briefly, and
# runs the ledger suite again under ASan/UBSan and ThreadSanitizer.
# Ends with one line "N passed, M failed".
#
#   scripts/test.sh            everything
#   FUZZ_SECONDS=300 scripts/test.sh   longer fuzzing
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD

scripts/setup.sh
scripts/build.sh || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

# Fuzz build: clang, sanitizers, libFuzzer.
# (No LTO: Debian 12's clang crashes linking LTO objects with ld.bfd.)
fuzz_ok=1
fuzz_opts=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
	-Db_lto=false -Dbuildtype=debugoptimized)
if [ ! -f build-fuzz/build.ninja ]; then
	CC=clang meson setup build-fuzz "${fuzz_opts[@]}" >/dev/null || fuzz_ok=0
else
	meson configure build-fuzz "${fuzz_opts[@]}" >/dev/null || fuzz_ok=0
fi
[ $fuzz_ok = 1 ] && { ninja -C build-fuzz >/dev/null || fuzz_ok=0; }

meson test -C build --no-rebuild --print-errorlogs --num-processes 2 \
	--no-suite fuzz --no-suite perf
rc_main=$?
if [ $fuzz_ok = 1 ]; then
	fuzz_args=()
	if [ -n "${FUZZ_SECONDS:-}" ]; then
		fuzz_args=(--test-args "-max_total_time=$FUZZ_SECONDS")
		# meson appends test-args after the defined ones; the last wins.
	fi
	meson test -C build-fuzz --no-rebuild --print-errorlogs \
		--num-processes 2 --suite fuzz --timeout-multiplier 0 \
		"${fuzz_args[@]}" 2>&1 | grep -v "^No tests defined" || true
fi

# The concurrent modules (suite ledger: the outbound ledger, storm
# detection) again under sanitizers: ASan/UBSan from the fuzz build, and
# ThreadSanitizer from a build of just those tests.
if [ $fuzz_ok = 1 ]; then
	meson test -C build-fuzz --no-rebuild --print-errorlogs \
		--num-processes 2 --suite ledger --logbase asan || true
fi
tsan_ok=1
tsan_opts=(-Db_sanitize=thread -Db_lundef=false -Db_lto=false
	-Dbuildtype=debugoptimized)
if [ ! -f build-tsan/build.ninja ]; then
	CC=clang meson setup build-tsan "${tsan_opts[@]}" >/dev/null || tsan_ok=0
fi
[ $tsan_ok = 1 ] && { ninja -C build-tsan tests/ledger/test_ledger \
	tests/ledger/test_ledger_mt tests/ledger/test_storm >/dev/null ||
	tsan_ok=0; }
if [ $tsan_ok = 1 ]; then
	TSAN_OPTIONS=halt_on_error=1 meson test -C build-tsan --no-rebuild \
		--print-errorlogs --num-processes 2 --suite ledger \
		--logbase tsan || true
fi

# Sum both runs from meson's machine-readable logs.
/usr/bin/python3 - "$top" "$fuzz_ok" "$tsan_ok" <<'PY'
import json, os, sys
top, fuzz_ok, tsan_ok = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
passed = failed = skipped = 0  # skipped: counted in failed too
logs = [os.path.join(top, "build/meson-logs/testlog.json")]
if fuzz_ok:
    logs.append(os.path.join(top, "build-fuzz/meson-logs/testlog.json"))
    logs.append(os.path.join(top, "build-fuzz/meson-logs/asan.json"))
if tsan_ok:
    logs.append(os.path.join(top, "build-tsan/meson-logs/tsan.json"))
for log in logs:
    if not os.path.exists(log):
        continue
    with open(log) as f:
        for line in f:
            r = json.loads(line)
            if log.endswith("build-fuzz/meson-logs/testlog.json") and \
               r.get("suite") and \
               not any("fuzz" in s for s in r["suite"]):
                continue
            res = r.get("result")
            if res in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif res == "SKIP":
                # Nothing here may skip: a missing prerequisite fails
                # and names itself, and libFuzzer's crash exit code (77)
                # reads as a skip to meson.
                skipped += 1
                failed += 1
                print("FAIL (skipped): %s" % r.get("name"))
            else:
                failed += 1
if not fuzz_ok:
    failed += 1
    print("fuzz build failed")
if not tsan_ok:
    failed += 1
    print("ThreadSanitizer build failed")
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
PY
