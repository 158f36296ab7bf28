#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# backstop-classify end to end: one JSON line per file with the fields the
# issue asks for, the same output for any chunking and for CRLF input,
# envelope options, and exit status 2 with a message naming the rule for a
# broken rule file.
#   test_classify.sh CLASSIFY_BIN RULES CORPUS_DIR
set -eu
bin=$1 rules=$2 corpus=$3
tmp=${TMPDIR:-/tmp}/test_classify.$$
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
fail=0
check() { if eval "$2"; then echo "ok - $1"; else echo "FAIL - $1"; fail=1; fi; }

f1=$corpus/ndr/sisimai/lhost-postfix-01.eml
f2=$corpus/ndr/sisimai/lhost-qmail-01.eml
f3=$corpus/not-ndr/mail-gem/$(ls "$corpus/not-ndr/mail-gem" | grep eml | head -1)
"$bin" --rules "$rules" "$f1" "$f2" "$f3" > "$tmp/a"
check "one line per file" '[ "$(wc -l < "$tmp/a")" -eq 3 ]'
check "file, class, rules, dsn fields" \
	'head -1 "$tmp/a" | grep -q "\"file\":\"$f1\",\"class\":\"dsn\",\"candidate\":true,\"rules\":\[[0-9]" &&
	 head -1 "$tmp/a" | grep -q "\"status\":\"5.1.1\""'
check "embedded original of qmail (inline)" \
	'sed -n 2p "$tmp/a" | grep -q "\"original\":{\"source\":\"inline\""'
check "ordinary mail is none" 'sed -n 3p "$tmp/a" | grep -q "\"class\":\"none\""'
"$bin" --rules "$rules" --chunk 1 "$f1" "$f2" "$f3" > "$tmp/b"
"$bin" --rules "$rules" --random-chunks 42 "$f1" "$f2" "$f3" > "$tmp/c"
check "1-byte chunks give the same output" 'cmp -s "$tmp/a" "$tmp/b"'
check "random chunks give the same output" 'cmp -s "$tmp/a" "$tmp/c"'
"$bin" --rules "$rules" --crlf "$f1" "$f2" "$f3" |
	sed 's/"bytes":[0-9]*,"scanned":[0-9]*,//' > "$tmp/d"
sed 's/"bytes":[0-9]*,"scanned":[0-9]*,//' "$tmp/a" > "$tmp/a2"
check "CRLF input gives the same result" 'cmp -s "$tmp/a2" "$tmp/d"'
"$bin" --rules "$rules" --mail-from '<>' --rcpt a@example.org "$f3" > "$tmp/e"
check "null sender makes a candidate" 'grep -q "\"candidate\":true" "$tmp/e"'
printf '7 dsn body i /a(/ x\n' > "$tmp/bad.rules"
set +e
"$bin" --rules "$tmp/bad.rules" "$f1" > /dev/null 2> "$tmp/err"
rc=$?
set -e
check "broken rules: exit 2" '[ $rc -eq 2 ]'
check "broken rules: message names line and rule" \
	'grep -q "bad.rules:1: rule 7:" "$tmp/err"'
exit $fail
