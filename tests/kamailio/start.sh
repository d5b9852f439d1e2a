#!/usr/bin/env bash
# Start the loopback test Kamailio: start.sh [RUN_DIR]  (default /tmp/handset-kamailio)
# Writes certs, tls.cfg, kamailio.cfg, kamailio.log, kamailio.pid and env into RUN_DIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN_DIR=${1:-/tmp/handset-kamailio}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
# The path is pasted into kamailio.cfg, sed and the env file unquoted.
if [[ ! "$RUN_DIR" =~ ^[A-Za-z0-9_./-]+$ ]]; then
	echo "start.sh: RUN_DIR must match [A-Za-z0-9_./-]+: $RUN_DIR" >&2
	exit 2
fi

"$HERE/install.sh"
"$HERE/stop.sh" "$RUN_DIR"   # restart cleanly if a previous one is running

# --- Test CA + server certificate (kept across restarts while still valid) ---
cd "$RUN_DIR"
if ! openssl verify -CAfile ca.pem server.pem >/dev/null 2>&1 ||
	! openssl x509 -checkend 86400 -noout -in server.pem >/dev/null 2>&1 ||
	[ ! -s server.key ]; then
	rm -f ca.pem ca.key server.pem server.key server.csr ca.srl
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
		-keyout ca.key -out ca.pem -subj "/CN=Handset Test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
		-subj "/CN=localhost" 2>/dev/null
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
		-days 825 -sha256 -out server.pem -extfile <(printf '%s\n' \
			"basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature,keyEncipherment" \
			"extendedKeyUsage=serverAuth" \
			"subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1") 2>/dev/null
	rm -f server.csr ca.srl
	chmod 600 ca.key server.key
fi

# --- Pinning test certificates on their own TLS ports: a self-signed certificate marked CA
# (`openssl req -x509` defaults, as PBXs ship them) on 25062, and an expired one like it
# (signed with past dates by `openssl ca -selfsign`) on 25063 ---
if ! openssl x509 -checkend 86400 -noout -in selfsigned.pem >/dev/null 2>&1 ||
	[ ! -s selfsigned.key ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -sha256 \
		-keyout selfsigned.key -out selfsigned.pem -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
	chmod 600 selfsigned.key
fi
if [ ! -s expired.pem ] || [ ! -s expired.key ]; then
	rm -rf expired-ca && mkdir expired-ca
	: > expired-ca/index
	echo 01 > expired-ca/serial
	cat > expired-ca/ca.cnf <<CNF
[ca]
default_ca = expired
[expired]
database = $RUN_DIR/expired-ca/index
new_certs_dir = $RUN_DIR/expired-ca
serial = $RUN_DIR/expired-ca/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[pbx]
basicConstraints = critical,CA:TRUE
subjectKeyIdentifier = hash
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
	openssl req -new -newkey rsa:2048 -nodes -keyout expired.key -out expired-ca/req.csr \
		-subj "/CN=localhost" 2>/dev/null
	openssl ca -batch -notext -config expired-ca/ca.cnf -selfsign -keyfile expired.key \
		-in expired-ca/req.csr -out expired.pem -extensions pbx \
		-startdate 20200101000000Z -enddate 20210101000000Z 2>/dev/null
	rm -rf expired-ca
	chmod 600 expired.key
fi

cat > tls.cfg <<TLS
[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $RUN_DIR/server.key
certificate = $RUN_DIR/server.pem
ca_list = $RUN_DIR/ca.pem

[server:127.0.0.1:25062]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $RUN_DIR/selfsigned.key
certificate = $RUN_DIR/selfsigned.pem

[server:127.0.0.1:25063]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = $RUN_DIR/expired.key
certificate = $RUN_DIR/expired.pem

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
TLS

secret=$(openssl rand -hex 16)
sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@NONCE_SECRET@|$secret|g" \
	"$HERE/kamailio.cfg" > kamailio.cfg

# The harness ports are the project's: a harness left running from another RUN_DIR (a test
# run, the demo) is stopped so this one can bind them.
for other in /tmp/handset-kamailio*/kamailio.pid; do
	[ -e "$other" ] || continue
	other_dir=$(dirname "$other")
	[ "$other_dir" = "$RUN_DIR" ] || bash "$HERE/stop.sh" "$other_dir" >/dev/null 2>&1 || true
done

# Foreground mode (-DD) so -E logs to a file we can read (no syslog here);
# setsid gives it its own process group, which stop.sh relies on.
rm -f kamailio.log kamailio.ctl
setsid nohup kamailio -DD -E -f "$RUN_DIR/kamailio.cfg" -w "$RUN_DIR" -Y "$RUN_DIR" \
	-m 64 -M 8 </dev/null >kamailio.log 2>&1 &
echo $! > kamailio.pid

ctl="unix:$RUN_DIR/kamailio.ctl"
for _ in $(seq 100); do
	if kamcmd -s "$ctl" core.version >/dev/null 2>&1; then
		cat >./env <<ENV
KAMAILIO_UDP=127.0.0.1:25060
KAMAILIO_TCP=127.0.0.1:25060
KAMAILIO_TLS=127.0.0.1:25061
KAMAILIO_CA=$RUN_DIR/ca.pem
KAMAILIO_TLS_SELF_SIGNED=127.0.0.1:25062
KAMAILIO_SELF_SIGNED_CERT=$RUN_DIR/selfsigned.pem
KAMAILIO_TLS_EXPIRED=127.0.0.1:25063
KAMAILIO_EXPIRED_CERT=$RUN_DIR/expired.pem
KAMAILIO_CTL=$ctl
KAMAILIO_DOMAIN=127.0.0.1
ENV
		cat env
		exit 0
	fi
	kill -0 "$(cat kamailio.pid)" 2>/dev/null || break
	sleep 0.1
done

echo "start.sh: kamailio did not come up (see $RUN_DIR/kamailio.log); last lines:" >&2
tail -n 30 kamailio.log >&2 || true
if grep -q "Address already in use" kamailio.log; then
	echo "start.sh: ports 25060-25063 are taken (a harness from another RUN_DIR? stop.sh THAT_DIR)" >&2
fi
"$HERE/stop.sh" "$RUN_DIR"
exit 1
