"""Logging under systemd: with JOURNAL_STREAM set, streamhub logs to journald with structured
fields and priorities instead of text lines.

There is no systemd here, so the test plays journald: inside a private mount namespace
(`unshare -m`) it mounts a tmpfs on /run/systemd/journal, binds the journal's datagram socket
there, starts the real binary with JOURNAL_STREAM set, and reads what arrives over the native
journal protocol. Nothing touches the host's /run.
"""

import json
import subprocess
import textwrap

from conftest import BIN, clean_env

# Plays journald inside the private mount namespace: `s` is its socket, `env` what systemd
# would give the service (also used by test_log_stall.py).
JOURNAL = textwrap.dedent(
    r'''
    import json, os, socket, subprocess, sys, time, urllib.request
    os.makedirs("/run/systemd/journal", exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd/journal"], check=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("/run/systemd/journal/socket")
    env = dict(os.environ, JOURNAL_STREAM="8:12345")
    '''
)

LISTENER = JOURNAL + textwrap.dedent(
    r'''
    s.settimeout(0.2)
    binary, media, data = sys.argv[1:4]
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--media-root", media,
                          "--data-dir", data, "--no-discovery"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline().strip()
    port = line.rsplit(":", 1)[1]
    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").read()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nope%0AINJECTED")
    except Exception:
        pass
    msgs, end = [], time.time() + 3
    while time.time() < end and sum(m.count("request\n") for m in msgs) < 2:
        try:
            msgs.append(s.recv(65536).decode("latin-1"))
        except socket.timeout:
            pass
    p.terminate()
    _, err = p.communicate(timeout=10)
    print(json.dumps({"messages": msgs, "stderr": err, "stdout": line}))
    '''
)


def parse(datagram):
    """Native journal protocol: `KEY=value\n`, or `KEY\n` + 64-bit LE length + value + `\n`."""
    data = datagram.encode("latin-1")
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            n = int.from_bytes(data[nl + 1:nl + 9], "little")
            v = data[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode("utf-8", "replace")
    return fields


def test_journald_gets_structured_fields(tmp_path):
    media, data = tmp_path / "media", tmp_path / "data"
    media.mkdir()
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "python3", "-c", LISTENER,
         str(BIN), str(media), str(data)],
        capture_output=True, text=True, timeout=60, env=clean_env(),
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["stdout"].startswith("listening on http://127.0.0.1:")
    records = [parse(m) for m in out["messages"]]
    requests = [f for f in records if f.get("MESSAGE") == "request"]
    assert len(requests) == 2, out["messages"]
    ok = next(f for f in requests if f.get("PATH") == "/healthz")
    assert ok["STATUS"] == "200" and ok["METHOD"] == "GET"
    # tracing-journald maps ERROR 3, WARN 4, INFO 5 (notice), DEBUG 6, TRACE 7
    assert ok["PRIORITY"] == "5"
    assert ok["SYSLOG_IDENTIFIER"] == "streamhub"
    for key in ("REQUEST_ID", "DURATION_MS", "PEER", "BYTES"):
        assert key in ok, ok
    # journald stamps the time itself: no duplicated timestamp in the message
    assert not any(k.startswith("TIMESTAMP") for k in ok)
    # a warning (first run: no users yet) maps to priority 4
    assert any(f.get("PRIORITY") == "4" for f in records), records
    # the raw, percent-encoded path is logged: an encoded newline stays encoded
    bad = next(f for f in requests if f.get("PATH") != "/healthz")
    assert bad["PATH"] == "/nope%0AINJECTED" and bad["STATUS"] == "404"
    # under journald nothing is written as text to stderr
    assert "INFO" not in out["stderr"], out["stderr"]
