"""Decoded copies for receivers that cannot take the stored transfer syntax."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from archive.dicom.transcode import TranscodeError, decompressed, part10_bytes
from tests.factories.datasets import ct_slice, jpeg_photo, to_bytes


def _gradient(rows: int = 24, columns: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:columns]
    return np.stack([x * 7, y * 9, (x + y) * 4], axis=-1).astype(np.uint8)


def test_jpeg_baseline_comes_out_rgb_and_native_under_the_same_uid():
    pixels = _gradient()
    stored = jpeg_photo(pixels)
    ds = decompressed(to_bytes(stored))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPInstanceUID == stored.SOPInstanceUID
    assert ds.PhotometricInterpretation == "RGB"
    again = dcmread(io.BytesIO(part10_bytes(ds)))
    assert not again.file_meta.TransferSyntaxUID.is_compressed
    decoded = again.pixel_array
    assert decoded.shape == pixels.shape
    assert np.abs(decoded.astype(int) - pixels).mean() < 3  # JPEG at quality 95


def test_rle_lossless_decodes_to_the_exact_pixels():
    ct = ct_slice(size=32)
    original = ct.pixel_array.copy()
    ct.compress(RLELossless, generate_instance_uid=False)
    ds = decompressed(to_bytes(ct))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(ds.pixel_array, original)
    assert ds.RescaleIntercept == -1024


def test_a_native_instance_is_returned_as_read():
    ct = ct_slice(size=8)
    ds = decompressed(to_bytes(ct))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.PixelData == ct.PixelData


def test_a_copy_over_the_limit_is_refused_with_the_reason():
    stored = jpeg_photo(_gradient())
    with pytest.raises(TranscodeError, match="over the 1000-byte limit"):
        decompressed(to_bytes(stored), max_bytes=1000)


def test_undecodable_pixel_data_is_refused_with_the_reason():
    stored = jpeg_photo(_gradient())
    stored.PixelData = encapsulate([b"\xff\xd8 not a JPEG stream \xff\xd9"])
    with pytest.raises(TranscodeError, match="cannot be decoded"):
        decompressed(to_bytes(stored))
