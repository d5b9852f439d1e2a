#!/usr/bin/env bash
# Self-test of the Kamailio harness: starts it in its own RUN_DIR (default
# /tmp/handset-kamailio-selftest; same ports, so not alongside a running
# harness), checks it with sipp (and python3 for SHA-256/TLS), stops it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${1:-/tmp/handset-kamailio-selftest}
SERVER=127.0.0.1:25060

"$HERE/start.sh" "$RUN_DIR" >/dev/null
trap '"$HERE/stop.sh" "$RUN_DIR"' EXIT
cd "$RUN_DIR"   # sipp may drop log files into the cwd
: > sipp.log

passed=0 failed=0 skipped=0
check() { # NAME CMD...: run CMD, count and print the outcome
	local name=$1
	shift
	if "$@" >>sipp.log 2>&1; then
		passed=$((passed + 1)) && echo "ok   $name"
	else
		failed=$((failed + 1)) && echo "FAIL $name (see $RUN_DIR/sipp.log)"
	fi
}
# sipp_run SCENARIO USER PASSWORD EXPIRES LOCAL_PORT [sipp args...]
sipp_run() {
	local sf=$1 user=$2 pass=$3 exp=$4 port=$5
	shift 5
	echo "== sipp $sf $user expires=$exp port=$port $*"
	sipp -sf "$HERE/sipp/$sf" -s "$user" -au "$user" -ap "$pass" -key expires "$exp" \
		-i 127.0.0.1 -p "$port" -m 1 -timeout 10s -timeout_error -recv_timeout 5000 \
		-nostdin "$@" "$SERVER"
}
bindings() { "$HERE/location.sh" "$1" "$RUN_DIR"; }
# USER [CONTACT-FRAGMENT]; each fails too if location.sh itself fails.
bound() { local out; out=$(bindings "$1") && grep -qF "$2" <<<"$out"; }
unbound() { local out; out=$(bindings "$1") && ! grep -qF "$2" <<<"$out"; }
none_bound() { local out; out=$(bindings "$1") && [ -z "$out" ]; }
udp_gone_tcp_kept() { unbound alice 25070 && bound alice 25071; }
unreachable_fails() { ! "$HERE/location.sh" alice "$RUN_DIR/nowhere"; }

check "OPTIONS to the server: 200" sipp_run options.xml probe x 0 25069
check "alice REGISTER over UDP with digest: 200" sipp_run register.xml alice alice-secret 3600 25070
check "alice REGISTER over TCP with digest: 200" sipp_run register.xml alice alice-secret 3600 25071 -t t1
check "location.sh shows alice's UDP binding" bound alice "127.0.0.1:25070;transport=UDP"
check "location.sh shows alice's TCP binding" bound alice "127.0.0.1:25071;transport=TCP"
check "alice unregister UDP contact (Expires: 0): 200" sipp_run register.xml alice alice-secret 0 25070
check "UDP binding gone, TCP binding kept" udp_gone_tcp_kept
check "alice unregister all (Contact: *): 200" sipp_run unregister_all.xml alice alice-secret 0 25072
check "location.sh alice prints nothing" none_bound alice
check "carol wrong password: 401/403, not 200" sipp_run register_reject.xml carol wrong-secret 3600 25073
check "carol not bound after wrong password" none_bound carol
check "minexp Expires 60: 423 + Min-Expires: 120" sipp_run register_423.xml minexp minexp-secret 60 25074
check "minexp Expires 300: 200" sipp_run register.xml minexp minexp-secret 300 25074
check "location.sh fails when kamailio is unreachable" unreachable_fails
check "dave REGISTER with Expires 2: 200" sipp_run register.xml dave dave-secret 2 25075
check "location.sh shows dave's short binding" bound dave 25075
sleep 2.5
check "dave's binding expired" none_bound dave

# Call through the proxy: bob registers, a sipp UAS answers as bob.
check "bob REGISTER over UDP: 200" sipp_run register.xml bob bob-secret 3600 25080
sipp -sf "$HERE/sipp/uas.xml" -s bob -i 127.0.0.1 -p 25080 -m 1 -timeout 15s -timeout_error \
	-nostdin >>sipp.log 2>&1 &
uas=$!
sleep 0.5
check "INVITE/ACK/BYE alice->bob via lookup+record_route" \
	sipp_run uac_call.xml bob x 0 25081
check "bob's UAS saw the whole call" wait "$uas"

if command -v python3 >/dev/null; then
	reg() { python3 "$HERE/digest_register.py" --ca "$RUN_DIR/ca.pem" "$@"; }
	check "sha REGISTER with SHA-256 digest: 200" reg sha sha-secret --algorithm SHA-256
	check "sha wrong password: 401" reg sha wrong --algorithm SHA-256 --expect 401
	check "alice REGISTER over TLS (cert verified for localhost): 200" reg alice alice-secret --transport tls
	check "location.sh shows alice's TLS binding" bound alice "transport=tls"
else
	skipped=$((skipped + 4)) && echo "skip SHA-256/TLS checks (no python3)"
fi

echo "kamailio selftest: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
