"""ingest.tus: the tus 1.0 header parsers (pure, no Django)."""

from __future__ import annotations

import ast
import base64
import hashlib
from pathlib import Path

import pytest

from archive.errors import InvalidInput, UnsupportedMediaType
from ingest import tus


def test_metadata_round_trip():
    values = {"filename": "Ötzi scan/part 1.stl", "filetype": "model/stl", "flag": ""}
    header = tus.encode_metadata(values)
    assert header.split(",")[2] == "flag"
    assert tus.parse_metadata(header) == values
    assert tus.parse_metadata(None) == {} and tus.parse_metadata("  ") == {}


@pytest.mark.parametrize("header, words", [
    ("filename a b c", "key base64value"),
    ("filename !!!", "base64"),
    ("filename YQ==,filename Yg==", "twice"),
    ("f\u00e9 YQ==", "printable ASCII"),
    (",", "key base64value"),
    ("name " + base64.b64encode(b"\xff\xfe").decode(), "UTF-8"),
])
def test_bad_metadata(header, words):
    with pytest.raises(InvalidInput, match=words):
        tus.parse_metadata(header)


def test_resumable_version():
    tus.check_resumable("1.0.0")
    for value in (None, "", "0.2.2", "1.0"):
        with pytest.raises(tus.VersionMismatch) as caught:
            tus.check_resumable(value)
        assert caught.value.http_status == 412


@pytest.mark.parametrize("value", [None, "", "-1", "1.5", "1e3", "9" * 20, "0x10"])
def test_bad_lengths(value):
    with pytest.raises(InvalidInput, match="Upload-Length"):
        tus.parse_length(value, "Upload-Length")


def test_lengths():
    assert tus.parse_length(" 53687091200 ", "Upload-Length") == 50 * 1024**3
    assert tus.parse_length("0", "Upload-Offset") == 0


def test_checksum():
    digest = hashlib.sha256(b"abc").digest()
    assert tus.parse_checksum("sha256 " + base64.b64encode(digest).decode()) == ("sha256", digest)
    assert tus.parse_checksum(None) is None
    with pytest.raises(InvalidInput, match="not supported"):
        tus.parse_checksum("crc32 AAAAAA==")
    with pytest.raises(InvalidInput, match="wrong length"):
        tus.parse_checksum("sha1 " + base64.b64encode(b"short").decode())
    with pytest.raises(InvalidInput, match="base64"):
        tus.parse_checksum("md5 ***")


def test_offset_media_type():
    tus.check_offset_media_type("application/offset+octet-stream")
    tus.check_offset_media_type("Application/Offset+Octet-Stream; charset=binary")
    with pytest.raises(UnsupportedMediaType):
        tus.check_offset_media_type("application/octet-stream")
    with pytest.raises(UnsupportedMediaType):
        tus.check_offset_media_type(None)


@pytest.mark.parametrize("name, expected", [
    ("model.stl", "model.stl"),
    ("../../etc/passwd", "passwd"),
    ("C:\\scans\\slice_001.tif", "slice_001.tif"),
    ("a/b/.hidden.obj", "hidden.obj"),
    ("bad\x00name\n.pdf", "badname.pdf"),
])
def test_safe_filename(name, expected):
    assert tus.safe_filename(name) == expected


def test_safe_filename_refuses_empty_and_shortens():
    for name in ("", "..", "a/", "\x00"):
        with pytest.raises(InvalidInput):
            tus.safe_filename(name)
    long = tus.safe_filename("x" * 300 + ".tiff")
    assert len(long) == 200 and long.endswith(".tiff")


def test_tus_module_imports_no_django():
    tree = ast.parse(Path(tus.__file__).read_text())
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m.split(".")[0] in ("django", "rest_framework")]
