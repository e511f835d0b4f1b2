"""DNS rebinding: the box answers only to names an outside attacker cannot point at it, plus
the ones configured (server.allowed_hosts); other names get 421 with a JSON error."""

import json

import pytest

from conftest import curl, raw_request


def status_for(srv, host, path="/api/library"):
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    return raw_request(srv.port, req.encode())


@pytest.fixture(scope="module")
def box(module_servers, auth_media):
    return module_servers.start(auth_media["root"], tls_listen=(), name="hosts")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8080", "[::1]:8080", "localhost",
                                  "pi", "pi:8080", "pi.local", "PI.LOCAL:8443", "nas.lan",
                                  "box.home.arpa", "192.168.1.20:8080"])
def test_names_of_the_lan_are_served(box, host):
    assert status_for(box, host).status == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "x.local.evil.example",
                                  "192.168.1.20.nip.io"])
def test_other_names_are_refused(box, host):
    r = status_for(box, host)
    assert r.status == 421, r
    body = r.json()
    assert body["error"] == "unknown_host"
    assert "server.allowed_hosts" in body["message"]
    # Media and the page too, not only the API.
    assert status_for(box, host, "/").status == 421
    assert status_for(box, host, "/media/sub/dir/deep.txt").status == 421


def test_an_absolute_target_naming_another_host_is_refused(box):
    # RFC 9112 §3.2.2: the target's own name wins over Host, so it is the one checked
    # (attack pass F5: a foreign absolute-form target with our Host was served).
    def absolute(target_host, host):
        req = (f"GET http://{target_host}/api/library HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: close\r\n\r\n")
        return raw_request(box.port, req.encode())
    r = absolute("evil.example", f"127.0.0.1:{box.port}")
    assert r.status == 421, r
    assert r.json()["error"] == "unknown_host"
    assert absolute(f"127.0.0.1:{box.port}", "evil.example").status == 421
    assert absolute(f"127.0.0.1:{box.port}", f"127.0.0.1:{box.port}").status == 200


def test_http2_authority_is_checked(box):
    r = curl("--http2-prior-knowledge", "-s", "-o", "/dev/null", "-w", "%{http_code}",
             "-H", "Host: evil.example", f"http://127.0.0.1:{box.port}/api/library")
    assert r.stdout == b"421", r
    r = curl("--http2-prior-knowledge", "-s", "-o", "/dev/null", "-w", "%{http_code}",
             f"http://127.0.0.1:{box.port}/api/library")
    assert r.stdout == b"200", r


def test_configured_names(module_servers, auth_media):
    srv = module_servers.start(auth_media["root"], tls_listen=(), name="hosts-cfg", config=(
        '[server]\nallowed_hosts = ["media.example.com", "*.office.example"]\n'))
    assert status_for(srv, "media.example.com:8443").status == 200
    assert status_for(srv, "a.office.example").status == 200
    assert status_for(srv, "office.example").status == 421
    assert status_for(srv, "other.example.com").status == 421
    srv = module_servers.start(auth_media["root"], tls_listen=(), name="hosts-any",
                               env={"STREAMHUB_SERVER_ALLOWED_HOSTS": "*"})
    assert status_for(srv, "evil.example").status == 200


def test_public_url_host_is_known(module_servers, auth_media):
    srv = module_servers.start(auth_media["root"], tls_listen=(), name="hosts-public",
                               env={"STREAMHUB_SERVER_PUBLIC_URL": "https://media.example.net:8443"})
    assert status_for(srv, "media.example.net").status == 200
    assert json.loads(status_for(srv, "evil.example").body)["error"] == "unknown_host"
