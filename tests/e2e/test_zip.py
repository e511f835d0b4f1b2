"""`GET /api/library/zip?path=DIR`: a folder as a zip, streamed as it is built.

Real archives read back with Python's `zipfile` (and `unzip -t`): exactly the visible files
and folders, byte for byte, under names relative to the folder; hidden names, streamhub's
own `.streamhub-*` files and whatever a link out of the root points at are absent. JSON
errors before the first byte, `anonymous_read`, bounded server memory with a slow then fast
reader, Zip64 for a file over 4 GiB and for more than 65,535 entries, a client that hangs
up, and a file that vanishes mid-archive (the download breaks off instead of looking whole).
"""

import hashlib
import http.client
import os
import shutil
import subprocess
import time
import zipfile
from urllib.parse import quote

import pytest

from conftest import (
    rss_kib,
    AUTH_PW,
    assert_error,
    basic_auth,
    cli_add_user,
    http_call,
    wait_for,
)

MIB = 1024 * 1024
SECRET = b"ZIP-SECRET-outside-the-media-root-must-not-leak\n"
HIDDEN = b"ZIP-HIDDEN-dotfile-must-not-leak\n"
MTIME = 1_600_000_001  # odd on purpose: MS-DOS times have 2-second steps
BIG = "big.bin"
BIG_SIZE = 1536 * MIB  # the memory test's file (sparse)
HUGE_SIZE = 4200 * MIB  # over 4 GiB: Zip64 sizes and offsets (sparse)
MANY = 65_600  # past 65,535 entries: the Zip64 end record


def rand(n, seed):
    return hashlib.shake_256(seed.encode()).digest(n)


ALBUM = {
    "été/日本.txt": "日本語のテキスト\n".encode(),
    "with space.txt": b"a name with spaces\n",
    "Live: 12:30.txt": b"colons in a name\n",
    "sub/deeper/rand.bin": rand(300_000, "rand"),
    "sub/small.txt": b"small\n",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("ziptree")
    root = base / "media"
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    album = root / "album"
    for rel, data in ALBUM.items():
        p = album / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (album / "empty dir").mkdir()
    (album / ".hidden.txt").write_bytes(HIDDEN)
    (album / ".hiddendir").mkdir()
    (album / ".hiddendir" / "inside.txt").write_bytes(HIDDEN)
    (root / "shared.bin").write_bytes(rand(5000, "shared"))
    (root / "plain.txt").write_bytes(b"a file, not a folder\n")
    (album / "link_in.bin").symlink_to("../shared.bin")  # a file inside the root: included
    (album / "linkdir_in").symlink_to("sub", target_is_directory=True)  # listed, not entered
    (album / "link_out.txt").symlink_to(outside / "secret.txt")  # out of the root: absent
    (album / "linkdir_out").symlink_to(outside, target_is_directory=True)
    for p in sorted(album.rglob("*")):
        if not p.is_symlink():
            os.utime(p, (MTIME, MTIME))
    os.utime(album, (MTIME, MTIME))
    return {"root": root, "base": base, "album": album}


@pytest.fixture(scope="module")
def srv(module_servers, tree):
    return module_servers.start(tree["root"], tls_listen=(), name="zip")


@pytest.fixture(scope="module")
def big(module_servers, tmp_path_factory):
    """A second root for the big archives (sparse files: no disk used by the sources)."""
    root = tmp_path_factory.mktemp("zipbig") / "media"
    (root / "bigdir").mkdir(parents=True)
    with open(root / "bigdir" / BIG, "wb") as f:
        f.truncate(BIG_SIZE)
    (root / "small").mkdir()
    (root / "small" / "one.txt").write_bytes(b"one\n")
    return module_servers.start(root, tls_listen=(), name="zip-big")


def zip_url(path):
    return "/api/library/zip?path=" + quote(path, safe="")


def open_zip(srv, path, headers=None):
    """Starts a download; returns (connection, response) with the body unread."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    conn.request("GET", zip_url(path), headers=headers or {})
    return conn, conn.getresponse()


def save_body(resp, dest, piece=MIB):
    """Reads the (dechunked) body to a file; returns its length. http.client raises
    IncompleteRead when the chunked body breaks off before its last chunk."""
    n = 0
    with open(dest, "wb") as f:
        while True:
            b = resp.read(piece)
            if not b:
                return n
            f.write(b)
            n += len(b)


def download(srv, path, dest, headers=None):
    conn, resp = open_zip(srv, path, headers)
    try:
        assert resp.status == 200, (resp.status, resp.read()[:300])
        save_body(resp, dest)
        return resp
    finally:
        conn.close()


def need_disk(where, n):
    free = shutil.disk_usage(where).free
    assert free >= n + 256 * MIB, (
        f"this test saves a {n / 2**30:.1f} GiB archive under {where} and needs that much free "
        f"disk plus 256 MiB; only {free / 2**30:.1f} GiB is free"
    )


def unzip_test(path):
    assert shutil.which("unzip"), "unzip (Info-ZIP) is needed: scripts/test.sh installs it"
    r = subprocess.run(["unzip", "-tqq", str(path)], capture_output=True, timeout=600)
    assert r.returncode == 0, f"unzip -t: rc={r.returncode} {r.stdout[-2000:]!r} {r.stderr[-2000:]!r}"


def dos_time(ts):
    t = time.gmtime(ts)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec - t.tm_sec % 2)


def test_a_folder_is_exactly_its_visible_files_and_folders(srv, tree, tmp_path):
    dest = tmp_path / "album.zip"
    resp = download(srv, "album", dest)
    assert resp.getheader("Content-Type") == "application/zip"
    assert resp.getheader("Content-Disposition") == (
        "attachment; filename=\"album.zip\"; filename*=UTF-8''album.zip")
    assert resp.getheader("Cache-Control") == "no-store"
    assert resp.getheader("Content-Length") is None
    assert resp.getheader("Transfer-Encoding") == "chunked"

    raw = dest.read_bytes()
    assert SECRET not in raw, "a link out of the root was followed"
    assert HIDDEN not in raw, "a hidden file is in the archive"
    with zipfile.ZipFile(dest) as zf:
        assert zf.testzip() is None  # every CRC checks out
        infos = {i.filename: i for i in zf.infolist()}
        want_files = {rel.replace(":", "\uff1a"): data for rel, data in ALBUM.items()}
        want_files["link_in.bin"] = (tree["root"] / "shared.bin").read_bytes()
        want_dirs = {"été/", "sub/", "sub/deeper/", "empty dir/", "linkdir_in/"}
        assert set(infos) == set(want_files) | want_dirs
        for name, data in want_files.items():
            got = zf.read(name)
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), name
            i = infos[name]
            assert i.compress_type == zipfile.ZIP_STORED, name
            assert i.flag_bits & 0x800, f"no UTF-8 flag on {name!r}"
            assert i.file_size == len(data)
        for name in want_dirs:
            assert infos[name].is_dir() and infos[name].file_size == 0, name
        # mtimes from storage (the MS-DOS fields are UTC)
        assert infos["été/日本.txt"].date_time == dos_time(MTIME)
        assert infos["empty dir/"].date_time == dos_time(MTIME)
        shared_mtime = (tree["root"] / "shared.bin").stat().st_mtime
        assert infos["link_in.bin"].date_time == dos_time(shared_mtime)
    unzip_test(dest)


def test_the_root_is_media_zip_with_names_relative_to_it(srv, tree, tmp_path):
    assert (tree["root"] / ".streamhub-root").exists()  # the service's own marker is there
    for path in ("/", ""):
        dest = tmp_path / "media.zip"
        resp = download(srv, path, dest)
        assert resp.getheader("Content-Disposition") == (
            "attachment; filename=\"media.zip\"; filename*=UTF-8''media.zip")
        raw = dest.read_bytes()
        assert b".streamhub" not in raw and HIDDEN not in raw and SECRET not in raw
        with zipfile.ZipFile(dest) as zf:
            names = zf.namelist()
            assert zf.read("album/été/日本.txt") == ALBUM["été/日本.txt"]
            assert zf.read("plain.txt") == (tree["root"] / "plain.txt").read_bytes()
        assert "album/sub/deeper/rand.bin" in names and "album/empty dir/" in names
        assert not [n for n in names if any(x.startswith(".") for x in n.split("/"))], names


def test_a_non_ascii_folder_name_in_content_disposition(srv):
    conn, resp = open_zip(srv, "album/été")
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Disposition") == (
            "attachment; filename=\"_t_.zip\"; filename*=UTF-8''%C3%A9t%C3%A9.zip")
        body = resp.read()
    finally:
        conn.close()
    assert "日本.txt".encode() in body


def test_errors_are_json_before_anything_is_sent(srv):
    assert_error(http_call(srv, "GET", zip_url("nope")), 404, "not_found")
    assert_error(http_call(srv, "GET", zip_url("album/nope/deeper")), 404, "not_found")
    assert_error(http_call(srv, "GET", zip_url("album/.hiddendir")), 404, "not_found")
    assert_error(http_call(srv, "GET", zip_url("plain.txt")), 400, "invalid")
    assert_error(http_call(srv, "GET", zip_url("plain.txt/x")), 404, "not_found")
    for bad in ("../outside", "album/../..", "album//sub", "//x"):
        assert_error(http_call(srv, "GET", zip_url(bad)), 400, "bad_path")
    assert_error(http_call(srv, "GET", zip_url("album/linkdir_out")), 403, "outside_root")
    assert_error(http_call(srv, "GET", "/api/library/zip?path=album&x=1"), 400, "bad_query")
    assert_error(http_call(srv, "POST", zip_url("album")), 405, "method_not_allowed")


def test_anonymous_access_follows_anonymous_read(module_servers, srv, tree, tmp_path):
    closed = module_servers.start(tree["root"], tls_listen=(), name="zip-closed",
                                  config="[auth]\nanonymous_read = false\n")
    assert_error(http_call(closed, "GET", zip_url("album/sub")), 401, "unauthorized")
    cli_add_user(closed.data_dir, "zipper")
    r = http_call(closed, "GET", zip_url("album/sub"), headers=basic_auth("zipper", AUTH_PW))
    assert r.status == 200, r
    dest = tmp_path / "sub.zip"
    dest.write_bytes(r.body)
    with zipfile.ZipFile(dest) as zf:
        assert zf.read("small.txt") == ALBUM["sub/small.txt"]
    # wrong credentials are 401 even where anonymous reading is allowed
    r = http_call(srv, "GET", zip_url("album/sub"), headers=basic_auth("nobody", "wrong password"))
    assert_error(r, 401)


def open_fds_to(pid, name):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.endswith("/" + name):
            out.append(target)
    return out


def test_memory_stays_bounded_with_a_slow_then_fast_reader(big, tmp_path):
    srv = big
    need_disk(tmp_path, BIG_SIZE)
    pid = srv.proc.pid
    warm = http_call(srv, "GET", zip_url("small"))  # fault in the code paths first
    assert warm.status == 200
    base = rss_kib(pid)
    peak = base
    dest = tmp_path / "big.zip"
    conn, resp = open_zip(srv, "bigdir")
    try:
        assert resp.status == 200
        slow_until = time.monotonic() + 4
        n = 0
        with open(dest, "wb") as f:
            while time.monotonic() < slow_until:  # slow: 16 KiB every 20 ms
                b = resp.read(16 * 1024)
                f.write(b)
                n += len(b)
                peak = max(peak, rss_kib(pid))
                time.sleep(0.02)
            assert n < 64 * MIB, "the slow phase was not slow"
            while True:  # then as fast as we can
                b = resp.read(4 * MIB)
                if not b:
                    break
                f.write(b)
                n += len(b)
                peak = max(peak, rss_kib(pid))
    finally:
        conn.close()
    growth_mib = (peak - base) / 1024
    print(f"server VmRSS {base / 1024:.1f} MiB before, {peak / 1024:.1f} MiB at most "
          f"(+{growth_mib:.1f} MiB) while streaming {n / MIB:.0f} MiB")
    assert growth_mib < 64, f"VmRSS grew by {growth_mib:.1f} MiB while zipping a 1.5 GiB file"
    try:
        with zipfile.ZipFile(dest) as zf:
            (info,) = zf.infolist()
            assert info.filename == BIG and info.file_size == BIG_SIZE
    finally:
        dest.unlink(missing_ok=True)


def test_a_client_that_hangs_up_stops_the_walk_and_the_server_goes_on(big, tmp_path):
    srv = big
    pid = srv.proc.pid
    conn, resp = open_zip(srv, "bigdir")
    assert resp.status == 200
    assert len(resp.read(2 * MIB)) == 2 * MIB
    assert open_fds_to(pid, BIG), "the file being zipped should be open"
    conn.close()  # hang up mid-file
    wait_for(lambda: not open_fds_to(pid, BIG), timeout=10,
             what="the server to close the file after the client left")
    dest = tmp_path / "after.zip"
    download(srv, "small", dest)
    with zipfile.ZipFile(dest) as zf:
        assert zf.read("one.txt") == b"one\n"


def test_a_file_that_vanishes_mid_archive_breaks_the_download_off(big, tmp_path):
    srv = big
    d = srv.media_root / "vanishing"
    d.mkdir()
    with open(d / "a-first.bin", "wb") as f:
        f.truncate(256 * MIB)
    (d / "b-gone.txt").write_bytes(b"deleted while the first file streams\n")
    conn, resp = open_zip(srv, "vanishing")
    try:
        assert resp.status == 200
        assert len(resp.read(MIB)) == MIB
        (d / "b-gone.txt").unlink()  # listed already, opened only after a-first.bin
        with pytest.raises(http.client.IncompleteRead):
            save_body(resp, tmp_path / "broken.zip")
    finally:
        conn.close()
    wait_for(lambda: "zip download cut off" in srv.stderr_text(), timeout=5,
             what="the cut-off to be logged")
    assert http_call(srv, "GET", "/healthz").status == 200


def test_a_file_over_4_gib_makes_a_zip64_archive(big, tmp_path):
    srv = big
    d = srv.media_root / "huge"
    d.mkdir()
    with open(d / "huge.bin", "wb") as f:
        f.truncate(HUGE_SIZE)
    # after the big file, at an offset past 4 GiB
    (d / "z-after.txt").write_bytes(b"a file whose header starts past 4 GiB\n")
    need_disk(tmp_path, HUGE_SIZE)
    dest = tmp_path / "huge.zip"
    try:
        download(srv, "huge", dest)
        assert dest.stat().st_size > HUGE_SIZE
        with zipfile.ZipFile(dest) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            assert set(infos) == {"huge.bin", "z-after.txt"}
            assert infos["huge.bin"].file_size == HUGE_SIZE
            assert infos["z-after.txt"].header_offset > 4 * 1024**3
            assert zf.read("z-after.txt") == b"a file whose header starts past 4 GiB\n"
            with zf.open("huge.bin") as f:  # reading to the end checks the CRC
                n = 0
                while b := f.read(8 * MIB):
                    n += len(b)
            assert n == HUGE_SIZE
        unzip_test(dest)
    finally:
        dest.unlink(missing_ok=True)


def test_more_than_65535_entries_make_a_zip64_archive(big, tmp_path):
    srv = big
    d = srv.media_root / "many"
    d.mkdir()
    for i in range(MANY):
        (d / f"f{i:05d}").touch()
    (d / "f00042").write_bytes(b"forty-two\n")
    dest = tmp_path / "many.zip"
    download(srv, "many", dest)
    raw = dest.read_bytes()
    assert b"PK\x06\x06" in raw[-200:], "no Zip64 end of central directory record"
    with zipfile.ZipFile(dest) as zf:
        names = zf.namelist()
        assert len(names) == MANY
        assert zf.read("f00042") == b"forty-two\n"
    unzip_test(dest)
