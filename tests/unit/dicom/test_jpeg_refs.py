from __future__ import annotations

import io
from datetime import date

import numpy as np
import pytest
from PIL import Image

from archive.dicom.jpeg import merge_jpeg_tables, read_jpeg_info, transfer_syntax_for
from archive.dicom.refs import MeshMeasurements, PatientInfo, SeriesRef, StudyRef, check_uid
from archive.errors import InvalidInput
from tests.factories.files import jpeg_bytes, split_jpeg_tables


def test_baseline_info():
    info = read_jpeg_info(jpeg_bytes((30, 50)))
    assert (info.rows, info.columns, info.components, info.process) == (30, 50, 3, "baseline")
    assert info.subsampled and info.photometric_interpretation == "YBR_FULL_422"
    assert transfer_syntax_for(info) == "1.2.840.10008.1.2.4.50"


def test_progressive_has_no_passthrough_syntax():
    assert transfer_syntax_for(read_jpeg_info(jpeg_bytes(progressive=True))) is None


def test_rgb_marker_and_tables_merge_decode_alike():
    whole = jpeg_bytes((64, 64), seed=5)
    tables, tile = split_jpeg_tables(whole)
    with pytest.raises(Exception):
        Image.open(io.BytesIO(tile)).load()  # abbreviated: no tables
    merged = merge_jpeg_tables(tile, tables)
    a = np.asarray(Image.open(io.BytesIO(merged)))
    b = np.asarray(Image.open(io.BytesIO(whole)))
    assert np.array_equal(a, b)
    marked = merge_jpeg_tables(whole, None, mark_rgb=True)
    assert read_jpeg_info(marked).photometric_interpretation == "RGB"


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\xff\xd8\xff\xc0\x00"])
def test_malformed_jpeg(data):
    with pytest.raises(InvalidInput):
        read_jpeg_info(data)


@pytest.mark.parametrize("uid", ["1.2.03", "1..2", "a.b", "1." + "1" * 70, ""])
def test_bad_uids(uid):
    with pytest.raises(InvalidInput):
        check_uid("x", uid)


def test_refs_validate():
    with pytest.raises(InvalidInput, match="sex"):
        PatientInfo("p", sex="X")
    with pytest.raises(InvalidInput, match="patient_id"):
        PatientInfo("")
    with pytest.raises(InvalidInput, match="study_uid"):
        StudyRef("nope")
    with pytest.raises(InvalidInput, match="series number"):
        SeriesRef("1.2", number=-1)
    assert PatientInfo("p", birth_date=date(1900, 1, 2)).birth_date.year == 1900


def test_measurements_fit_lo():
    m = MeshMeasurements(triangles=123456789, area_mm2=1e12 / 3, volume_mm3=1e15 / 7,
                         bbox_min_mm=(-1e6, -1e6, -1e6), bbox_max_mm=(1e6, 1e6, 1e6))
    assert len(m.describe()) <= 64
