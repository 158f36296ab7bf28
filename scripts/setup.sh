#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install every build and test dependency of Backstop from Debian 12's
# packages (idempotent: quiet and quick when all is there), and optionally
# reserve hugepages.
#
#   scripts/setup.sh [--hugepages N]
#
# The README's commands and .ci/run call this first, so both work on a
# fresh machine.  The demo and the tests run DPDK with --no-huge and need
# no hugepages; --hugepages N reserves N 2 MiB pages for runs that want
# them (benchmarks on real NICs).
set -euo pipefail

PKGS=(
	# build
	build-essential meson ninja-build pkg-config clang
	libdpdk-dev dpdk libhyperscan-dev liburcu-dev libssl-dev libyaml-dev
	libsodium-dev
	# backstop-milter: libmilter (Sendmail's milter library)
	libmilter-dev
	# tests: unit, fuzz (clang's sanitizer and libFuzzer runtimes),
	# captures (scapy), namespaces (iproute2, ethtool, sysctl from procps)
	libcmocka-dev libclang-rt-14-dev python3-scapy tcpdump ethtool
	iproute2 iputils-ping procps libpcap-dev openssl
	# end to end: a real Postfix, and swaks with the Perl modules its
	# STARTTLS and IPv6 support need (Recommends of swaks, which
	# --no-install-recommends leaves out: swaks then exits 10)
	postfix swaks libnet-ssleay-perl libnet-dns-perl
	libio-socket-inet6-perl
	# benchmarks: dpdk-testpmd is in dpdk-dev, not dpdk
	dpdk-dev
	# control plane: JSON-lines protocol (jansson), /metrics
	# (libmicrohttpd); a real Prometheus server and promtool in tests
	libjansson-dev libmicrohttpd-dev prometheus
	# verdict tests: BATV tags made by Exim (extracted below, beside
	# Postfix) at faked dates; DKIM signatures by independent signers
	# (Mail::DKIM for RSA, dkimpy with PyNaCl for Ed25519)
	faketime libmail-dkim-perl python3-dkim python3-nacl
	# milter tests: an independent milter client (OpenDKIM's miltertest)
	miltertest
	libdb5.3 libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libnsl2
	libpcre2-8-0 libcrypt1
)

# Exim's binary for the verdict tests (exim4 -be evaluates ${prvs}).  The
# exim4-daemon-* packages conflict with postfix (both are the MTA), so the
# .deb is extracted into a private directory instead of installed.
EXIM_DIR=/opt/backstop-tools/exim

hugepages=0
while [ $# -gt 0 ]; do
	case "$1" in
	--hugepages) hugepages="$2"; shift 2 ;;
	*) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

missing=()
for p in "${PKGS[@]}"; do
	[[ "$p" == \#* ]] && continue
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	export DEBIAN_FRONTEND=noninteractive
	# Postfix for the end-to-end tests: installed unconfigured; the tests
	# run their own instance with their own configuration directory.
	echo "postfix postfix/main_mailer_type select No configuration" |
		$SUDO debconf-set-selections
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
		>/dev/null
fi

if [ ! -x "$EXIM_DIR/usr/sbin/exim4" ]; then
	echo "setup: extracting exim4-daemon-light into $EXIM_DIR"
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	( cd "$tmp" && apt-get download exim4-daemon-light >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get download exim4-daemon-light; } )
	mkdir -p "$EXIM_DIR"
	dpkg-deb -x "$tmp"/exim4-daemon-light_*.deb "$EXIM_DIR"
	rm -rf "$tmp"
fi
# Exim refuses to start without its compiled-in user.
if ! getent passwd Debian-exim >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin Debian-exim
fi

if [ "$hugepages" -gt 0 ]; then
	echo "$hugepages" > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
	mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
	echo "setup: $(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) hugepages of 2 MiB"
fi
