#!/usr/bin/env python3
"""ctrl.py PORT COMMAND [TIMEOUT]: send one command to baresip's ctrl_tcp
(127.0.0.1:PORT, netstring-framed JSON), print the response's "data", exit 0
if it says ok. COMMAND is menu syntax with or without the slash, e.g.
"/dial sip:peer1@127.0.0.1", "hangup", "accept", "quit". Events that arrive
before the response are skipped. ctrl_tcp keeps one client at a time.
"""
import json, socket, sys


def main():
    port, command = int(sys.argv[1]), sys.argv[2].strip().lstrip("/")
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    name, _, params = command.partition(" ")
    msg = {"command": name, "token": "handset"}
    if params:
        msg["params"] = params
    body = json.dumps(msg).encode()
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"%d:%s," % (len(body), body))
        while True:
            while b":" in buf:
                head, _, rest = buf.partition(b":")
                n = int(head)
                if len(rest) < n + 1:
                    break
                obj, buf = json.loads(rest[:n]), rest[n + 1:]
                if obj.get("response"):
                    if obj.get("data"):
                        print(obj["data"])
                    return 0 if obj.get("ok") else 1
            chunk = s.recv(65536)
            if not chunk:
                print("ctrl.py: connection closed before a response", file=sys.stderr)
                return 1 if name != "quit" else 0
            buf += chunk


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError) as e:
        print(f"ctrl.py: {e}", file=sys.stderr)
        sys.exit(2)
