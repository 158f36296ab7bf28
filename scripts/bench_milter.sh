#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Messages per second through a real Postfix with backstop-milter beside
# the same Postfix without it (docs/performance.md).  One private Postfix
# instance in a network namespace of its own (its own loopback and port
# 25, discard transport: the cost measured is smtpd + cleanup + the
# milter), smtp-source (Postfix's load generator) sending M messages over
# S parallel sessions, alternating runs without and with the milter
# (UNIX socket inside the chroot), medians of R rounds.  Messages: an
# ordinary one and a real bounce from the corpus (null sender; judged
# legit with RELAY=r.example.com, refused with 550 5.7.1 otherwise).
# KINDS picks "ham ndr"; ERRSLEEP sets Postfix's smtpd_error_sleep_time
# (its pause before each 5xx, 1s by default).  Root.
#
#   [RELAY=r.example.com] [KINDS="ham ndr"] [ERRSLEEP=1s] \
#   scripts/bench_milter.sh [MESSAGES] [SESSIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
M=${1:-2000} S=${2:-8} R=${3:-3}
ns=bsmb$$
dir=$(mktemp -d /tmp/bench-milter.XXXXXX)
chmod 755 "$dir"
cleanup() {
	postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
	[ -n "${mpid:-}" ] && kill "$mpid" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
cp /etc/postfix/master.cf /etc/postfix/dynamicmaps.cf "$dir/etc/" 2>/dev/null || true
for x in dynamicmaps.cf.d postfix-files postfix-files.d; do
	[ -e /etc/postfix/$x ] && cp -r /etc/postfix/$x "$dir/etc/" || true
done
chown postfix:postfix "$dir/data"
cat > "$dir/etc/main.cf" <<EOC
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.com
mydestination =
mynetworks = 127.0.0.0/8
relay_domains = example.com
smtpd_recipient_restrictions = permit_mynetworks, reject
default_transport = discard
relay_transport = discard
smtp_dns_support_level = disabled
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
smtpd_client_connection_rate_limit = 0
default_process_limit = 100
milter_default_action = accept
milter_protocol = 6
smtpd_milters =
smtpd_error_sleep_time = ${ERRSLEEP:-1s}
EOC
echo "postlog   unix-dgram n  -       n       -       1       postlogd" >> "$dir/etc/master.cf"
ip netns exec "$ns" postfix -c "$dir/etc" start >"$dir/start.log" 2>&1 ||
	{ cat "$dir/start.log" >&2; exit 1; }
sleep 2
cat > "$dir/milter.yaml" <<EOC
protected_domains: [example.com]
batv: {enforce: true, keys: [{id: 4, secret: bench}]}
relays: [${RELAY:-out.example.com}]
EOC
ip netns exec "$ns" "$top/build/milter/backstop-milter" --config "$dir/milter.yaml" \
	--listen unix:$dir/spool/milter.sock --socket-mode 0666 >/dev/null 2>"$dir/milter.err" &
mpid=$!
sleep 1
ham=$(ls "$top"/../shared/corpus/not-ndr/mail-gem/*.eml | head -1)
ndr=$top/../shared/corpus/ndr/sisimai/lhost-postfix-04.eml
sed 's/example\.ne\.jp/example.com/g' "$ndr" > "$dir/ndr.eml"
cp "$ham" "$dir/ham.eml"

run() { # milter(0/1) file from -> messages/s
	local spec=""
	[ "$1" = 1 ] && spec="unix:/milter.sock"
	postconf -c "$dir/etc" -e "smtpd_milters=$spec"
	ip netns exec "$ns" postfix -c "$dir/etc" reload >/dev/null 2>&1
	sleep 1.5
	local t0 t1
	t0=$(date +%s.%N)
	ip netns exec "$ns" smtp-source -A -s "$S" -m "$M" -f "$3" \
		-t shironeko@example.com -F "$2" 127.0.0.1:25 2>/dev/null
	t1=$(date +%s.%N)
	/usr/bin/python3 -c "print($M / ($t1 - $t0))"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for kind in ${KINDS:-ham ndr}; do
	from=alice@example.org
	[ $kind = ndr ] && from='<>'
	off=() on=()
	for r in $(seq "$R"); do
		off+=("$(run 0 "$dir/$kind.eml" "$from")")
		on+=("$(run 1 "$dir/$kind.eml" "$from")")
	done
	moff=$(printf '%s\n' "${off[@]}" | median)
	mon=$(printf '%s\n' "${on[@]}" | median)
	printf '%s: without milter %.0f msg/s, with milter %.0f msg/s, ratio %.3f (runs off: %s; on: %s)\n' \
		"$kind" "$moff" "$mon" "$(/usr/bin/python3 -c "print($mon / $moff)")" \
		"$(printf '%.0f ' "${off[@]}")" "$(printf '%.0f ' "${on[@]}")"
done
kill -USR1 "$mpid"; sleep 0.5
grep -c "milter-reject" "$dir/maillog" | sed 's/^/refused by the milter: /'
