"""Notes durability (issue #6, "Data safety"): a client writes notes while the server is
`kill -9`ed several times and restarted on the same data dir. Every write the client got a
201/200 for must be there afterwards with its acknowledged content and revision, and the
database must pass `PRAGMA integrity_check` (opened read-only after a clean stop).
"""

import random
import sqlite3
import subprocess
import threading
import time
import shutil

from conftest import (
    AUTH_PW,
    auth_config,
    cli_add_user,
    http_call,
    must_login,
    new_token,
)

KILLS = 4
EPOCH_SECS = 2.2  # time the writer runs between two kills (plus a random jitter)


class Writer(threading.Thread):
    """Creates notes (and edits some) in a loop; remembers what was acknowledged."""

    def __init__(self, state, headers):
        super().__init__(daemon=True)
        self.state = state
        self.headers = dict(headers)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}       # id -> note as acknowledged (rev, title, body, tags, visibility)
        self.uncertain = {}   # id -> [acceptable (title, body)] after an unanswered edit
        self.ack_times = []   # monotonic time of every acknowledgement
        self.unexpected = []  # responses that are neither success nor a dropped connection
        self.failures = 0
        self.rng = random.Random(6)

    def acks(self):
        with self.lock:
            return len(self.ack_times)

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            srv = self.state["srv"]
            editable = [k for k in self.acked if k not in self.uncertain]
            if i % 4 == 0 and editable:
                self.edit(srv, self.rng.choice(editable), i)
            else:
                self.create(srv, i)

    def create(self, srv, i):
        doc = {
            "title": f"durable {i}",
            "body": f"body of note {i} \u2014 " + "lorem ipsum " * self.rng.randint(1, 40),
            "tags": ["dur", f"n{i % 7}"],
            "visibility": "public" if i % 2 else "private",
        }
        try:
            r = http_call(srv, "POST", "/api/notes", headers=self.headers, json_body=doc, timeout=10)
            note = r.json() if r.status == 201 else None
        except (OSError, ConnectionError, ValueError):
            self.failures += 1
            time.sleep(0.02)
            return
        if note is None:
            self.unexpected.append(("POST", r.status, r.body[:300]))
            time.sleep(0.02)
            return
        assert note["title"] == doc["title"] and note["body"] == doc["body"]
        with self.lock:
            self.acked[note["id"]] = note
            self.ack_times.append(time.monotonic())

    def edit(self, srv, nid, i):
        before = self.acked[nid]
        new_body = f"edited in step {i}: " + before["body"][:80]
        try:
            r = http_call(srv, "PUT", f"/api/notes/{nid}", timeout=10,
                          headers={**self.headers, "If-Match": f'"{before["rev"]}"'},
                          json_body={"body": new_body})
            note = r.json() if r.status == 200 else None
        except (OSError, ConnectionError, ValueError):
            # the edit may or may not have committed: both states are acceptable, and the
            # note is not edited again (its revision is unknown)
            self.failures += 1
            with self.lock:
                self.uncertain[nid] = [before["body"], new_body]
            time.sleep(0.02)
            return
        if note is None:
            self.unexpected.append(("PUT", r.status, r.body[:300]))
            return
        assert note["body"] == new_body and note["rev"] != before["rev"]
        with self.lock:
            self.acked[nid] = note
            self.ack_times.append(time.monotonic())


def start(servers, media_root, data):
    return servers.start(media_root, data_dir=data, config=auth_config(login_max_failures=200),
                         tls_listen=(), name="durable")


def test_kill9_loop_keeps_every_acknowledged_write(servers, auth_media, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cli_add_user(data, "mia", init=True)  # no setup step needed: a user exists before the first start
    srv = start(servers, auth_media["root"], data)
    cred = new_token(srv, must_login(srv, "mia", AUTH_PW), "durability")
    state = {"srv": srv}
    w = Writer(state, cred.headers)
    w.start()

    t0 = time.monotonic()
    per_epoch = []
    try:
        for k in range(KILLS):
            n0 = w.acks()
            time.sleep(EPOCH_SECS + random.random() * 0.4)
            # make sure this epoch wrote something before killing (slow machines)
            deadline = time.monotonic() + 10
            while w.acks() - n0 < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            per_epoch.append(w.acks() - n0)
            old = state["srv"]
            old.proc.kill()  # SIGKILL: no chance to flush or checkpoint
            assert old.proc.wait(timeout=10) == -9
            state["srv"] = start(servers, auth_media["root"], data)
        kills_done = time.monotonic() - t0
        n0 = w.acks()
        deadline = time.monotonic() + 10
        while w.acks() - n0 < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        per_epoch.append(w.acks() - n0)
    finally:
        w.stop.set()
        w.join(timeout=30)
    assert not w.is_alive()
    assert kills_done < 20, f"{KILLS} kills took {kills_done:.1f}s"
    assert all(n >= 5 for n in per_epoch), f"acknowledged writes per epoch: {per_epoch}"
    assert not w.unexpected, f"responses other than success or a dropped connection: {w.unexpected[:5]}"

    srv = state["srv"]
    missing, wrong = [], []
    for nid, note in sorted(w.acked.items()):
        r = http_call(srv, "GET", f"/api/notes/{nid}", headers=cred.headers)
        if r.status != 200:
            missing.append((nid, note["title"], r.status))
            continue
        got = r.json()
        if nid in w.uncertain:
            if got["body"] not in w.uncertain[nid] or got["title"] != note["title"]:
                wrong.append((nid, "uncertain edit", got["body"][:60]))
            continue
        for k in ("rev", "title", "body", "tags", "visibility"):
            if got[k] != note[k]:
                wrong.append((nid, k, note[k] if k != "body" else note[k][:60],
                              got[k] if k != "body" else got[k][:60]))
    assert not missing, f"{len(missing)} of {len(w.acked)} acknowledged notes lost: {missing[:5]}"
    assert not wrong, f"acknowledged content differs: {wrong[:5]}"

    # the index agrees: every acknowledged note is listed under its tag
    listed, page = set(), 1
    while True:
        r = http_call(srv, "GET", f"/api/notes?tag=dur&per_page=100&page={page}", headers=cred.headers)
        assert r.status == 200, r
        j = r.json()
        listed |= {it["id"] for it in j["items"]}
        if not j["has_more"]:
            break
        page += 1
    assert set(w.acked) <= listed, f"{len(set(w.acked) - listed)} acknowledged notes not listed"

    assert srv.stop() == 0, srv.stderr_text()[-3000:]
    db = data / "streamhub.db"
    assert db.exists()
    if shutil.which("sqlite3"):
        r = subprocess.run(["sqlite3", "-readonly", str(db), "PRAGMA integrity_check"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        n_rows = conn.execute("SELECT count(*) FROM notes").fetchone()[0]
    finally:
        conn.close()
    assert n_rows >= len(w.acked)
    print(f"durability: {len(w.acked)} notes acknowledged over {KILLS} kills "
          f"(per epoch {per_epoch}, {w.failures} dropped requests, {len(w.uncertain)} uncertain edits)")
