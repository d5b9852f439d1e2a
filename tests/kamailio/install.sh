#!/usr/bin/env bash
# Install Kamailio + test tools (Debian). Idempotent and quiet when all present.
set -euo pipefail

missing=0
for tool in kamailio kamcmd sipp openssl; do
	command -v "$tool" >/dev/null 2>&1 || missing=1
done
# tls.so comes from kamailio-tls-modules, which the kamailio binary alone doesn't prove.
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || missing=1
[ "$missing" = 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q kamailio kamailio-tls-modules kamailio-extra-modules sip-tester openssl
