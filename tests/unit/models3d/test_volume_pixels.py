"""Slices read straight from the file agree with pydicom, and anything else goes to it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, RLELossless

from models3d import volumes
from tests.factories.datasets import ct_slice, to_bytes


def _slice_file(tmp_path, *, dtype="<i2", bits_stored=None, syntax=None, **extra):
    ds = ct_slice(size=12, **({"transfer_syntax": syntax} if syntax else {}), **extra)
    pixels = (np.arange(144).reshape(12, 12) * 37 - 2000).astype(dtype)
    if np.dtype(dtype).kind == "u":
        pixels = (np.arange(144).reshape(12, 12) * 3).astype(dtype)
    ds.BitsAllocated = np.dtype(dtype).itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if np.dtype(dtype).kind == "i" else 0
    ds.PixelData = pixels.tobytes()
    if syntax == RLELossless:
        ds.compress(RLELossless, pixels)
    path = tmp_path / "s.dcm"
    path.write_bytes(to_bytes(ds))
    info = volumes.SliceInfo(
        path=str(path), sop_class_uid=ds.SOPClassUID, sop_uid=ds.SOPInstanceUID, position_mm=(0.0, 0.0, 0.0),
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), pixel_spacing_mm=(1.0, 1.0), rows=12, columns=12,
        bits_stored=int(ds.BitsStored), signed=bool(ds.PixelRepresentation), bits_allocated=int(ds.BitsAllocated),
        transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
    )
    return info


@pytest.mark.parametrize("dtype", ["<i2", "<u2", "u1"])
@pytest.mark.parametrize("syntax", [None, ImplicitVRLittleEndian])
def test_native_slices_are_read_raw_and_match_pydicom(tmp_path, dtype, syntax):
    info = _slice_file(tmp_path, dtype=dtype, syntax=syntax)
    raw = volumes._raw_pixels(info)
    assert raw is not None
    expected = pixel_array(info.path)
    assert raw.dtype == expected.dtype and np.array_equal(raw, expected)


@pytest.mark.parametrize("kwargs, change", [
    ({"bits_stored": 12}, {}),                     # unused high bits: pydicom decides what they mean
    ({"syntax": RLELossless}, {}),
    ({}, {"transfer_syntax": ExplicitVRBigEndian}),  # as the index would say for such a file
    ({}, {"transfer_syntax": ""}),                   # unknown
    ({}, {"frames": 2}),
])
def test_other_slices_go_to_pydicom(tmp_path, kwargs, change):
    info = dataclasses.replace(_slice_file(tmp_path, **kwargs), **change)
    assert volumes._raw_pixels(info) is None
    if "frames" not in change:
        assert np.array_equal(volumes._stored_pixels(info), pixel_array(info.path))
