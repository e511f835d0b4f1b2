"""Note revision storage (issue 12): revisions are kept forever, so an edit must cost the
size of the change, not of the note. 150 edits of a 1 MiB note over HTTP against the real
binary: the data dir (database + WAL) grows by a few MiB, not 150, and old revisions read
back byte for byte through the revisions API. Contract: docs/CONTRACT.md "Notes".
Everything talks to 127.0.0.1 only.
"""

import os
import random

import pytest

from conftest import AuthEnv, http_call, start_auth_server

EDITS = 150
WARM_UP = 50  # edits before the WAL file has reached its working size
# Bytes the data dir may grow by: over the 150 edits (whole copies took 150 MB), and over
# the last 100, once the WAL file (reused, not grown, after each checkpoint) has reached
# its working size of a few MB.
BOUND = 16 * 1000 * 1000
BOUND_LAST_100 = 5 * 1000 * 1000


@pytest.fixture(scope="module")
def env(module_servers, auth_media):
    srv = start_auth_server(module_servers, auth_media["root"], name="notes-storage",
                            login_max_failures=200)
    return AuthEnv(srv, second_member=False)


def prose(rng, size):
    """Text like a long note: words from a vocabulary of 2,000, in lines, unicode included."""
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyzéü") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)] + ["日本", "🎬", "ß"]
    out, n = [], 0
    while n < size:
        line = " ".join(rng.choice(vocab) for _ in range(rng.randint(4, 14))) + "\n"
        out.append(line)
        n += len(line.encode())
    return "".join(out).encode()[:size].decode("utf-8", "ignore")


def data_bytes(srv):
    return sum(os.path.getsize(os.path.join(srv.data_dir, f))
               for f in ("streamhub.db", "streamhub.db-wal")
               if os.path.exists(os.path.join(srv.data_dir, f)))


def test_150_edits_of_a_1_mib_note_grow_the_data_dir_by_the_change(env):
    srv, mia = env.srv, env.member
    rng = random.Random(12)
    body = prose(rng, 1_000_000)
    r = http_call(srv, "POST", "/api/notes", headers=mia.headers,
                  json_body={"title": "big", "body": body}, timeout=60)
    assert r.status == 201, r
    note, rev = r.json()["id"], r.json()["rev"]
    # The first revision and whatever the WAL holds so far are the baseline.
    before = data_bytes(srv)
    revs, bodies = [rev], [body]
    for i in range(EDITS):
        # Mostly a line appended; every tenth edit changes a word in the middle.
        if i % 10 == 9:
            at = len(body) // 2 + rng.randint(0, 1000)
            body = body[:at] + f"EDIT{i}" + body[at + 3:]
        else:
            body += f"line {i}: {rng.random()}\n"
        r = http_call(srv, "PUT", f"/api/notes/{note}", json_body={"body": body},
                      headers={**mia.headers, "If-Match": f'"{rev}"'}, timeout=60)
        assert r.status == 200, r
        rev = r.json()["rev"]
        revs.append(rev)
        bodies.append(body)
        if i + 1 == WARM_UP:
            warm = data_bytes(srv)
    after = data_bytes(srv)
    print(f"data dir: {before} before, {warm} after {WARM_UP} edits, {after} after {EDITS}")
    assert after - before < BOUND, f"the data dir grew by {after - before} bytes"
    assert after - warm < BOUND_LAST_100, f"the data dir grew by {after - warm} bytes"

    # Old revisions, deltas and keyframes alike, come back exactly as written.
    for i in (0, 1, 9, 10, 64, 65, 100, EDITS - 1, EDITS):
        r = http_call(srv, "GET", f"/api/notes/{note}/revisions/{revs[i]}",
                      headers=mia.headers, timeout=60)
        assert r.status == 200, r
        assert r.json()["body"] == bodies[i], f"revision {i} differs"
        assert r.json()["rev"] == revs[i]
    r = http_call(srv, "GET", f"/api/notes/{note}/revisions", headers=mia.headers)
    assert r.status == 200 and len(r.json()["revisions"]) == EDITS + 1, r
    # Restoring the first revision brings its text back, byte for byte.
    r = http_call(srv, "POST", f"/api/notes/{note}/restore", json_body={"rev": revs[0]},
                  headers=mia.headers, timeout=60)
    assert r.status == 200 and r.json()["body"] == bodies[0], r
