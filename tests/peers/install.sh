#!/usr/bin/env bash
# Install the test peers (Debian 12): baresip, SIPp, linphonec, python3, iproute2 (ss), tcpdump.
# Idempotent; silent when everything is present.
set -euo pipefail

missing=()
command -v baresip >/dev/null 2>&1 && [ -e /usr/lib/baresip/modules/ausine.so ] || missing+=(baresip-core)
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v linphonec >/dev/null 2>&1 || missing+=(linphone-cli)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
[ ${#missing[@]} = 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
