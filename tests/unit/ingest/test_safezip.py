from __future__ import annotations

import struct
import zipfile

import pytest

from archive.errors import InvalidInput
from ingest.converters.safezip import ZipLimits, check_zip, extract_zip
from tests.factories.files import zip_bytes


def _zip(tmp_path, entries, **kw):
    path = tmp_path / "upload.zip"
    path.write_bytes(zip_bytes(entries, **kw))
    return path


def test_extracts_nested_files(tmp_path):
    path = _zip(tmp_path, {"a/b.txt": b"hello", "c.txt": b"x", "__MACOSX/._c.txt": b"junk"})
    files = extract_zip(path, tmp_path / "x")
    assert sorted(p.relative_to(tmp_path / "x").as_posix() for p in files) == ["a/b.txt", "c.txt"]
    assert (tmp_path / "x" / "a" / "b.txt").read_bytes() == b"hello"


@pytest.mark.parametrize("name, message", [
    ("../evil.txt", "escapes the archive"),
    ("a/../../evil.txt", "escapes the archive"),
    ("/etc/passwd", "absolute path"),
    ("C:\\windows\\evil.txt", "absolute path"),
    ("..\\evil.txt", "escapes the archive"),
])
def test_rejects_traversal_and_absolute_paths(tmp_path, name, message):
    path = _zip(tmp_path, {"ok.txt": b"ok", name: b"evil"})
    with pytest.raises(InvalidInput, match=message):
        extract_zip(path, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_rejects_symlink_entries(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidInput, match="symbolic link"):
        extract_zip(path, tmp_path / "x")


def test_rejects_high_ratio_bomb(tmp_path):
    path = _zip(tmp_path, {"zeros.bin": b"\x00" * (4 * 1024 * 1024)})
    with pytest.raises(InvalidInput, match="compression ratio"):
        extract_zip(path, tmp_path / "x", ZipLimits(max_ratio=100))
    assert not (tmp_path / "x").exists()


def test_rejects_total_size_over_limit(tmp_path):
    path = _zip(tmp_path, {"a": b"1" * 600, "b": b"2" * 600}, compression=zipfile.ZIP_STORED)
    with pytest.raises(InvalidInput, match="max_total_bytes=1000"):
        check_zip(path, ZipLimits(max_total_bytes=1000))


def test_rejects_entry_lying_about_its_size(tmp_path):
    path = _zip(tmp_path, {"a.bin": b"A" * 5000})
    data = bytearray(path.read_bytes())
    # Shrink the declared uncompressed size in the central directory to 10 bytes.
    cd = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 10)
    path.write_bytes(bytes(data))
    # Either our byte count or zipfile's CRC check stops it; nothing may be left.
    with pytest.raises(InvalidInput, match="declared size|Bad CRC"):
        extract_zip(path, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_rejects_duplicates_and_garbage(tmp_path):
    path = tmp_path / "dup.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.txt", b"1")
        with pytest.warns(UserWarning):
            zf.writestr("a.txt", b"2")
    with pytest.raises(InvalidInput, match="twice"):
        check_zip(path)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InvalidInput, match="not a readable zip"):
        check_zip(junk)
