"""A log output that stops taking lines must not stop the service.

stderr to a pipe nobody reads, or a journald that has fallen behind (its datagram queue is
full): the service used to write each access line from the thread that served the request,
blocked there, and froze after ~370 requests. Lines now go through a bounded queue to a
writer thread: while the output is stuck they are dropped and counted, every request is still
answered, and once the output takes lines again the service says how many it dropped."""

import json
import os
import select
import socket
import subprocess
import textwrap
import time

from conftest import BIN, clean_env
from test_journald import JOURNAL, parse

REQUESTS = 1500  # a few times the pipe's 64 KiB and the queue's 1,024 lines


def get(port, path="/healthz"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_stderr_nobody_reads_does_not_stop_requests(tmp_path):
    media, data = tmp_path / "media", tmp_path / "data"
    media.mkdir()
    p = subprocess.Popen([str(BIN), "serve", "--listen", "127.0.0.1:0", "--media-root", str(media),
                          "--data-dir", str(data), "--no-discovery"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    try:
        port = int(p.stdout.readline().decode().strip().rsplit(":", 1)[1])
        # stderr is not read meanwhile: its pipe fills after a few hundred lines.
        t0 = time.monotonic()
        for _ in range(REQUESTS):
            assert get(port) == 200
        took = time.monotonic() - t0
        # Now read it: the lines the pipe held, then the writer's count of what it dropped.
        os.set_blocking(p.stderr.fileno(), False)
        text, deadline = b"", time.monotonic() + 20
        while b"log lines dropped" not in text and time.monotonic() < deadline:
            select.select([p.stderr], [], [], 0.5)
            text += p.stderr.read() or b""
        text = text.decode("utf-8", "replace")
        assert "log lines dropped" in text, f"{took:.1f} s; stderr tail: {text[-2000:]}"
        line = next(ln for ln in text.splitlines() if "log lines dropped" in ln)
        assert "WARN" in line and int(line.split("dropped=")[1].split()[0]) > 0, line
        # And logging goes on as before.
        assert get(port, "/after-the-stall") == 404
        deadline = time.monotonic() + 10
        while "/after-the-stall" not in text and time.monotonic() < deadline:
            select.select([p.stderr], [], [], 0.5)
            text += (p.stderr.read() or b"").decode("utf-8", "replace")
        assert "/after-the-stall" in text
        # Every request is either in the log or in the count: an operator can tell the gap.
        logged = text.count('path="/healthz"')
        dropped = int(line.split("dropped=")[1].split()[0])
        assert logged + dropped >= REQUESTS, f"{logged} logged + {dropped} dropped < {REQUESTS}"
    finally:
        p.terminate()
        p.wait(10)


LISTENER = JOURNAL + textwrap.dedent(
    r'''
    binary, media, data, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--media-root", media,
                          "--data-dir", data, "--no-discovery"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    port = int(p.stdout.readline().strip().rsplit(":", 1)[1])
    # journald stalled: nothing is received while the requests run.
    answered = 0
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
        c.close()
        answered += data.startswith(b"HTTP/1.1 200")
    s.settimeout(2)
    msgs, end = [], time.time() + 20
    while time.time() < end and not any(b"log lines dropped" in m for m in msgs):
        try:
            msgs.append(s.recv(1 << 20))
        except socket.timeout:
            pass
    p.terminate()
    p.wait(10)
    print(json.dumps({"answered": answered, "messages": [m.decode("latin-1") for m in msgs]}))
    '''
)


def test_a_stalled_journald_does_not_stop_requests(tmp_path):
    media, data = tmp_path / "media", tmp_path / "data"
    media.mkdir()
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "python3", "-c", LISTENER,
         str(BIN), str(media), str(data), str(REQUESTS)],
        capture_output=True, text=True, timeout=180, env=clean_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["answered"] == REQUESTS
    records = [parse(m) for m in out["messages"]]
    notice = [f for f in records if "log lines dropped" in f.get("MESSAGE", "")]
    assert notice, [f.get("MESSAGE") for f in records[-5:]]
    assert notice[0]["PRIORITY"] == "4" and int(notice[0]["DROPPED"]) > 0, notice[0]
