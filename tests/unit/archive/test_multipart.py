"""The streaming multipart reader and writer, on bytes."""

from __future__ import annotations

import io

import pytest

from archive import multipart
from archive.errors import InvalidInput, PayloadTooLarge


def _read(body: bytes, boundary: str = "b0undary", max_bytes: int = 1 << 30, chunk: int | None = None):
    parts = []
    if chunk:
        multipart.CHUNK, saved = chunk, multipart.CHUNK
    try:
        multipart.read_parts(
            io.BytesIO(body), boundary, lambda part: io.BytesIO(), max_bytes=max_bytes,
            on_part_end=lambda part, sink: parts.append((part.content_type.type, sink.getvalue())),
        )
    finally:
        if chunk:
            multipart.CHUNK = saved
    return parts


@pytest.mark.parametrize("chunk", [None, 1, 3, 7, 64])
def test_round_trip_through_writer_and_reader(chunk):
    payloads = [b"first", b"", b"\r\n--b0undar not quite", bytes(range(256)) * 50]
    body = b"".join(multipart.write_parts("b0undary", [("application/dicom", p) for p in payloads]))
    assert _read(body, chunk=chunk) == [("application/dicom", p) for p in payloads]


def test_preamble_is_skipped():
    body = b"preamble text\r\n--b0undary\r\nContent-Type: a/b\r\n\r\nxy\r\n--b0undary--\r\n"
    assert _read(body) == [("a/b", b"xy")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"--other\r\n\r\nx\r\n--other--",
        b"--b0undary\r\nContent-Type: a/b\r\n\r\nno closing boundary",
        b"--b0undary\r\nno header end",
        b"--b0undaryXX",
    ],
)
def test_broken_bodies_are_refused(body):
    with pytest.raises(InvalidInput):
        _read(body)


def test_limit_is_enforced_while_streaming():
    body = b"".join(multipart.write_parts("b0undary", [("a/b", b"x" * 5000)]))
    with pytest.raises(PayloadTooLarge):
        _read(body, max_bytes=1000, chunk=100)


def test_accept_parsing_orders_by_quality():
    types = multipart.parse_accept('image/png;q=0.5, multipart/related; type="application/dicom"; transfer-syntax=*')
    assert types[0].type == "multipart/related"
    assert types[0].params == {"type": "application/dicom", "transfer-syntax": "*"}
    assert types[1].type == "image/png" and types[1].q == 0.5
    assert multipart.parse_accept("")[0].matches("application/dicom+json")
    assert multipart.parse_media_type("image/*").matches("image/jpeg")
    assert not multipart.parse_media_type("image/*").matches("application/json")
