"""Two nodes serving one shared media folder (issue 13, "Multi-node deployment"): each stages
uploads in `<media>/.streamhub-staging/<node-id>/` (the node id: hex SHA-256 of the certificate
in `<data_dir>/sync/identity.pem`), and one node's start-up clean and tus sweeps never touch
the other's uploads in progress. Two real servers on 127.0.0.1, one media root, two data dirs.
"""

import base64
import hashlib
import os
import re
import time
from pathlib import Path

from conftest import wait_for
from test_tus import STAGING, Creds, create, fetch, patched, restart, start
from test_upload_faults import RawPut, rand

MIB = 1024 * 1024


def node_id(data_dir):
    """The node id a server stages under: hex SHA-256 of its sync certificate's DER."""
    pem = (Path(data_dir) / "sync" / "identity.pem").read_text()
    m = re.search(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", pem, re.S)
    assert m, "no certificate in the identity file"
    return hashlib.sha256(base64.b64decode("".join(m.group(1).split()))).hexdigest()


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in Path(d).rglob("*") if p.is_file())


def test_a_nodes_restart_leaves_the_other_nodes_uploads_alone(servers, tmp_path_factory):
    base = tmp_path_factory.mktemp("shared")
    root = base / "media"
    root.mkdir()
    a = start(servers, root, base / "a", "node-a")
    ca = Creds(a)
    b = start(servers, root, base / "b", "node-b")
    ida, idb = node_id(a.data_dir), node_id(b.data_dir)
    assert ida != idb
    st = root / STAGING

    # On A: a tus upload half done, and a PUT half sent.
    film = rand(6 * MIB + 3, "shared-film")
    loc = create(a, ca.member, len(film), "film.bin", "shared")
    patched(a, ca.member, loc, 0, film[:3 * MIB])
    clip = rand(2 * MIB, "shared-clip")
    put = RawPut(a.port, "/media/shared/clip.bin", ca.member.headers, length=len(clip))
    try:
        put.send(clip[:MIB])
        wait_for(lambda: any(p.stat().st_size >= MIB for p in st.glob(f"{ida}/*.part")), 10,
                 "A's PUT in its staging folder")
        a_staged = files_under(st / ida)
        assert len(a_staged) == 2, a_staged

        # B's own leftovers show that its clean and its sweep ran: a crashed PUT's part, and
        # resumable data no upload of B's refers to, written before B's restart.
        (st / idb / "resumable").mkdir(parents=True, exist_ok=True)
        (st / idb / "crash.part").write_bytes(b"x")
        orphan = st / idb / "resumable" / "orphan.upload"
        orphan.write_bytes(b"o")
        hour_ago = time.time() - 3600
        os.utime(orphan, (hour_ago, hour_ago))

        b2 = restart(servers, b, "node-b2")
        assert not (st / idb / "crash.part").exists(), "B's start did not clean its own folder"
        wait_for(lambda: not orphan.exists(), 10, "B's sweep at start")
        assert files_under(st / ida) == a_staged, "B's start or sweep touched A's uploads"

        # A finishes both: complete and correct, and B serves the same bytes.
        put.send(clip[MIB:])
        r = put.response()
        assert r.status == 201, r
    finally:
        put.close()
    patched(a, ca.member, loc, 3 * MIB, film[3 * MIB:])
    assert (root / "shared/film.bin").read_bytes() == film
    assert (root / "shared/clip.bin").read_bytes() == clip
    for srv in (a, b2):
        for name, body in (("film.bin", film), ("clip.bin", clip)):
            g = fetch(srv, f"shared/{name}")
            assert g.status_code == 200 and g.content == body, (srv.port, name, g.status_code)
    assert files_under(st) == [], "staging data left after both uploads committed"
    assert sorted(p.name for p in st.iterdir()) == sorted([ida, idb])
