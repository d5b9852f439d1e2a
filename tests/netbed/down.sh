#!/usr/bin/env bash
# Tear down the network test bed built by up.sh: down.sh RUN_DIR
# Stops the processes up.sh started (pid files in RUN_DIR, each checked against its command
# line), kills whatever is still running inside the bed's own namespaces (a test's leftovers),
# deletes the TUN devices listed in RUN_DIR/tunnels (tayga's, in the nat64 router namespace),
# then deletes exactly the namespaces listed in RUN_DIR/namespaces. Idempotent; fine after a
# partial up.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${1:?usage: down.sh RUN_DIR}
[ -d "$RUN_DIR" ] || exit 0
RUN_DIR=$(cd "$RUN_DIR" && pwd)

pbx_ns=$(grep -- '-pbx$' "$RUN_DIR/namespaces" 2>/dev/null || true)
nat64_ns=$(grep -- '-nat64$' "$RUN_DIR/namespaces" 2>/dev/null || true)

# The baresip peer: a graceful quit needs its control port, which is inside the PBX namespace.
if [ -e "$RUN_DIR/peers/peer/pid" ]; then
	if [ -n "$pbx_ns" ] && [ -e "/run/netns/$pbx_ns" ]; then
		HANDSET_PEERS_ROOT=$RUN_DIR/peers ip netns exec "$pbx_ns" \
			bash "$HERE/../peers/baresip.sh" stop peer || true
	else
		HANDSET_PEERS_ROOT=$RUN_DIR/peers bash "$HERE/../peers/baresip.sh" stop peer || true
	fi
fi

stop() { # NAME: the process in RUN_DIR/NAME.pid, if its command line still names RUN_DIR
	local pidfile=$RUN_DIR/$1.pid pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	rm -f "$pidfile"
	[ -n "$pid" ] || return 0
	ours() { grep -qF "$RUN_DIR/" "/proc/$pid/cmdline" 2>/dev/null; }
	ours || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 30); do
		ours || break
		sleep 0.1
	done
	# Started under setsid: its process group holds its workers too.
	kill -KILL -- "-$pid" 2>/dev/null || true
}
stop turnserver
stop kamailio
stop unbound
stop tayga
rm -f "$RUN_DIR/kamailio.ctl"

# tayga --mktun made persistent TUN devices, which outlive tayga.
if [ -f "$RUN_DIR/tunnels" ]; then
	if [ -n "$nat64_ns" ] && [ -e "/run/netns/$nat64_ns" ]; then
		while read -r tun; do
			[[ "$tun" =~ ^[a-z0-9]+$ ]] || continue
			if ip -n "$nat64_ns" link show "$tun" >/dev/null 2>&1; then
				ip -n "$nat64_ns" link del "$tun"
			fi
		done <"$RUN_DIR/tunnels"
	fi
	rm -f "$RUN_DIR/tunnels"
fi

if [ -f "$RUN_DIR/namespaces" ]; then
	while read -r ns; do
		[[ "$ns" =~ ^hs[0-9]+-(phone|wifi|cell|nat64|pbx)$ ]] || continue
		[ -e "/run/netns/$ns" ] || continue
		# Nothing but the bed runs in its namespaces; a process left there would keep it alive.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$ns"
	done <"$RUN_DIR/namespaces"
	rm -f "$RUN_DIR/namespaces"
fi
