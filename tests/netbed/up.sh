#!/usr/bin/env bash
# Build the network test bed: up.sh RUN_DIR [cone|symmetric|nat64]   (tear down with down.sh RUN_DIR)
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
#
# `nat64` replaces both uplinks with one IPv6-only uplink (the phone has no IPv4 address or
# route) to a NAT64/DNS64 router; the PBX namespace stays IPv4-only and the same:
#
#   phone ns (hsPID-phone)                 router ns (hsPID-nat64)            PBX ns (hsPID-pbx)
#   wifi 2001:db8:64::2/64 ───── lan 2001:db8:64::1/64        wan 203.0.113.64 ──── bridge "inet"
#   default via 2001:db8:64::1   unbound [2001:db8:64::1]:53 (DNS64)
#                                tayga (TUN "nat64"), then masquerade (as `cone`)
#
# DNS64 synthesises AAAA records under the well-known prefix 64:ff9b::/96 for the zone
# netbed.test (pbx.netbed.test A 203.0.113.1, so AAAA 64:ff9b::cb00:7101) and for ipv4only.arpa
# (RFC 7050 prefix discovery); it refuses every other name, so it never queries outside the bed.
# tayga 0.9.2 will not translate non-global IPv4 addresses such as TEST-NET-3 under the
# well-known prefix (RFC 6052 section 3.1), not even through a static map, so tayga translates
# the network-specific prefix 2001:db8:64:ff9b::/96 and the router's nftables rewrite
# 64:ff9b::/96 onto it (stateful prefix NAT, undone on replies): the phone only ever sees
# 64:ff9b::/96. IPv6 SIP to [64:ff9b::cb00:7101]:5060 (or pbx.netbed.test) reaches Kamailio
# from 203.0.113.64; Kamailio takes both names as its own (aliases) and stays IPv4-only.
# There are no wifi/cell routers (switch.sh refuses this bed); RUN_DIR/env lists the phone's
# DNS server (NETBED_DNS=[2001:db8:64::1]:53), NETBED_PBX_NAME, NETBED_SIP6 and the router's
# NETBED_NAT64_PUBLIC instead of the IPv4 uplinks' addresses.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "up.sh: $*" >&2 && exit 2; }
[ $# -ge 1 ] || die "usage: up.sh RUN_DIR [cone|symmetric|nat64]"
VARIANT=${2:-cone}
case $VARIANT in
cone | nat64) masquerade="masquerade persistent" ;;
symmetric) masquerade="masquerade fully-random" ;;
*) die "variant must be cone, symmetric or nat64, not $VARIANT" ;;
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
PHONE6=2001:db8:64::2 NAT64_GW=2001:db8:64::1 NAT64_PUBLIC=203.0.113.64
NAT64_PREFIX=64:ff9b::/96 TAYGA_PREFIX=2001:db8:64:ff9b::/96
TAYGA_POOL=192.168.255.0/24 TAYGA_IPV4=192.168.255.1 TAYGA_IPV6=2001:db8:64:ff::1
PBX_NAME=pbx.netbed.test PBX_NAT64=64:ff9b::cb00:7101 NAT64_NET=2001:db8:64::/64

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
link_up() { # "ROLE DEV"...
	local link role dev
	for link in "$@"; do
		read -r role dev <<<"$link"
		ip -n "$P-$role" link set "$dev" up
	done
}
# A NAT router's IPv4 side: only replies to a mapping come in from the wan side (conntrack
# matches the remote's exact address and port: port-restricted filtering in every variant).
nat_router() { # ROLE INSIDE_DEV
	in_ns "$1" sysctl -qw net.ipv4.ip_forward=1
	in_ns "$1" nft -f - <<NFT
table ip netbed {
	chain forward {
		type filter hook forward priority filter; policy drop;
		iifname "$2" oifname "wan" accept
		iifname "wan" oifname "$2" ct state established,related accept
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" $masquerade
	}
}
NFT
	# After the nat table: it is what brings conntrack (and these per-namespace knobs) in.
	in_ns "$1" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30 \
		net.netfilter.nf_conntrack_udp_timeout_stream=30
}

if [ "$VARIANT" = nat64 ]; then
	routers=(nat64)
else
	routers=(wifi cell)
fi
for role in phone "${routers[@]}" pbx; do make_ns "$role"; done

# veth pairs are created inside the namespaces: no interface ever appears in the host's.
ip -n "$P-pbx" link add inet type bridge
for role in "${routers[@]}"; do
	ip -n "$P-$role" link add wan type veth peer name "$role" netns "$P-pbx"
	ip -n "$P-pbx" link set "$role" master inet
done
ip -n "$P-pbx" addr add "$PBX/24" dev inet
ip -n "$P-pbx" addr add "$PBX_ALT/24" dev inet

if [ "$VARIANT" = nat64 ]; then
	in_ns phone sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
	in_ns nat64 sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
	# No router advertisements: the addresses and routes below are all there is.
	in_ns phone sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
	ip -n "$P-phone" link add wifi type veth peer name lan netns "$P-nat64"
	# The wan side is IPv4 only, like the PBX segment.
	in_ns nat64 sysctl -qw net.ipv6.conf.wan.disable_ipv6=1
	ip -n "$P-phone" addr add "$PHONE6/64" dev wifi nodad
	ip -n "$P-nat64" addr add "$NAT64_GW/64" dev lan nodad
	ip -n "$P-nat64" addr add "$NAT64_PUBLIC/24" dev wan
	link_up "phone wifi" "nat64 lan" "nat64 wan" "pbx nat64" "pbx inet"
	ip -n "$P-phone" -6 route add default via "$NAT64_GW" dev wifi
	echo wifi >uplink

	# tayga: a persistent TUN device made inside the router namespace (down.sh deletes it),
	# IPv6 sources mapped to the private pool, IPv4 destinations from TAYGA_PREFIX.
	mkdir -p tayga
	cat >tayga.conf <<CONF
tun-device nat64
ipv4-addr $TAYGA_IPV4
ipv6-addr $TAYGA_IPV6
prefix $TAYGA_PREFIX
dynamic-pool $TAYGA_POOL
data-dir $RUN_DIR/tayga
CONF
	echo nat64 >tunnels # down.sh deletes exactly these (in the router namespace)
	in_ns nat64 tayga -c "$RUN_DIR/tayga.conf" --mktun >tayga.log 2>&1
	ip -n "$P-nat64" link set nat64 up
	ip -n "$P-nat64" route add "$TAYGA_POOL" dev nat64
	ip -n "$P-nat64" route add "$TAYGA_PREFIX" dev nat64
	in_ns nat64 sysctl -qw net.ipv6.conf.all.forwarding=1
	nat_router nat64 nat64
	in_ns nat64 nft -f - <<NFT
table ip6 netbed {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "lan" ip6 daddr $NAT64_PREFIX dnat ip6 prefix to ip6 daddr map { $NAT64_PREFIX : $TAYGA_PREFIX }
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		iifname "lan" oifname "nat64" ip6 daddr $TAYGA_PREFIX accept
		iifname "nat64" oifname "lan" ct state established,related accept
	}
}
NFT
	# Not through in_ns, so $! is the daemon itself (as for Kamailio below).
	ip netns exec "$P-nat64" setsid tayga -c "$RUN_DIR/tayga.conf" --nodetach </dev/null >>tayga.log 2>&1 &
	echo $! >tayga.pid

	# unbound: DNS64 over two zones of its own; everything else refused.
	cat >netbed.test.zone <<ZONE
\$ORIGIN netbed.test.
\$TTL 60
@	SOA	ns.netbed.test. hostmaster.netbed.test. 1 3600 600 86400 60
@	NS	ns.netbed.test.
ns	A	$PBX
${PBX_NAME%.netbed.test}	A	$PBX
ZONE
	cat >ipv4only.arpa.zone <<ZONE
\$ORIGIN ipv4only.arpa.
\$TTL 60
@	SOA	ns.netbed.test. hostmaster.netbed.test. 1 3600 600 86400 60
@	NS	ns.netbed.test.
@	A	192.0.0.170
@	A	192.0.0.171
ZONE
	cat >unbound.conf <<CONF
server:
	username: ""
	chroot: ""
	directory: "$RUN_DIR"
	pidfile: "$RUN_DIR/unbound.own.pid"
	use-syslog: no
	logfile: ""
	verbosity: 1
	interface: $NAT64_GW
	port: 53
	do-ip4: no
	access-control: $NAT64_NET allow
	module-config: "dns64 iterator"
	dns64-prefix: $NAT64_PREFIX
	# The bed's zones go through the dns64 module (local-data would bypass it); "test." is one
	# of unbound's default refusing zones.
	local-zone: "test." nodefault
	local-zone: "netbed.test." transparent
	local-zone: "ipv4only.arpa." transparent
	local-zone: "." refuse
auth-zone:
	name: "netbed.test."
	zonefile: "$RUN_DIR/netbed.test.zone"
	for-downstream: no
	for-upstream: yes
	fallback-enabled: no
auth-zone:
	name: "ipv4only.arpa."
	zonefile: "$RUN_DIR/ipv4only.arpa.zone"
	for-downstream: no
	for-upstream: yes
	fallback-enabled: no
remote-control:
	control-enable: no
CONF
	ip netns exec "$P-nat64" setsid unbound -d -c "$RUN_DIR/unbound.conf" </dev/null >unbound.log 2>&1 &
	echo $! >unbound.pid
	up=0
	for _ in $(seq 100); do
		in_ns nat64 ss -Hlun "src [$NAT64_GW]:53" | grep -q . && up=1 && break
		kill -0 "$(cat unbound.pid)" 2>/dev/null || break
		sleep 0.1
	done
	[ "$up" = 1 ] || { tail -n 20 unbound.log >&2; die "unbound did not come up (unbound.log)"; }
	kill -0 "$(cat tayga.pid)" 2>/dev/null || { tail -n 20 tayga.log >&2; die "tayga exited (tayga.log)"; }
else
	ip -n "$P-phone" link add wifi type veth peer name lan netns "$P-wifi"
	ip -n "$P-phone" link add cell type veth peer name lan netns "$P-cell"

	ip -n "$P-phone" addr add "$PHONE_WIFI/24" dev wifi
	ip -n "$P-phone" addr add "$PHONE_CELL/24" dev cell
	ip -n "$P-wifi" addr add "$WIFI_GW/24" dev lan
	ip -n "$P-wifi" addr add "$WIFI_PUBLIC/24" dev wan
	ip -n "$P-cell" addr add "$CELL_GW/24" dev lan
	ip -n "$P-cell" addr add "$CELL_PUBLIC/24" dev wan
	link_up "phone wifi" "phone cell" "wifi lan" "wifi wan" "cell lan" "cell wan" "pbx wifi" \
		"pbx cell" "pbx inet"

	# The phone: one default route (switch.sh moves it); a socket bound to one uplink's address
	# keeps using that uplink whatever the default is, as on a phone with both radios up.
	ip -n "$P-phone" route add default via "$WIFI_GW" dev wifi
	ip -n "$P-phone" route add default via "$WIFI_GW" dev wifi table 101
	ip -n "$P-phone" route add default via "$CELL_GW" dev cell table 102
	ip -n "$P-phone" rule add from "$PHONE_WIFI" lookup 101 pref 1001
	ip -n "$P-phone" rule add from "$PHONE_CELL" lookup 102 pref 1002
	echo wifi >uplink

	for role in wifi cell; do nat_router "$role" lan; done
fi

# --- Kamailio ---
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@PBX@|$PBX|g" -e "s|@PBX_NAME@|$PBX_NAME|g" \
	-e "s|@PBX_NAT64@|$PBX_NAT64|g" "$HERE/kamailio.cfg" >kamailio.cfg
defines=()
[ "$VARIANT" != nat64 ] || defines=(-A NETBED_NAT64)
rm -f kamailio.log kamailio.ctl
# `ip netns exec` and setsid exec in place, so $! is Kamailio itself, leader of its own
# process group (down.sh kills that group). Not through in_ns: a backgrounded shell function
# runs in a subshell, whose pid $! would be.
ip netns exec "$P-pbx" setsid kamailio -DD -E -f "$RUN_DIR/kamailio.cfg" -w "$RUN_DIR" -Y "$RUN_DIR" \
	-m 32 -M 8 "${defines[@]}" </dev/null >kamailio.log 2>&1 &
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
verbose
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

{
	cat <<ENV
NETBED_VARIANT=$VARIANT
NETBED_PREFIX=$P
NETBED_NS_PHONE=$P-phone
NETBED_NS_PBX=$P-pbx
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
	if [ "$VARIANT" = nat64 ]; then
		cat <<ENV
NETBED_NS_NAT64=$P-nat64
NETBED_PHONE6=$PHONE6
NETBED_NAT64_GW=$NAT64_GW
NETBED_NAT64_PUBLIC=$NAT64_PUBLIC
NETBED_NAT64_PREFIX=$NAT64_PREFIX
NETBED_DNS=[$NAT64_GW]:53
NETBED_PBX_NAME=$PBX_NAME
NETBED_PBX_NAT64=$PBX_NAT64
NETBED_SIP6=[$PBX_NAT64]:5060
ENV
	else
		cat <<ENV
NETBED_NS_WIFI=$P-wifi
NETBED_NS_CELL=$P-cell
NETBED_PHONE_WIFI=$PHONE_WIFI
NETBED_PHONE_CELL=$PHONE_CELL
NETBED_WIFI_GW=$WIFI_GW
NETBED_CELL_GW=$CELL_GW
NETBED_WIFI_PUBLIC=$WIFI_PUBLIC
NETBED_CELL_PUBLIC=$CELL_PUBLIC
ENV
	fi
} >./env
done_ok=1
cat env
