#!/usr/bin/env bash
# Self-test of the tests/peers harness: selftest.sh [RUN_DIR]
# Starts the tests/kamailio harness in RUN_DIR (default /tmp/handset-kamailio-peers; same
# ports as any other harness, which start.sh stops), then: baresip peer2 (1000 Hz) calls
# baresip peer1 (600 Hz, auto-answer) through it for ~4 s with PCMU, PCMA, opus, SRTP (SDES,
# mandatory) and DTLS-SRTP, and checks each side's recording holds the other's tone >= 2 s;
# the same between baresip and linphone (both directions); and the SIPp UAS scenarios
# against sipp UACs and a baresip UAC (RTP echo). Ends with "peers selftest: N passed, N failed".
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAM=$(cd "$HERE/../kamailio" && pwd)
RUN_DIR=${1:-/tmp/handset-kamailio-peers}
LOG=/tmp/handset-peers/selftest.log
B=$HERE/baresip.sh L=$HERE/linphone.sh S=$HERE/sipp.sh

"$HERE/install.sh"
mkdir -p /tmp/handset-peers
: >"$LOG"
cleanup() {
	for p in peer1 peer2 peer4; do "$B" stop "$p" >/dev/null 2>&1 || true; done
	"$L" stop lin3 >/dev/null 2>&1 || true
	for p in 30100 30200 30300 30400 30500 30600 30700; do "$S" stop "$p" || true; done
	"$KAM/stop.sh" "$RUN_DIR"
}
trap cleanup EXIT
"$KAM/start.sh" "$RUN_DIR" >>"$LOG" 2>&1

passed=0 failed=0
check() { # NAME CMD...: run CMD, count and print the outcome with CMD's last output line
	local name=$1 out rc=0
	shift
	echo "== $name: $*" >>"$LOG"
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n' "$out" >>"$LOG"
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1)) && echo "ok   $name${out:+  [${out##*$'\n'}]}"
	else
		failed=$((failed + 1)) && echo "FAIL $name (see $LOG)${out:+  [${out##*$'\n'}]}"
	fi
}
tone() { python3 "$HERE/tone_check.py" "$@"; }
in_log() { grep -q -- "$2" "$1" || { echo "no '$2' in $1" && return 1; }; }

# bcall CALLER CALLEE: CALLER dials CALLEE's user, talks ~4 s, hangs up; peers then stop,
# which closes their WAV files.
bcall() {
	"$B" cmd "$1" "/dial sip:$2@127.0.0.1" &&
		"$B" wait "$1" established 10 && sleep 4 &&
		"$B" cmd "$1" /hangup && "$B" wait peer1 closed 5
}
for mode in "pcmu --codec pcmu" "pcma --codec pcma" "opus --codec opus" \
	"srtp-mand --enc srtp-mand" "dtls_srtp --enc dtls_srtp"; do
	set -- $mode
	name=$1
	shift
	check "$name: peer1 (600 Hz, auto-answer) starts" "$B" start peer1 peer1 --tone 600 --auto-answer "$@"
	check "$name: peer2 (1000 Hz) starts" "$B" start peer2 peer2 --tone 1000 "$@"
	check "$name: peer2 calls peer1 via kamailio, hangs up after 4 s" bcall peer2 peer1
	"$B" stop peer1 && "$B" stop peer2
	check "$name: peer1 heard 1000 Hz >= 2 s" tone "$("$B" rec peer1 || echo none)" 1000 2
	check "$name: peer2 heard 600 Hz >= 2 s" tone "$("$B" rec peer2 || echo none)" 600 2
	case $name in
	pcm*) check "$name: negotiated" in_log /tmp/handset-peers/peer2/baresip.log "decoder: ${name^^} " ;;
	opus) check "$name: negotiated" in_log /tmp/handset-peers/peer2/baresip.log "decoder: opus " ;;
	srtp-mand) check "$name: SRTP on" in_log /tmp/handset-peers/peer1/baresip.log "SRTP is Enabled" ;;
	dtls_srtp) check "$name: DTLS-SRTP on" in_log /tmp/handset-peers/peer1/baresip.log "DTLS-SRTP complete (audio/RTP)" ;;
	esac
done

# baresip <-> linphone, both directions (linphone user peer3, 800 Hz).
lcall_in() { # baresip peer2 calls linphone lin3 (auto-answer)
	"$B" cmd peer2 "/dial sip:peer3@127.0.0.1" && "$L" wait lin3 established 10 && sleep 4 &&
		"$B" cmd peer2 /hangup && "$L" wait lin3 closed 5
}
lcall_out() { # linphone lin3 calls baresip peer1 (auto-answer)
	"$L" cmd lin3 "call sip:peer1@127.0.0.1" && "$B" wait peer1 established 10 && sleep 4 &&
		"$L" cmd lin3 terminate && "$B" wait peer1 closed 5
}
check "linphone: lin3 (peer3, 800 Hz, auto-answer, PCMU only) starts" \
	"$L" start lin3 peer3 --tone 800 --auto-answer --codec pcmu
check "linphone: peer2 (1000 Hz) starts" "$B" start peer2 peer2 --tone 1000
check "linphone: baresip peer2 calls linphone peer3" lcall_in
"$B" stop peer2
check "linphone: lin3 heard 1000 Hz >= 2 s" tone "$("$L" rec lin3 || echo none)" 1000 2
check "linphone: peer2 heard 800 Hz >= 2 s" tone "$("$B" rec peer2 || echo none)" 800 2
check "linphone: negotiated PCMU" in_log /tmp/handset-peers/peer2/baresip.log "decoder: PCMU "
check "linphone: lin3 restarts (default codecs)" "$L" start lin3 peer3 --tone 800
check "linphone: peer1 (600 Hz, auto-answer) starts" "$B" start peer1 peer1 --tone 600 --auto-answer
check "linphone: linphone peer3 calls baresip peer1" lcall_out
"$B" stop peer1
"$L" stop lin3
check "linphone: lin3 heard 600 Hz >= 2 s" tone "$("$L" rec lin3 || echo none)" 600 2
check "linphone: peer1 heard 800 Hz >= 2 s" tone "$("$B" rec peer1 || echo none)" 800 2

# SIPp UAS scenarios, each against a sipp UAC (tests/peers/sipp/selftest/).
uac() { # SCENARIO PORT [sipp args]: a selftest UAC calling the sipp UAS on PORT
	local sf=$1 port=$2
	shift 2
	(cd /tmp/handset-peers && sipp -sf "$HERE/sipp/selftest/$sf.xml" -i 127.0.0.1 -p $((port + 50)) \
		-mi 127.0.0.1 -mp $((port + 60)) -m 1 -timeout 15s -timeout_error -nostdin -s service \
		"$@" "127.0.0.1:$port")
}
uas_pair() { # UAS PORT UAC [uac args]: both must succeed
	local uas=$1 port=$2 sf=$3
	shift 3
	"$S" "$uas" "$port" -d 1000 >/dev/null && uac "$sf" "$port" "$@" && "$S" wait "$port" 20 &&
		echo "uas + uac exit 0"
}
wrong_password() { # the UAS answers 403 and exits non-zero
	"$S" uas_401 30400 >/dev/null && uac uac_401 30400 -au handset -ap wrong
	! "$S" wait 30400 20 && grep -q "^SIP/2.0 403 Forbidden" /tmp/handset-peers/sipp-30400/messages.log &&
		echo "403, uas exit non-zero"
}
check "sipp uas_486: 100 + 486, ACK" uas_pair uas_486 30100 uac_486
check "sipp uas_early_media: 180, 183+SDP, 200+SDP, ACK, BYE" uas_pair uas_early_media 30200 uac_early_media
check "sipp uas_401: digest handset/handset-secret verified, 200, BYE" \
	uas_pair uas_401 30300 uac_401 -au handset -ap handset-secret
check "sipp uas_401: wrong password gets 403" wrong_password
check "sipp uas_answer: sipp -sn uac call" bash -c "'$S' uas_answer 30500 >/dev/null &&
	cd /tmp/handset-peers && sipp -sn uac -i 127.0.0.1 -p 30550 -mi 127.0.0.1 -mp 30560 -m 1 \
	-timeout 15s -timeout_error -nostdin 127.0.0.1:30500 >/dev/null && '$S' wait 30500 20 && echo 'uas + uac exit 0'"

# RTP echo: a baresip UAC (no registration) sends 700 Hz and must hear it back.
echo_call() { # SCENARIO PORT
	"$S" "$1" "$2" >/dev/null && "$B" start peer4 handset --no-register --tone 700 --codec pcmu >/dev/null &&
		"$B" cmd peer4 "/dial sip:service@127.0.0.1:$2" && "$B" wait peer4 established 10 && sleep 3 &&
		"$B" cmd peer4 /hangup && "$S" wait "$2" 10 && "$B" stop peer4
}
check "sipp uas_answer + baresip UAC: call" echo_call uas_answer 30600
check "sipp uas_answer: baresip hears its 700 Hz echoed >= 2 s" tone "$("$B" rec peer4 || echo none)" 700 2
check "sipp uas_early_media + baresip UAC: call" echo_call uas_early_media 30700
check "sipp uas_early_media: echo in early media + call >= 5 s" tone "$("$B" rec peer4 || echo none)" 700 5

echo "peers selftest: $passed passed, $failed failed"
[ "$failed" = 0 ]
