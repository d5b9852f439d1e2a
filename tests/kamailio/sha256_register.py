#!/usr/bin/env python3
"""REGISTER USER over UDP to 127.0.0.1:25060 answering an algorithm=SHA-256
challenge per RFC 7616 (qop=auth). Exit 0 iff the final answer is EXPECT.

usage: sha256_register.py USER PASSWORD [EXPECT=200] [EXPIRES=3600]
sipp can only do MD5 digest, hence this helper for the selftest."""
import hashlib, random, re, socket, sys

user, password = sys.argv[1], sys.argv[2]
expect = int(sys.argv[3]) if len(sys.argv) > 3 else 200
expires = sys.argv[4] if len(sys.argv) > 4 else "3600"
server, domain = ("127.0.0.1", 25060), "127.0.0.1"  # loopback only

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(3)
port = sock.getsockname()[1]
call_id, tag = f"{random.getrandbits(64):x}@127.0.0.1", f"{random.getrandbits(32):x}"
uri = f"sip:{domain}"


def register(cseq, auth=None):
    lines = [
        f"REGISTER {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{random.getrandbits(48):x}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag={tag}",
        f"To: <sip:{user}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@127.0.0.1:{port}>",
        f"Expires: {expires}",
    ] + ([f"Authorization: {auth}"] if auth else []) + ["Content-Length: 0", "", ""]
    sock.sendto("\r\n".join(lines).encode(), server)
    while True:  # skip provisional responses
        msg = sock.recv(65535).decode(errors="replace")
        code = int(msg.split(" ", 2)[1])
        if code >= 200:
            return code, msg


def h(s):
    return hashlib.sha256(s.encode()).hexdigest()


code, msg = register(1)
chal = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", msg, re.M | re.I)
if code != 401 or not chal:
    sys.exit(f"expected a 401 challenge, got {code}")
params = dict(re.findall(r'(\w+)="?([^",\r]*)"?', chal.group(1)))
if params.get("algorithm") != "SHA-256":
    sys.exit(f"challenge is not SHA-256: {chal.group(1)}")
realm, nonce, cnonce, nc = params["realm"], params["nonce"], f"{random.getrandbits(64):x}", "00000001"
ha1, ha2 = h(f"{user}:{realm}:{password}"), h(f"REGISTER:{uri}")
resp = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
auth = (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{resp}", algorithm=SHA-256, cnonce="{cnonce}", qop=auth, nc={nc}')
code, _ = register(2, auth)
print(f"SHA-256 REGISTER {user}: {code}")
sys.exit(0 if code == expect else 1)
