#!/usr/bin/env bash
# Generates the Kotlin and Swift bindings of bindings/ffi in uniffi library mode.
#
#   scripts/bindings.sh [--release]
#
# 1. cargo build -p handset-ffi            -> target/{debug,release}/libhandset_ffi.so (.dylib on macOS)
# 2. cargo build -p handset-uniffi-bindgen -> target/debug/uniffi-bindgen (uniffi's CLI, same version)
# 3. uniffi-bindgen generate --library ... -> target/bindings/kotlin/dev/handset/handset.kt
#                                             target/bindings/swift/{handset.swift,handsetFFI.h,handsetFFI.modulemap}
# Names come from bindings/ffi/uniffi.toml (found through cargo metadata). The generated files
# are build output: never edit or commit them. Prints the library path and the output folders.
# Environment: CARGO_TARGET_DIR (default target/), HANDSET_BINDINGS_OUT (default TARGET/bindings).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
profile=debug
flags=()
case "${1:-}" in
--release) profile=release flags=(--release) ;;
"") ;;
*) echo "usage: scripts/bindings.sh [--release]" >&2; exit 2 ;;
esac

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
OUT=${HANDSET_BINDINGS_OUT:-$TARGET/bindings}
case "$(uname -s)" in
Darwin) LIB=$TARGET/$profile/libhandset_ffi.dylib ;;
*) LIB=$TARGET/$profile/libhandset_ffi.so ;;
esac

start=$(date +%s)
cargo build -p handset-ffi ${flags[@]+"${flags[@]}"} >&2
cargo build -p handset-uniffi-bindgen >&2
[ -f "$LIB" ] || { echo "bindings.sh: $LIB was not built" >&2; exit 1; }

rm -rf "$OUT/kotlin" "$OUT/swift"
for lang in kotlin swift; do
	# --no-format: formatting would need ktlint/swiftformat; the output is not meant for reading.
	"$TARGET/debug/uniffi-bindgen" generate --library "$LIB" --crate handset_ffi \
		--language "$lang" --out-dir "$OUT/$lang" --no-format >&2
done

echo "library: $LIB"
echo "kotlin:  $OUT/kotlin ($(find "$OUT/kotlin" -name '*.kt' | wc -l) files)"
echo "swift:   $OUT/swift ($(find "$OUT/swift" -type f -printf '%f ' | sort))"
echo "bindings.sh: done in $(($(date +%s) - start)) s" >&2
