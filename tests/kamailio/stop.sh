#!/usr/bin/env bash
# Stop the test Kamailio started by start.sh in RUN_DIR (no-op if none).
set -euo pipefail

RUN_DIR=${1:-/tmp/handset-kamailio}
pidfile="$RUN_DIR/kamailio.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
rm -f "$pidfile"

# Is that pid still our kamailio? (pids get reused; a zombie has no cmdline)
ours() { grep -qF "$RUN_DIR/kamailio.cfg" "/proc/$pid/cmdline" 2>/dev/null; }

if [ -n "$pid" ] && ours; then
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		ours || break
		sleep 0.1
	done
	# start.sh runs it under setsid, so its pgid == pid: this also takes any
	# worker left behind.
	kill -KILL -- "-$pid" 2>/dev/null || true
fi
rm -f "$RUN_DIR/kamailio.ctl"
