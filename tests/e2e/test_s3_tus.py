"""Resumable (tus) uploads with media on S3 (a real Garage node): an upload of several 5 MiB
parts with tuspy reads back identical; kill -9 mid-upload and the upload resumes from an
offset never past what was sent; a deleted, an expired and an orphaned upload have their
multipart upload aborted in the bucket while another node's survives; no-overwrite (409) at
creation and at commit; Garage down mid-upload is a 503 and the upload resumes once it is
back.
"""

import re
import subprocess
from urllib.parse import urlparse

import pytest

import garage_util
from conftest import ServerFactory, assert_error, wait_for
from conftest import sha256 as sha
from test_tus import (
    Creds,
    create,
    delete,
    fetch,
    head,
    meta,
    offset_of,
    patch,
    patched,
    post,
    raw_patch,
    tuspy,
)
from test_upload_faults import rand

MIB = 1024 * 1024
PREFIX = "tus"


def s3(garage, method, target):
    """A signed request to Garage for a bucket-level target (e.g. `?uploads`)."""
    r = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method,
         "--aws-sigv4", f"aws:amz:{garage_util.REGION}:s3",
         "--user", f"{garage_util.KEY_ID}:{garage_util.SECRET}",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         f"{garage.endpoint}/{garage_util.BUCKET}/{target}"],
        capture_output=True, timeout=60)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code or 0), body.decode("utf-8", "replace")


def multipart_uploads(garage):
    """(key, UploadId) of every unfinished multipart upload in the bucket
    (ListMultipartUploads)."""
    status, body = s3(garage, "GET", "?uploads=")
    assert status == 200, body
    return set(re.findall(r"<Key>([^<]*)</Key>\s*<UploadId>([^<]*)</UploadId>", body))


def staging(srv):
    d = srv.data_dir / "s3-staging"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    f = ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


def start(factory, garage, tmp, name, data=None, **more):
    env = {**garage.env(PREFIX), "STREAMHUB_S3_PART_SIZE_MIB": "5",
           "STREAMHUB_UPLOADS_MAX_BYTES": str(1 << 30), **more}
    root = tmp / "unused-root"
    root.mkdir(exist_ok=True)
    srv = factory.start(root, data_dir=data or tmp / "data", tls_listen=(), env=env, name=name)
    return srv


@pytest.fixture(scope="module")
def node(factory, garage, tmp_path_factory):
    srv = start(factory, garage, tmp_path_factory.mktemp("s3tus"), "s3tus")
    srv.creds = Creds(srv)
    return srv


def test_tuspy_upload_of_several_parts_reads_back_identical(node, garage, tmp_path):
    body = rand(17 * MIB + 12345, "s3-tus-17")
    src = tmp_path / "src.bin"
    src.write_bytes(body)
    up = tuspy(node, node.creds.member).uploader(
        str(src), chunk_size=3 * MIB, metadata={"filename": "big.bin", "folder": "t1"})
    up.upload()
    assert up.offset == len(body)
    got = fetch(node, "t1/big.bin")
    assert got.status_code == 200 and sha(got.content) == sha(body)
    status, raw = garage.curl_s3("GET", f"{PREFIX}/t1/big.bin")
    assert status == 200 and sha(raw) == sha(body), "the object in the bucket differs"
    assert staging(node) == [], "staging left after the commit"
    assert not [k for k, _ in multipart_uploads(garage) if k == f"{PREFIX}/t1/big.bin"]


@pytest.mark.parametrize("chunks", [[18 * MIB + 7], [12 * MIB, 12 * MIB + 5], [2 * MIB, 14 * MIB]])
def test_patches_of_several_parts_each_read_back_identical(node, garage, chunks):
    """A PATCH may carry many parts (tuspy sends a whole file in one by default; the web UI
    sends 32 MiB chunks): each part is sent as it fills, from the tail being written."""
    body = rand(sum(chunks), f"s3-tus-big-{len(chunks)}-{chunks[0]}")
    name = f"big-{len(chunks)}-{chunks[0]}.bin"
    loc = create(node, node.creds.member, len(body), name, "multi")
    at = 0
    for n in chunks:
        patched(node, node.creds.member, loc, at, body[at:at + n])
        at += n
    got = fetch(node, f"multi/{name}")
    assert got.status_code == 200 and sha(got.content) == sha(body)
    assert staging(node) == [], "staging left after the commit"


def test_one_patch_of_several_parts_reads_back_identical(node, garage):
    """A client that sends the whole file in one PATCH (tus-js-client's default): the parts
    after the first are read back from a rotated tail."""
    body = rand(17 * MIB + 4321, "s3-tus-one-patch")
    loc = create(node, node.creds.member, len(body), "one.bin", "t1")
    patched(node, node.creds.member, loc, 0, body)
    got = fetch(node, "t1/one.bin")
    assert got.status_code == 200 and sha(got.content) == sha(body)
    status, raw = garage.curl_s3("GET", f"{PREFIX}/t1/one.bin")
    assert status == 200 and sha(raw) == sha(body), "the object in the bucket differs"


def test_kill_9_mid_upload_resumes_identical(factory, garage, tmp_path):
    srv = start(factory, garage, tmp_path, "s3tus-kill")
    c = Creds(srv)
    body = rand(17 * MIB, "s3-tus-kill")
    loc = create(srv, c.member, len(body), "movie.bin", "k")
    patched(srv, c.member, loc, 0, body[:2 * MIB])
    req = raw_patch(srv, c.member, loc, 2 * MIB, len(body) - 2 * MIB)
    sent = 2 * MIB
    try:
        for i in range(2, 9):  # up to 9 MiB: one part sent, the tail holding the rest
            req.send(body[i * MIB:(i + 1) * MIB])
            sent += MIB
        key = staging(srv)[0]
        wait_for(lambda: "part " in (srv.data_dir / "s3-staging" / key / "manifest").read_text(),
                 20, "the first part to be recorded")
        srv.proc.kill()
        srv.proc.wait(timeout=10)
    finally:
        req.close()
    status, _ = garage.curl_s3("GET", f"{PREFIX}/k/movie.bin")
    assert status == 404, "a half-written object is visible"
    srv2 = start(factory, garage, tmp_path, "s3tus-kill2", data=srv.data_dir)
    off = offset_of(srv2, c.member, loc)
    assert 2 * MIB <= off <= sent, f"offset after kill -9: {off} (sent {sent})"
    src = tmp_path / "movie.bin"
    src.write_bytes(body)
    up = tuspy(srv2, c.member).uploader(str(src), url=srv2.url(loc), chunk_size=4 * MIB)
    assert up.offset == off
    up.upload()
    got = fetch(srv2, "k/movie.bin")
    assert got.status_code == 200 and sha(got.content) == sha(body)
    assert staging(srv2) == []


def test_deleted_upload_aborts_its_multipart_upload_only(node, garage):
    c = node.creds
    # "another node" sharing the bucket has an unfinished multipart upload of its own
    status, body = s3(garage, "POST", f"{PREFIX}/elsewhere/other.bin?uploads=")
    assert status == 200, body
    other = (f"{PREFIX}/elsewhere/other.bin", re.search(r"<UploadId>([^<]*)<", body).group(1))
    loc = create(node, c.member, 12 * MIB, "gone.bin", "del")
    patched(node, c.member, loc, 0, rand(6 * MIB, "del"))  # one part sent
    ours = [u for u in multipart_uploads(garage) if u[0] == f"{PREFIX}/del/gone.bin"]
    assert len(ours) == 1, multipart_uploads(garage)
    assert len(staging(node)) == 1
    r = delete(node, c.member, loc)
    assert r.status == 204, r
    left = multipart_uploads(garage)
    assert ours[0] not in left, "the deleted upload's multipart upload was not aborted"
    assert other in left, "another node's multipart upload was aborted"
    assert staging(node) == []


def test_existing_name_is_409_at_creation_and_at_commit(node, garage):
    c = node.creds
    assert garage.curl_s3("PUT", f"{PREFIX}/ex/there.bin", b"was here")[0] == 200
    r = post(node, c.member, 4, meta(filename="there.bin", folder="ex"))
    assert_error(r, 409, "exists")
    # the name is taken while the upload is still in its local tail (less than a part):
    # Garage itself aborts a multipart upload whose key is written meanwhile
    loc = create(node, c.member, 4 * MIB, "late.bin", "ex")
    patched(node, c.member, loc, 0, rand(2 * MIB, "late"))
    assert garage.curl_s3("PUT", f"{PREFIX}/ex/late.bin", b"first")[0] == 200
    r = patch(node, c.member, loc, 2 * MIB, rand(2 * MIB, "late2"))
    assert_error(r, 409, "exists")
    assert garage.curl_s3("GET", f"{PREFIX}/ex/late.bin") == (200, b"first")
    assert garage.curl_s3("GET", f"{PREFIX}/ex/there.bin") == (200, b"was here")
    assert not [u for u in multipart_uploads(garage) if u[0].startswith(f"{PREFIX}/ex/")]


def test_garage_down_mid_upload_is_503_then_resumes(node, garage, tmp_path):
    c = node.creds
    body = rand(13 * MIB, "s3-tus-down")
    loc = create(node, c.member, len(body), "down.bin", "dn")
    patched(node, c.member, loc, 0, body[:6 * MIB])
    garage.stop()
    try:
        r = patch(node, c.member, loc, 6 * MIB, body[6 * MIB:12 * MIB])
        assert_error(r, 503, "storage_unavailable")
        off = offset_of(node, c.member, loc)
        assert 6 * MIB <= off <= 12 * MIB, off
    finally:
        garage.start()
    src = tmp_path / "down.bin"
    src.write_bytes(body)
    up = tuspy(node, c.member).uploader(str(src), url=node.url(loc), chunk_size=4 * MIB)
    assert up.offset == off
    up.upload()
    got = fetch(node, "dn/down.bin")
    assert got.status_code == 200 and sha(got.content) == sha(body)
    assert urlparse(up.url).path == loc


def test_expired_upload_aborts_its_multipart_upload(factory, garage, tmp_path):
    srv = start(factory, garage, tmp_path, "s3tus-exp", STREAMHUB_UPLOADS_TUS_EXPIRY_SECS="2")
    c = Creds(srv)
    loc = create(srv, c.member, 12 * MIB, "old.bin", "exp")
    patched(srv, c.member, loc, 0, rand(6 * MIB, "exp"))  # one part sent
    key = f"{PREFIX}/exp/old.bin"
    assert [u for u in multipart_uploads(garage) if u[0] == key]
    # the periodic sweep (every 2 s here) expires it: state, staging and multipart upload
    wait_for(lambda: staging(srv) == [], 20, "the sweep to drop the expired upload")
    assert not [u for u in multipart_uploads(garage) if u[0] == key]
    assert head(srv, c.member, loc).status in (404, 410)


def test_orphan_staging_is_swept_and_its_multipart_upload_aborted(factory, garage, tmp_path):
    """Staging with no upload row (a crash between staging and recording the row): the sweep
    at start aborts the multipart upload it names, and nothing else."""
    def new_mpu(key):
        status, body = s3(garage, "POST", f"{key}?uploads=")
        assert status == 200, body
        return key, re.search(r"<UploadId>([^<]*)<", body).group(1)

    orphan, other = new_mpu(f"{PREFIX}/orph/x.bin"), new_mpu(f"{PREFIX}/orph/y.bin")
    folder = tmp_path / "data" / "s3-staging" / ("ab" * 16)
    folder.mkdir(parents=True)
    (folder / "manifest").write_text(
        f"streamhub-s3-upload 1\nupload-id {orphan[1]}\nobject {orphan[0]}\n")
    (folder / "tail-0").write_bytes(b"x" * 100)
    srv = start(factory, garage, tmp_path, "s3tus-orphan")
    wait_for(lambda: staging(srv) == [], 20, "the sweep to drop the orphan")
    left = multipart_uploads(garage)
    assert orphan not in left, "the orphan's multipart upload was not aborted"
    assert other in left, "a multipart upload this node never recorded was aborted"


def test_staging_that_cannot_be_written_is_a_clear_error_and_leaves_nothing(node, garage):
    """The data dir's staging cannot be made (here: a file in its place; the same path as a
    full disk or a permission error): the creation fails (500) and the log names it, the
    multipart upload begun for it is aborted, and the service keeps serving."""
    c, d = node.creds, node.data_dir / "s3-staging"
    if d.exists():
        d.rmdir()
    d.write_bytes(b"in the way")
    try:
        r = post(node, c.member, 4, meta(filename="nostage.bin", folder="ns"))
        assert_error(r, 500, "storage_error")
        # the client is not told the server's paths; the log says what and where
        assert "s3-staging" not in r.json()["message"]
        wait_for(lambda: "cannot create the S3 upload staging file" in node.stderr_text(), 5,
                 "the log to name the staging folder")
        assert not [u for u in multipart_uploads(garage) if u[0] == f"{PREFIX}/ns/nostage.bin"]
    finally:
        d.unlink()
    loc = create(node, c.member, 4, "nostage.bin", "ns")
    assert patch(node, c.member, loc, 0, b"done").status == 204
    assert garage.curl_s3("GET", f"{PREFIX}/ns/nostage.bin") == (200, b"done")


def test_data_dir_full_mid_patch_is_507_then_resumes(factory, garage, tmp_path):
    """The data dir (a small tmpfs) fills up while a PATCH stages bytes short of a part: 507
    `no_space` naming server.data_dir, the offset keeps what was made durable, and once there
    is room the upload resumes from it and reads back identical."""
    from test_data_dir_faults import fill, sh, unmount

    data = tmp_path / "data"
    data.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", data)
    try:
        srv = start(factory, garage, tmp_path, "s3tus-full", data=data)
        c = Creds(srv)
        body = rand(13 * MIB, "s3-tus-full")
        loc = create(srv, c.member, len(body), "full.bin", "fu")
        patched(srv, c.member, loc, 0, body[:2 * MIB])
        filler = fill(data)
        r = patch(srv, c.member, loc, 2 * MIB, body[2 * MIB:12 * MIB])
        assert_error(r, 507, "no_space", mentions="server.data_dir")
        assert srv.proc.poll() is None
        filler.unlink()
        off = offset_of(srv, c.member, loc)
        assert 2 * MIB <= off <= 12 * MIB, off
        patched(srv, c.member, loc, off, body[off:])
        got = fetch(srv, "fu/full.bin")
        assert got.status_code == 200 and sha(got.content) == sha(body)
        assert staging(srv) == []
    finally:
        factory.stop_all()
        unmount(data)
