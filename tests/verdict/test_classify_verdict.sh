#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# backstop-classify prints the verdict: real bounces from the corpus,
# rewritten to answer mail of a protected domain (example.com), judged by
# relays (a relay hop, none, a forged HELO naming the relay, a bracketed
# HELO literal in the relay's network, CIDR), by BATV tags Exim made, and
# not judged when the recipient's domain is not protected or the message
# is no bounce.
#   test_classify_verdict.sh CLASSIFY_BIN RULES CORPUS_DIR EXIM4 FAKETIME
set -eu
bin=$1 rules=$2 corpus=$3 exim=$4 faketime=$5
for p in "$exim" "$faketime"; do
	[ -x "$p" ] || { echo "missing prerequisite: $p (scripts/setup.sh)"; exit 1; }
done
tmp=${TMPDIR:-/tmp}/test_classify_verdict.$$
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/spool"
fail=0
check() { if eval "$2"; then echo "ok - $1"; else echo "FAIL - $1"; fail=1; fi; }
now=1900000000

# A Postfix bounce of mail that left through r.example.com.
sed 's/example\.ne\.jp/example.com/g' "$corpus/ndr/sisimai/lhost-postfix-04.eml" > "$tmp/pf.eml"
# The same without the hop r.example.com wrote: only a HELO names it.
awk '/^Received: from \[192.0.2.31\]/{skip=3} skip>0{skip--; next} {print}' \
	"$tmp/pf.eml" > "$tmp/helo.eml"
# An Exim bounce (original quoted inline) and a text/rfc822-headers one.
sed 's/example\.jp/example.com/g' "$corpus/ndr/sisimai/lhost-exim-08.eml" > "$tmp/ex.eml"
sed 's/example\.ne\.jp/example.com/g' "$corpus/ndr/sisimai/lhost-postfix-09.eml" > "$tmp/hd.eml"
ham=$corpus/not-ndr/mail-gem/$(ls "$corpus/not-ndr/mail-gem" | grep eml | head -1)

cfg() { printf 'protected_domains: [example.com]\n%s\n' "$2" > "$tmp/$1.yaml"; }
run() { # config file rcpt
	"$bin" --config "$tmp/$1.yaml" --rules "$rules" --now $now \
		--mail-from '' --rcpt "$3" "$2"
}
has() { grep -q -- "$1" "$tmp/out"; }

cfg name 'relays: [r.example.com]'
run name "$tmp/pf.eml" shironeko@example.com > "$tmp/out"
check "relay hop in the chain: legit" 'has "\"verdict\":\"legit\"" && has "\"reasons\":\[\"relay_seen\"\]"'
check "still one JSON line with the detection fields" \
	'[ $(wc -l < "$tmp/out") -eq 1 ] && has "\"class\":\"dsn\"" && has "\"verdict_domain\":\"example.com\""'
run name "$tmp/helo.eml" shironeko@example.com > "$tmp/out"
check "a HELO naming the relay is not the relay: backscatter" \
	'has "\"verdict\":\"backscatter\"" && has "\"action\":\"refuse\"" && has "relay_absent"'
cfg other 'relays: [out.example.com, "*.out.example.com"]'
run other "$tmp/pf.eml" shironeko@example.com > "$tmp/out"
check "no relay in the chain: backscatter" 'has "\"verdict\":\"backscatter\"" && has "relay_absent"'
cfg helolit 'relays: [192.0.2.31]'
run helolit "$tmp/pf.eml" shironeko@example.com > "$tmp/out"
check "a bracketed HELO literal is not the client's address" 'has "\"verdict\":\"backscatter\""'
cfg cidr 'relays: [192.0.2.128/25]'
run cidr "$tmp/pf.eml" shironeko@example.com > "$tmp/out"
check "the receiver's bracketed address in a CIDR relay: legit" 'has "\"verdict\":\"legit\""'
run other "$tmp/ex.eml" neko@example.com > "$tmp/out"
check "Exim bounce, inline original, no relay: backscatter" 'has "\"verdict\":\"backscatter\""'
cfg exr 'relays: [192.0.2.124]'
run exr "$tmp/ex.eml" neko@example.com > "$tmp/out"
check "Exim bounce through the relay's address: legit" 'has "\"verdict\":\"legit\""'

# BATV: tags made by Exim at the same wall clock.
cat > "$tmp/exim.conf" <<EOC
spool_directory = $tmp/spool
log_file_path = $tmp/%slog
EOC
tag=$("$faketime" "@$now" "$exim" -C "$tmp/exim.conf" -be \
	'${prvs{shironeko@example.com}{classify-secret}{4}}')
check "Exim made a tag" 'echo "$tag" | grep -q "^prvs=4[0-9]\{3\}[0-9a-f]\{6\}=shironeko@example.com$"'
cfg batv 'batv: {enforce: true, keys: [{id: 4, secret: classify-secret}]}
relays: [out.example.com]'
run batv "$tmp/pf.eml" "<$tag>" > "$tmp/out"
check "a valid tag proves it legit despite the relays" \
	'has "\"verdict\":\"legit\"" && has "batv_valid"'
run batv "$tmp/hd.eml" shironeko@example.com > "$tmp/out"
check "untagged DSN under enforce: backscatter" \
	'has "\"verdict\":\"backscatter\"" && has "batv_missing"'
"$bin" --config "$tmp/batv.yaml" --rules "$rules" --now $((now + 30 * 86400)) \
	--mail-from '' --rcpt "$tag" "$tmp/pf.eml" > "$tmp/out"
check "the same tag a month later: expired" 'has "batv_expired" && has "\"verdict\":\"backscatter\""'

run batv "$tmp/pf.eml" someone@unprotected.example > "$tmp/out"
check "recipient in an unprotected domain: not judged" \
	'has "\"verdict\":\"not-bounce\"" && has "not_protected" && has "\"action\":\"deliver\""'
run batv "$ham" shironeko@example.com > "$tmp/out"
check "ordinary mail: not-bounce" 'has "\"verdict\":\"not-bounce\"" && has "not_bounce"'
exit $fail
