from __future__ import annotations

import struct

import numpy as np
import pydicom
import pytest

from archive.dicom.encapsulated import read_encapsulated_stl
from archive.errors import InvalidInput
from ingest.converters.stl import MeshMeter, convert_stl, inspect_stl, measure_ascii_stl
from tests.factories.files import ascii_stl, binary_stl
from tests.unit.dicom.iod import check_iod
from tests.unit.ingest.conftest import listing


@pytest.mark.parametrize("make", [binary_stl, ascii_stl, lambda: binary_stl(1001, seed=4)])
def test_stl_converts_byte_identical(make, target, tmp_path):
    data = make()
    src = tmp_path / "part.stl"
    src.write_bytes(data)
    [out] = convert_stl(src, target)
    ds = pydicom.dcmread(out.path)
    assert read_encapsulated_stl(ds) == data
    assert ds.SOPInstanceUID == out.sop_instance_uid
    assert ds.Modality == "M3D" and ds.MIMETypeOfEncapsulatedDocument == "model/stl"
    assert ds.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    assert ds.ModelGroupUID
    check_iod(ds)
    assert listing(target.out_dir) == [out.path.name]


def test_tetrahedron_is_measured(target, tmp_path):
    src = tmp_path / "t.stl"
    src.write_bytes(binary_stl())
    ds = pydicom.dcmread(convert_stl(src, target)[0].path)
    assert ds.ContentDescription == "4 tri; 10x10x10 mm; 236.6 mm2; 166.67 mm3"


def test_meter_is_chunk_independent():
    data = binary_stl(257, seed=9)
    whole, pieces = MeshMeter(), MeshMeter()
    whole.feed(data)
    for i in range(0, len(data), 37):
        pieces.feed(data[i:i + 37])
    a, b = whole.result(), pieces.result()
    assert a.triangles == b.triangles == 257
    assert a.area_mm2 == pytest.approx(b.area_mm2)
    assert a.volume_mm3 == pytest.approx(b.volume_mm3)
    assert a.bbox_min_mm == b.bbox_min_mm


def test_ascii_and_binary_measure_alike():
    a = measure_ascii_stl(ascii_stl())
    meter = MeshMeter()
    meter.feed(binary_stl())
    b = meter.result()
    assert a.triangles == b.triangles and a.volume_mm3 == pytest.approx(b.volume_mm3)


def test_truncated_binary_stl(target, tmp_path):
    src = tmp_path / "cut.stl"
    src.write_bytes(binary_stl(10)[:-30])
    with pytest.raises(InvalidInput, match="truncated: header declares 10 triangles"):
        convert_stl(src, target)
    assert listing(target.out_dir) == []


def test_count_mismatch(target, tmp_path):
    data = bytearray(binary_stl(10))
    struct.pack_into("<I", data, 80, 7)
    src = tmp_path / "bad.stl"
    src.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="triangle count 7 disagrees with the file size"):
        convert_stl(src, target)
    assert listing(target.out_dir) == []


def test_too_short_for_a_header(target, tmp_path):
    src = tmp_path / "tiny.stl"
    src.write_bytes(b"\x00" * 50)
    with pytest.raises(InvalidInput, match="50 bytes"):
        convert_stl(src, target)
    assert listing(target.out_dir) == []


def test_binary_header_starting_with_solid_is_binary(tmp_path):
    src = tmp_path / "s.stl"
    src.write_bytes(binary_stl(header=b"solid but binary"))
    assert inspect_stl(src).binary


def test_truncated_ascii_stl(target, tmp_path):
    src = tmp_path / "a.stl"
    src.write_bytes(ascii_stl()[:200])
    with pytest.raises(InvalidInput):
        convert_stl(src, target)
    assert listing(target.out_dir) == []


def test_nan_vertices_are_rejected(target, tmp_path):
    data = bytearray(binary_stl())
    struct.pack_into("<f", data, 84 + 12, np.nan)
    src = tmp_path / "nan.stl"
    src.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="non-finite"):
        convert_stl(src, target)
    assert listing(target.out_dir) == []


def test_progress_reaches_one(target, tmp_path):
    from dataclasses import replace

    seen = []
    src = tmp_path / "p.stl"
    src.write_bytes(binary_stl(50))
    convert_stl(src, replace(target, on_progress=lambda stage, f: seen.append((stage, f))))
    assert seen[0] == ("stl", 0.0) and seen[-1] == ("stl", 1.0)
