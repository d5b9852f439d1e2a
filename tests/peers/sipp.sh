#!/usr/bin/env bash
# One-call SIPp UAS on loopback, in the background, for the Handset UAC tests.
#   sipp.sh SCENARIO PORT [--codec C] [extra sipp args]   start; prints its env file
#   sipp.sh wait PORT [SECS]    wait (default 40 s) for it to finish; exits with sipp's status
#   sipp.sh stop PORT
# SCENARIO: uas_486 | uas_401 | uas_early_media | uas_answer (tests/peers/sipp/NAME.xml) or a path.
# SIP on 127.0.0.1:PORT (udp; add "-t t1" for tcp); its SDP offers 127.0.0.1:PORT+10, where
# -rtp_echo sends every RTP packet back to its sender (RTCP: PORT+11, echoed on PORT+12/13 too).
# --codec C: the one codec of the answer: pcmu (default), pcma, opus:PT (the offer's dynamic PT).
# Defaults (extra args come later and win): -m 1 -timeout 30s -timeout_error -d 3000 (the
# early-media pause of uas_early_media, in ms). Auth for uas_401: handset / handset-secret.
# Files in /tmp/handset-peers/sipp-PORT: sipp.out, messages.log (-trace_msg), errors.log,
# status (sipp's exit code, once done: 0 = the call went as scripted), pid, env.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "sipp.sh: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: sipp.sh SCENARIO PORT [--codec C] [sipp args] | wait PORT [SECS] | stop PORT"
[[ "$2" =~ ^[0-9]+$ ]] || die "PORT must be a number"
dir=/tmp/handset-peers/sipp-$2

running() {
	local pid
	pid=$(cat "$dir/pid" 2>/dev/null) || return 1
	grep -qF "$dir" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

case $1 in
wait)
	for _ in $(seq $((${3:-40} * 10))); do
		[ -s "$dir/status" ] && exit "$(cat "$dir/status")"
		sleep 0.1
	done
	die "sipp on port $2 still running after ${3:-40} s"
	;;
stop)
	if pid=$(running); then kill "$pid" 2>/dev/null || true; fi
	exit 0
	;;
esac

sf=$1 port=$2
shift 2
[ -f "$sf" ] || sf=$HERE/sipp/${sf%.xml}.xml
[ -f "$sf" ] || die "no scenario $1"
pt=0 rtpmap=PCMU/8000
if [ "${1:-}" = --codec ]; then
	case ${2:-} in
	pcmu) ;; pcma) pt=8 rtpmap=PCMA/8000 ;; opus:[0-9]*) pt=${2#opus:} rtpmap=opus/48000/2 ;;
	*) die "bad --codec ${2:-}" ;;
	esac
	shift 2
fi

if pid=$(running); then kill "$pid" 2>/dev/null || true && sleep 0.2; fi
rm -rf "$dir"
mkdir -p "$dir"
cat >"$dir/env" <<ENV
SIPP_SIP=127.0.0.1:$port
SIPP_MEDIA=127.0.0.1:$((port + 10))
SIPP_DIR=$dir
ENV
(
	cd "$dir"
	setsid sipp -sf "$sf" -i 127.0.0.1 -p "$port" -mi 127.0.0.1 -mp $((port + 10)) -rtp_echo \
		-m 1 -timeout 30s -timeout_error -d 3000 -nostdin -key pt "$pt" -key rtpmap "$rtpmap" \
		-trace_msg -message_file "$dir/messages.log" -trace_err -error_file "$dir/errors.log" \
		"$@" >"$dir/sipp.out" 2>&1 </dev/null &
	echo $! >"$dir/pid"
	rc=0
	wait $! || rc=$?
	echo "$rc" >"$dir/status"
) >/dev/null 2>&1 </dev/null &
for _ in $(seq 50); do
	if ss -Hlnut "sport = :$port" | grep -q "127.0.0.1:$port"; then
		cat "$dir/env"
		exit 0
	fi
	[ -s "$dir/status" ] && break
	sleep 0.1
done
echo "sipp.sh: sipp did not start on $port; $dir/sipp.out says:" >&2
tail -n 20 "$dir/sipp.out" >&2 || true
exit 1
