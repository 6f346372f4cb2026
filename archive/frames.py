"""Reading frames and bulk data out of stored Part 10 files, without parsing them again.

WADO-RS ``/frames`` and ``/bulkdata`` and the IIIF tile server use these. A file's
layout (where its frames lie) is worked out once and cached by path; stored files never
change in place, because a replacement gets a new name. Pure: imports no Django.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import pydicom

from .dicom import transcode
from .errors import InvalidInput, NotAcceptable, NotFound
from .multipart import parse_accept
from .part10 import (
    EXPLICIT_LE,
    IMPLICIT_LE,
    Fragment,
    Layout,
    frame_extents,
    read_extent,
    scan_part10,
)

# Stored transfer syntax → the media type of its frames (PS3.18 Table 8.7.3-5).
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
_FRAME_LIST = re.compile(r"^\d+(,\d+)*$")


def media_type_for(transfer_syntax: str) -> str:
    return FRAME_MEDIA_TYPES.get(transfer_syntax, "application/octet-stream")


def parse_frame_list(text: str) -> list[int]:
    """'1,3,5' → [1, 3, 5]; frame numbers start at 1 (PS3.18 8.3.3.1)."""
    if not _FRAME_LIST.match(text):
        raise InvalidInput(f"a frame list is comma-separated numbers from 1, got {text!r}")
    numbers = [int(n) for n in text.split(",")]
    if 0 in numbers:
        raise InvalidInput("frame numbers start at 1, got 0")
    return numbers


STORED, NATIVE = "stored", "native"
_NATIVE_LITTLE_ENDIAN = (EXPLICIT_LE, IMPLICIT_LE)  # the same frame bytes


def negotiate_frames(header: str, media_type: str, transfer_syntax: str) -> str:
    """Which frames the Accept header admits: ``STORED`` (the stored bytes, of
    ``media_type``) or ``NATIVE`` (compressed frames decoded, as
    ``application/octet-stream`` in Explicit VR Little Endian, PS3.18 8.7.3.3).
    NotAcceptable if neither."""
    compressed = media_type != "application/octet-stream"
    for media in parse_accept(header):
        if media.type in ("*/*", "multipart/*"):
            return STORED
        if media.type != "multipart/related":
            continue
        wanted = media.params.get("type", "application/octet-stream").lower()
        syntax = media.params.get("transfer-syntax")
        stored_type = wanted in ("*/*", media_type) or wanted.endswith("/*") and media_type.startswith(wanted[:-1])
        stored_syntax = syntax in (None, "*", transfer_syntax) or (
            not compressed and syntax in _NATIVE_LITTLE_ENDIAN and transfer_syntax in _NATIVE_LITTLE_ENDIAN
        )
        if stored_type and stored_syntax:
            return STORED
        if compressed and wanted == "application/octet-stream" and syntax in (None, "*", EXPLICIT_LE):
            return NATIVE
    raise NotAcceptable(
        f"the frames are stored as {media_type} (transfer syntax {transfer_syntax}); Vitrine serves "
        "them as stored or decoded as application/octet-stream (Explicit VR Little Endian); "
        f"the Accept header asks for {header!r}"
    )


@lru_cache(maxsize=4096)
def layout_of(path: str) -> Layout:
    with open(path, "rb") as fp:  # the scan maps the file
        fp.seek(0, 2)
        size = fp.tell()
        return scan_part10(fp, size)


@lru_cache(maxsize=4096)
def _extents(path: str, frames: int, frame_bytes: int) -> tuple[tuple[Fragment, ...], ...]:
    return tuple(tuple(e) for e in frame_extents(layout_of(path), frames, frame_bytes))


def frame_size(metadata: dict[str, Any]) -> int:
    """Bytes in one native frame, from the instance's DICOM JSON."""

    def value(tag: str, default: int = 0) -> int:
        return int((metadata.get(tag, {}).get("Value") or [default])[0])

    bits = value("00280100", 8) * value("00280010") * value("00280011") * value("00280002", 1)
    return (bits + 7) // 8


def _check_numbers(number_of_frames: int, numbers: list[int]) -> None:
    for n in numbers:
        if n > number_of_frames:
            raise NotFound(f"frame {n} does not exist: the instance has {number_of_frames}")


def read_frames(path: str, metadata: dict[str, Any], number_of_frames: int, numbers: list[int]) -> list[bytes]:
    """The stored bytes of the given frames (numbered from 1)."""
    _check_numbers(number_of_frames, numbers)
    layout = layout_of(path)
    if layout.pixel_offset is None and not layout.encapsulated:
        return _frames_via_pydicom(path, metadata, number_of_frames, numbers)
    extents = _extents(path, number_of_frames, frame_size(metadata))
    with open(path, "rb") as fp:
        return [read_extent(fp, list(extents[n - 1])) for n in numbers]


def decoded_frames(
    path: str, metadata: dict[str, Any], number_of_frames: int, numbers: list[int], transfer_syntax: str
) -> list[bytes]:
    """The given frames of an instance stored compressed in ``transfer_syntax``, decoded
    to native little-endian bytes (YBR colour as RGB). NotAcceptable, with the reason,
    where they cannot be decoded."""
    _check_numbers(number_of_frames, numbers)
    try:
        transcode.check_size(frame_size(metadata) * len(numbers), transfer_syntax)
        return transcode.decoded_frames(path, numbers)
    except transcode.TranscodeError as exc:
        raise NotAcceptable(str(exc)) from None


def _frames_via_pydicom(path: str, metadata, number_of_frames: int, numbers: list[int]) -> list[bytes]:
    """Deflated files hide their layout: inflate with pydicom and slice."""
    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise NotFound("the instance has no pixel data")
    data = ds.PixelData
    size = frame_size(metadata)
    return [data[(n - 1) * size: n * size] for n in numbers]


def read_bulk_value(path: str, tag: int) -> bytes:
    """The value of one top-level element, for WADO-RS ``/bulkdata``."""
    layout = layout_of(path)
    if tag == 0x7FE00010 and layout.pixel_offset is not None:
        with open(path, "rb") as fp:
            return read_extent(fp, [Fragment(layout.pixel_offset, layout.pixel_length or 0)])
    ds = pydicom.dcmread(path, stop_before_pixels=tag < 0x7FE00010)
    if tag not in ds:
        raise NotFound(f"the instance has no element ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    value = ds[tag].value
    if not isinstance(value, (bytes, bytearray)):
        raise NotFound(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is not bulk data")
    return bytes(value)
