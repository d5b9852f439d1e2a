#!/usr/bin/env bash
# The Android library (android/) without an Android SDK or Gradle: its pure part compiled and
# unit-tested on the JVM, its platform glue compiled against the Android framework classes.
#
#   bash scripts/android.sh
#
# 1. Toolchain from Maven Central with `mvn dependency:copy-dependencies`, once, into
#    $HANDSET_CACHE (default ~/.cache/handset): the Kotlin compiler and the JVM runtime (Kotlin
#    stdlib, kotlinx-coroutines, JNA, JUnit 4: bindings/kotlin/toolchain/*.pom.xml, shared with
#    bindings/kotlin/test.sh) and android/toolchain/android.pom.xml: org.robolectric:android-all
#    $ANDROID_ALL_VERSION (the framework classes of API 35, the module's compileSdk),
#    kotlinx-coroutines-android, JNA, kotlin-stdlib. Installs maven / a JDK with apt-get when
#    missing.
# 2. scripts/bindings.sh: generates the bindings of bindings/ffi into target/android/bindings (its
#    own folder: another script regenerating target/bindings meanwhile cannot pull files away).
# 3. The checked-in manifest is well-formed XML and every class it names is compiled.
# 4. kotlinc (in-process K2JVMCompiler, warnings shown), each step skipped (its log re-printed)
#    when no input changed:
#    a. the pure part, android/core/src/main (package dev.handset.android.core) + the generated
#       bindings + bindings/kotlin/src/main, against the plain JVM runtime only: any android.*
#       use there fails to compile -> target/android/core-classes;
#    b. the glue, android/src/main, against android-all + (a) -> target/android/classes;
#    c. the tests, android/core/src/test (the pure part's JUnit tests) and android/src/test
#       (checks of the platform constants the pure part copies) -> target/android/test-classes.
# 5. JUnit 4 (JUnitCore) over every compiled *Test class, on the JVM.
#
# android-all holds the framework's implementation classes, hidden ones included: it catches
# every misspelled or missing public API, but Gradle with the SDK's android.jar stays the judge
# of @hide APIs and of resources (this module has none). Exits non-zero on any compile error or
# failed test; the last line is the summary.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
# Keep these in step with android/build.gradle.kts and bindings/kotlin/test.sh.
KOTLIN_VERSION=2.1.20
COROUTINES_VERSION=1.10.1
JNA_VERSION=5.17.0
ANDROID_ALL_VERSION=15-robolectric-12650502
CACHE_ROOT=${HANDSET_CACHE:-$HOME/.cache/handset}
COMPILER_DIR=$CACHE_ROOT/kotlin-$KOTLIN_VERSION/compiler
ANDROID_DIR=$CACHE_ROOT/android-$ANDROID_ALL_VERSION-kotlin-$KOTLIN_VERSION
JUNIT_VERSION=4.13.2
RUNTIME_DIR=$CACHE_ROOT/kotlin-$KOTLIN_VERSION/runtime
BUILD=$TARGET/android

log() { echo "== android.sh: $*" >&2; }
die() { echo "android.sh: $*" >&2; exit 1; }
start=$(date +%s)

# --- 1. toolchain ----------------------------------------------------------------------------------
# shellcheck source=scripts/lib/maven.sh
. "$REPO/scripts/lib/maven.sh"
ensure_jdk
fetch() { # fetch POM DIR: the POM's dependencies (transitively) into DIR
	maven_fetch "$1" "$2" -Dkotlin.version=$KOTLIN_VERSION -Dcoroutines.version=$COROUTINES_VERSION \
		-Djna.version=$JNA_VERSION -Dandroid.all.version=$ANDROID_ALL_VERSION -Djunit.version=$JUNIT_VERSION
}
fetch "$REPO/bindings/kotlin/toolchain/compiler.pom.xml" "$COMPILER_DIR"
fetch "$REPO/bindings/kotlin/toolchain/runtime.pom.xml" "$RUNTIME_DIR"
fetch "$REPO/android/toolchain/android.pom.xml" "$ANDROID_DIR"
classpath() { find "$1" -name '*.jar' | sort | paste -sd: -; }
COMPILER_CP=$(classpath "$COMPILER_DIR")
# The pure part sees the JVM runtime without JUnit; its tests see JUnit too.
JVM_CP=$(find "$RUNTIME_DIR" -name '*.jar' ! -name 'junit-*' ! -name 'hamcrest-*' | sort | paste -sd: -)
TEST_CP=$(classpath "$RUNTIME_DIR")
# android-all bundles an older kotlin-stdlib of its own: ours comes first on the classpath.
ANDROID_ALL=$ANDROID_DIR/android-all-$ANDROID_ALL_VERSION.jar
[ -f "$ANDROID_ALL" ] || die "no $ANDROID_ALL"
CP=$(find "$ANDROID_DIR" -name '*.jar' ! -name 'android-all-*' | sort | paste -sd: -):$ANDROID_ALL

# --- 2. generated bindings -------------------------------------------------------------------------
log "scripts/bindings.sh"
HANDSET_BINDINGS_OUT=$TARGET/android/bindings bash "$REPO/scripts/bindings.sh" >&2
GENERATED=$TARGET/android/bindings/kotlin
[ -n "$(find "$GENERATED" -name '*.kt' 2>/dev/null)" ] || die "no generated Kotlin in $GENERATED"

# --- 3. manifest -----------------------------------------------------------------------------------
MANIFEST=$REPO/android/src/main/AndroidManifest.xml
mkdir -p "$BUILD"
python3 - "$MANIFEST" >"$BUILD/manifest-classes.txt" <<'PY' || die "$MANIFEST is not well-formed XML"
import sys, xml.etree.ElementTree as ET
ns = "{http://schemas.android.com/apk/res/android}"
root = ET.parse(sys.argv[1]).getroot()
for tag in ("service", "receiver", "activity", "provider"):
    for e in root.iter(tag):
        name = e.get(ns + "name")
        print("dev.handset.android" + name if name.startswith(".") else name)
PY

# --- 4. compile ------------------------------------------------------------------------------------
WARNINGS=0
kotlinc() { # kotlinc NAME OUT CLASSPATH SOURCES...: compiles unless the inputs are unchanged;
	# $FRIENDS (comma-separated class folders) may see the internals of those folders' code.
	local name=$1 out=$2 cp=$3
	shift 3
	local log=$BUILD/kotlinc-$name.log stamp rc dir deps=
	# Class folders on the classpath count by their own stamps: Kotlin inlines constants.
	for dir in ${cp//:/ }; do [ -f "$dir/.stamp" ] && deps+=$(cat "$dir/.stamp"); done
	stamp=$(cat "$@" <(echo "$cp $KOTLIN_VERSION $deps ${FRIENDS:-}") | sha256sum | cut -d' ' -f1)
	if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
		log "$name: up to date; the compiler's output was:"
	else
		log "kotlinc $name: $# files -> $out"
		rm -rf "$out"
		mkdir -p "$out"
		set +e
		java -Xss8m -Xmx2g -cp "$COMPILER_CP" org.jetbrains.kotlin.cli.jvm.K2JVMCompiler \
			-no-stdlib -no-reflect -jvm-target 17 -Xsuppress-version-warnings \
			${FRIENDS:+-Xfriend-paths="$FRIENDS"} -cp "$cp" -d "$out" "$@" >"$log" 2>&1
		rc=$?
		set -e
		if [ "$rc" != 0 ]; then
			cat "$log" >&2
			echo "android: compile of $name ($# Kotlin files): FAILED ($(grep -c ': error: \|^error: ' "$log" || true) errors, kotlinc exit $rc)"
			exit 1
		fi
		echo "$stamp" >"$out/.stamp"
	fi
	cat "$log" >&2
	WARNINGS=$((WARNINGS + $(grep -c ': warning: \|^warning: ' "$log" || true)))
}
sources() { find "$@" -name '*.kt' 2>/dev/null | sort; }
mapfile -t CORE < <(sources "$REPO/android/core/src/main/kotlin" "$GENERATED" "$REPO/bindings/kotlin/src/main/kotlin")
mapfile -t GLUE < <(sources "$REPO/android/src/main/kotlin")
mapfile -t TESTS < <(sources "$REPO/android/core/src/test/kotlin" "$REPO/android/src/test/kotlin")
kotlinc core "$BUILD/core-classes" "$JVM_CP" "${CORE[@]}"
kotlinc glue "$BUILD/classes" "$CP:$BUILD/core-classes" "${GLUE[@]}"
# android-all last: it bundles an older kotlin-stdlib of its own.
# The tests are the glue's friends: they check its internal platform mappings.
FRIENDS=$BUILD/core-classes,$BUILD/classes kotlinc tests "$BUILD/test-classes" "$TEST_CP:$BUILD/core-classes:$BUILD/classes:$ANDROID_ALL" "${TESTS[@]}"
while read -r class; do
	[ -f "$BUILD/classes/${class//.//}.class" ] || die "the manifest names $class, which was not compiled"
done <"$BUILD/manifest-classes.txt"

# --- 5. JUnit --------------------------------------------------------------------------------------
mapfile -t TEST_CLASSES < <(cd "$BUILD/test-classes" && find . -name '*Test.class' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)
[ "${#TEST_CLASSES[@]}" -gt 0 ] || die "no test classes in $BUILD/test-classes"
log "JUnit: ${TEST_CLASSES[*]}"
set +e
java -Djna.library.path="$TARGET/debug" \
	-cp "$TEST_CP:$BUILD/core-classes:$BUILD/classes:$BUILD/test-classes:$ANDROID_ALL" \
	org.junit.runner.JUnitCore "${TEST_CLASSES[@]}" >"$BUILD/junit.log" 2>&1
rc=$?
set -e
cat "$BUILD/junit.log" >&2
junit=$(grep -E '^(OK \([0-9]+ tests?\)|Tests run: [0-9]+, +Failures: [0-9]+)' "$BUILD/junit.log" | tail -n1 || true)
log "done in $(($(date +%s) - start)) s"
summary="android: core ${#CORE[@]} + glue ${#GLUE[@]} Kotlin files compiled (glue against android-all $ANDROID_ALL_VERSION, $WARNINGS warnings); JUnit: ${junit:-no summary}"
if [ "$rc" != 0 ]; then
	echo "$summary: FAILED"
	exit 1
fi
echo "$summary"
