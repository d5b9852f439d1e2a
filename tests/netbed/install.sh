#!/usr/bin/env bash
# Install what the network test bed needs (Debian): nftables (the NAT routers), conntrack (their
# mapping tables), Kamailio's outbound module, coturn (STUN/TURN in the PBX namespace), iproute2
# (namespaces, veth pairs), plus Kamailio, SIPp and baresip through the existing harness
# installers.
# Idempotent; silent when everything is present. Packages come from apt's configured mirrors.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$HERE/../kamailio/install.sh"
bash "$HERE/../peers/install.sh"

missing=()
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
command -v turnserver >/dev/null 2>&1 && command -v turnutils_stunclient >/dev/null 2>&1 ||
	missing+=(coturn)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# SIP outbound for the bed's Kamailio (its stun module comes with the main package).
compgen -G "/usr/lib/*/kamailio/modules/outbound.so" >/dev/null || missing+=(kamailio-outbound-modules)
[ ${#missing[@]} = 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The test starts coturn itself on its own config; the package's service stays disabled
# (/etc/default/coturn leaves TURNSERVER_ENABLED unset).
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
