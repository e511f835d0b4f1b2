"""Range requests (RFC 9110 §14) against /media/, driven with curl and raw sockets."""

import json

import pytest

from conftest import (
    BIN_1M,
    EMPTY,
    HUGE,
    HUGE_MARK_4G,
    HUGE_MARK_4G_OFF,
    HUGE_MARK_END,
    HUGE_MARK_END_OFF,
    HUGE_SIZE,
    MIB,
    NESTED,
    NESTED_TEXT,
    TEN,
    UNICODE_NAME,
    UNICODE_TEXT,
    curl_fetch,
    media_path,
    parse_content_range,
    parse_multipart_byteranges,
    raw_get,
    raw_request,
)


def get(server, rel, *headers, method=None):
    return curl_fetch(server.url(media_path(rel)), headers=headers, method=method)


@pytest.fixture(scope="module")
def blob(media):
    data = media["data"][BIN_1M]
    assert len(data) == MIB
    return data


def assert_single_range(r, data, first, last):
    assert r.status == 206, r
    assert parse_content_range(r.header("content-range")) == (first, last, len(data))
    assert int(r.header("content-length")) == last - first + 1
    assert r.body == data[first:last + 1]
    assert r.header("accept-ranges") == "bytes"


def test_full_get_matches_disk(server, blob):
    r = get(server, BIN_1M)
    assert r.status == 200
    assert int(r.header("content-length")) == MIB
    assert r.header("accept-ranges") == "bytes"
    assert r.header("content-range") is None
    assert r.body == blob


def test_range_first_100(server, blob):
    assert_single_range(get(server, BIN_1M, "Range: bytes=0-99"), blob, 0, 99)


def test_range_open_ended(server, blob):
    assert_single_range(get(server, BIN_1M, "Range: bytes=100-"), blob, 100, MIB - 1)


def test_range_suffix(server, blob):
    assert_single_range(get(server, BIN_1M, "Range: bytes=-100"), blob, MIB - 100, MIB - 1)


def test_range_suffix_longer_than_file(server, blob):
    assert_single_range(get(server, BIN_1M, "Range: bytes=-2000000"), blob, 0, MIB - 1)


def test_range_last_pos_past_end_is_clamped(server, blob):
    assert_single_range(get(server, BIN_1M, "Range: bytes=1048000-2000000"), blob, 1048000, MIB - 1)


def test_range_u64_max_last_pos(server, blob):
    assert_single_range(get(server, BIN_1M, "Range: bytes=0-18446744073709551615"), blob, 0, MIB - 1)


def test_range_last_pos_overflowing_u64_does_not_break(server, blob):
    # Syntactically valid (1*DIGIT); must never be a 5xx nor wrong bytes.
    r = get(server, BIN_1M, "Range: bytes=10-99999999999999999999999999")
    assert r.status in (200, 206), r
    if r.status == 206:
        assert_single_range(r, blob, 10, MIB - 1)
    else:
        assert r.body == blob


def test_range_single_byte_at_end(server, blob):
    assert_single_range(get(server, BIN_1M, f"Range: bytes={MIB - 1}-{MIB - 1}"), blob, MIB - 1, MIB - 1)


def test_range_small_file(server, media):
    data = media["data"][TEN]
    assert_single_range(get(server, TEN, "Range: bytes=5-"), data, 5, 9)
    assert_single_range(get(server, TEN, "Range: bytes=-3"), data, 7, 9)


def test_multi_range_multipart(server, blob):
    r = get(server, BIN_1M, "Range: bytes=0-9,100-199,1000-1099,-50")
    assert r.status == 206, r
    ct = r.header("content-type")
    assert ct.lower().startswith("multipart/byteranges"), ct
    assert r.header("content-range") is None  # only in the parts
    if r.header("content-length") is not None:
        assert int(r.header("content-length")) == len(r.body)
    parts = parse_multipart_byteranges(ct, r.body)
    expected = [(0, 9), (100, 199), (1000, 1099), (MIB - 50, MIB - 1)]
    assert len(parts) == len(expected), [p[0] for p in parts]
    for (hdrs, data), (first, last) in zip(parts, expected):
        assert parse_content_range(hdrs.get("content-range")) == (first, last, MIB)
        assert data == blob[first:last + 1]
        assert hdrs.get("content-type", "").split(";")[0].strip() == "application/octet-stream"


def test_multi_range_exactly_max_ranges_is_multipart(server, blob):
    ranges = [(i * 1000, i * 1000 + 9) for i in range(16)]
    spec = ",".join(f"{a}-{b}" for a, b in ranges)
    r = get(server, BIN_1M, f"Range: bytes={spec}")
    assert r.status == 206, r
    parts = parse_multipart_byteranges(r.header("content-type"), r.body)
    assert [parse_content_range(h["content-range"])[:2] for h, _ in parts] == ranges
    for (h, d), (a, b) in zip(parts, ranges):
        assert d == blob[a:b + 1]


def covered_bytes(r, blob):
    """Return sorted list of (first, last) the response covers, checking the data."""
    if r.status == 200:
        assert r.body == blob
        return [(0, len(blob) - 1)]
    assert r.status == 206, r
    ct = r.header("content-type", "")
    if ct.lower().startswith("multipart/byteranges"):
        out = []
        for h, d in parse_multipart_byteranges(ct, r.body):
            a, b, n = parse_content_range(h["content-range"])
            assert n == len(blob)
            assert d == blob[a:b + 1]
            out.append((a, b))
        return out
    a, b, n = parse_content_range(r.header("content-range"))
    assert n == len(blob) and r.body == blob[a:b + 1]
    return [(a, b)]


def test_unsatisfiable_parts_dropped(server, blob):
    # RFC 9110 §14.2: satisfiable as a whole -> 206 with only the satisfiable parts
    r = get(server, BIN_1M, "Range: bytes=0-9,2000000-")
    assert r.status == 206, r
    assert covered_bytes(r, blob) == [(0, 9)]


def test_partial_response_carries_validators(server):
    full = get(server, BIN_1M, method="HEAD")
    r = get(server, BIN_1M, "Range: bytes=0-9")
    assert r.status == 206
    # RFC 9110 §15.3.7: ETag (and Date) as they would be in the 200
    assert r.header("etag") == full.header("etag")
    assert r.header("date")


def test_query_string_ignored_for_media(server, blob):
    r = raw_get(server.port, media_path(BIN_1M) + "?download=1&x=%2e%2e")
    assert r.status == 200 and r.body == blob


def test_keep_alive_sequence_of_ranges(server, blob):
    import socket

    from conftest import read_response

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        for first, last in [(0, 99), (500000, 500099), (MIB - 10, MIB - 1)]:
            s.sendall(f"GET {media_path(BIN_1M)} HTTP/1.1\r\nHost: x\r\nRange: bytes={first}-{last}\r\n\r\n".encode())
            r = read_response(s)
            assert r.status == 206 and r.body == blob[first:last + 1]
        s.sendall(f"HEAD {media_path(BIN_1M)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = read_response(s, head_only=True)
        assert r.status == 200 and int(r.header("content-length")) == MIB
        # after a HEAD, the next response on the connection must start cleanly
        s.sendall(f"GET {media_path(TEN)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = read_response(s)
        assert r.status == 200 and r.body == b"0123456789"


def test_range_list_with_whitespace(server, blob):
    # RFC 9110 §5.6.1: OWS around list commas
    r = get(server, BIN_1M, "Range: bytes=0-9, 100-109 ,200-209")
    assert r.status == 206, r
    assert covered_bytes(r, blob) == [(0, 9), (100, 109), (200, 209)]


def test_range_unit_case_insensitive(server, blob):
    # RFC 9110 §14.1: range units are compared case-insensitively
    assert_single_range(get(server, BIN_1M, "Range: Bytes=0-9"), blob, 0, 9)


def test_multipart_parts_keep_request_order(server, blob):
    # RFC 9110 §15.3.7.2: parts SHOULD be sent in the order the range-specs appeared
    r = get(server, BIN_1M, "Range: bytes=1000-1099,0-99")
    assert r.status == 206, r
    assert covered_bytes(r, blob) == [(1000, 1099), (0, 99)]


def test_out_of_order_overlaps_coalesced(server, blob):
    r = get(server, BIN_1M, "Range: bytes=500-599,0-99,50-549")
    assert r.status == 206, r
    assert sorted(covered_bytes(r, blob)) == [(0, 599)]


def test_http10_request(server, media):
    r = raw_request(server.port, f"GET {media_path(TEN)} HTTP/1.0\r\nRange: bytes=2-4\r\n\r\n")
    assert r.status == 206 and r.body == b"234"


def test_overlapping_ranges_coalesced(server, blob):
    r = get(server, BIN_1M, "Range: bytes=0-99,50-149")
    assert r.status == 206, r
    assert covered_bytes(r, blob) == [(0, 149)]


def test_adjacent_ranges_coalesced(server, blob):
    r = get(server, BIN_1M, "Range: bytes=0-9,10-19,500-509")
    assert r.status == 206, r
    assert covered_bytes(r, blob) == [(0, 19), (500, 509)]


def test_many_overlapping_full_ranges_not_amplified(server, blob):
    spec = ",".join(["0-"] * 100)
    r = get(server, BIN_1M, f"Range: bytes={spec}")
    assert r.status in (200, 206), r
    assert len(r.body) <= MIB + 1024, f"amplified response: {len(r.body)} bytes for a {MIB} byte file"
    assert covered_bytes(r, blob) == [(0, MIB - 1)]


def test_many_overlapping_small_ranges_not_amplified(server, blob):
    spec = ",".join(f"{i}-{i + 500000}" for i in range(0, 200))
    r = get(server, BIN_1M, f"Range: bytes={spec}")
    assert len(r.body) <= MIB + 1024, len(r.body)
    assert covered_bytes(r, blob) == [(0, 199 + 500000)]


def test_more_than_max_ranges_gives_full_200(server, blob):
    spec = ",".join(f"{i * 1000}-{i * 1000 + 9}" for i in range(20))
    r = get(server, BIN_1M, f"Range: bytes={spec}")
    assert r.status == 200, r
    assert r.header("content-range") is None
    assert r.header("content-type").split(";")[0] == "application/octet-stream"
    assert r.body == blob


def test_unsatisfiable_range_416(server):
    r = get(server, BIN_1M, "Range: bytes=2000000-")
    assert r.status == 416, r
    assert r.header("content-range") == f"bytes */{MIB}"
    assert r.header("content-type", "").startswith("application/json")
    assert json.loads(r.body)["error"] == "range_not_satisfiable"


def test_zero_length_suffix_unsatisfiable(server):
    # RFC 9110 §14.1.3: a suffix-range with suffix-length 0 is unsatisfiable.
    r = get(server, BIN_1M, "Range: bytes=-0")
    assert r.status == 416, r
    assert r.header("content-range") == f"bytes */{MIB}"


def test_first_pos_equal_to_length_unsatisfiable(server):
    r = get(server, BIN_1M, f"Range: bytes={MIB}-{MIB + 10}")
    assert r.status == 416, r
    assert r.header("content-range") == f"bytes */{MIB}"


@pytest.mark.parametrize("spec", ["bytes=abc", "items=0-1", "bytes=", "bytes=x-5", "bytes 0-5"])
def test_invalid_range_syntax_ignored(server, blob, spec):
    r = get(server, BIN_1M, f"Range: {spec}")
    assert r.status == 200, r
    assert r.header("content-range") is None
    assert r.body == blob


def test_empty_file_plain_get(server):
    r = get(server, EMPTY)
    assert r.status == 200
    assert r.header("content-length") == "0"
    assert r.body == b""


def test_empty_file_with_range_416(server):
    r = get(server, EMPTY, "Range: bytes=0-")
    assert r.status == 416, r
    assert r.header("content-range") == "bytes */0"
    assert json.loads(r.body)["error"] == "range_not_satisfiable"


COMPARED = ["content-length", "content-range", "content-type", "etag", "last-modified", "accept-ranges"]


@pytest.mark.parametrize("range_hdr", [None, "bytes=0-99", "bytes=2000000-"])
def test_head_equals_get_and_has_no_body(server, range_hdr):
    hdrs = {"Range": range_hdr} if range_hdr else {}
    g = raw_get(server.port, media_path(BIN_1M), headers=hdrs)
    h = raw_get(server.port, media_path(BIN_1M), method="HEAD", headers=hdrs)
    assert h.status == g.status
    for k in COMPARED:
        assert h.header(k) == g.header(k), k
    if g.status != 416:
        assert g.header("etag") and g.header("last-modified")
    assert h.body == b"", "HEAD must not send a body"
    if g.header("content-length") is not None:
        assert int(g.header("content-length")) == len(g.body)


def test_nested_and_unicode_names(server):
    r = get(server, NESTED)
    assert r.status == 200 and r.body == NESTED_TEXT
    r = get(server, UNICODE_NAME)
    assert r.status == 200 and r.body == UNICODE_TEXT
    r = get(server, UNICODE_NAME, "Range: bytes=0-6")
    assert r.status == 206 and r.body == UNICODE_TEXT[:7]


# --- > 4 GiB -------------------------------------------------------------------


def test_huge_file_head_64bit_length(server):
    r = raw_get(server.port, media_path(HUGE), method="HEAD")
    assert r.status == 200
    assert int(r.header("content-length")) == HUGE_SIZE


def test_huge_file_range_near_end(server):
    first = HUGE_MARK_END_OFF
    last = first + len(HUGE_MARK_END) - 1
    r = get(server, HUGE, f"Range: bytes={first}-{last}")
    assert r.status == 206, r
    assert r.header("content-range") == f"bytes {first}-{last}/{HUGE_SIZE}"
    assert int(r.header("content-length")) == len(HUGE_MARK_END)
    assert r.body == HUGE_MARK_END


def test_huge_file_suffix_range(server):
    r = get(server, HUGE, "Range: bytes=-100")
    assert r.status == 206, r
    assert r.header("content-range") == f"bytes {HUGE_SIZE - 100}-{HUGE_SIZE - 1}/{HUGE_SIZE}"
    assert r.body == HUGE_MARK_END + b"\0" * (100 - len(HUGE_MARK_END))


def test_huge_file_range_across_4gib(server):
    first = HUGE_MARK_4G_OFF - 4
    last = HUGE_MARK_4G_OFF + len(HUGE_MARK_4G) + 3
    r = get(server, HUGE, f"Range: bytes={first}-{last}")
    assert r.status == 206, r
    assert r.header("content-range") == f"bytes {first}-{last}/{HUGE_SIZE}"
    assert r.body == b"\0" * 4 + HUGE_MARK_4G + b"\0" * 4


def test_huge_file_multirange_past_4gib(server):
    a = HUGE_MARK_4G_OFF
    b = HUGE_MARK_END_OFF
    r = get(server, HUGE, f"Range: bytes=0-3,{a}-{a + len(HUGE_MARK_4G) - 1},{b}-{b + len(HUGE_MARK_END) - 1}")
    assert r.status == 206, r
    parts = parse_multipart_byteranges(r.header("content-type"), r.body)
    assert [parse_content_range(h["content-range"]) for h, _ in parts] == [
        (0, 3, HUGE_SIZE),
        (a, a + len(HUGE_MARK_4G) - 1, HUGE_SIZE),
        (b, b + len(HUGE_MARK_END) - 1, HUGE_SIZE),
    ]
    assert [d for _, d in parts] == [b"\0" * 4, HUGE_MARK_4G, HUGE_MARK_END]
