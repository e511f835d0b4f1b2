"""The range and validator tests of `test_ranges.py` and `test_validators.py`, run again with
media on S3 (a real Garage node, `garage` fixture): the same files are uploaded to the
bucket under a prefix, and a server with `storage.backend = "s3"` serves them.

The module's own `media` and `server` fixtures replace the session ones for the imported
tests. Left out: the 5 GiB sparse file (a 5 GiB upload to Garage per run is not worth it
here; offsets past 4 GiB are plain integers in an HTTP Range header sent to S3) and the
checks of local mtimes and symlinks, which have no meaning in a bucket.
"""

import random
import time

import pytest

from conftest import (
    BIN_1M,
    BIN_8M,
    CONTENT_TYPE_FILES,
    EMPTY,
    MIB,
    NESTED,
    NESTED_TEXT,
    TEN,
    UNICODE_NAME,
    UNICODE_TEXT,
    VIDEO,
)

import test_ranges
import test_validators

PREFIX = "lib"


@pytest.fixture(scope="module")
def media(garage, tmp_path_factory):
    """The session tree's regular files, in the bucket under `lib/`."""
    data = {
        BIN_1M: random.Random(1).randbytes(MIB),
        BIN_8M: random.Random(8).randbytes(8 * MIB),
        EMPTY: b"",
        TEN: b"0123456789",
        NESTED: NESTED_TEXT,
        UNICODE_NAME: UNICODE_TEXT,
    }
    for ext in CONTENT_TYPE_FILES:
        data[f"types/sample.{ext}"] = random.Random(ext).randbytes(64)
    for rel, content in data.items():
        status, body = garage.curl_s3("PUT", f"{PREFIX}/{rel}", content)
        assert status == 200, body
    # Last-Modified is sent once its date is strong (RFC 9110 §8.8.2.2): 2 s after it.
    time.sleep(2.1)
    root = tmp_path_factory.mktemp("s3-unused-media-root")
    return {"root": root, "data": data}


@pytest.fixture(scope="module")
def server(servers_module, garage, media):
    return servers_module.start(media["root"], env=garage.env(PREFIX), name="s3")


@pytest.fixture(scope="module")
def servers_module(tmp_path_factory):
    from conftest import ServerFactory

    f = ServerFactory(tmp_path_factory)
    yield f
    f.stop_all()


blob = test_ranges.blob
validators = test_validators.validators

_SKIP = {
    # the 5 GiB sparse file is not in the bucket (see the module docstring)
    "test_huge_file_head_64bit_length",
    "test_huge_file_range_near_end",
    "test_huge_file_suffix_range",
    "test_huge_file_range_across_4gib",
    "test_huge_file_multirange_past_4gib",
    # compares Last-Modified with the local file's mtime
    "test_etag_strong_and_last_modified",
}

for _mod in (test_ranges, test_validators):
    for _name in dir(_mod):
        if _name.startswith("test_") and _name not in _SKIP:
            globals()[f"{_name}_s3"] = getattr(_mod, _name)


def test_last_modified_is_the_objects(server, garage, validators):
    """Last-Modified comes from the object (its upload time), ETag from S3's ETag."""
    from email.utils import parsedate_to_datetime
    import time

    etag, lm = validators
    assert etag.startswith('"') and not etag.startswith('W/')
    age = time.time() - parsedate_to_datetime(lm).timestamp()
    assert 0 <= age < 3600, lm
