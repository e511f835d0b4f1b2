"""mDNS helpers the discovery tests run inside a network namespace (python-zeroconf).

    python3 mdns_tool.py browse SECONDS        -> JSON {instance: {server, port, addresses, txt}}
    python3 mdns_tool.py flood COUNT KEYFILE ADDR
        sends COUNT fake `_streamhub._tcp` announcements (distinct instances and node ids, the
        cluster tag of the key in KEYFILE, so they pass the tag filter) from ADDR, as unsolicited
        multicast responses in batches, and prints how many were sent.
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import time

from zeroconf import (DNSAddress, DNSOutgoing, DNSPointer, DNSService, DNSText, IPVersion,
                      ServiceBrowser, ServiceListener, Zeroconf, const)

TYPE = "_streamhub._tcp.local."


def browse(seconds):
    zc = Zeroconf(ip_version=IPVersion.V4Only)
    names = set()

    class Listener(ServiceListener):
        def add_service(self, zc, type_, name):
            names.add(name)

        def update_service(self, zc, type_, name):
            names.add(name)

        def remove_service(self, zc, type_, name):
            pass

    ServiceBrowser(zc, TYPE, Listener())
    time.sleep(seconds)
    out = {}
    for name in sorted(names):
        info = zc.get_service_info(TYPE, name, timeout=3000)
        if info is None:
            continue
        out[name] = {
            "server": info.server,
            "port": info.port,
            "addresses": sorted(info.parsed_addresses()),
            "txt": {k.decode(): (v.decode() if v is not None else None)
                    for k, v in info.properties.items()},
        }
    zc.close()
    print(json.dumps(out))


def cluster_tag(key_text):
    key = base64.urlsafe_b64decode(key_text + "=" * (-len(key_text) % 4))
    return hmac.new(key, b"streamhub-cluster-tag", hashlib.sha256).hexdigest()[:16]


def flood(count, keyfile, addr):
    tag = cluster_tag(open(keyfile).read().strip())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(addr))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    ttl = 4500
    unique = const._CLASS_IN | const._CLASS_UNIQUE
    sent = 0
    batch = 8
    for start in range(0, count, batch):
        out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
        for n in range(start, min(count, start + batch)):
            node_id = hashlib.sha256(os.urandom(16)).hexdigest()
            name = f"fake{n} ({node_id[:8]}).{TYPE}"
            server = f"fake-{node_id[:8]}.local."
            txt = b"".join(bytes([len(e)]) + e for e in (
                f"id={node_id}".encode(), b"api=1", f"cluster={tag}".encode()))
            out.add_answer_at_time(DNSPointer(TYPE, const._TYPE_PTR, const._CLASS_IN, ttl, name), 0)
            out.add_answer_at_time(DNSService(name, const._TYPE_SRV, unique, ttl, 0, 0, 8443, server), 0)
            out.add_answer_at_time(DNSText(name, const._TYPE_TXT, unique, ttl, txt), 0)
            out.add_answer_at_time(DNSAddress(server, const._TYPE_A, unique, ttl,
                                              socket.inet_aton(f"10.78.{n // 250}.{n % 250 + 1}")), 0)
            sent += 1
        for packet in out.packets():
            sock.sendto(packet, ("224.0.0.251", 5353))
        # A burst, not a wall: the receiver's socket buffer should see every packet.
        time.sleep(0.002)
    print(sent)


if __name__ == "__main__":
    if sys.argv[1] == "browse":
        browse(float(sys.argv[2]))
    elif sys.argv[1] == "flood":
        flood(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
