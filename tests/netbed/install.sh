#!/usr/bin/env bash
# Install what the network test bed needs (Debian): nftables (the NAT routers), conntrack (their
# mapping tables), Kamailio's outbound module, coturn (STUN/TURN in the PBX namespace), iproute2
# (namespaces, veth pairs), tayga (NAT64) and unbound (DNS64) for the nat64 variant, dig
# (bind9-dnsutils) for its selftest, plus Kamailio, SIPp and baresip through the existing
# harness installers.
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
command -v tayga >/dev/null 2>&1 || missing+=(tayga)
command -v unbound >/dev/null 2>&1 || missing+=(unbound)
command -v dig >/dev/null 2>&1 || missing+=(bind9-dnsutils)
[ ${#missing[@]} = 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The test starts coturn itself on its own config; the package's service stays disabled
# (/etc/default/coturn leaves TURNSERVER_ENABLED unset).
# tayga and unbound run on their own configs inside the bed's namespaces; their packages'
# services would start on the host (tayga's init script adds a TUN device, routes and a
# masquerade rule; unbound serves DNS on port 53). A policy-rc.d keeps them from starting
# during the install (unless the machine has its own), and they stay disabled afterwards.
services=()
for pkg in tayga unbound; do
	[[ " ${missing[*]} " != *" $pkg "* ]] || services+=("$pkg")
done
guard=""
if [ ${#services[@]} != 0 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
	guard=/usr/sbin/policy-rc.d
	trap '$sudo rm -f "$guard"' EXIT
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
	$sudo chmod 755 "$guard"
fi
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ ${#services[@]} != 0 ] && [ -d /run/systemd/system ]; then
	[[ " ${services[*]} " != *" unbound "* ]] || services+=(unbound-resolvconf)
	$sudo systemctl disable "${services[@]}" >/dev/null 2>&1 || true
fi
