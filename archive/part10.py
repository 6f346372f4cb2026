"""A structural scan of DICOM Part 10 files: is every element whole, and where are the frames?

pydicom reads a truncated file without complaint, so the store walks the element
structure itself before it accepts a file. The same walk records where the pixel data
and its fragments lie, which WADO-RS ``/frames`` and the IIIF tile server use to read
one frame without parsing the file again. Storing an instance takes the data set's
elements from the same walk (``read_part10``), as pydicom's raw elements, so that the
file is walked once rather than scanned here and parsed again by pydicom. Pure: imports
no Django.
"""

from __future__ import annotations

import io
import mmap
import struct
import zlib
from array import array
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from .errors import InvalidInput

# PS3.10 7.1: 128-byte preamble, "DICM", then the File Meta group in explicit VR LE.
_PREAMBLE = 128
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_SHORT_VRS = frozenset(b"AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split())
_BULK_VRS = frozenset(b"OB OD OF OL OV OW UN".split())
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_ITEM_LE = 0xE000FFFE  # the Item tag (FFFE,E000) read as one little-endian uint32
_SEQ_END_LE = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_ITEM_HEADER = struct.Struct("<HHI")
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

    ``pixel_offset``/``pixel_length`` locate a native Pixel Data value;
    ``fragment_offsets``/``fragment_lengths`` the fragments of encapsulated pixel data
    (Basic Offset Table excluded), as flat arrays: a pyramid level holds tens of
    thousands, and an object each made the garbage collector the largest cost of
    opening a slide. ``offset_table`` holds the Basic Offset Table's entries, if any.
    """

    transfer_syntax: str
    dataset_offset: int
    size: int
    pixel_offset: int | None = None
    pixel_length: int | None = None
    fragment_offsets: array | None = None
    fragment_lengths: array | None = None
    offset_table: tuple[int, ...] = ()
    extended_offsets: tuple[int, ...] = ()
    extended_lengths: tuple[int, ...] = ()
    # False where the fragments were taken from the Basic Offset Table without reading
    # their item headers (``scan_part10(check_fragments=False)``): whoever reads a
    # fragment checks its header then (iiif.frameindex).
    fragments_checked: bool = True

    @property
    def encapsulated(self) -> bool:
        return self.fragment_offsets is not None

    @property
    def fragments(self) -> tuple[Fragment, ...] | None:
        if self.fragment_offsets is None:
            return None
        return tuple(map(Fragment, self.fragment_offsets, self.fragment_lengths))


@dataclass(frozen=True)
class Part10:
    """One Part 10 file read in a single walk.

    ``dataset`` holds the top-level elements as pydicom raw elements (values left as
    bytes, bulk values left out), ready for ``archive.dicomjson``; it is None where the
    walk leaves the reading to pydicom (deflated or big-endian data sets, a VR the walk
    does not know, a sequence encoded as UN).
    """

    layout: Layout
    meta: dict[int, str]  # File Meta elements (0002,eeee) → their text value
    dataset: Dataset | None


class _Walk:
    """A bounds-checked cursor over the bytes of a Part 10 file.

    With ``keep`` set, it also gathers each data set's elements as pydicom raw elements;
    values longer than ``keep`` bytes whose VR is bulk data, and Pixel Data, are left out.
    """

    def __init__(self, buf, size: int, little: bool, explicit: bool, keep: int | None,
                 check_fragments: bool = True) -> None:
        self.buf, self.size, self.pos = buf, size, 0
        self.little, self.explicit, self.keep = little, explicit, keep
        self.check_fragments = check_fragments
        self.tag_format = struct.Struct("<HH" if little else ">HH")
        self.u16 = struct.Struct("<H" if little else ">H")
        self.u32 = struct.Struct("<I" if little else ">I")
        self.pydicom_reads = False  # set when something needs pydicom's reader

    def need(self, n: int) -> None:
        if self.pos + n > self.size:
            raise InvalidInput(f"file is truncated at byte {self.size} of {self.pos + n}")

    def header(self, explicit: bool) -> tuple[int, bytes, int]:
        self.need(8)
        buf, pos = self.buf, self.pos
        group, element = self.tag_format.unpack_from(buf, pos)
        tag = (group << 16) | element
        if tag in (_ITEM, _ITEM_END, _SEQ_END) or not explicit:
            self.pos = pos + 8
            return tag, b"", self.u32.unpack_from(buf, pos + 4)[0]
        vr = buf[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            self.need(12)
            self.pos = pos + 12
            return tag, vr, self.u32.unpack_from(buf, pos + 8)[0]
        if vr not in _SHORT_VRS:
            self.pydicom_reads = True
        self.pos = pos + 8
        return tag, vr, self.u16.unpack_from(buf, pos + 6)[0]

    def read(self, n: int) -> bytes:
        self.need(n)
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def skip(self, length: int) -> None:
        end = self.pos + length
        if end > self.size:
            raise InvalidInput(
                f"file is truncated: an element ends at byte {end} but the file has {self.size}"
            )
        self.pos = end


def scan_part10(fp: BinaryIO, size: int, *, check_fragments: bool = True) -> Layout:
    """Walk every element of a Part 10 file, raising InvalidInput if any is cut short.

    Parameters
    ----------
    fp : a binary file positioned anywhere; it is read from the start.
    size : the file's size in bytes.
    check_fragments : with False, fragments that the Basic Offset Table lays out one per
        frame are taken from the table, and only the last one's item header is read
        (``Layout.fragments_checked`` is then False). A pyramid level's headers lie one
        per tile across the whole file: reading them all is most of opening a slide,
        and a page-fault per tile where the file has left the page cache.
    """
    return _read(fp, size, keep=None, check_fragments=check_fragments).layout


def read_part10(fp: BinaryIO, size: int, keep: int) -> Part10:
    """``scan_part10``, and the elements of the data set as pydicom raw elements, in one walk.

    ``keep`` is the longest bulk data value (OB, OW, UN…) whose bytes are kept.
    """
    return _read(fp, size, keep=keep)


def _read(fp: BinaryIO, size: int, keep: int | None, check_fragments: bool = True) -> Part10:
    try:
        fileno = fp.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fileno = None
    if fileno is not None and size > 0:
        # Mapped, not read: the walk touches the headers and skips the values.
        with mmap.mmap(fileno, size, access=mmap.ACCESS_READ) as buf:
            return _walk_file(buf, size, fp, keep, check_fragments)
    fp.seek(0)
    return _walk_file(fp.read(size), size, fp, keep, check_fragments)


def _walk_file(buf, size: int, fp: BinaryIO, keep: int | None, check_fragments: bool) -> Part10:
    if size < _PREAMBLE + 4 or buf[_PREAMBLE : _PREAMBLE + 4] != b"DICM":
        raise InvalidInput("not a DICOM Part 10 file: no 'DICM' prefix after the 128-byte preamble")
    walk = _Walk(buf, size, little=True, explicit=True, keep=None)
    walk.pos = _PREAMBLE + 4
    group_end = None
    meta: dict[int, str] = {}
    # Walk group 0002 element by element; its group length, when present, must agree.
    while buf[walk.pos : walk.pos + 2] == b"\x02\x00":
        tag, vr, length = walk.header(explicit=True)
        value = walk.read(length) if length != _UNDEFINED else b""
        if tag == 0x00020000 and length == 4:
            group_end = walk.pos + struct.unpack("<I", value)[0]
        elif vr not in (b"OB", b"UN", b"SQ"):
            meta[tag & 0xFFFF] = value.rstrip(b"\0 ").decode("ascii", "replace")
    if group_end is not None and walk.pos != group_end:
        raise InvalidInput("the File Meta Information group length does not match its elements")
    syntax = meta.get(0x0010)
    if not syntax:
        raise InvalidInput("the File Meta Information has no Transfer Syntax UID (0002,0010)")
    dataset_offset = walk.pos
    if syntax == DEFLATED_LE:
        fp.seek(dataset_offset)
        _check_deflate(fp, size)
        return Part10(Layout(syntax, dataset_offset, size), meta, None)
    walk = _Walk(buf, size, little=syntax != EXPLICIT_BE, explicit=syntax != IMPLICIT_LE, keep=keep,
                 check_fragments=check_fragments)
    walk.pos = dataset_offset
    found: dict[str, object] = {}
    elements = _walk_dataset(walk, walk.explicit, end=size, top=True, found=found)
    layout = Layout(syntax, dataset_offset, size, **found)  # type: ignore[arg-type]
    if keep is None or walk.pydicom_reads or not walk.little:
        return Part10(layout, meta, None)
    return Part10(layout, meta, _dataset(elements, walk.explicit, little=True))


def _dataset(elements: dict | None, explicit: bool, little: bool) -> Dataset:
    ds = Dataset(elements or {})
    ds.set_original_encoding(not explicit, little)
    return ds


def _walk_dataset(w: _Walk, explicit: bool, end: int | None, top: bool, found: dict) -> dict | None:
    """Walk elements until ``end`` (a byte offset) or, with end=None, an Item Delimiter.

    Returns the elements (tag → raw element) when the walk keeps them."""
    elements: dict | None = {} if w.keep is not None else None
    while end is None or w.pos < end:
        if end is not None and end - w.pos < 8:
            raise InvalidInput(f"file is truncated: {end - w.pos} stray bytes at its end")
        tag, vr, length = w.header(explicit)
        start = w.pos
        if tag == _ITEM_END:
            if end is None:
                return elements
            raise InvalidInput("an Item Delimitation Item stands outside any item")
        value = None
        if top and tag == _PIXEL_DATA:
            _walk_pixel_data(w, length, found)
        elif length == _UNDEFINED:
            items = _walk_sequence(w, explicit and vr != b"UN", found)
            if elements is not None:
                if vr not in (b"", b"SQ"):
                    w.pydicom_reads = True  # a sequence encoded as UN (PS3.5 6.2.2)
                elements[BaseTag(tag)] = DataElement(
                    tag, "SQ", [_dataset(item, explicit, w.little) for item in items]
                )
                continue
        elif top and tag in (_EXTENDED_OFFSETS, _EXTENDED_LENGTHS):
            value = w.read(length)
            found["extended_offsets" if tag == _EXTENDED_OFFSETS else "extended_lengths"] = struct.unpack(
                f"<{length // 8}Q", value
            )
        else:
            w.skip(length)
            if elements is not None:
                if vr == b"UN" and tag >> 16 & 1 == 0:
                    w.pydicom_reads = True  # pydicom gives it the dictionary's VR
                if length <= w.keep or (vr or _implicit_vr(tag)) not in _BULK_VRS:
                    value = w.buf[start : w.pos]
        if elements is not None:
            elements[BaseTag(tag)] = RawDataElement(
                BaseTag(tag), vr.decode() if vr else None, length, value, start, not explicit, w.little
            )
    if end is None:
        raise InvalidInput("an item with undefined length has no Item Delimitation Item")
    return elements


def _implicit_vr(tag: int) -> bytes:
    try:
        return dictionary_VR(tag).encode()
    except KeyError:
        return b"UN"


def _walk_sequence(w: _Walk, explicit: bool, found: dict) -> list:
    """Walk a sequence of undefined length; the items' elements when the walk keeps them."""
    items = []
    while True:
        tag, _, length = w.header(explicit)
        if tag == _SEQ_END:
            return items
        if tag != _ITEM:
            raise InvalidInput(f"expected an item inside a sequence, found tag {tag:08X}")
        if length == _UNDEFINED:
            items.append(_walk_dataset(w, explicit, end=None, top=False, found=found))
        else:
            start = w.pos
            w.skip(length)
            w.pos = start
            items.append(_walk_dataset(w, explicit, end=start + length, top=False, found=found))


def _walk_pixel_data(w: _Walk, length: int, found: dict) -> None:
    if length != _UNDEFINED:
        found["pixel_offset"], found["pixel_length"] = w.pos, length
        w.skip(length)
        return
    # Encapsulated: a pyramid level holds tens of thousands of fragments. A Basic Offset
    # Table of one fragment per frame lets them all be checked at once; otherwise this
    # loop reads each item header with one unpack and keeps its state in locals.
    item = struct.Struct("<HHI" if w.little else ">HHI").unpack_from
    buf, size, pos = w.buf, w.size, w.pos
    offsets, lengths = array("q"), array("q")
    table: tuple[int, ...] | None = None
    while True:
        if pos + 8 > size:
            raise InvalidInput(f"file is truncated at byte {size} of {pos + 8}")
        group, element, item_length = item(buf, pos)
        tag = (group << 16) | element
        pos += 8
        if tag == _SEQ_END:
            break
        if tag != _ITEM or item_length == _UNDEFINED:
            raise InvalidInput(f"encapsulated Pixel Data holds a malformed item (tag {tag:08X})")
        if pos + item_length > size:
            raise InvalidInput(
                f"file is truncated: an element ends at byte {pos + item_length} but the file has {size}"
            )
        if table is not None:
            offsets.append(pos)
            lengths.append(item_length)
            pos += item_length
            continue
        table = struct.unpack_from(f"{w.u32.format[0]}{item_length // 4}I", buf, pos)
        pos += item_length
        if table and w.little and (by_table := _fragments_by_table(buf, size, pos, table, w.check_fragments)):
            (offsets, lengths), pos = by_table
            found["fragments_checked"] = w.check_fragments
            break
    w.pos = pos
    found["fragment_offsets"], found["fragment_lengths"], found["offset_table"] = offsets, lengths, table or ()


def _fragments_by_table(buf, size: int, start: int, table: tuple[int, ...], check: bool = True):
    """One fragment per frame, found through the Basic Offset Table, or None.

    When the table points at one fragment per frame, each fragment's length is the gap
    to the next entry, so every item header can be checked at once, without a walk
    from item to item: the same items and the same checks, at a pyramid level's tens
    of thousands of fragments. With ``check`` False only the last item's header and the
    Sequence Delimitation Item after it are read. Returns ((offsets, lengths), the
    position after the Sequence Delimitation Item); None sends the caller to the walk.
    """
    entries = np.asarray(table, dtype=np.int64)
    if entries[0] != 0 or np.any(np.diff(entries) < 8):
        return None
    headers = start + entries
    if headers[-1] + 8 > size:
        return None
    lengths = np.empty(len(entries), dtype=np.int64)
    lengths[:-1] = np.diff(entries) - 8
    last_tag, lengths[-1] = struct.unpack_from("<II", buf, int(headers[-1]))
    end = int(headers[-1]) + 8 + int(lengths[-1])
    if last_tag != _ITEM_LE or end + 8 > size or bytes(buf[end : end + 8]) != _SEQ_END_LE:
        return None
    if check:
        data = np.frombuffer(buf, dtype=np.uint8, count=size)
        fields = data[headers[:-1, None] + np.arange(8)].view("<u4")  # (frames - 1, 2): tag, length
        if np.any(fields[:, 0] != _ITEM_LE) or np.any(fields[:, 1] != lengths[:-1]):
            return None
    offsets, sizes = array("q"), array("q")
    offsets.frombytes((headers + 8).tobytes())
    sizes.frombytes(lengths.tobytes())
    return (offsets, sizes), end + 8


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


def item_header(length: int) -> bytes:
    """The 8 bytes, little endian, that open an encapsulated fragment of ``length`` bytes."""
    return _ITEM_HEADER.pack(0xFFFE, 0xE000, length)


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
