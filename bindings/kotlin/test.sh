#!/usr/bin/env bash
# The Kotlin bindings' JVM tests, from a fresh machine:
#
#   bash bindings/kotlin/test.sh
#
# 1. Toolchain: Kotlin compiler, kotlin-stdlib, kotlinx-coroutines, JNA and JUnit 4 from Maven
#    Central (`mvn dependency:copy-dependencies` on toolchain/*.pom.xml) into
#    $HANDSET_CACHE/kotlin-$KOTLIN_VERSION (default ~/.cache/handset), once. Installs
#    maven / a JDK with apt-get when missing.
# 2. scripts/bindings.sh: builds libhandset_ffi.so and generates target/bindings/kotlin.
# 3. kotlinc (in-process K2JVMCompiler): generated bindings + src/main -> target/kotlin/main,
#    src/test -> target/kotlin/test (skipped when the sources did not change).
# 4. Loopback harness: Kamailio (tests/kamailio/start.sh /tmp/handset-kamailio-kotlin) and a
#    baresip peer ($PEER, 600 Hz tone, PCMU, auto-answer). start.sh stops other harness
#    instances, so this first waits (HANDSET_HARNESS_WAIT s, default 900) while a Kamailio
#    of another run directory runs. HANDSET_KOTLIN_NO_INTEROP=1 skips the harness (the interop
#    tests are then skipped, and reported as such).
# 5. JUnit 4 (JUnitCore) with -Djna.library.path pointing at the Linux build. The last line is
#    JUnit's own summary: `OK (N tests)` or `Tests run: N,  Failures: M`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
KOTLIN_VERSION=2.1.20
COROUTINES_VERSION=1.10.1
JNA_VERSION=5.17.0
JUNIT_VERSION=4.13.2
CACHE=${HANDSET_CACHE:-$HOME/.cache/handset}/kotlin-$KOTLIN_VERSION
BUILD=$TARGET/kotlin
KAMAILIO_DIR=/tmp/handset-kamailio-kotlin
PEER=peer7
USER_NAME=ic10
WORK=/tmp/handset-kotlin

log() { echo "== kotlin/test.sh: $*" >&2; }
die() { echo "kotlin/test.sh: $*" >&2; exit 1; }
start=$(date +%s)

# --- 1. toolchain ----------------------------------------------------------------------------------
# shellcheck source=scripts/lib/maven.sh
. "$REPO/scripts/lib/maven.sh"
ensure_jdk
fetch() { # fetch POM DIR: the POM's dependencies (transitively) into DIR
	maven_fetch "$1" "$2" -Dkotlin.version=$KOTLIN_VERSION -Dcoroutines.version=$COROUTINES_VERSION \
		-Djna.version=$JNA_VERSION -Djunit.version=$JUNIT_VERSION
}
fetch "$HERE/toolchain/compiler.pom.xml" "$CACHE/compiler"
fetch "$HERE/toolchain/runtime.pom.xml" "$CACHE/runtime"
classpath() { find "$1" -name '*.jar' | sort | paste -sd: -; }
COMPILER_CP=$(classpath "$CACHE/compiler")
RUNTIME_CP=$(classpath "$CACHE/runtime")

# --- 2. library + generated bindings ------------------------------------------------------------
log "scripts/bindings.sh"
bash "$REPO/scripts/bindings.sh" >&2
LIB_DIR=$TARGET/debug
GENERATED=$TARGET/bindings/kotlin
[ -f "$LIB_DIR/libhandset_ffi.so" ] || die "no $LIB_DIR/libhandset_ffi.so"

# --- 3. compile ------------------------------------------------------------------------------------
kotlinc() { # kotlinc OUT CLASSPATH SOURCES...: compiles unless the inputs are unchanged
	local out=$1 cp=$2
	shift 2
	local stamp
	stamp=$(cat "$@" <(echo "$cp $KOTLIN_VERSION") | sha256sum | cut -d' ' -f1)
	if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
		log "$(basename "$out"): up to date"
		return
	fi
	log "kotlinc -> $out ($# files)"
	local t
	t=$(date +%s)
	rm -rf "$out"
	mkdir -p "$out"
	java -Xss8m -Xmx2g -cp "$COMPILER_CP" org.jetbrains.kotlin.cli.jvm.K2JVMCompiler \
		-no-stdlib -no-reflect -jvm-target 17 -Xsuppress-version-warnings -nowarn \
		-cp "$cp" -d "$out" "$@" >&2
	echo "$stamp" >"$out/.stamp"
	log "$(basename "$out") compiled in $(($(date +%s) - t)) s"
}
mapfile -t MAIN_SOURCES < <(find "$GENERATED" "$HERE/src/main/kotlin" -name '*.kt' | sort)
mapfile -t TEST_SOURCES < <(find "$HERE/src/test/kotlin" -name '*.kt' | sort)
kotlinc "$BUILD/main" "$RUNTIME_CP" "${MAIN_SOURCES[@]}"
kotlinc "$BUILD/test" "$RUNTIME_CP:$BUILD/main" "${TEST_SOURCES[@]}"

# --- 4. harness ------------------------------------------------------------------------------------
HARNESS=
stop_harness() {
	[ -n "$HARNESS" ] || return 0
	HARNESS=
	bash "$REPO/tests/peers/baresip.sh" stop "$PEER" >/dev/null 2>&1 || true
	bash "$REPO/tests/kamailio/stop.sh" "$KAMAILIO_DIR" >/dev/null 2>&1 || true
}
trap stop_harness EXIT
mkdir -p "$WORK"
PROPS=(-Dhandset.repo="$REPO" -Dhandset.work="$WORK")
if [ "${HANDSET_KOTLIN_NO_INTEROP:-}" = 1 ]; then
	log "HANDSET_KOTLIN_NO_INTEROP=1: no Kamailio/baresip, interop tests skip"
else
	# start.sh stops a harness started from another RUN_DIR (another suite's): wait for it first.
	waited=0
	while pgrep -af 'kamailio .*-f /' | grep -v -- "-f $KAMAILIO_DIR/" | grep -q kamailio.cfg; do
		[ "$waited" -lt "${HANDSET_HARNESS_WAIT:-900}" ] || { log "another Kamailio still runs; taking over"; break; }
		[ "$waited" = 0 ] && log "another suite's Kamailio runs: waiting (HANDSET_HARNESS_WAIT=${HANDSET_HARNESS_WAIT:-900} s)"
		sleep 5
		waited=$((waited + 5))
	done
	log "starting Kamailio ($KAMAILIO_DIR) and baresip $PEER"
	HARNESS=1
	bash "$REPO/tests/kamailio/start.sh" "$KAMAILIO_DIR" >"$WORK/kamailio-start.log" 2>&1 ||
		{ cat "$WORK/kamailio-start.log" >&2; die "Kamailio did not start"; }
	proxy=$(sed -n 's/^KAMAILIO_UDP=//p' "$KAMAILIO_DIR/env" 2>/dev/null || true)
	bash "$REPO/tests/peers/baresip.sh" start "$PEER" "$PEER" --tone 600 --codec pcmu --auto-answer \
		>"$WORK/baresip-start.log" 2>&1 || { cat "$WORK/baresip-start.log" >&2; die "baresip $PEER did not start"; }
	bash "$REPO/tests/peers/baresip.sh" wait "$PEER" registered 15 >/dev/null ||
		die "baresip $PEER did not register (see /tmp/handset-peers/$PEER/baresip.log)"
	PROPS+=(-Dhandset.proxy="${proxy:-127.0.0.1:25060}" -Dhandset.user="$USER_NAME"
		-Dhandset.password="$USER_NAME-secret" -Dhandset.peer="$PEER" -Dhandset.peerTone=600)
fi

# --- 5. run ----------------------------------------------------------------------------------------
log "JUnit (libhandset_ffi.so from $LIB_DIR)"
set +e
java -Djna.library.path="$LIB_DIR" "${PROPS[@]}" -cp "$RUNTIME_CP:$BUILD/main:$BUILD/test" \
	dev.handset.RunTestsKt 2>&1 | tee "$WORK/junit.log"
rc=${PIPESTATUS[0]}
set -e
stop_harness
log "done in $(($(date +%s) - start)) s (exit $rc)"
# The closing line: JUnit's own summary.
grep -E '^(OK \([0-9]+ tests?\)|Tests run: [0-9]+, +Failures: [0-9]+)' "$WORK/junit.log" | tail -n1 ||
	echo "Tests run: 0,  Failures: 1 (JUnit printed no summary)"
exit "$rc"
