"""A structural scan of DICOM Part 10 files: is every element whole, and where are the frames?

pydicom reads a truncated file without complaint, so the store walks the element
structure itself before it accepts a file. The same walk records where the pixel data
and its fragments lie, which WADO-RS ``/frames`` and the IIIF tile server use to read
one frame without parsing the file again. Pure: imports no Django.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from .errors import InvalidInput

# PS3.10 7.1: 128-byte preamble, "DICM", then the File Meta group in explicit VR LE.
_PREAMBLE = 128
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA = 0x7FE00010
_EXTENDED_OFFSETS, _EXTENDED_LENGTHS = 0x7FE00001, 0x7FE00002

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
NATIVE_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE})


@dataclass(frozen=True)
class Fragment:
    offset: int
    length: int


@dataclass(frozen=True)
class Layout:
    """Where things lie in one Part 10 file.

    ``pixel_offset``/``pixel_length`` locate a native Pixel Data value; ``fragments``
    lists the fragments of encapsulated pixel data (Basic Offset Table excluded) and
    ``offset_table`` the Basic Offset Table's entries, if any.
    """

    transfer_syntax: str
    dataset_offset: int
    size: int
    pixel_offset: int | None = None
    pixel_length: int | None = None
    fragments: tuple[Fragment, ...] | None = None
    offset_table: tuple[int, ...] = ()
    extended_offsets: tuple[int, ...] = ()
    extended_lengths: tuple[int, ...] = ()

    @property
    def encapsulated(self) -> bool:
        return self.fragments is not None


class _Reader:
    """Reads element headers with bounds checks against the file size."""

    def __init__(self, fp: BinaryIO, size: int, little: bool, explicit: bool) -> None:
        self.fp, self.size, self.explicit = fp, size, explicit
        self.u16, self.u32 = ("<H", "<I") if little else (">H", ">I")

    def read(self, n: int) -> bytes:
        data = self.fp.read(n)
        if len(data) != n:
            raise InvalidInput(f"file is truncated at byte {self.fp.tell()} of {self.size}")
        return data

    def tag(self) -> int:
        group, element = struct.unpack(self.u16[0] + "HH", self.read(4))
        return (group << 16) | element

    def header(self, explicit: bool) -> tuple[int, bytes, int]:
        tag = self.tag()
        if tag in (_ITEM, _ITEM_END, _SEQ_END) or not explicit:
            return tag, b"", struct.unpack(self.u32, self.read(4))[0]
        vr = self.read(2)
        if vr in _LONG_VRS:
            self.read(2)
            return tag, vr, struct.unpack(self.u32, self.read(4))[0]
        return tag, vr, struct.unpack(self.u16, self.read(2))[0]

    def skip(self, length: int) -> None:
        end = self.fp.tell() + length
        if end > self.size:
            raise InvalidInput(
                f"file is truncated: an element ends at byte {end} but the file has {self.size}"
            )
        self.fp.seek(end)


def scan_part10(fp: BinaryIO, size: int) -> Layout:
    """Walk every element of a Part 10 file, raising InvalidInput if any is cut short.

    Parameters
    ----------
    fp : a binary file positioned anywhere; it is read from the start.
    size : the file's size in bytes.
    """
    fp.seek(0)
    head = fp.read(_PREAMBLE + 4)
    if len(head) < _PREAMBLE + 4 or head[_PREAMBLE:] != b"DICM":
        raise InvalidInput("not a DICOM Part 10 file: no 'DICM' prefix after the 128-byte preamble")
    meta = _Reader(fp, size, little=True, explicit=True)
    group_end = None
    syntax = None
    # Walk group 0002 element by element; its group length, when present, must agree.
    while True:
        start = fp.tell()
        peek = fp.read(2)
        fp.seek(start)
        if peek != b"\x02\x00":
            break
        tag, vr, length = meta.header(explicit=True)
        value = meta.read(length) if length != _UNDEFINED else b""
        if tag == 0x00020000 and length == 4:
            group_end = fp.tell() + struct.unpack("<I", value)[0]
        elif tag == 0x00020010:
            syntax = value.rstrip(b"\0 ").decode("ascii", "replace")
    if group_end is not None and fp.tell() != group_end:
        raise InvalidInput("the File Meta Information group length does not match its elements")
    if not syntax:
        raise InvalidInput("the File Meta Information has no Transfer Syntax UID (0002,0010)")
    dataset_offset = fp.tell()
    if syntax == DEFLATED_LE:
        _check_deflate(fp, size)
        return Layout(syntax, dataset_offset, size)
    reader = _Reader(fp, size, little=syntax != EXPLICIT_BE, explicit=syntax != IMPLICIT_LE)
    found: dict[str, object] = {}
    _walk_dataset(reader, reader.explicit, end=size, top=True, found=found)
    return Layout(syntax, dataset_offset, size, **found)  # type: ignore[arg-type]


def _walk_dataset(r: _Reader, explicit: bool, end: int | None, top: bool, found: dict) -> None:
    """Walk elements until ``end`` (a byte offset) or, with end=None, an Item Delimiter."""
    while end is None or r.fp.tell() < end:
        if end is not None and end - r.fp.tell() < 8:
            raise InvalidInput(f"file is truncated: {end - r.fp.tell()} stray bytes at its end")
        tag, vr, length = r.header(explicit)
        if tag == _ITEM_END:
            if end is None:
                return
            raise InvalidInput("an Item Delimitation Item stands outside any item")
        if top and tag == _PIXEL_DATA:
            _walk_pixel_data(r, length, found)
        elif length == _UNDEFINED:
            _walk_sequence(r, explicit and vr != b"UN", found)
        elif top and tag in (_EXTENDED_OFFSETS, _EXTENDED_LENGTHS):
            values = struct.unpack(f"<{length // 8}Q", r.read(length))
            found["extended_offsets" if tag == _EXTENDED_OFFSETS else "extended_lengths"] = values
        else:
            r.skip(length)
    if end is None:
        raise InvalidInput("an item with undefined length has no Item Delimitation Item")


def _walk_sequence(r: _Reader, explicit: bool, found: dict) -> None:
    while True:
        tag, _, length = r.header(explicit)
        if tag == _SEQ_END:
            return
        if tag != _ITEM:
            raise InvalidInput(f"expected an item inside a sequence, found tag {tag:08X}")
        if length == _UNDEFINED:
            _walk_dataset(r, explicit, end=None, top=False, found=found)
        else:
            start = r.fp.tell()
            r.skip(length)
            r.fp.seek(start)
            _walk_dataset(r, explicit, end=start + length, top=False, found=found)


def _walk_pixel_data(r: _Reader, length: int, found: dict) -> None:
    if length != _UNDEFINED:
        found["pixel_offset"], found["pixel_length"] = r.fp.tell(), length
        r.skip(length)
        return
    fragments: list[Fragment] = []
    table: tuple[int, ...] = ()
    first = True
    while True:
        tag, _, item_length = r.header(explicit=False)
        if tag == _SEQ_END:
            break
        if tag != _ITEM or item_length == _UNDEFINED:
            raise InvalidInput(f"encapsulated Pixel Data holds a malformed item (tag {tag:08X})")
        if first:
            table = struct.unpack(f"{r.u32[0]}{item_length // 4}I", r.read(item_length))
            first = False
        else:
            fragments.append(Fragment(r.fp.tell(), item_length))
            r.skip(item_length)
    found["fragments"], found["offset_table"] = tuple(fragments), table


def _check_deflate(fp: BinaryIO, size: int) -> None:
    inflater = zlib.decompressobj(-15)
    try:
        while chunk := fp.read(1 << 20):
            inflater.decompress(chunk, 0)
            if inflater.eof:
                break
    except zlib.error as exc:
        raise InvalidInput(f"the deflated data set is corrupt: {exc}") from None
    if not inflater.eof:
        raise InvalidInput(f"the deflated data set is truncated at byte {size}")


def add_part10_preamble(path) -> bool:
    """Give a file that starts with its File Meta group the preamble and 'DICM' it lacks.

    pydicom (and so dicomweb-client) writes data sets read from nowhere without a
    preamble; the archive keeps well-formed Part 10 files. Returns True if it changed
    the file.
    """
    with open(path, "r+b") as fp:
        head = fp.read(_PREAMBLE + 4)
        explicit_meta = head.startswith(b"\x02\x00") and head[4:6].isalpha() and head[4:6].isupper()
        if head[_PREAMBLE:] == b"DICM" or not explicit_meta:
            return False
        fp.seek(0)
        rest = fp.read()
        fp.seek(0)
        fp.write(b"\0" * _PREAMBLE + b"DICM" + rest)
    return True


def frame_extents(layout: Layout, number_of_frames: int, frame_bytes: int) -> list[list[Fragment]]:
    """Where each frame lies: a list, per frame, of the byte ranges that make it up.

    ``frame_bytes`` is the size of one native frame (ignored for encapsulated data).
    Encapsulated frames follow the Extended Offset Table, the Basic Offset Table, one
    fragment per frame, or, failing those, a JPEG start-of-image marker per frame
    (PS3.5 A.4).
    """
    frames = max(number_of_frames, 1)
    if not layout.encapsulated:
        if layout.pixel_offset is None:
            return []
        if frames * frame_bytes > (layout.pixel_length or 0):
            raise InvalidInput(
                f"Pixel Data holds {layout.pixel_length} bytes, too few for {frames} frames "
                f"of {frame_bytes} bytes"
            )
        return [[Fragment(layout.pixel_offset + i * frame_bytes, frame_bytes)] for i in range(frames)]
    fragments = layout.fragments or ()
    if layout.extended_offsets and len(layout.extended_offsets) == frames:
        return _by_extended_table(layout, fragments)
    if len(fragments) == frames:
        return [[f] for f in fragments]
    if layout.offset_table and len(layout.offset_table) == frames:
        return _group_by_offsets(fragments, layout.offset_table)
    if frames == 1:
        return [list(fragments)]
    raise InvalidInput(
        f"cannot tell the {frames} frames apart among {len(fragments)} fragments: "
        "no offset table"
    )


def _by_extended_table(layout: Layout, fragments: tuple[Fragment, ...]) -> list[list[Fragment]]:
    """One fragment per frame, found by its offset (PS3.3 C.7.6.3.1.8: offsets count
    from the first fragment's item tag; lengths are the frames' unpadded lengths)."""
    base = fragments[0].offset - 8 if fragments else 0
    by_offset = {f.offset - 8 - base: f for f in fragments}
    lengths = layout.extended_lengths or (None,) * len(layout.extended_offsets)
    extents = []
    for offset, length in zip(layout.extended_offsets, lengths):
        fragment = by_offset.get(offset)
        if fragment is None:
            raise InvalidInput(f"the Extended Offset Table points at byte {offset}, where no fragment starts")
        extents.append([Fragment(fragment.offset, fragment.length if length is None else min(length, fragment.length))])
    return extents


def _group_by_offsets(fragments: tuple[Fragment, ...], table: tuple[int, ...]) -> list[list[Fragment]]:
    base = fragments[0].offset - 8
    starts = {off: i for i, off in enumerate(table)}
    grouped: list[list[Fragment]] = [[] for _ in table]
    current = -1
    for fragment in fragments:
        relative = fragment.offset - 8 - base
        current = starts.get(relative, current)
        if current < 0:
            raise InvalidInput("the Basic Offset Table does not point at the first fragment")
        grouped[current].append(fragment)
    return grouped


def read_extent(fp: BinaryIO, extent: list[Fragment]) -> bytes:
    """The bytes of one frame, given its extent from ``frame_extents``."""
    parts = []
    for fragment in extent:
        fp.seek(fragment.offset)
        parts.append(fp.read(fragment.length))
    return b"".join(parts)
