"""One `serve` per data dir (newcomer pass): a second service started on the data dir of a
running one (the systemd unit runs, someone starts `streamhub serve` by hand with the same
config) used to start beside it on the same database, and its exit removed the first one's
control socket, so `streamhub peers` said the service was not running."""

import subprocess

from conftest import BIN, clean_env, http_call, wait_for


def test_a_second_service_on_the_same_data_dir_is_refused_and_the_first_keeps_working(
        server_factory, tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    first = server_factory.start(media, data_dir=tmp_path / "d", name="first")
    sock = tmp_path / "d" / "sync" / "control.sock"
    wait_for(sock.exists, 20, "the control socket")
    r = subprocess.run(
        [str(BIN), "serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
         "--media-root", str(media), "--data-dir", str(tmp_path / "d"), "--no-discovery"],
        capture_output=True, text=True, timeout=30, env=clean_env(None), stdin=subprocess.DEVNULL)
    assert r.returncode != 0, r
    assert "another streamhub is serving with this data dir" in r.stderr, r.stderr
    assert f"pid {first.proc.pid}" in r.stderr, r.stderr
    assert "listening on" not in r.stdout
    # The first one is untouched: it answers, its control socket is still there.
    assert http_call(first, "GET", "/healthz").status == 200
    assert sock.exists()
    p = subprocess.run([str(BIN), "peers", "--data-dir", str(tmp_path / "d")], capture_output=True,
                       text=True, timeout=30, env=clean_env(None), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    # Once the first has stopped, the data dir can be served again (the lock went with it).
    first.stop()
    second = server_factory.start(media, data_dir=tmp_path / "d", name="second")
    assert http_call(second, "GET", "/healthz").status == 200
