#!/usr/bin/env bash
# Swift on a Debian 12 host: Debian trixie's swiftlang 6.0 (Foundation + XCTest) in a cached chroot.
#
#   scripts/swift.sh setup        create the chroot (~1 min, ~1.5 GB) or reuse it; prints its path
#   scripts/swift.sh test         setup, then: scripts/bindings.sh on the host (builds
#                                 libhandset_ffi.so and the generated Swift), copy the generated
#                                 files into bindings/swift (gitignored), start Kamailio and a
#                                 baresip peer on loopback, and inside the chroot run
#                                 `swift test` for bindings/swift and `swift build` + `swift test`
#                                 for ios/. Ends with swift test's own XCTest summary lines.
#   scripts/swift.sh shell [CMD]  a shell (or CMD) inside the chroot with the mounts of `test`
#   scripts/swift.sh clean        remove the SwiftPM build folders kept in the chroot
#
# Environment:
#   HANDSET_SWIFT_CHROOT   chroot folder (default /var/cache/handset/swift-trixie), outside the repo
#   HANDSET_SWIFT_MIRROR   Debian mirror for trixie (default: the host's deb.debian.org-style URI)
#   HANDSET_FFI_LIB        path of libhandset_ffi.so (default: found under target/{debug,release})
#   HANDSET_SWIFT_GENERATED  generated Swift folder (default target/bindings/swift)
#   HANDSET_SWIFT_NO_INTEROP=1  skip Kamailio/baresip (the interop tests then skip themselves)
#   HANDSET_SWIFT_NO_FFI=1      skip scripts/bindings.sh and every FFI target (no Rust needed)
#
# Needs root (mmdebstrap, chroot, bind mounts). Without scripts/bindings.sh or the .so, only the
# FFI-free targets (WAV/Goertzel helper, the iOS glue's platform-neutral core) are built and tested.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHROOT=${HANDSET_SWIFT_CHROOT:-/var/cache/handset/swift-trixie}
PACKAGES=swiftlang,libswiftlang,swiftlang-dev,libc6-dev,libstdc++-14-dev,libasound2t64
# Scratch folders kept inside the chroot so the checkout stays clean and rebuilds are incremental.
SCRATCH=/var/cache/handset-swift-build
RUN=/tmp/handset-swift            # shared with the chroot: WAVs, logs, env for the tests
KAMAILIO_DIR=/tmp/handset-kamailio-swift
PEER=peer8
SWIFT_PATH=/usr/libexec/swift/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "swift.sh: $*" >&2; exit 1; }
log() { echo "== swift.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot and bind mounts)"

mirror() {
	if [ -n "${HANDSET_SWIFT_MIRROR:-}" ]; then echo "$HANDSET_SWIFT_MIRROR"; return; fi
	local uri
	uri=$(grep -hoE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
		/etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null |
		grep -oE 'https?://[^[:space:]]+' | grep -v security | head -n1 || true)
	echo "${uri:-http://deb.debian.org/debian}"
}

# --- the chroot ---------------------------------------------------------------------------------
setup() {
	local stamp="$CHROOT/.handset-swift-ready"
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$PACKAGES" ] && [ -x "$CHROOT/usr/libexec/swift/bin/swift" ]; then
		log "reusing chroot $CHROOT ($(du -sh "$CHROOT" 2>/dev/null | cut -f1))"
		return
	fi
	if ! command -v mmdebstrap >/dev/null; then
		log "installing mmdebstrap"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
	fi
	local tmp="$CHROOT.new.$$" m start
	m=$(mirror)
	start=$(date +%s)
	log "creating chroot $CHROOT from $m (trixie: $PACKAGES)"
	mkdir -p "$(dirname "$CHROOT")"
	rm -rf "$tmp"
	if ! mmdebstrap --quiet --variant=apt --include="$PACKAGES" trixie "$tmp" "deb $m trixie main" >&2; then
		rm -rf "$tmp"
		die "mmdebstrap failed (mirror $m; set HANDSET_SWIFT_MIRROR to override)"
	fi
	echo "$PACKAGES" >"$tmp/.handset-swift-ready"
	rm -rf "$CHROOT"
	mv "$tmp" "$CHROOT"
	log "chroot ready in $(($(date +%s) - start)) s, $(du -sh "$CHROOT" | cut -f1)"
}

# --- mounts (undone on exit, even on failure) ---------------------------------------------------
MOUNTS=()
bind() { # bind SRC DST-inside-chroot [ro]
	local dst="$CHROOT$2"
	mkdir -p "$dst"
	mountpoint -q "$dst" && umount "$dst" 2>/dev/null || true
	mount --bind "$1" "$dst"
	[ "${3:-}" = ro ] && mount -o remount,bind,ro "$dst"
	MOUNTS+=("$dst")
}
unmount_all() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
	done
	MOUNTS=()
}
mount_all() {
	mkdir -p "$CHROOT/proc" "$RUN" /tmp/handset-peers
	mountpoint -q "$CHROOT/proc" || { mount -t proc proc "$CHROOT/proc"; MOUNTS+=("$CHROOT/proc"); }
	bind /dev /dev
	bind "$REPO" "$REPO"
	bind "$RUN" "$RUN"
	bind /tmp/handset-peers /tmp/handset-peers ro
	# A target folder outside the checkout (CARGO_TARGET_DIR) is mounted at its own path too.
	if [ -n "${FFI_DIR:-}" ] && [[ "$FFI_DIR" != "$REPO"/* ]]; then bind "$FFI_DIR" "$FFI_DIR" ro; fi
}
in_chroot() { # in_chroot DIR CMD...  (runs CMD with swift on PATH, in DIR)
	local dir=$1
	shift
	chroot "$CHROOT" /usr/bin/env -i PATH="$SWIFT_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb \
		HANDSET_SWIFT_STRICT=1 LD_LIBRARY_PATH="${FFI_DIR:-}" HANDSET_SWIFT_RUN="$RUN" HANDSET_SWIFT_ENV="$RUN/env" \
		/bin/bash -c 'cd "$0" && exec "$@"' "$dir" "$@"
}

# --- the FFI library and generated Swift -------------------------------------------------------
FFI_DIR=
find_ffi() {
	local lib=${HANDSET_FFI_LIB:-}
	if [ -z "$lib" ]; then
		local target=${CARGO_TARGET_DIR:-$REPO/target}
		lib=$(ls -t "$target"/debug/libhandset_ffi.so "$target"/release/libhandset_ffi.so 2>/dev/null | head -n1 || true)
	fi
	if [ -n "$lib" ] && [ -f "$lib" ]; then
		FFI_DIR=$(cd "$(dirname "$lib")" && pwd)
	fi
}

GEN_SWIFT=$REPO/bindings/swift/Sources/Handset/handset.swift
GEN_FFI=$REPO/bindings/swift/Sources/handsetFFI
copy_generated() {
	local gen=${HANDSET_SWIFT_GENERATED:-$REPO/target/bindings/swift}
	local swift header
	swift=$(ls "$gen"/*.swift 2>/dev/null | head -n1 || true)
	header=$(ls "$gen"/*FFI.h 2>/dev/null | head -n1 || true)
	if [ -z "$swift" ] || [ -z "$header" ]; then
		rm -f "$GEN_SWIFT" "$GEN_FFI"/*.h "$GEN_FFI"/module.modulemap
		return 1
	fi
	local module
	module=$(basename "$header" .h)
	[ "$module" = handsetFFI ] || die "generated header is $module.h; bindings/swift expects handsetFFI.h"
	mkdir -p "$(dirname "$GEN_SWIFT")" "$GEN_FFI"
	cp "$swift" "$GEN_SWIFT"
	cp "$header" "$GEN_FFI/handsetFFI.h"
	# Our own module map (not uniffi's): it also links the library, so importers need no -l flag.
	cat >"$GEN_FFI/module.modulemap" <<-'EOF'
		module handsetFFI {
		    header "handsetFFI.h"
		    link "handset_ffi"
		    export *
		}
	EOF
	log "copied $(basename "$swift") and $module.h from $gen"
}

# --- interop peers on the host (the chroot shares the network namespace) ------------------------
INTEROP_STARTED=
start_interop() {
	rm -f "$RUN/env"
	if [ "${HANDSET_SWIFT_NO_INTEROP:-}" = 1 ]; then log "HANDSET_SWIFT_NO_INTEROP=1: no Kamailio/baresip"; return; fi
	log "starting Kamailio ($KAMAILIO_DIR) and baresip $PEER"
	# Installs baresip (and the other test peers) when missing; start.sh installs Kamailio.
	bash "$REPO/tests/peers/install.sh" >&2 || die "installing the test peers failed (tests/peers/install.sh)"
	INTEROP_STARTED=1
	bash "$REPO/tests/kamailio/start.sh" "$KAMAILIO_DIR" >"$RUN/kamailio-start.log" 2>&1 ||
		{ cat "$RUN/kamailio-start.log" >&2; die "Kamailio did not start"; }
	bash "$REPO/tests/peers/baresip.sh" start "$PEER" "$PEER" --tone 600 --codec pcmu --auto-answer \
		>"$RUN/baresip-start.log" 2>&1 || { cat "$RUN/baresip-start.log" >&2; die "baresip $PEER did not start"; }
	bash "$REPO/tests/peers/baresip.sh" wait "$PEER" registered 15 >/dev/null ||
		die "baresip $PEER did not register (see /tmp/handset-peers/$PEER/baresip.log)"
	# What the Swift interop tests read (they skip themselves when this file is missing).
	cat >"$RUN/env" <<-EOF
		HANDSET_PROXY=127.0.0.1:25060
		HANDSET_DOMAIN=127.0.0.1
		HANDSET_USER=call11
		HANDSET_PASSWORD=call11-secret
		HANDSET_PEER_URI=sip:$PEER@127.0.0.1
		HANDSET_PEER_TONE_HZ=600
		HANDSET_WAV_DIR=$RUN
	EOF
}
stop_interop() {
	[ -n "$INTEROP_STARTED" ] || return 0
	bash "$REPO/tests/peers/baresip.sh" stop "$PEER" >/dev/null 2>&1 || true
	bash "$REPO/tests/kamailio/stop.sh" "$KAMAILIO_DIR" >/dev/null 2>&1 || true
}

# --- swift build / test ------------------------------------------------------------------------
SUMMARY=()
FAILED=0
swift_run() { # swift_run PKG-DIR build|test
	local pkg=$1 verb=$2 name out
	name=${pkg#"$REPO"/}
	out="$RUN/swift-$verb-${name//\//-}.log"
	local args=(swift "$verb" --scratch-path "$SCRATCH/${name//\//-}")
	if [ -n "$FFI_DIR" ]; then
		args+=(-Xlinker -L"$FFI_DIR" -Xlinker -rpath -Xlinker "$FFI_DIR")
	fi
	[ "$verb" = test ] && args+=(--disable-swift-testing)
	log "($name) ${args[*]}"
	local rc=0
	# pipefail: the pipeline fails with swift's status (tee does not fail).
	in_chroot "$pkg" "${args[@]}" 2>&1 | tee "$out" || rc=$?
	[ "$rc" = 0 ] || { FAILED=1; echo "swift.sh: swift $verb failed in $name (exit $rc, log $out)" >&2; }
	if [ "$verb" = test ]; then
		local line
		line=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$out" | tail -n1 || true)
		SUMMARY+=("$name: ${line:-no XCTest summary (exit $rc)}")
	fi
}

cmd_test() {
	setup
	exec 9>"$CHROOT.lock"
	flock 9
	trap 'unmount_all; stop_interop' EXIT
	mkdir -p "$RUN"
	if [ "${HANDSET_SWIFT_NO_FFI:-}" = 1 ]; then
		log "HANDSET_SWIFT_NO_FFI=1: no bindings, FFI targets skipped"
		HANDSET_SWIFT_GENERATED=/nonexistent
	elif [ -f "$REPO/scripts/bindings.sh" ]; then
		log "bash scripts/bindings.sh"
		bash "$REPO/scripts/bindings.sh" >&2 || die "scripts/bindings.sh failed"
	else
		log "no scripts/bindings.sh yet: FFI targets are skipped"
	fi
	find_ffi
	local have_ffi=0
	if copy_generated; then
		[ -n "$FFI_DIR" ] || die "generated Swift found but no libhandset_ffi.so (set HANDSET_FFI_LIB)"
		have_ffi=1
		log "FFI library in $FFI_DIR"
	else
		log "no generated Swift: building the FFI-free targets only"
		FFI_DIR=
	fi
	mount_all
	[ "$have_ffi" = 1 ] && start_interop
	swift_run "$REPO/bindings/swift" test
	swift_run "$REPO/ios" build
	swift_run "$REPO/ios" test
	echo
	echo "== Swift test summary"
	printf '%s\n' "${SUMMARY[@]}"
	# The closing lines: swift test's own, one per package.
	for s in "${SUMMARY[@]}"; do echo "${s#*: }"; done
	return "$FAILED"
}

cmd_shell() {
	setup
	exec 9>"$CHROOT.lock"
	flock 9
	trap 'unmount_all' EXIT
	find_ffi
	mount_all
	if [ $# -gt 0 ]; then in_chroot "$REPO" "$@"; else in_chroot "$REPO" bash -i; fi
}

case "${1:-test}" in
setup) setup; echo "$CHROOT" ;;
test) cmd_test ;;
shell) shift; cmd_shell "$@" ;;
clean) rm -rf "$CHROOT$SCRATCH"; log "removed $CHROOT$SCRATCH" ;;
*) die "usage: swift.sh [setup|test|shell [CMD...]|clean]" ;;
esac
