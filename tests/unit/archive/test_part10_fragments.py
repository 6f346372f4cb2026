"""Where ``archive.part10`` finds the fragments of encapsulated pixel data.

A Basic Offset Table of one fragment per frame lets the scan check every item header
at once; anything else goes through the item-by-item walk. Both must find the same
fragments and refuse the same damaged files. The IIIF frame index
(``iiif.frameindex``) goes further: it takes such fragments from the table unread and
checks each item header when its frame is read.
"""

from __future__ import annotations

import io
import struct

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from archive.errors import InvalidInput
from archive.part10 import frame_extents, scan_part10
from iiif.frameindex import FrameIndex

FRAMES = [b"\xff\xd8" + bytes([i]) * (10 + 7 * i) + b"\xff\xd9" for i in range(6)]


def _file(pixel_data: bytes, frames: int) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.NumberOfFrames = frames
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _scan(data: bytes, tmp_path, name: str = "f.dcm", check_fragments: bool = True):
    path = tmp_path / name
    path.write_bytes(data)
    with open(path, "rb") as fp:
        return scan_part10(fp, len(data), check_fragments=check_fragments)


def _read_frames(layout, data: bytes, frames: int) -> list[bytes]:
    extents = frame_extents(layout, frames, 0)
    return [b"".join(data[f.offset : f.offset + f.length] for f in extent) for extent in extents]


def _padded(frame: bytes) -> bytes:
    return frame + b"\0" * (len(frame) % 2)


@pytest.mark.parametrize("has_bot", [True, False])
def test_one_fragment_per_frame_is_found_with_or_without_the_table(tmp_path, has_bot):
    data = _file(encapsulate(FRAMES, has_bot=has_bot), len(FRAMES))
    layout = _scan(data, tmp_path)
    assert len(layout.fragment_offsets) == len(FRAMES)
    assert bool(layout.offset_table) is has_bot
    assert _read_frames(layout, data, len(FRAMES)) == [_padded(f) for f in FRAMES]


def test_the_table_path_agrees_with_the_walk(tmp_path):
    with_table = _file(encapsulate(FRAMES, has_bot=True), len(FRAMES))
    walked = _scan(_file(encapsulate(FRAMES, has_bot=False), len(FRAMES)), tmp_path, "walked.dcm")
    found = _scan(with_table, tmp_path)
    shift = len(FRAMES) * 4  # the table's own bytes come before the fragments
    assert list(found.fragment_lengths) == list(walked.fragment_lengths)
    assert [o - shift for o in found.fragment_offsets] == list(walked.fragment_offsets)
    assert found.size == walked.size + shift


def test_frames_of_several_fragments_go_through_the_walk(tmp_path):
    frames = [FRAMES[0] * 3, FRAMES[1] * 3]
    data = _file(encapsulate(frames, fragments_per_frame=2, has_bot=True), len(frames))
    layout = _scan(data, tmp_path)
    assert len(layout.fragment_offsets) == 4
    assert [f.rstrip(b"\0") for f in _read_frames(layout, data, 2)] == frames


def _with_table_and_fragment(data: bytes, change) -> bytes:
    """``data`` with the bytes of its third fragment's item header passed through ``change``."""
    pixel = data.index(b"\xe0\x7f\x10\x00")  # the Pixel Data tag
    first_item = pixel + 12
    table_length = struct.unpack_from("<I", data, first_item + 4)[0]
    table = struct.unpack_from(f"<{table_length // 4}I", data, first_item + 8)
    header = first_item + 8 + table_length + table[2]
    return data[:header] + change(data[header : header + 8]) + data[header + 8 :]


def test_a_damaged_item_header_is_refused(tmp_path):
    data = _file(encapsulate(FRAMES, has_bot=True), len(FRAMES))
    broken = _with_table_and_fragment(data, lambda h: b"\xfe\xff\x00\xe1" + h[4:])
    with pytest.raises(InvalidInput, match="malformed item"):
        _scan(broken, tmp_path)


def test_a_table_that_disagrees_with_the_items_is_not_trusted(tmp_path):
    """A fragment longer than the table says: the walk finds the items as they are."""
    data = _file(encapsulate(FRAMES, has_bot=True), len(FRAMES))
    longer = _with_table_and_fragment(data, lambda h: h[:4] + struct.pack("<I", struct.unpack("<I", h[4:])[0] + 2))
    with pytest.raises(InvalidInput):
        _scan(longer, tmp_path)  # the walk goes on from the wrong place and finds no item


@pytest.mark.parametrize("cut", [1, 8, 9, 20])
def test_a_truncated_file_is_refused(tmp_path, cut):
    data = _file(encapsulate(FRAMES, has_bot=True), len(FRAMES))
    with pytest.raises(InvalidInput, match="truncated"):
        _scan(data[:-cut], tmp_path)



# --- fragments taken from the table unread, checked when read --------------------------


def _items(frames: list[list[bytes]]) -> bytes:
    """Encapsulated Pixel Data with a Basic Offset Table; each frame's fragments in order."""
    body, table = b"", []
    for fragments in frames:
        table.append(len(body))
        for fragment in map(_padded, fragments):
            body += struct.pack("<HHI", 0xFFFE, 0xE000, len(fragment)) + fragment
    offsets = struct.pack(f"<HHI{len(table)}I", 0xFFFE, 0xE000, 4 * len(table), *table)
    return offsets + body + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _index(data: bytes, tmp_path, frames: int) -> FrameIndex:
    path = tmp_path / "level.dcm"
    path.write_bytes(data)
    return FrameIndex(str(path), {}, frames)


def test_fragments_from_the_table_are_those_the_checked_scan_finds(tmp_path):
    data = _file(encapsulate(FRAMES, has_bot=True), len(FRAMES))
    checked = _scan(data, tmp_path)
    unread = _scan(data, tmp_path, check_fragments=False)
    assert checked.fragments_checked and not unread.fragments_checked
    assert list(unread.fragment_offsets) == list(checked.fragment_offsets)
    assert list(unread.fragment_lengths) == list(checked.fragment_lengths)
    assert _read_frames(unread, data, len(FRAMES)) == [_padded(f) for f in FRAMES]


def test_frame_index_reads_each_frame_through_the_table(tmp_path):
    index = _index(_file(encapsulate(FRAMES, has_bot=True), len(FRAMES)), tmp_path, len(FRAMES))
    assert [index.read(n) for n in reversed(range(len(FRAMES)))] == [_padded(f) for f in reversed(FRAMES)]


def test_a_frame_of_two_fragments_behind_the_table_is_found_when_read(tmp_path):
    """The table's gaps look like one fragment per frame; frame 1's header says otherwise."""
    layout = [[FRAMES[0]], [FRAMES[1], FRAMES[2]], [FRAMES[3]]]
    data = _file(_items(layout), len(layout))
    assert not _scan(data, tmp_path, check_fragments=False).fragments_checked
    index = _index(data, tmp_path, len(layout))
    assert index.read(0) == _padded(FRAMES[0])
    assert index.read(1) == _padded(FRAMES[1]) + _padded(FRAMES[2])
    assert index.read(2) == _padded(FRAMES[3])


def test_a_damaged_item_header_is_refused_when_its_frame_is_read(tmp_path):
    data = _file(encapsulate(FRAMES, has_bot=True), len(FRAMES))
    broken = _with_table_and_fragment(data, lambda h: b"\xfe\xff\x00\xe1" + h[4:])
    index = _index(broken, tmp_path, len(FRAMES))  # opening reads the table, not the items
    assert index.read(0) == _padded(FRAMES[0])
    with pytest.raises(InvalidInput, match="malformed item"):
        index.read(2)


def test_a_fragment_longer_than_the_table_says_is_not_served(tmp_path):
    data = _file(encapsulate(FRAMES, has_bot=True), len(FRAMES))
    longer = _with_table_and_fragment(data, lambda h: h[:4] + struct.pack("<I", struct.unpack("<I", h[4:])[0] + 2))
    index = _index(longer, tmp_path, len(FRAMES))
    with pytest.raises(InvalidInput):
        index.read(2)
