#!/usr/bin/env bash
# Run a command inside one namespace of the bed: exec.sh RUN_DIR phone|wifi|cell|nat64|pbx CMD [ARGS...]
set -euo pipefail

RUN_DIR=${1:?usage: exec.sh RUN_DIR phone|wifi|cell|nat64|pbx CMD...}
role=${2:?usage: exec.sh RUN_DIR phone|wifi|cell|nat64|pbx CMD...}
shift 2
case $role in phone | wifi | cell | nat64 | pbx) ;; *) echo "exec.sh: no namespace $role" >&2 && exit 2 ;; esac
prefix=$(sed -n 's/^NETBED_PREFIX=//p' "$RUN_DIR/env")
[ -n "$prefix" ] || { echo "exec.sh: no bed in $RUN_DIR" >&2 && exit 1; }
exec ip netns exec "$prefix-$role" "$@"
