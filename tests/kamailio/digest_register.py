#!/usr/bin/env python3
"""One REGISTER for USER@127.0.0.1 to the test Kamailio, answering its digest
challenge (MD5 or SHA-256, qop=auth or none; RFC 7616). Exit 0 iff the final
status is --expect. Loopback only. sipp can do neither SHA-256 nor TLS here.

usage: digest_register.py USER PASSWORD [--transport udp|tcp|tls] [--ca CA.pem]
                          [--expect 200] [--expires 3600] [--algorithm SHA-256]
"""
import argparse, hashlib, random, re, socket, ssl, sys

ap = argparse.ArgumentParser()
ap.add_argument("user")
ap.add_argument("password")
ap.add_argument("--transport", default="udp", choices=["udp", "tcp", "tls"])
ap.add_argument("--ca", default="/tmp/handset-kamailio/ca.pem")
ap.add_argument("--expect", type=int, default=200)
ap.add_argument("--expires", default="3600")
ap.add_argument("--algorithm", help="fail unless the challenge uses this algorithm")
a = ap.parse_args()

port = 25061 if a.transport == "tls" else 25060
if a.transport == "udp":
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.connect(("127.0.0.1", port))
else:
    sock = socket.create_connection(("127.0.0.1", port), timeout=3, source_address=("127.0.0.1", 0))
    if a.transport == "tls":
        ctx = ssl.create_default_context(cafile=a.ca)  # verifies the cert for "localhost"
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
sock.settimeout(3)
lport = sock.getsockname()[1]
tp = a.transport.upper()
call_id, tag = f"{random.getrandbits(64):x}@127.0.0.1", f"{random.getrandbits(32):x}"
uri = "sip:127.0.0.1"
buf = b""


def recv_msg():
    global buf
    if a.transport == "udp":
        return sock.recv(65535).decode(errors="replace")
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65535)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"^(?:Content-Length|l):\s*(\d+)", head, re.M | re.I)
    n = int(m.group(1)) if m else 0
    while len(buf) < n:
        buf += sock.recv(65535)
    body, buf = buf[:n], buf[n:]
    return (head + b"\r\n\r\n" + body).decode(errors="replace")


def register(cseq, auth=None):
    lines = [
        f"REGISTER {uri} SIP/2.0",
        f"Via: SIP/2.0/{tp} 127.0.0.1:{lport};rport;branch=z9hG4bK{random.getrandbits(48):x}",
        "Max-Forwards: 70",
        f"From: <sip:{a.user}@127.0.0.1>;tag={tag}",
        f"To: <sip:{a.user}@127.0.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{a.user}@127.0.0.1:{lport};transport={a.transport}>",
        f"Expires: {a.expires}",
    ] + ([f"Authorization: {auth}"] if auth else []) + ["Content-Length: 0", "", ""]
    sock.send("\r\n".join(lines).encode())
    while True:  # skip provisional responses
        msg = recv_msg()
        code = int(msg.split(" ", 2)[1])
        if code >= 200:
            return code, msg


code, msg = register(1)
chal = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*?)\r?$", msg, re.M | re.I)
if code != 401 or not chal:
    sys.exit(f"expected a 401 challenge, got {code}")
p = {k: q or t for k, q, t in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', chal.group(1))}
alg = p.get("algorithm", "MD5")
if a.algorithm and alg != a.algorithm:
    sys.exit(f"challenge algorithm {alg}, wanted {a.algorithm}: {chal.group(1)}")
h = lambda s: hashlib.new("sha256" if alg == "SHA-256" else "md5", s.encode()).hexdigest()
ha1, ha2 = h(f"{a.user}:{p['realm']}:{a.password}"), h(f"REGISTER:{uri}")
auth = f'Digest username="{a.user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", algorithm={alg}'
if "auth" in p.get("qop", "").split(","):
    cnonce, nc = f"{random.getrandbits(64):x}", "00000001"
    resp = h(f"{ha1}:{p['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    auth += f', cnonce="{cnonce}", qop=auth, nc={nc}'
else:
    resp = h(f"{ha1}:{p['nonce']}:{ha2}")
auth += f', response="{resp}"'
code, _ = register(2, auth)
print(f"REGISTER {a.user} over {tp} ({alg}): {code}")
sys.exit(0 if code == a.expect else 1)
