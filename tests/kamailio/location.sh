#!/usr/bin/env bash
# Print the Contact URIs bound to USER@127.0.0.1, one per line (nothing if none).
# Usage: location.sh USER [RUN_DIR]. Exits non-zero if Kamailio can't be asked.
set -euo pipefail

user=${1:?usage: location.sh USER [RUN_DIR]}
RUN_DIR=${2:-/tmp/handset-kamailio}

# kamcmd exits 0 even for "error: 500 - AOR not found" (never bound) and
# "AOR has no contacts" (bindings expired, record not purged yet), but
# non-zero when the ctl socket is unreachable (or kamailio hangs).
if ! out=$(timeout 10 kamcmd -s "unix:$RUN_DIR/kamailio.ctl" ul.lookup location "$user@127.0.0.1" 2>&1); then
	echo "location.sh: kamailio not reachable via unix:$RUN_DIR/kamailio.ctl: $out" >&2
	exit 1
fi
case "$out" in
*"AOR not found"* | *"AOR has no contacts"*) exit 0 ;;
error:*)
	echo "location.sh: $out" >&2
	exit 1
	;;
esac
# Contact blocks look like "\t\t\tAddress: sip:alice@127.0.0.1:5070;transport=UDP".
printf '%s\n' "$out" | sed -n 's/^[[:space:]]*Address: //p'
