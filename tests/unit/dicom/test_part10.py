from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.encaps import get_frame

from archive.dicom.part10 import atomic_output, encode_header, open_frame_writer, write_native_pixel_file
from archive.dicom.photo import build_photo_from_pixels


def _header(refs):
    ds = build_photo_from_pixels(np.zeros((4, 4), np.uint8), compress=False, **refs)
    del ds.PixelData
    ds.NumberOfFrames = 3
    return ds


FRAMES = [b"\xff\xd8abc\xff\xd9", b"\xff\xd8" + b"x" * 100 + b"\xff\xd9", b"\xff\xd8\xff\xd9"]


@pytest.mark.parametrize("extended", [False, True])
def test_streamed_frames_read_back_by_offset_table(refs, tmp_path, extended):
    path = tmp_path / "f.dcm"
    with open_frame_writer(path, _header(refs), transfer_syntax_uid="1.2.840.10008.1.2.4.50",
                           number_of_frames=3, extended=extended) as writer:
        for frame in FRAMES:
            writer.add_frame(frame)
    ds = pydicom.dcmread(path)
    kwargs = {}
    if extended:
        offsets = np.frombuffer(ds.ExtendedOffsetTable, "<u8").tolist()
        lengths = np.frombuffer(ds.ExtendedOffsetTableLengths, "<u8").tolist()
        assert lengths == [len(f) for f in FRAMES]
        kwargs["extended_offsets"] = (offsets, lengths)
    for index, frame in enumerate(FRAMES):
        got = get_frame(ds.PixelData, index, number_of_frames=3, **kwargs)
        assert got.rstrip(b"\x00") == frame


def test_missing_frames_leave_nothing(refs, tmp_path):
    with pytest.raises(ValueError, match="1 frames written, 3 declared"):
        with open_frame_writer(tmp_path / "f.dcm", _header(refs), transfer_syntax_uid="1.2.840.10008.1.2.4.50",
                               number_of_frames=3) as writer:
            writer.add_frame(FRAMES[0])
    assert list(tmp_path.iterdir()) == []


def test_too_many_frames_refused(refs, tmp_path):
    with pytest.raises(ValueError, match="more frames"):
        with open_frame_writer(tmp_path / "f.dcm", _header(refs), transfer_syntax_uid="1.2.840.10008.1.2.4.50",
                               number_of_frames=1) as writer:
            writer.add_frame(FRAMES[0])
            writer.add_frame(FRAMES[1])
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_removes_temp_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "x.bin") as fp:
            fp.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(tmp_path / "x.bin") as fp:
        fp.write(b"whole")
    assert (tmp_path / "x.bin").read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_native_pixel_file_equals_pydicom_output(refs, tmp_path):
    pixels = np.arange(24, dtype=np.uint16).reshape(4, 6)
    from archive.dicom.ct import VolumeGeometry, build_ct_slice

    ds = build_ct_slice(pixels, index=0, geometry=VolumeGeometry.from_voxel_size((1, 1, 1)),
                        patient=refs["patient"], study=refs["study"], series=refs["series"],
                        instance_uid=refs["instance_uid"], frame_of_reference_uid="1.2.9", created=refs["created"])
    whole = tmp_path / "whole.dcm"
    from archive.dicom.part10 import write_dataset_file

    write_dataset_file(whole, ds)
    header_only = ds.copy()
    del header_only.PixelData
    fast = tmp_path / "fast.dcm"
    write_native_pixel_file(fast, encode_header(header_only), pixels)
    assert fast.read_bytes() == whole.read_bytes()
    assert np.array_equal(pydicom.dcmread(fast).pixel_array, pixels)


@pytest.mark.parametrize("extended", [False, True])
def test_archive_frame_reader_finds_every_frame(refs, tmp_path, extended):
    """The archive's own scan (WADO-RS /frames, IIIF tiles) reads what the writer wrote,
    through the Basic or the Extended Offset Table."""
    from archive.frames import read_frames

    path = tmp_path / "f.dcm"
    with open_frame_writer(path, _header(refs), transfer_syntax_uid="1.2.840.10008.1.2.4.50",
                           number_of_frames=3, extended=extended) as writer:
        for frame in FRAMES:
            writer.add_frame(frame)
    got = read_frames(str(path), {}, 3, [1, 2, 3])
    assert [g.rstrip(b"\x00") for g in got] == list(FRAMES)
    if extended:
        assert got == list(FRAMES)  # the recorded lengths drop the even-length pad
