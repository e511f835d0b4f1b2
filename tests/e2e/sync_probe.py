"""A thief with a member's sync identity but not the cluster key, or an outsider with any
certificate, for test_peers_spoof.py (run inside a network namespace).

    python3 sync_probe.py pipeline HOST PEM CONNS PER
        opens CONNS connections and writes PER `hello` requests on each without reading a
        single answer (as long as the peer takes them), then prints how many were written and
        holds the connections until killed.

    python3 sync_probe.py HOST PEM
        connects to HOST:8443 with the sync ALPN and the certificate and key in PEM (a
        member's stolen `identity.pem`) and tries, one connection each: hello then a made-up
        proof then the feed; the feed, revs and a nudge without any proof; a hello whose
        proof is reflected back as ours; a hello answered with the proof recorded on the first
        connection (a replay). Prints JSON: {"hellos": [...], "steps": {name: [answer...]}},
        an answer being {"status", "body"} or {"error"} (closed, reset).
"""

import base64
import json
import os
import socket
import ssl
import sys

if sys.argv[1] == "pipeline":
    import threading
    import time

    HOST, PEM = sys.argv[2], sys.argv[3]
else:
    HOST, PEM = sys.argv[1], sys.argv[2]


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Conn:
    def __init__(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["streamhub-sync/1"])
        ctx.load_cert_chain(PEM, PEM)
        self.s = ctx.wrap_socket(socket.create_connection((HOST, 8443), timeout=10))
        self.f = self.s.makefile("rb")

    def ask(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        try:
            self.s.sendall(f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: "
                           f"application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
                           + data)
            head = self.f.readline()
            if not head:
                return {"error": "closed"}
            length = 0
            while (line := self.f.readline().strip()):
                k, _, v = line.decode().partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            return {"status": int(head.split()[1]), "body": self.f.read(length).decode()}
        except (ssl.SSLError, OSError) as e:
            return {"error": str(e) or type(e).__name__}

    def hello(self, nonce):
        return self.ask("POST", "/sync/v1/hello", {"api": 1, "nonce": b64(nonce)})


def pipeline(conns, per):
    body = json.dumps({"api": 1, "nonce": b64(os.urandom(32))}).encode()
    req = (f"POST /sync/v1/hello HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
           f"content-length: {len(body)}\r\n\r\n").encode() + body
    held, written = [], [0]
    lock = threading.Lock()

    def one():
        try:
            c = Conn()
            c.s.settimeout(5)
            held.append(c)
            for _ in range(per // 100):
                c.s.sendall(req * 100)
                with lock:
                    written[0] += 100
        except (ssl.SSLError, OSError):
            pass
    threads = [threading.Thread(target=one) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"connections": len(held), "written": written[0]}), flush=True)
    time.sleep(3600)


if sys.argv[1] == "pipeline":
    pipeline(int(sys.argv[4]), int(sys.argv[5]))
    sys.exit(0)

nonce = os.urandom(32)
hellos, steps = [], {}

c = Conn()
h = c.hello(nonce)
hellos.append(h)
first = json.loads(h["body"])
steps["made_up_proof"] = [c.ask("POST", "/sync/v1/auth", {"proof": b64(os.urandom(32)),
                                                          "name": "thief\x1b[31m"}),
                          c.ask("GET", "/sync/v1/changes?since=0&limit=1000")]

c = Conn()
steps["no_proof"] = [c.ask("GET", "/sync/v1/changes?since=0&limit=1000"),
                     c.ask("POST", "/sync/v1/revs", {"revs": ["0" * 64]}),
                     c.ask("POST", "/sync/v1/nudge")]

c = Conn()
h = c.hello(nonce)
hellos.append(h)
steps["reflected"] = [c.ask("POST", "/sync/v1/auth", {"proof": json.loads(h["body"])["proof"],
                                                      "name": "thief"}),
                      c.ask("GET", "/sync/v1/changes?since=0&limit=1000")]

c = Conn()
hellos.append(c.hello(nonce))
steps["replayed"] = [c.ask("POST", "/sync/v1/auth", {"proof": first["proof"], "name": "thief"}),
                     c.ask("GET", "/sync/v1/changes?since=0&limit=1000")]

print(json.dumps({"hellos": hellos, "steps": steps}))
