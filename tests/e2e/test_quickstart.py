"""docs/QUICKSTART.md, run as written: every ```sh block, in order, in one shell, in the folder
the service was started from (as the page says), and every `# ⇒ text` line under a command
must appear in what that block printed. The ```sh-serve block is what this test starts.
Only the address changes: the page's port 8080 becomes the port the test server got.
"""

import os
import re
import subprocess
from pathlib import Path

from conftest import BIN, REPO, clean_env, spawn, Server

DOC = REPO / "docs" / "QUICKSTART.md"
MARK = "@@quickstart-block-{}@@"


def blocks():
    text = DOC.read_text()
    found = re.findall(r"```(sh|sh-serve)\n(.*?)```", text, flags=re.S)
    assert found, "no ```sh blocks in docs/QUICKSTART.md"
    return found


def test_the_serve_line_is_what_this_test_runs():
    serve = [b for kind, b in blocks() if kind == "sh-serve"]
    assert serve == ["streamhub serve --listen 127.0.0.1:8080 --tls-listen 127.0.0.1:8443 "
                     "--no-discovery\n"], serve


def test_every_command_of_the_quickstart_works(tmp_path):
    work = tmp_path / "home"
    work.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(BIN, bindir / "streamhub")
    proc, err = spawn(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
                       "--no-discovery"], tmp_path / "srv", cwd=work, name="quickstart")
    srv = Server(proc, err, work / "media", work / "data", tmp_path / "srv")
    try:
        srv.wait_listening(1, 1)
        script = ["set -euo pipefail"]
        expected = []
        for i, (kind, body) in enumerate(blocks()):
            if kind != "sh":
                continue
            body = body.replace("127.0.0.1:8080", f"127.0.0.1:{srv.port}")
            script.append(f"echo {MARK.format(i)}")
            script.append(body)
            expected.append((i, [m.strip() for m in re.findall(r"^# ⇒ (.*)$", body, re.M)]))
        env = clean_env({"PATH": f"{bindir}:{os.environ['PATH']}"})
        r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"the quickstart failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        outputs = {}
        parts = re.split(r"@@quickstart-block-(\d+)@@\n", r.stdout)
        for n, out in zip(parts[1::2], parts[2::2]):
            outputs[int(n)] = out
        for i, wants in expected:
            assert wants, f"block {i} checks nothing: add a '# ⇒' line"
            for w in wants:
                assert w in outputs.get(i, ""), f"block {i}: {w!r} not in\n{outputs.get(i)!r}"
        # "database: …" went to stderr, naming the service's own database
        assert f"database: {work / 'data' / 'streamhub.db'}" in r.stderr, r.stderr
    finally:
        srv.stop()
