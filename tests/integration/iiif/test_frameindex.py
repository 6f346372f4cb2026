"""FrameIndex (iiif/frameindex.py) reads what archive.frames reads, frame for frame."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit

from archive import frames
from archive.models import Instance
from archive.storage import get_storage
from iiif.frameindex import FrameIndex
from tests.factories.images import build_noise_image, encode_jpeg

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def _stored(series_uid: str):
    storage = get_storage()
    for row in Instance.objects.filter(series__series_uid=series_uid).order_by("instance_number"):
        yield storage.path(row.path), row.metadata, row.number_of_frames or 1


def test_every_frame_of_every_level_matches_archive_frames(wsi):
    checked = 0
    for path, metadata, count in _stored(wsi.series_uid):
        index = FrameIndex(path, metadata, count)
        assert index.nbytes >= 16 * count
        for n in range(count):
            assert index.read(n) == frames.read_frames(path, metadata, count, [n + 1])[0]
            checked += 1
        with pytest.raises(IndexError):
            index.read(count)
    assert checked == sum(len(level) for level in wsi.frames)


def test_native_frames(ct):
    path, metadata, count = next(_stored(ct[0].SeriesInstanceUID))
    assert FrameIndex(path, metadata, count).read(0) == frames.read_frames(path, metadata, count, [1])[0]


def _rewrite(path, tmp_path, name: str, change) -> str:
    ds = pydicom.dcmread(path)
    change(ds)
    out = tmp_path / name
    ds.save_as(out, enforce_file_format=True)
    return str(out)


def test_frames_of_several_fragments_and_deflated_files(tmp_path, wsi):
    path, metadata, count = next(_stored(wsi.series_uid))
    jpegs = [encode_jpeg(build_noise_image(32, 32, seed=n)) for n in range(3)]

    def split_fragments(ds):
        ds.NumberOfFrames = 3
        ds.PixelData = encapsulate(jpegs, fragments_per_frame=2, has_bot=True)
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit

    split = _rewrite(path, tmp_path, "split.dcm", split_fragments)
    index = FrameIndex(split, metadata, 3)
    assert [index.read(n) for n in range(3)] == [frames.read_frames(split, metadata, 3, [n + 1])[0] for n in range(3)]
    assert index.read(1).rstrip(b"\0") == jpegs[1]

    path, metadata, count = next(_stored(wsi.series_uid))

    def deflate(ds):
        ds.decompress()
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian

    deflated = _rewrite(path, tmp_path, "deflated.dcm", deflate)
    index = FrameIndex(deflated, {**metadata, "00280010": {"Value": [256]}, "00280011": {"Value": [256]}}, count)
    assert len(index.read(0)) == 256 * 256 * 3
