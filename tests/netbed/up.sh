#!/usr/bin/env bash
# Build the network test bed: up.sh RUN_DIR [cone|symmetric]   (tear down with down.sh RUN_DIR)
#
#   phone ns (hsPID-phone)          router ns              PBX ns (hsPID-pbx)
#   wifi 192.168.1.2/24 ───── lan 192.168.1.1  hsPID-wifi  wan 203.0.113.10 ──┐ bridge "inet":
#   cell 10.64.0.2/24   ───── lan 10.64.0.1    hsPID-cell  wan 203.0.113.20 ──┤ 203.0.113.1/24 and
#   default route: wifi (switch.sh)            (nftables NAT)                  ┘ 203.0.113.2/24
#
# The routers masquerade the phone behind their "public" (TEST-NET-3) address: `cone` keeps
# the source port for every destination (port-restricted cone: Linux conntrack only lets the
# exact remote answer), `symmetric` picks a fresh random port per destination; both forget an
# idle UDP mapping after 30 s. The PBX namespace runs Kamailio (udp+tcp 203.0.113.1:5060,
# users "<name>"/"<name>-secret"), a registered baresip peer (sip:baresip@203.0.113.1, auto
# answer) and coturn (STUN/TURN udp+tcp 203.0.113.1:3478 and 203.0.113.2:3478, TLS :5349,
# user netbed/netbed-secret). Nothing connects to the host's own network namespace, which this
# script never changes. Writes RUN_DIR/env (all addresses), pid files and logs; on a failure
# it tears down what it made.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "up.sh: $*" >&2 && exit 2; }
[ $# -ge 1 ] || die "usage: up.sh RUN_DIR [cone|symmetric]"
VARIANT=${2:-cone}
case $VARIANT in
cone) masquerade="masquerade persistent" ;;
symmetric) masquerade="masquerade fully-random" ;;
*) die "variant must be cone or symmetric, not $VARIANT" ;;
esac
mkdir -p "$1"
RUN_DIR=$(cd "$1" && pwd)
# The path is pasted into configs and the env file unquoted.
[[ "$RUN_DIR" =~ ^[A-Za-z0-9_./-]+$ ]] || die "RUN_DIR must match [A-Za-z0-9_./-]+: $RUN_DIR"

bash "$HERE/install.sh"
bash "$HERE/down.sh" "$RUN_DIR" # a bed left in this RUN_DIR goes first

P=hs$$ # unique while this bed exists: parallel beds never share a namespace
done_ok=0
trap '[ "$done_ok" = 1 ] || { echo "up.sh: failed; tearing down" >&2; bash "$HERE/down.sh" "$RUN_DIR"; }' EXIT
cd "$RUN_DIR"
echo "$VARIANT" >variant

PHONE_WIFI=192.168.1.2 WIFI_GW=192.168.1.1
PHONE_CELL=10.64.0.2 CELL_GW=10.64.0.1
WIFI_PUBLIC=203.0.113.10 CELL_PUBLIC=203.0.113.20
PBX=203.0.113.1 PBX_ALT=203.0.113.2

in_ns() { # ROLE CMD...
	local role=$1
	shift
	ip netns exec "$P-$role" "$@"
}
make_ns() { # ROLE
	[ ! -e "/run/netns/$P-$1" ] || die "namespace $P-$1 exists already"
	ip netns add "$P-$1"
	echo "$P-$1" >>namespaces # down.sh deletes exactly these
	ip -n "$P-$1" link set lo up
	in_ns "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}
for role in phone wifi cell pbx; do make_ns "$role"; done

# veth pairs are created inside the namespaces: no interface ever appears in the host's.
ip -n "$P-phone" link add wifi type veth peer name lan netns "$P-wifi"
ip -n "$P-phone" link add cell type veth peer name lan netns "$P-cell"
ip -n "$P-wifi" link add wan type veth peer name wifi netns "$P-pbx"
ip -n "$P-cell" link add wan type veth peer name cell netns "$P-pbx"
ip -n "$P-pbx" link add inet type bridge
ip -n "$P-pbx" link set wifi master inet
ip -n "$P-pbx" link set cell master inet

ip -n "$P-phone" addr add "$PHONE_WIFI/24" dev wifi
ip -n "$P-phone" addr add "$PHONE_CELL/24" dev cell
ip -n "$P-wifi" addr add "$WIFI_GW/24" dev lan
ip -n "$P-wifi" addr add "$WIFI_PUBLIC/24" dev wan
ip -n "$P-cell" addr add "$CELL_GW/24" dev lan
ip -n "$P-cell" addr add "$CELL_PUBLIC/24" dev wan
ip -n "$P-pbx" addr add "$PBX/24" dev inet
ip -n "$P-pbx" addr add "$PBX_ALT/24" dev inet
for link in "phone wifi" "phone cell" "wifi lan" "wifi wan" "cell lan" "cell wan" "pbx wifi" \
	"pbx cell" "pbx inet"; do
	read -r role dev <<<"$link"
	ip -n "$P-$role" link set "$dev" up
done

# The phone: one default route (switch.sh moves it); a socket bound to one uplink's address
# keeps using that uplink whatever the default is, as on a phone with both radios up.
ip -n "$P-phone" route add default via "$WIFI_GW" dev wifi
ip -n "$P-phone" route add default via "$WIFI_GW" dev wifi table 101
ip -n "$P-phone" route add default via "$CELL_GW" dev cell table 102
ip -n "$P-phone" rule add from "$PHONE_WIFI" lookup 101 pref 1001
ip -n "$P-phone" rule add from "$PHONE_CELL" lookup 102 pref 1002
echo wifi >uplink

# The NAT routers. Only replies to a mapping come in from the wan side (conntrack matches
# the remote's exact address and port: port-restricted filtering in both variants).
for role in wifi cell; do
	in_ns "$role" sysctl -qw net.ipv4.ip_forward=1
	in_ns "$role" nft -f - <<NFT
table ip netbed {
	chain forward {
		type filter hook forward priority filter; policy drop;
		iifname "lan" oifname "wan" accept
		iifname "wan" oifname "lan" ct state established,related accept
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" $masquerade
	}
}
NFT
	# After the nat table: it is what brings conntrack (and these per-namespace knobs) in.
	in_ns "$role" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30 \
		net.netfilter.nf_conntrack_udp_timeout_stream=30
done

# --- Kamailio ---
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@PBX@|$PBX|g" "$HERE/kamailio.cfg" >kamailio.cfg
rm -f kamailio.log kamailio.ctl
# `ip netns exec` and setsid exec in place, so $! is Kamailio itself, leader of its own
# process group (down.sh kills that group). Not through in_ns: a backgrounded shell function
# runs in a subshell, whose pid $! would be.
ip netns exec "$P-pbx" setsid kamailio -DD -E -f "$RUN_DIR/kamailio.cfg" -w "$RUN_DIR" -Y "$RUN_DIR" \
	-m 32 -M 8 </dev/null >kamailio.log 2>&1 &
echo $! >kamailio.pid
up=0
for _ in $(seq 100); do
	kamcmd -s "unix:$RUN_DIR/kamailio.ctl" core.version >/dev/null 2>&1 && up=1 && break
	kill -0 "$(cat kamailio.pid)" 2>/dev/null || break
	sleep 0.1
done
[ "$up" = 1 ] || { tail -n 20 kamailio.log >&2; die "kamailio did not come up (kamailio.log)"; }

# --- coturn ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
	-keyout turn.key -out turn.pem -subj "/CN=$PBX" -addext "subjectAltName=IP:$PBX" 2>/dev/null
chmod 600 turn.key
cat >turnserver.conf <<CONF
listening-ip=$PBX
listening-ip=$PBX_ALT
relay-ip=$PBX
listening-port=3478
tls-listening-port=5349
min-port=49152
max-port=49999
fingerprint
lt-cred-mech
user=netbed:netbed-secret
realm=netbed.test
cert=$RUN_DIR/turn.pem
pkey=$RUN_DIR/turn.key
userdb=$RUN_DIR/turndb
pidfile=$RUN_DIR/turnserver.own.pid
log-file=$RUN_DIR/turnserver.log
simple-log
no-stdout-log
no-cli
no-multicast-peers
CONF
ip netns exec "$P-pbx" setsid turnserver -c "$RUN_DIR/turnserver.conf" </dev/null >turnserver.out 2>&1 &
echo $! >turnserver.pid
up=0
for _ in $(seq 100); do
	in_ns pbx ss -Hlun "src $PBX_ALT:3478" | grep -q . && up=1 && break
	kill -0 "$(cat turnserver.pid)" 2>/dev/null || break
	sleep 0.1
done
[ "$up" = 1 ] || { tail -n 20 turnserver.log turnserver.out >&2 || true; die "coturn did not come up"; }

# --- baresip peer (tests/peers/baresip.sh, state under RUN_DIR/peers) ---
HANDSET_PEERS_ROOT=$RUN_DIR/peers in_ns pbx bash "$HERE/../peers/baresip.sh" start peer baresip \
	--ip "$PBX" --proxy "$PBX:5060" --auto-answer >/dev/null

cat >./env <<ENV
NETBED_VARIANT=$VARIANT
NETBED_PREFIX=$P
NETBED_NS_PHONE=$P-phone
NETBED_NS_WIFI=$P-wifi
NETBED_NS_CELL=$P-cell
NETBED_NS_PBX=$P-pbx
NETBED_PHONE_WIFI=$PHONE_WIFI
NETBED_PHONE_CELL=$PHONE_CELL
NETBED_WIFI_GW=$WIFI_GW
NETBED_CELL_GW=$CELL_GW
NETBED_WIFI_PUBLIC=$WIFI_PUBLIC
NETBED_CELL_PUBLIC=$CELL_PUBLIC
NETBED_PBX=$PBX
NETBED_PBX_ALT=$PBX_ALT
NETBED_SIP=$PBX:5060
NETBED_DOMAIN=$PBX
NETBED_KAMAILIO_CTL=unix:$RUN_DIR/kamailio.ctl
NETBED_STUN=$PBX:3478
NETBED_STUN_ALT=$PBX_ALT:3478
NETBED_TURN_TLS=$PBX:5349
NETBED_TURN_CERT=$RUN_DIR/turn.pem
NETBED_TURN_USER=netbed
NETBED_TURN_PASSWORD=netbed-secret
NETBED_TURN_REALM=netbed.test
NETBED_BARESIP_AOR=sip:baresip@$PBX
NETBED_BARESIP_SIP=$PBX:26100
ENV
done_ok=1
cat env
