"""Conditional requests (RFC 9110 §13) and Content-Type by extension."""

import json
import os
import re

import pytest

from conftest import (
    BIN_1M,
    CONTENT_TYPE_FILES,
    MIB,
    curl_fetch,
    http_date_to_ts,
    media_path,
    parse_content_range,
)

OLD_DATE = "Mon, 01 Jan 1990 00:00:00 GMT"
FUTURE_DATE = "Fri, 01 Jan 2100 00:00:00 GMT"


def get(server, rel, *headers, method=None):
    return curl_fetch(server.url(media_path(rel)), headers=headers, method=method)


@pytest.fixture(scope="module")
def validators(server, media):
    r = get(server, BIN_1M)
    assert r.status == 200
    etag = r.header("etag")
    lm = r.header("last-modified")
    assert etag and lm
    return etag, lm


def test_etag_strong_and_last_modified(server, media, validators):
    etag, lm = validators
    assert not etag.startswith("W/"), etag
    assert re.fullmatch(r'"[\x21\x23-\x7e\x80-\xff]*"', etag), f"not a valid entity-tag: {etag!r}"
    mtime = os.stat(media["root"] / BIN_1M).st_mtime
    assert abs(http_date_to_ts(lm) - int(mtime)) <= 1
    assert lm.endswith(" GMT")
    # stable across requests
    assert get(server, BIN_1M, method="HEAD").header("etag") == etag


def test_etag_differs_between_files(server, validators):
    etag, _ = validators
    assert get(server, "ten.bin", method="HEAD").header("etag") != etag


def test_if_none_match_matching_304(server, validators):
    etag, lm = validators
    r = get(server, BIN_1M, f"If-None-Match: {etag}")
    assert r.status == 304, r
    assert r.body == b""
    assert r.header("etag") == etag  # RFC 9110 §15.4.5


def test_if_none_match_in_list_and_weak_304(server, validators):
    etag, _ = validators
    assert get(server, BIN_1M, f'If-None-Match: "nope", {etag}').status == 304
    # If-None-Match uses the weak comparison function
    assert get(server, BIN_1M, f"If-None-Match: W/{etag}").status == 304
    assert get(server, BIN_1M, "If-None-Match: *").status == 304


def test_if_none_match_not_matching_200(server, media, validators):
    r = get(server, BIN_1M, 'If-None-Match: "definitely-not-the-etag"')
    assert r.status == 200
    assert r.body == media["data"][BIN_1M]


def test_if_modified_since_equal_304(server, validators):
    _, lm = validators
    r = get(server, BIN_1M, f"If-Modified-Since: {lm}")
    assert r.status == 304, r
    assert r.body == b""


def test_if_modified_since_old_200(server, validators):
    r = get(server, BIN_1M, f"If-Modified-Since: {OLD_DATE}")
    assert r.status == 200
    assert len(r.body) == MIB


def test_invalid_if_modified_since_ignored(server):
    # RFC 9110 §13.1.3: an invalid date is ignored
    assert get(server, BIN_1M, "If-Modified-Since: not a date").status == 200


def test_if_none_match_overrides_if_modified_since(server, validators):
    # RFC 9110 §13.1.3: IMS is ignored when If-None-Match is present.
    _, lm = validators
    r = get(server, BIN_1M, 'If-None-Match: "other"', f"If-Modified-Since: {lm}")
    assert r.status == 200, r


def test_if_match_not_matching_412(server, validators):
    r = get(server, BIN_1M, 'If-Match: "not-it"')
    assert r.status == 412, r
    assert json.loads(r.body)["error"] == "precondition_failed"


def test_if_match_matching_and_star_200(server, validators):
    etag, _ = validators
    assert get(server, BIN_1M, f"If-Match: {etag}").status == 200
    assert get(server, BIN_1M, f'If-Match: "x", {etag}').status == 200
    assert get(server, BIN_1M, "If-Match: *").status == 200


def test_if_match_uses_strong_comparison(server, validators):
    etag, _ = validators
    r = get(server, BIN_1M, f"If-Match: W/{etag}")
    assert r.status == 412, r


def test_if_unmodified_since_past_412(server, validators):
    r = get(server, BIN_1M, f"If-Unmodified-Since: {OLD_DATE}")
    assert r.status == 412, r
    assert json.loads(r.body)["error"] == "precondition_failed"


def test_if_unmodified_since_future_200(server, validators):
    assert get(server, BIN_1M, f"If-Unmodified-Since: {FUTURE_DATE}").status == 200


def test_if_range_matching_etag_206(server, media, validators):
    etag, _ = validators
    r = get(server, BIN_1M, "Range: bytes=0-99", f"If-Range: {etag}")
    assert r.status == 206, r
    assert parse_content_range(r.header("content-range")) == (0, 99, MIB)
    assert r.body == media["data"][BIN_1M][:100]


def test_if_range_non_matching_etag_full_200(server, media, validators):
    r = get(server, BIN_1M, "Range: bytes=0-99", 'If-Range: "stale-etag"')
    assert r.status == 200, r
    assert r.header("content-range") is None
    assert r.body == media["data"][BIN_1M]


def test_if_range_weak_etag_full_200(server, media, validators):
    # If-Range requires a strong match (RFC 9110 §13.1.5).
    etag, _ = validators
    r = get(server, BIN_1M, "Range: bytes=0-99", f"If-Range: W/{etag}")
    assert r.status == 200, r
    assert r.body == media["data"][BIN_1M]


def test_if_range_last_modified_206(server, media, validators):
    _, lm = validators
    r = get(server, BIN_1M, "Range: bytes=100-199", f"If-Range: {lm}")
    assert r.status == 206, r
    assert r.body == media["data"][BIN_1M][100:200]


def test_if_range_old_date_full_200(server, media, validators):
    r = get(server, BIN_1M, "Range: bytes=100-199", f"If-Range: {OLD_DATE}")
    assert r.status == 200, r
    assert r.body == media["data"][BIN_1M]


def test_precondition_before_range(server, validators):
    r = get(server, BIN_1M, "Range: bytes=0-99", 'If-Match: "not-it"')
    assert r.status == 412, r
    r = get(server, BIN_1M, "Range: bytes=2000000-", f"If-Unmodified-Since: {OLD_DATE}")
    assert r.status == 412, r


def test_if_none_match_beats_range(server, validators):
    etag, _ = validators
    r = get(server, BIN_1M, "Range: bytes=0-99", f"If-None-Match: {etag}")
    assert r.status == 304, r


@pytest.mark.parametrize("ext", sorted(CONTENT_TYPE_FILES))
def test_content_type_by_extension(server, media, ext):
    rel = f"types/sample.{ext}"
    r = get(server, rel)
    assert r.status == 200
    assert r.body == media["data"][rel]
    essence = r.header("content-type", "").split(";")[0].strip().lower()
    assert essence in CONTENT_TYPE_FILES[ext], f".{ext} served as {r.header('content-type')!r}"
