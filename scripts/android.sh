#!/usr/bin/env bash
# Compile check of the Android library (android/) without an Android SDK or Gradle:
#
#   bash scripts/android.sh
#
# 1. Toolchain from Maven Central with `mvn dependency:copy-dependencies`, once, into
#    $HANDSET_CACHE (default ~/.cache/handset): the Kotlin compiler (bindings/kotlin/toolchain/
#    compiler.pom.xml, shared with bindings/kotlin/test.sh) and android/toolchain/android.pom.xml:
#    org.robolectric:android-all $ANDROID_ALL_VERSION (the framework classes of API 35, the
#    module's compileSdk), kotlinx-coroutines-android, JNA, kotlin-stdlib. Installs maven / a JDK
#    with apt-get when missing.
# 2. scripts/bindings.sh: generates the bindings of bindings/ffi into target/android/bindings (its
#    own folder: another script regenerating target/bindings meanwhile cannot pull files away).
# 3. The checked-in manifest is well-formed XML and every class it names is compiled.
# 4. kotlinc (in-process K2JVMCompiler, warnings shown): android/src/main/kotlin + the generated
#    bindings + bindings/kotlin/src/main -> target/android/classes. Skipped (its log re-printed)
#    when no input changed.
#
# android-all holds the framework's implementation classes, hidden ones included: it catches
# every misspelled or missing public API, but Gradle with the SDK's android.jar stays the judge
# of @hide APIs and of resources (this module has none). Exits non-zero on any compile error;
# the last line is the summary.
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
OUT=$TARGET/android/classes
LOG=$TARGET/android/kotlinc.log

log() { echo "== android.sh: $*" >&2; }
die() { echo "android.sh: $*" >&2; exit 1; }
start=$(date +%s)

# --- 1. toolchain ----------------------------------------------------------------------------------
# shellcheck source=scripts/lib/maven.sh
. "$REPO/scripts/lib/maven.sh"
ensure_jdk
fetch() { # fetch POM DIR: the POM's dependencies (transitively) into DIR
	maven_fetch "$1" "$2" -Dkotlin.version=$KOTLIN_VERSION -Dcoroutines.version=$COROUTINES_VERSION \
		-Djna.version=$JNA_VERSION -Dandroid.all.version=$ANDROID_ALL_VERSION
}
fetch "$REPO/bindings/kotlin/toolchain/compiler.pom.xml" "$COMPILER_DIR"
fetch "$REPO/android/toolchain/android.pom.xml" "$ANDROID_DIR"
classpath() { find "$1" -name '*.jar' | sort | paste -sd: -; }
COMPILER_CP=$(classpath "$COMPILER_DIR")
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
mkdir -p "$TARGET/android"
python3 - "$MANIFEST" >"$TARGET/android/manifest-classes.txt" <<'PY' || die "$MANIFEST is not well-formed XML"
import sys, xml.etree.ElementTree as ET
ns = "{http://schemas.android.com/apk/res/android}"
root = ET.parse(sys.argv[1]).getroot()
for tag in ("service", "receiver", "activity", "provider"):
    for e in root.iter(tag):
        name = e.get(ns + "name")
        print("dev.handset.android" + name if name.startswith(".") else name)
PY

# --- 4. compile ------------------------------------------------------------------------------------
mapfile -t SOURCES < <(find "$REPO/android/src/main/kotlin" "$GENERATED" "$REPO/bindings/kotlin/src/main/kotlin" \
	-name '*.kt' | sort)
N=${#SOURCES[@]}
stamp=$(cat "${SOURCES[@]}" <(echo "$CP $KOTLIN_VERSION") | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ]; then
	log "classes up to date; the compiler's output was:"
	cat "$LOG" >&2
else
	log "kotlinc: $N files -> $OUT"
	rm -rf "$OUT"
	mkdir -p "$OUT"
	set +e
	java -Xss8m -Xmx2g -cp "$COMPILER_CP" org.jetbrains.kotlin.cli.jvm.K2JVMCompiler \
		-no-stdlib -no-reflect -jvm-target 17 -Xsuppress-version-warnings \
		-cp "$CP" -d "$OUT" "${SOURCES[@]}" >"$LOG" 2>&1
	rc=$?
	set -e
	cat "$LOG" >&2
	if [ "$rc" != 0 ]; then
		errors=$(grep -c ': error: \|^error: ' "$LOG" || true)
		echo "android: compile of $N Kotlin files against android-all $ANDROID_ALL_VERSION: FAILED ($errors errors, kotlinc exit $rc)"
		exit 1
	fi
	echo "$stamp" >"$OUT/.stamp"
fi
while read -r class; do
	[ -f "$OUT/${class//.//}.class" ] || die "the manifest names $class, which was not compiled"
done <"$TARGET/android/manifest-classes.txt"
warnings=$(grep -c ': warning: \|^warning: ' "$LOG" || true)
log "done in $(($(date +%s) - start)) s"
echo "android: compiled $N Kotlin files against android-all $ANDROID_ALL_VERSION: OK ($warnings warnings)"
