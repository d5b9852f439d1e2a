#!/usr/bin/env bash
# Runs one fuzz target for N executions (default 1,000,000) and prints libFuzzer's final stats.
#
#   fuzz/run.sh TARGET [RUNS] [extra libFuzzer flags...]
#
# TARGET is parse_message, stream_framer, uri, phone or stun. The working corpus is fuzz/corpus/TARGET
# (git-ignored); the committed seeds in fuzz/seeds/ are read alongside it. Crashes land in
# fuzz/artifacts/TARGET/. Environment:
#   HANDSET_FUZZ_KNOWN  comma list of reported, not yet fixed bugs to step over so a run can
#              look past them (ids in core/sip/tests/fuzz_regressions.rs; none open now)
#   MAX_TIME   safety cap in seconds (default 900)
#   MAX_LEN    largest input libFuzzer generates (default 4096)
#   SANITIZER  cargo-fuzz sanitizer (default none: handset-sip forbids unsafe code, and ASan
#              would cost about half the throughput; use address to check dependencies too)
# Runs in one process on purpose (no -jobs/-workers): the machines have two shared cores.
set -euo pipefail

# Everything runs inside main so that bash has read the whole script before starting: editing
# this file while a run is under way must not change what that run does.
main() {
  local here target runs seeds corpus log status
  here="$(cd "$(dirname "$0")" && pwd)"
  target="${1:?usage: fuzz/run.sh TARGET [RUNS] [libFuzzer flags...]}"
  runs="${2:-1000000}"
  shift $(( $# >= 2 ? 2 : 1 ))

  case "$target" in
    # The RFC 4475/5118 torture messages of the parser's own tests make good seeds too.
    parse_message|stream_framer)
      seeds=("$here/seeds/messages")
      for d in "$here"/../core/sip/tests/fixtures/rfc4475 "$here"/../core/sip/tests/fixtures/rfc5118; do
        if [ -d "$d" ]; then seeds+=("$d"); fi
      done ;;
    uri) seeds=("$here/seeds/uri") ;;
    # Operation sequences for the phone harness (fuzz/src/phone.rs); core/phone/tests/
    # fuzz_smoke.rs rewrites them with HANDSET_WRITE_PHONE_SEEDS=1.
    phone) seeds=("$here/seeds/phone") ;;
    # STUN/TURN messages, ChannelData; the first byte steers (see fuzz/src/stun.rs).
    stun) seeds=("$here/seeds/stun") ;;
    *) echo "unknown target: $target (parse_message, stream_framer, uri, phone, stun)" >&2; exit 2 ;;
  esac

  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz (needs the nightly toolchain)" >&2
    exit 2
  fi

  corpus="$here/corpus/$target"
  mkdir -p "$corpus" "$here/artifacts/$target"
  log="$here/artifacts/$target/last-run.log"

  cd "$here"
  set +e
  cargo +nightly fuzz run --sanitizer "${SANITIZER:-none}" "$target" "$corpus" "${seeds[@]}" -- \
    -runs="$runs" \
    -max_total_time="${MAX_TIME:-900}" \
    -max_len="${MAX_LEN:-4096}" \
    -timeout=10 \
    -dict="$here/sip.dict" \
    -print_final_stats=1 \
    "$@" >"$log" 2>&1
  status=$?
  set -e

  echo "== $target: libFuzzer exit status $status (full log: $log)"
  # The last status line (#N DONE/pulse ... exec/s ...), the 'Done N runs' line and the stats block.
  grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  grep -E '^Done [0-9]+ runs|^stat::' "$log" || true
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked at|SUMMARY|Test unit written to|ERROR: libFuzzer' "$log" || tail -n 40 "$log"
  fi
  exit "$status"
}

main "$@"
