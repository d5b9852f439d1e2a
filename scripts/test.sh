#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need (Kamailio, baresip,
# linphone, SIPp, tcpdump, nftables, conntrack, coturn, build tools), checks formatting and lints,
# then runs every test. The interop tests start their own Kamailio on loopback
# (tests/kamailio/start.sh) and this script stops it; the network test bed selftest
# (tests/tests/netbed.rs) builds its namespaces under $HANDSET_NETBED_DIR and tears them down,
# and this script's exit trap tears down any it left.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/kamailio/install.sh
bash tests/peers/install.sh
bash tests/netbed/install.sh
# Build tools: a C toolchain and cmake (bundled libopus), ALSA headers (cpal).
if ! command -v cc >/dev/null || ! command -v cmake >/dev/null || ! command -v pkg-config >/dev/null ||
	! [ -e /usr/include/alsa/asoundlib.h ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential cmake pkg-config \
		libasound2-dev >/dev/null
fi
if ! command -v cargo >/dev/null; then
	echo "test.sh: cargo not found; install Rust (rustup, or Debian's cargo) first" >&2
	exit 1
fi

HANDSET_NETBED_DIR=$(mktemp -d /tmp/handset-netbeds.XXXXXX)
export HANDSET_NETBED_DIR
cleanup() {
	bash tests/kamailio/stop.sh /tmp/handset-kamailio-tests >/dev/null 2>&1 || true
	for bed in "$HANDSET_NETBED_DIR"/*/; do
		if [ -d "$bed" ]; then bash tests/netbed/down.sh "$bed" >/dev/null 2>&1 || true; fi
	done
	# A failed bed keeps its logs there; an empty directory goes.
	rmdir "$HANDSET_NETBED_DIR" 2>/dev/null || true
}
trap cleanup EXIT
# The suite's sub-steps print their own summaries; the last lines are cargo test's.

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet --exclude handset-uniffi-bindgen -- -D warnings
echo "== kamailio harness selftest"
bash tests/kamailio/selftest.sh
echo "== peers harness selftest (baresip, linphone, SIPp)"
bash tests/peers/selftest.sh
echo "== Kotlin bindings on the JVM (JUnit)"
bash bindings/kotlin/test.sh
echo "== Android glue compile check (kotlinc against android-all)"
bash scripts/android.sh
echo "== Swift package and iOS glue (XCTest in a trixie chroot)"
bash scripts/swift.sh test
echo "== cargo test"
cargo test --workspace --exclude handset-uniffi-bindgen --no-fail-fast 2>&1
