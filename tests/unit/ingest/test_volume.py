from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
import tifffile

from archive.dicom.ct import Rescale, read_ct_volume
from archive.errors import InvalidInput
from ingest.converters.volume import convert_nifti, convert_tiff_stack, read_nifti
from tests.factories.files import nifti_bytes, tiff_stack
from tests.unit.dicom.iod import check_iod
from tests.unit.ingest.conftest import listing


def _datasets(outputs):
    return [pydicom.dcmread(o.path) for o in outputs]


@pytest.mark.parametrize("multipage", [False, True])
@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_tiff_stack_roundtrip(multipage, dtype, target, tmp_path):
    src = tiff_stack(tmp_path / "in", slices=12, dtype=dtype, multipage=multipage)
    outputs = convert_tiff_stack(src, target, voxel_mm=(0.02, 0.03, 0.05))
    datasets = _datasets(outputs)
    assert len(datasets) == 12
    assert len({d.FrameOfReferenceUID for d in datasets}) == 1
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    for ds in datasets:
        check_iod(ds)
    vol, geometry, rescale = read_ct_volume(list(reversed(datasets)))
    expected = tifffile.imread(src) if multipage else np.stack(
        [tifffile.imread(p) for p in sorted(src.iterdir())])
    assert np.array_equal(vol, expected)
    assert geometry.pixel_spacing_mm == (0.03, 0.02)
    assert geometry.slice_step_mm == pytest.approx((0, 0, 0.05))
    assert datasets[3].ImagePositionPatient == [0, 0, pytest.approx(0.15)]
    assert float(datasets[0].SpacingBetweenSlices) == pytest.approx(0.05)
    assert float(datasets[0].SliceThickness) == pytest.approx(0.05)
    assert (rescale.slope, rescale.intercept) == (1.0, 0.0)
    assert datasets[0].RescaleType == "US"


def test_highdicom_places_the_stack_in_mm(target, tmp_path):
    src = tiff_stack(tmp_path / "in", slices=4)
    datasets = _datasets(convert_tiff_stack(src, target, voxel_mm=(0.5, 0.25, 2.0)))
    volume = hd.get_volume_from_series(datasets)
    expected = tifffile.imread(sorted(src.iterdir())[3])[2, 1]
    # Slice 3, row 2, column 1 must sit at x = 1 * 0.5, y = 2 * 0.25, z = 3 * 2 mm.
    assert _value_at(volume, [0.5, 0.5, 6.0]) == expected


def _value_at(volume, lps):
    """The voxel value highdicom places at a patient point (its own axis order)."""
    index = np.linalg.inv(volume.affine) @ np.array([*lps, 1.0])
    rounded = np.rint(index[:3]).astype(int)
    assert index[:3] == pytest.approx(rounded, abs=1e-4)
    return volume.array[tuple(rounded)]


def test_natural_slice_order(target, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in (1, 2, 10):
        tifffile.imwrite(folder / f"s{i}.tif", np.full((4, 4), i, np.uint16))
    vol, _, _ = read_ct_volume(_datasets(convert_tiff_stack(folder, target, voxel_mm=(1, 1, 1))))
    assert vol[:, 0, 0].tolist() == [1, 2, 10]


def test_slices_differing_in_size(target, tmp_path):
    src = tiff_stack(tmp_path / "in", slices=3)
    tifffile.imwrite(src / "slice_001.tif", np.zeros((10, 10), np.uint16))
    with pytest.raises(InvalidInput, match=r"slice_001.tif: slice size \(10, 10\) differs"):
        convert_tiff_stack(src, target, voxel_mm=(1, 1, 1))
    assert listing(target.out_dir) == []


def test_slices_differing_in_depth(target, tmp_path):
    src = tiff_stack(tmp_path / "in", slices=3)
    tifffile.imwrite(src / "slice_002.tif", np.zeros((16, 12), np.uint8))
    with pytest.raises(InvalidInput, match="slice_002.tif: slice sample type uint8 differs"):
        convert_tiff_stack(src, target, voxel_mm=(1, 1, 1))
    assert listing(target.out_dir) == []


def test_voxel_size_required_and_checked(target, tmp_path):
    src = tiff_stack(tmp_path / "in", slices=2)
    with pytest.raises(InvalidInput, match="voxel_mm is required"):
        convert_tiff_stack(src, target, voxel_mm=None)
    with pytest.raises(InvalidInput, match="voxel size"):
        convert_tiff_stack(src, target, voxel_mm=(1, 0, 1))
    assert listing(target.out_dir) == []


def test_rgb_and_float_slices_rejected(target, tmp_path):
    folder = tmp_path / "rgb"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidInput, match="single-channel"):
        convert_tiff_stack(folder, target, voxel_mm=(1, 1, 1))
    folder = tmp_path / "float"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(InvalidInput, match="8 or 16-bit"):
        convert_tiff_stack(folder, target, voxel_mm=(1, 1, 1))


def test_curator_rescale_to_hounsfield(target, tmp_path):
    src = tiff_stack(tmp_path / "in", slices=2)
    [ds, _] = _datasets(convert_tiff_stack(src, target, voxel_mm=(1, 1, 1),
                                           rescale=Rescale(1.0, -1024.0, hounsfield=True)))
    assert (float(ds.RescaleIntercept), ds.RescaleType) == (-1024.0, "HU")


def _oblique_affine():
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.5, 0.75, 2.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    return affine


@pytest.mark.parametrize("gz", [False, True])
def test_nifti_affine_becomes_patient_geometry(gz, target, tmp_path):
    rng = np.random.default_rng(5)
    vol = rng.integers(-1000, 3000, size=(6, 5, 4)).astype(np.int16)
    affine = _oblique_affine()
    src = tmp_path / ("v.nii.gz" if gz else "v.nii")
    src.write_bytes(nifti_bytes(vol, affine=affine, gz=gz))
    datasets = _datasets(convert_nifti(src, target, hounsfield=True))
    assert len(datasets) == 4
    volume = hd.get_volume_from_series(datasets)
    to_lps = np.diag([-1, -1, 1, 1])
    for i in range(vol.shape[0]):
        for j in range(vol.shape[1]):
            for k in range(vol.shape[2]):
                world = (to_lps @ affine @ np.array([i, j, k, 1.0]))[:3]
                assert _value_at(volume, world) == vol[i, j, k]
    check_iod(datasets[0])


def test_nifti_float_volume_keeps_values(target, tmp_path):
    vol = np.linspace(-1.5, 7.25, 3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    src = tmp_path / "f.nii"
    src.write_bytes(nifti_bytes(vol))
    volume = hd.get_volume_from_series(_datasets(convert_nifti(src, target)))
    for i, j, k in [(0, 0, 0), (2, 3, 1), (1, 2, 0)]:
        assert _value_at(volume, [-i * 0.5, -j * 0.5, k * 1.0]) == pytest.approx(vol[i, j, k], abs=1e-3)


def test_nifti_reader_matches_written_header(tmp_path):
    vol = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    src = tmp_path / "a.nii"
    src.write_bytes(nifti_bytes(vol, spacing_mm=(0.1, 0.2, 0.3), slope=2.0, inter=-5.0))
    nifti = read_nifti(src)
    assert np.array_equal(nifti.data, vol)
    assert np.diag(nifti.affine)[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert (nifti.slope, nifti.intercept) == (2.0, -5.0)


def test_truncated_nifti(target, tmp_path):
    src = tmp_path / "cut.nii"
    src.write_bytes(nifti_bytes(np.zeros((8, 8, 8), np.int16))[:600])
    with pytest.raises(InvalidInput, match="truncated"):
        convert_nifti(src, target)
    assert listing(target.out_dir) == []


def test_updated_header_equals_a_freshly_built_slice(target):
    from archive.dicom.ct import VolumeGeometry, build_ct_slice, update_ct_slice
    from archive.dicom.refs import SeriesRef

    geometry = VolumeGeometry(pixel_spacing_mm=(0.5, 0.25), slice_step_mm=(0.1, 0.0, 2.0),
                              origin_mm=(1.0, 2.0, 3.0))
    plane = np.arange(12, dtype=np.uint16).reshape(3, 4)
    common = dict(geometry=geometry, patient=target.patient, study=target.study,
                  series=SeriesRef("1.2.3"), frame_of_reference_uid="1.2.4", created=target.now)
    first = build_ct_slice(plane, index=0, instance_uid="1.2.5.0", **common)
    update_ct_slice(first, index=7, geometry=geometry, instance_uid="1.2.5.7")
    fresh = build_ct_slice(plane, index=7, instance_uid="1.2.5.7", **common)
    assert first == fresh
    assert first.file_meta.MediaStorageSOPInstanceUID == fresh.file_meta.MediaStorageSOPInstanceUID
