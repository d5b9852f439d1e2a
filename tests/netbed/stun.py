#!/usr/bin/env python3
"""stun.py [--bind ADDR] [--port P] [--rounds N] [--interval S] SERVER:PORT...

RFC 5389 Binding requests from ONE UDP socket to every SERVER:PORT, N rounds S seconds apart
(several rounds keep a NAT mapping busy long enough to become a conntrack "stream"). Prints
"SERVER:PORT MAPPED_IP:MAPPED_PORT" (the XOR-MAPPED-ADDRESS of the last answer) per server.
Exit 1 if a server never answers. The network test bed runs it in its phone namespace to see
how the NAT routers map one local port towards several destinations.
"""
import argparse, os, socket, struct, sys, time

MAGIC = 0x2112A442


def request(tid):
    return struct.pack("!HHI", 0x0001, 0, MAGIC) + tid


def mapped(data, tid):
    """XOR-MAPPED-ADDRESS (IPv4) of a Binding success response with transaction id tid."""
    if len(data) < 20:
        return None
    kind, length, magic = struct.unpack("!HHI", data[:8])
    if kind != 0x0101 or magic != MAGIC or data[8:20] != tid:
        return None
    pos, end = 20, min(len(data), 20 + length)
    while pos + 4 <= end:
        atype, alen = struct.unpack("!HH", data[pos : pos + 4])
        value = data[pos + 4 : pos + 4 + alen]
        if atype == 0x0020 and alen >= 8 and value[1] == 1:
            port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC >> 16)
            ip = struct.unpack("!I", value[4:8])[0] ^ MAGIC
            return "%s:%d" % (socket.inet_ntoa(struct.pack("!I", ip)), port)
        pos += 4 + (alen + 3) // 4 * 4
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("servers", nargs="+")
    a = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((a.bind, a.port))
    servers = []
    for s in a.servers:
        host, _, port = s.rpartition(":")
        servers.append((host, int(port)))
    answers = {}
    for round_ in range(a.rounds):
        if round_:
            time.sleep(a.interval)
        for server in servers:
            tid = os.urandom(12)
            answers.pop(server, None)
            for _ in range(5):  # retransmit: the first packet may meet a fresh NAT mapping
                sock.sendto(request(tid), server)
                sock.settimeout(0.5)
                try:
                    while True:
                        data, peer = sock.recvfrom(2048)
                        got = mapped(data, tid) if peer == server else None
                        if got:
                            answers[server] = got
                            break
                except socket.timeout:
                    pass
                if server in answers:
                    break
            if server not in answers:
                print("stun.py: no answer from %s:%d" % server, file=sys.stderr)
                return 1
    for server in servers:
        print("%s:%d %s" % (server[0], server[1], answers[server]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
