#!/usr/bin/env bash
# Move the phone's default route to one uplink: switch.sh RUN_DIR wifi|cellular
# Sockets bound to an uplink's own address keep using it (policy routes from up.sh); new
# unbound traffic leaves through the chosen uplink, so the PBX sees the other router's address.
set -euo pipefail

RUN_DIR=${1:?usage: switch.sh RUN_DIR wifi|cellular}
uplink=${2:?usage: switch.sh RUN_DIR wifi|cellular}
env_get() { sed -n "s/^$1=//p" "$RUN_DIR/env"; }
ns=$(env_get NETBED_NS_PHONE)
[ -n "$ns" ] || { echo "switch.sh: no bed in $RUN_DIR" >&2 && exit 1; }
[ -n "$(env_get NETBED_WIFI_GW)" ] || { echo "switch.sh: this bed has one uplink" >&2 && exit 2; }
case $uplink in
wifi) ip -n "$ns" route replace default via "$(env_get NETBED_WIFI_GW)" dev wifi ;;
cellular) ip -n "$ns" route replace default via "$(env_get NETBED_CELL_GW)" dev cell ;;
*) echo "switch.sh: uplink must be wifi or cellular, not $uplink" >&2 && exit 2 ;;
esac
# Cached routes of connected sockets must not keep the old uplink.
ip -n "$ns" route flush cache
echo "$uplink" >"$RUN_DIR/uplink"
