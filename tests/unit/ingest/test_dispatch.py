from __future__ import annotations

import zipfile
from datetime import datetime

import numpy as np
import pydicom
import pytest

from archive.errors import InvalidInput, UnsupportedMediaType
from ingest.converters import convert, make_uid_factory
from ingest.converters.dispatch import sniff
from ingest.converters.safezip import ZipLimits
from ingest.metadata import CuratorMetadata, read_private_metadata
from tests.factories.files import (
    ascii_stl,
    binary_stl,
    jpeg_bytes,
    nifti_bytes,
    obj_group,
    pdf_bytes,
    png_bytes,
    pyramidal_jpeg_tiff,
    tiff_stack,
    zip_bytes,
)
from tests.unit.ingest.conftest import listing

ROOT = "1.2.826.0.1.3680043.10.543.77"
META = CuratorMetadata(inventory_number="INV-9", title="Bowl", holding_institution="Museum",
                       licence="CC-BY-4.0", voxel_size_mm=(0.1, 0.1, 0.2))


def _convert(paths, out_dir, meta=META, **kw):
    return convert(paths, metadata=meta, uids=make_uid_factory(ROOT), now=datetime(2024, 2, 3, 4, 5, 6),
                   out_dir=out_dir, **kw)


def _classes(result):
    return sorted(pydicom.dcmread(p).SOPClassUID for p in result.paths)


def test_sniffing_uses_content_not_names(tmp_path):
    cases = {
        "a.bin": pdf_bytes(), "b.dat": jpeg_bytes(), "c.txt": png_bytes(),
        "d.model": ascii_stl(), "e.nii": nifti_bytes(np.zeros((2, 2, 2), np.int16)),
    }
    kinds = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        kinds[name] = sniff(tmp_path / name, META)
    assert kinds == {"a.bin": "pdf", "b.dat": "photo", "c.txt": "photo", "d.model": "stl", "e.nii": "nifti"}
    (tmp_path / "x.stl").write_bytes(binary_stl())
    assert sniff(tmp_path / "x.stl", META) == "stl"


def test_mixed_zip_upload(tmp_path, out_dir):
    folder = tmp_path / "model"
    obj_group(folder)
    entries = {f"model/{p.name}": p.read_bytes() for p in folder.iterdir()}
    entries["report.pdf"] = pdf_bytes()
    entries["part.stl"] = binary_stl()
    entries["photo.jpg"] = jpeg_bytes()
    entries["metadata.json"] = b"{}"
    upload = tmp_path / "upload.zip"
    upload.write_bytes(zip_bytes(entries))
    seen = []
    result = _convert([upload], out_dir, on_progress=lambda s, f: seen.append(f))
    assert _classes(result) == sorted([
        "1.2.840.10008.5.1.4.1.1.104.1", "1.2.840.10008.5.1.4.1.1.104.3",
        "1.2.840.10008.5.1.4.1.1.104.4", "1.2.840.10008.5.1.4.1.1.104.5",
        "1.2.840.10008.5.1.4.1.1.77.1.4", "1.2.840.10008.5.1.4.1.1.77.1.4",
    ])
    datasets = [pydicom.dcmread(p) for p in result.paths]
    assert {d.StudyInstanceUID for d in datasets} == {result.study_uid}
    assert {d.PatientID for d in datasets} == {"INV-9"}
    assert all(read_private_metadata(d)["licence"] == "CC-BY-4.0" for d in datasets)
    numbers = sorted({(d.SeriesInstanceUID, int(d.SeriesNumber)) for d in datasets}, key=lambda x: x[1])
    assert len({n for _, n in numbers}) == len(numbers)  # one number per series
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for p in result.paths)


def test_tiff_stack_folder_and_nifti(tmp_path, out_dir):
    stack = tiff_stack(tmp_path / "ct", slices=6)
    nii = tmp_path / "v.nii.gz"
    nii.write_bytes(nifti_bytes(np.ones((4, 3, 2), np.int16), gz=True))
    result = _convert([stack, nii], out_dir)
    assert _classes(result) == ["1.2.840.10008.5.1.4.1.1.2"] * 8
    assert len(result.series_uids) == 2


def test_slide_and_dicom_passthrough(tmp_path, out_dir):
    slide = tmp_path / "s.tif"
    pyramidal_jpeg_tiff(slide, size=(512, 512), levels=2)
    first = _convert([slide], out_dir)
    assert _classes(first) == ["1.2.840.10008.5.1.4.1.1.77.1.6"] * 2
    again = tmp_path / "again"
    again.mkdir()
    second = _convert([out_dir], again)
    assert sorted(p.read_bytes() for p in second.paths) == sorted(p.read_bytes() for p in first.paths)


@pytest.mark.parametrize("entries, message", [
    ({"../evil.stl": binary_stl()}, "escapes"),
    ({"/abs.stl": binary_stl()}, "absolute"),
])
def test_unsafe_zip_rejected_and_nothing_written(entries, message, tmp_path, out_dir):
    upload = tmp_path / "u.zip"
    upload.write_bytes(zip_bytes(entries))
    with pytest.raises(InvalidInput, match=message):
        _convert([upload], out_dir)
    assert listing(out_dir) == []


def test_zip_bomb_rejected(tmp_path, out_dir):
    upload = tmp_path / "bomb.zip"
    upload.write_bytes(zip_bytes({"a.stl": b"\x00" * (8 * 1024 * 1024)}))
    with pytest.raises(InvalidInput, match="zip bomb"):
        _convert([upload], out_dir, zip_limits=ZipLimits(max_ratio=100))
    assert listing(out_dir) == []


def test_unsupported_type(tmp_path, out_dir):
    junk = tmp_path / "notes.docx"
    junk.write_bytes(b"\x00\x01\x02 binary nonsense")
    with pytest.raises(UnsupportedMediaType, match="notes.docx"):
        _convert([junk], out_dir)
    assert listing(out_dir) == []


def test_failure_in_a_later_job_removes_earlier_outputs(tmp_path, out_dir):
    good = tmp_path / "a.pdf"
    good.write_bytes(pdf_bytes())
    bad = tmp_path / "b.stl"
    bad.write_bytes(binary_stl(5)[:-7])
    with pytest.raises(InvalidInput, match="truncated"):
        _convert([good, bad], out_dir)
    assert listing(out_dir) == []


def test_obj_missing_texture_via_dispatch(tmp_path, out_dir):
    obj = obj_group(tmp_path / "m", with_texture=False)
    with pytest.raises(InvalidInput, match="not uploaded"):
        _convert([obj.parent], out_dir)
    assert listing(out_dir) == []


def test_stack_without_voxel_size(tmp_path, out_dir):
    stack = tiff_stack(tmp_path / "ct", slices=3, multipage=True)
    meta = CuratorMetadata(inventory_number="X")
    with pytest.raises(InvalidInput, match="voxel_mm is required"):
        _convert([stack], out_dir, meta=meta)
    assert listing(out_dir) == []


def test_zip_of_dicom_is_not_mistaken(tmp_path, out_dir):
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(pdf_bytes())
    made = _convert([pdf], out_dir)
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(made.paths[0], "IM1")
    out2 = tmp_path / "o2"
    out2.mkdir()
    assert _classes(_convert([archive], out2)) == ["1.2.840.10008.5.1.4.1.1.104.1"]


def test_zip_of_tiff_slices_is_one_series(tmp_path, out_dir):
    stack = tiff_stack(tmp_path / "ct", slices=5)
    upload = tmp_path / "ct.zip"
    upload.write_bytes(zip_bytes({f"scan/{p.name}": p.read_bytes() for p in sorted(stack.iterdir())}))
    result = _convert([upload], out_dir)
    datasets = [pydicom.dcmread(p) for p in result.paths]
    assert len(datasets) == 5 and len(result.series_uids) == 1
    assert sorted(int(d.InstanceNumber) for d in datasets) == [1, 2, 3, 4, 5]
    assert float(datasets[0].PixelSpacing[0]) == pytest.approx(0.1)
    assert float(datasets[0].SpacingBetweenSlices) == pytest.approx(0.2)


def test_gltf_with_external_buffer(tmp_path, out_dir):
    import trimesh

    folder = tmp_path / "g"
    folder.mkdir()
    for name, data in trimesh.creation.icosphere().export(file_type="gltf").items():
        (folder / name).write_bytes(data)
    result = _convert([folder / "model.gltf"], out_dir)
    assert "1.2.840.10008.5.1.4.1.1.104.4" in _classes(result)
