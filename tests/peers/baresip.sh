#!/usr/bin/env bash
# Headless baresip test peers on loopback, registered to the tests/kamailio proxy.
#   baresip.sh start NAME USER [options]   (re)start peer NAME; prints its env file
#   baresip.sh cmd NAME "COMMAND"          ctrl_tcp command, e.g. "/dial sip:peer1@127.0.0.1",
#                                          "/hangup", "/accept", "/reginfo"; prints the reply
#   baresip.sh wait NAME EVENT [SECS] [N]  wait (default 10 s) until the log shows the Nth
#                                          (default 1st) EVENT: registered|incoming|established|closed
#   baresip.sh rec NAME [dec|enc]          newest recording: dec = decoded audio received from
#                                          the far end (default), enc = what this peer sent
#   baresip.sh stop NAME                   quit gracefully (closes the WAVs), then kill
# Start options:
#   --port BASE          SIP udp+tcp BASE, SIP tls BASE+1, ctrl_tcp BASE+2, RTP/RTCP BASE+10..49
#                        (default 26000+100*N when NAME ends in N=1..19, else 26100)
#   --tone HZ            audio source: sine tone (ausine, default 440 Hz)
#   --wav FILE           audio source: 16-bit WAV played once (aufile)
#   --codec C            pcmu | pcma | opus | default (opus,PCMU,PCMA) | a raw audio_codecs list
#   --enc E              none (default) | srtp (optional SDES) | srtp-mand | srtp-mandf | dtls_srtp
#   --auto-answer        answer incoming calls immediately
#   --transport T        udp (default) | tcp, towards the proxy
#   --proxy HOST:PORT    outbound proxy / registrar (default 127.0.0.1:25060)
#   --password PW        digest password (default USER-secret)
#   --no-register        no REGISTER, no outbound proxy: calls go straight to the dialled URI
#                        and it is reached at sip:USER@127.0.0.1:BASE
#   --params ';k=v..'    extra baresip account parameters
#   --ip ADDR            SIP/RTP address and AOR domain instead of 127.0.0.1 (the network test
#                        bed runs the peer inside its PBX namespace); --proxy may then be ADDR:PORT
#   --ice STUN           ICE (baresip's ice module, medianat=ice) with this STUN server
#                        HOST:PORT for its server-reflexive candidate, and rtcp-mux (ICE for
#                        RTP alone, as Handset and WebRTC do it)
# State lives in $HANDSET_PEERS_ROOT/NAME (default /tmp/handset-peers/NAME): config, accounts, baresip.log, pid, env, rec/*.wav
# (sndfile names them rec/dump-YYYY-MM-DD-HH-MM-SS-{dec,enc}.wav, one pair per call).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=${HANDSET_PEERS_ROOT:-/tmp/handset-peers}
die() { echo "baresip.sh: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: baresip.sh start|cmd|wait|rec|stop NAME ... (see the header)"
action=$1 name=$2
shift 2
[[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || die "NAME must match [A-Za-z0-9_-]+"
dir=$ROOT/$name

running() { # pid of NAME's baresip if it is still ours
	local pid
	pid=$(cat "$dir/pid" 2>/dev/null) || return 1
	grep -qF "$dir" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}
env_get() { sed -n "s/^$1=//p" "$dir/env" 2>/dev/null; }
count() { grep -cE "$1" "$dir/baresip.log" 2>/dev/null || true; }
pattern() {
	case $1 in
	registered) echo '\} 200 OK' ;;
	incoming) echo 'Incoming call from' ;;
	established) echo 'Call established' ;;
	closed) echo 'Call with .* terminated' ;;
	*) die "unknown event $1" ;;
	esac
}

stop() {
	local pid
	pid=$(running) || { rm -f "$dir/pid"; return 0; }
	python3 "$HERE/ctrl.py" "$(env_get BARESIP_CTRL)" quit 2 >/dev/null 2>&1 || true
	for _ in $(seq 30); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM -- "-$pid" 2>/dev/null || true
	sleep 0.2
	kill -KILL -- "-$pid" 2>/dev/null || true
	rm -f "$dir/pid"
}

start() {
	local user=${1:?USER missing}
	shift
	local base="" tone=440 wav="" codec=default enc=none answer=manual transport=udp
	local proxy=127.0.0.1:25060 password="$user-secret" register=1 params="" ip=127.0.0.1 ice=""
	while [ $# -gt 0 ]; do
		case $1 in
		--port) base=$2 && shift ;;
		--tone) tone=$2 && shift ;;
		--wav) wav=$(realpath "$2") && shift ;;
		--codec) codec=$2 && shift ;;
		--enc) enc=$2 && shift ;;
		--auto-answer) answer=auto ;;
		--transport) transport=$2 && shift ;;
		--proxy) proxy=$2 && shift ;;
		--password) password=$2 && shift ;;
		--no-register) register=0 ;;
		--params) params=$2 && shift ;;
		--ip) ip=$2 && shift ;;
		--ice) ice=$2 && shift ;;
		*) die "unknown option $1" ;;
		esac
		shift
	done
	if [ -z "$base" ]; then
		base=26100
		[[ "$name" =~ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] &&
			[ "${BASH_REMATCH[1]}" -le 19 ] && base=$((26000 + 100 * 10#${BASH_REMATCH[1]}))
	fi
	[[ "$ip" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--ip must be an IPv4 address"
	case $proxy in 127.0.0.1:* | localhost:* | \[::1\]:* | "$ip":*) ;; *) die "proxy must be loopback or --ip" ;; esac
	case $codec in
	pcmu | PCMU) codec=PCMU ;; pcma | PCMA) codec=PCMA ;; opus) codec=opus/48000/2 ;; default) codec="" ;;
	esac
	case $enc in none | srtp | srtp-mand | srtp-mandf | dtls_srtp) ;; *) die "bad --enc $enc" ;; esac
	case $transport in udp | tcp) ;; *) die "bad --transport $transport" ;; esac

	stop
	rm -rf "$dir"
	mkdir -p "$dir/rec"
	local src="ausine,$tone" srate=48000 ch=2
	if [ -n "$wav" ]; then
		# aufile (1.0) needs ausrc_srate/ausrc_channels to match the file.
		read -r srate ch < <(python3 -c 'import sys,wave; w=wave.open(sys.argv[1]); print(w.getframerate(), w.getnchannels())' "$wav")
		src="aufile,$wav"
	fi
	cat >"$dir/config" <<CFG
poll_method		epoll
sip_listen		$ip:$base
net_interface		$ip
dns_server		127.0.0.1:53
rtp_ports		$((base + 10))-$((base + 49))
call_local_timeout	120
call_max_calls		4
audio_path		/usr/share/baresip
audio_player		aubridge,$name
audio_alert		aubridge,$name
audio_source		$src
ausrc_srate		$srate
ausrc_channels		$ch
audio_buffer		20-160
statmode_default	off
ringback_disabled	yes
module_path		/usr/lib/baresip/modules
module			opus.so
module			g711.so
module			sndfile.so
module			aubridge.so
module			ausine.so
module			aufile.so
module			srtp.so
module			dtls_srtp.so
$([ -n "$ice" ] && printf 'module\t\t\tice.so\nrtcp_mux\t\tyes\n' || true)
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$((base + 2))
snd_path		$dir/rec
CFG
	local acc="<sip:$user@$ip;transport=$transport>;auth_pass=$password;answermode=$answer"
	if [ "$register" = 1 ]; then
		acc+=";outbound=\"sip:$proxy;transport=$transport\";regint=600"
	else
		acc+=";regint=0"
	fi
	[ -n "$codec" ] && acc+=";audio_codecs=$codec"
	[ "$enc" != none ] && acc+=";mediaenc=$enc"
	[ -n "$ice" ] && acc+=";medianat=ice;stunserver=\"stun:$ice\""
	echo "$acc$params" >"$dir/accounts"
	: >"$dir/contacts"
	cat >"$dir/env" <<ENV
BARESIP_SIP=$ip:$base
BARESIP_CTRL=$((base + 2))
BARESIP_RTP_PORTS=$((base + 10))-$((base + 49))
BARESIP_AOR=sip:$user@$ip
BARESIP_LOG=$dir/baresip.log
BARESIP_REC_DIR=$dir/rec
ENV
	(cd "$dir" && exec setsid baresip -4 -f "$dir" >"$dir/baresip.log" 2>&1 </dev/null) &
	echo $! >"$dir/pid"
	for _ in $(seq 50); do running >/dev/null && break || sleep 0.05; done # until exec'd
	for _ in $(seq 100); do
		running >/dev/null || break
		if python3 "$HERE/ctrl.py" $((base + 2)) reginfo 2 >/dev/null 2>&1; then
			if [ "$register" = 0 ] || await registered 5 1; then
				cat "$dir/env"
				return 0
			fi
			break
		fi
		sleep 0.1
	done
	echo "baresip.sh: $name did not come up/register; see $dir/baresip.log:" >&2
	tail -n 15 "$dir/baresip.log" >&2 || true
	stop
	return 1
}

await() { # EVENT SECS N
	local pat
	pat=$(pattern "$1")
	for _ in $(seq $((${2%.*} * 10))); do
		[ "$(count "$pat")" -ge "$3" ] && return 0
		running >/dev/null || break
		sleep 0.1
	done
	[ "$(count "$pat")" -ge "$3" ] || { echo "baresip.sh: $name: no $1 #$3 within $2 s" >&2 && return 1; }
}

case $action in
start) start "$@" ;;
stop) stop ;;
cmd) python3 "$HERE/ctrl.py" "$(env_get BARESIP_CTRL)" "${1:?COMMAND missing}" ;;
wait) await "${1:?EVENT missing}" "${2:-10}" "${3:-1}" ;;
rec)
	f=$(ls -t "$dir"/rec/dump-*-"${1:-dec}".wav 2>/dev/null | head -n 1)
	[ -n "$f" ] && echo "$f" || die "no ${1:-dec} recording in $dir/rec"
	;;
*) die "unknown action $action" ;;
esac
