#!/usr/bin/env bash
# The main job: `handset demo` on the embedded loopback PBX. It starts the PBX (registrar,
# proxy, push trigger, echo bot), registers two Handset accounts, calls between them with
# audio, calls the echo bot, and shows the VoIP push wake-up path, printing call quality.
# Every packet stays on 127.0.0.1. Installs the build tools it needs on a fresh Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cc >/dev/null || ! command -v cmake >/dev/null || ! command -v pkg-config >/dev/null ||
	! [ -e /usr/include/alsa/asoundlib.h ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential cmake pkg-config \
		libasound2-dev >/dev/null
fi
cargo run --quiet -p handset-cli -- demo
