#!/usr/bin/env bash
# Demo on loopback: installs and starts the test PBX (Kamailio), builds the `handset` CLI and
# registers three accounts over UDP, TCP and TLS, holding each binding for a few seconds with
# short refreshes, then shows what a wrong password looks like. Every packet stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/kamailio/install.sh
RUN_DIR=/tmp/handset-kamailio-demo
bash tests/kamailio/start.sh "$RUN_DIR" >/dev/null
trap 'bash tests/kamailio/stop.sh "$RUN_DIR" >/dev/null 2>&1 || true' EXIT
cargo build --quiet -p handset-cli
handset=target/debug/handset

echo "== alice registers over UDP for 4 s (expires 2: refreshed twice)"
"$handset" register --server sip:127.0.0.1:25060 --user alice --password alice-secret \
	--expires 2 --hold 4
echo "== bob registers over TCP; Kamailio's location table meanwhile:"
"$handset" register --server sip:127.0.0.1:25060 --user bob --password bob-secret \
	--transport tcp --hold 2 &
sleep 1
bash tests/kamailio/location.sh bob "$RUN_DIR"
wait
echo "== carol registers over TLS, trusting the PBX's private CA"
"$handset" register --server sip:127.0.0.1:25061 --user carol --password carol-secret \
	--transport tls --ca-file "$RUN_DIR/ca.pem" --hold 1
echo "== dave with a wrong password (exit code 3 expected)"
set +e
"$handset" register --server sip:127.0.0.1:25060 --user dave --password wrong
echo "exit code: $?"
