#!/usr/bin/env bash
# Headless linphone (linphonec 5.1, "soundcard use files") test peers on loopback,
# registered to the tests/kamailio proxy. Commands go to linphonec's stdin via a FIFO.
#   linphone.sh start NAME USER [options]   (re)start peer NAME; prints its env file
#   linphone.sh cmd NAME "COMMAND"          linphonec command, e.g. "call sip:peer1@127.0.0.1",
#                                           "terminate", "answer", "states"; output lands in the log
#   linphone.sh wait NAME EVENT [SECS] [N]  wait (default 10 s) until the log shows the Nth
#                                           (default 1st) EVENT: registered|incoming|established|closed
#   linphone.sh rec NAME                    the recording of the received audio (rec/recv.wav,
#                                           rewritten by every call; complete once the call ended)
#   linphone.sh stop NAME
# Start options:
#   --port BASE          SIP BASE (udp or tcp), RTP/RTCP BASE+10..BASE+19
#                        (default 28000+100*N when NAME ends in N=1..19, else 28100)
#   --tone HZ            send a sine tone (default 440 Hz; a 16 kHz WAV made here, looped)
#   --wav FILE           send this 16-bit WAV instead (looped)
#   --codec C            pcmu | pcma | opus | default (linphone's own list)
#   --enc E              none (default) | srtp | srtp-mand | dtls | dtls-mand | zrtp
#   --auto-answer        answer incoming calls immediately
#   --transport T        udp (default) | tcp
#   --proxy HOST:PORT    registrar/outbound proxy (default 127.0.0.1:25060)
#   --password PW        digest password (default USER-secret)
#   --no-register        no REGISTER
# State lives in /tmp/handset-peers/NAME: linphonerc, linphone.log (console), debug.log, pid,
# env, tone.wav, rec/recv.wav.
set -euo pipefail

ROOT=/tmp/handset-peers
die() { echo "linphone.sh: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: linphone.sh start|cmd|wait|rec|stop NAME ... (see the header)"
action=$1 name=$2
shift 2
[[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || die "NAME must match [A-Za-z0-9_-]+"
dir=$ROOT/$name
log=$dir/linphone.log

ours() { # PIDFILE MARK: pid in PIDFILE if that process still has MARK in its cmdline
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	grep -qF "$2" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}
running() { ours "$dir/pid" "$dir/linphonerc"; }
send() { # write command lines into linphonec's stdin FIFO
	running >/dev/null || die "$name is not running"
	timeout 5 bash -c 'f=$1 && shift && printf "%s\n" "$@" >"$f"' send "$dir/in" "$@" ||
		die "$name: could not write to $dir/in"
}
count() { grep -cE "$1" "$log" "$dir/debug.log" 2>/dev/null | awk -F: '{n += $NF} END {print n + 0}'; }
pattern() {
	case $1 in
	registered) echo 'to \[LinphoneRegistrationOk\]' ;; # debug.log
	incoming) echo 'Receiving new incoming call' ;;
	established) echo 'Media streams established' ;;
	closed) echo 'Call [0-9]+ with .* (ended|error)' ;;
	*) die "unknown event $1" ;;
	esac
}
await() { # EVENT SECS N
	local pat
	pat=$(pattern "$1")
	for _ in $(seq $((${2%.*} * 10))); do
		[ "$(count "$pat")" -ge "$3" ] && return 0
		running >/dev/null || break
		sleep 0.1
	done
	[ "$(count "$pat")" -ge "$3" ] || { echo "linphone.sh: $name: no $1 #$3 within $2 s" >&2 && return 1; }
}

stop() {
	local pid holder
	if pid=$(running); then
		send terminate quit 2>/dev/null || true
		for _ in $(seq 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if holder=$(ours "$dir/holder.pid" infinity); then kill "$holder" 2>/dev/null || true; fi
	rm -f "$dir/pid" "$dir/holder.pid"
}

start() {
	local user=${1:?USER missing}
	shift
	local base="" tone=440 wav="" codec=default enc=none auto="" transport=udp
	local proxy=127.0.0.1:25060 password="$user-secret" register=1
	while [ $# -gt 0 ]; do
		case $1 in
		--port) base=$2 && shift ;;
		--tone) tone=$2 && shift ;;
		--wav) wav=$(realpath "$2") && shift ;;
		--codec) codec=$2 && shift ;;
		--enc) enc=$2 && shift ;;
		--auto-answer) auto=-a ;;
		--transport) transport=$2 && shift ;;
		--proxy) proxy=$2 && shift ;;
		--password) password=$2 && shift ;;
		--no-register) register=0 ;;
		*) die "unknown option $1" ;;
		esac
		shift
	done
	if [ -z "$base" ]; then
		base=28100
		[[ "$name" =~ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] &&
			[ "${BASH_REMATCH[1]}" -le 19 ] && base=$((28000 + 100 * 10#${BASH_REMATCH[1]}))
	fi
	case $proxy in 127.0.0.1:* | localhost:*) ;; *) die "proxy must be 127.0.0.1/localhost" ;; esac
	local menc=none mand=0
	case $enc in
	none) ;; srtp | dtls | zrtp) menc=$enc ;; srtp-mand | dtls-mand) menc=${enc%-mand} mand=1 ;;
	*) die "bad --enc $enc" ;;
	esac
	local udp=$base tcp=-1
	case $transport in udp) ;; tcp) udp=-1 tcp=$base ;; *) die "bad --transport $transport" ;; esac
	case $codec in pcmu | pcma | opus | default) ;; *) die "bad --codec $codec" ;; esac

	stop
	rm -rf "$dir"
	mkdir -p "$dir/rec" "$dir/.local/share/linphone" # liblinphone stalls without its db dir
	if [ -z "$wav" ]; then
		wav=$dir/tone.wav
		python3 - "$wav" "$tone" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); f = float(sys.argv[2])
w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * f * i / 16000)))
                       for i in range(16000 * 10)))
PY
	fi
	cat >"$dir/linphonerc" <<RC
[sip]
sip_port=$udp
sip_tcp_port=$tcp
sip_tls_port=-1
default_proxy=$((register ? 0 : -1))
use_ipv6=0
guess_hostname=0
register_only_when_network_is_up=0
ping_with_options=0
supported=replaces, outbound
inc_timeout=120
media_encryption=$menc
media_encryption_mandatory=$mand
[rtp]
audio_rtp_port=$((base + 10))-$((base + 19))
video_rtp_port=$((base + 20))-$((base + 29))
[video]
capture=0
display=0
automatically_initiate=0
automatically_accept=0
[sound]
echocancellation=0
RC
	if [ "$register" = 1 ]; then
		cat >>"$dir/linphonerc" <<RC
[proxy_0]
reg_proxy=sip:$proxy;transport=$transport
reg_identity=sip:$user@127.0.0.1
reg_expires=600
reg_sendregister=1
publish=0
[auth_info_0]
username=$user
passwd=$password
realm=127.0.0.1
RC
	fi
	cat >"$dir/env" <<ENV
LINPHONE_SIP=127.0.0.1:$base
LINPHONE_TRANSPORT=$transport
LINPHONE_RTP_PORTS=$((base + 10))-$((base + 19))
LINPHONE_AOR=sip:$user@127.0.0.1
LINPHONE_LOG=$log
LINPHONE_REC=$dir/rec/recv.wav
ENV
	mkfifo "$dir/in"
	# The holder keeps the FIFO's write end open, so linphonec never sees EOF.
	(exec setsid sleep infinity >"$dir/in" 2>/dev/null </dev/null) &
	echo $! >"$dir/holder.pid"
	(cd "$dir" && HOME=$dir exec setsid stdbuf -oL linphonec -c "$dir/linphonerc" $auto -S -d 4 \
		-l "$dir/debug.log" <"$dir/in" >"$log" 2>&1) &
	echo $! >"$dir/pid"
	for _ in $(seq 50); do running >/dev/null && break || sleep 0.05; done # until exec'd
	send "soundcard use files" "play $wav" "record $dir/rec/recv.wav"
	if [ "$codec" != default ]; then
		send "codec list"
		for _ in $(seq 50); do grep -q 'L16' "$log" && break || sleep 0.1; done
		# "N: MIME (RATE) enabled|disabled": leave exactly the chosen codec on.
		local idx mime state
		while read -r idx mime state; do
			if [ "${mime,,}" = "$codec" ]; then
				[ "$state" = enabled ] || send "codec enable $idx"
			elif [ "$state" = enabled ]; then
				send "codec disable $idx"
			fi
		done < <(sed -nE 's/^ *([0-9]+): ([^ ]+) \([0-9]+\) (enabled|disabled)$/\1 \2 \3/p' "$log")
	fi
	if [ "$register" = 0 ] || await registered 5 1; then
		send "codec list"
		cat "$dir/env"
		return 0
	fi
	echo "linphone.sh: $name did not register; see $log and $dir/debug.log" >&2
	stop
	return 1
}

case $action in
# linphonec occasionally exits during start-up under load: one more try.
start) (start "$@") || { stop >/dev/null 2>&1 || true; sleep 1; start "$@"; } ;;
stop) stop ;;
cmd) send "${1:?COMMAND missing}" ;;
wait) await "${1:?EVENT missing}" "${2:-10}" "${3:-1}" ;;
rec) [ -s "$dir/rec/recv.wav" ] && echo "$dir/rec/recv.wav" || die "no recording in $dir/rec" ;;
*) die "unknown action $action" ;;
esac
