"""Meshing from masks: a DICOM SEG (highdicom) and an RT Structure Set on a stored CT series."""

from __future__ import annotations

import json
from datetime import datetime
from io import StringIO

import highdicom as hd
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from archive.models import Series
from models3d import masks, services, volumes
from models3d.models import Mesh
from tests.factories.datasets import uid
from tests.integration.dicomweb.conftest import store

from .conftest import (
    CENTRE_MM,
    RADIUS_MM,
    sphere_datasets,
    sphere_hu,
    sphere_volume_mm3,
    store_series,
)

pytestmark = pytest.mark.integration

#: A box of voxels [z0, z1) x [y0, y1) x [x0, x1) as the second segment.
BOX = (2, 8, 2, 10, 20, 30)


def build_seg(ct):
    hu = sphere_hu(len(ct), ct[0].Rows)
    labels = np.zeros(hu.shape, np.uint8)
    labels[hu > 0] = 1
    z0, z1, y0, y1, x0, x1 = BOX
    labels[z0:z1, y0:y1, x0:x1] = 2
    description = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=name, segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Bone, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in ((1, "sphere"), (2, "box"))
    ]
    return hd.seg.Segmentation(
        source_images=ct, pixel_array=labels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=description, series_instance_uid=uid(), series_number=50,
        sop_instance_uid=uid(), instance_number=1, manufacturer="Vitrine tests",
        manufacturer_model_name="synthetic", software_versions="1", device_serial_number="1",
    )


def circle(centre_xy, radius_mm, z, n=64):
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre_xy[0] + radius_mm * np.cos(angles), centre_xy[1] + radius_mm * np.sin(angles),
                     np.full(n, z)], axis=1).ravel().tolist()


def build_rtstruct(ct):
    """ROI 1: the sphere's cross-sections; ROI 7: a cylinder of radius 3 mm with a 1.5 mm hole."""
    ds = Dataset()
    for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        setattr(ds, keyword, getattr(ct[0], keyword))
    ds.SOPClassUID = masks.RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = uid()
    ds.SeriesInstanceUID = uid()
    ds.Modality = "RTSTRUCT"
    ds.SeriesNumber = 60
    ds.StructureSetLabel = "test"
    ds.StructureSetDate, ds.StructureSetTime = "20240101", "120000"
    ds.FrameOfReferenceUID = ct[0].FrameOfReferenceUID
    rois, contours = [], []
    for number, name in ((1, "sphere"), (7, "tube")):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        roi.ReferencedFrameOfReferenceUID = ct[0].FrameOfReferenceUID
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ContourSequence = DicomSequence()
        for ct_slice in ct:
            z = float(ct_slice.ImagePositionPatient[2])
            rings = []
            if number == 1 and abs(z - CENTRE_MM[2]) < RADIUS_MM - 0.5:
                rings = [(CENTRE_MM[:2], np.sqrt(RADIUS_MM**2 - (z - CENTRE_MM[2]) ** 2))]
            if number == 7 and 3 <= z <= 8:
                rings = [((8.0, 8.0), 3.0), ((8.0, 8.0), 1.5)]
            for centre, radius in rings:
                contour = Dataset()
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = 64
                contour.ContourData = [round(v, 4) for v in circle(centre, radius, z)]
                item.ContourSequence.append(contour)
        contours.append(item)
    ds.StructureSetROISequence = DicomSequence(rois)
    ds.ROIContourSequence = DicomSequence(contours)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.InstanceCreationDate = datetime(2024, 1, 1).strftime("%Y%m%d")
    return ds


@pytest.mark.django_db
def test_each_segment_of_a_seg_becomes_its_own_model():
    ct = store_series(sphere_datasets(study_uid=uid(), patient_id="SEG-1"))
    seg = build_seg(ct)
    store(seg)
    out = StringIO()
    call_command("mesh", ct[0].SeriesInstanceUID, "--mask", seg.SeriesInstanceUID, "--smooth-iterations", "0",
                 "--json", stdout=out, stderr=StringIO())
    result = json.loads(out.getvalue())
    assert sorted(m["label"] for m in result["meshes"]) == ["1 sphere", "2 box"]
    meshes = {m.label: m for m in Mesh.objects.all()}
    z0, z1, y0, y1, x0, x1 = BOX
    # A 0/1 mask meshed at 0.5 without smoothing: the box's faces sit half-way between voxel centres.
    assert meshes["2 box"].volume_mm3 == pytest.approx((z1 - z0) * (y1 - y0) * 0.5 * (x1 - x0) * 0.5, rel=0.15)
    assert meshes["1 sphere"].volume_mm3 == pytest.approx(sphere_volume_mm3(), rel=0.1)
    assert all(m.watertight for m in meshes.values())
    # Both models are in one result series, linked by one Model Group UID.
    assert len({m.stl_instance.series_id for m in meshes.values()}) == 1
    # Asking for one segment by name meshes only that one.
    call_command("mesh", ct[0].SeriesInstanceUID, "--mask", seg.SeriesInstanceUID, "--labels", "box",
                 stdout=StringIO(), stderr=StringIO())
    assert Mesh.objects.count() == 3
    with pytest.raises(CommandError, match="no segment"):
        call_command("mesh", ct[0].SeriesInstanceUID, "--mask", seg.SeriesInstanceUID, "--labels", "liver",
                     stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_rtstruct_contours_are_filled_with_holes():
    ct = store_series(sphere_datasets(study_uid=uid(), patient_id="RT-1"))
    rt = build_rtstruct(ct)
    store(rt)
    series = Series.objects.get(series_uid=ct[0].SeriesInstanceUID)
    geometry = volumes.plan_volume(services.series_slices(series))
    from archive.models import Instance
    from archive.storage import get_storage

    path = get_storage().path(Instance.objects.get(sop_uid=rt.SOPInstanceUID).path)
    found = dict(masks.read_rtstruct_masks(path, geometry))
    assert sorted(found) == ["1 sphere", "7 tube"]
    tube = found["7 tube"]
    assert tube[3:9].any(axis=(1, 2)).all() and not tube[:3].any() and not tube[9:].any()
    # Ring area: pi (3^2 - 1.5^2) mm^2 on 0.5 mm pixels, per slice.
    assert tube[5].sum() * 0.25 == pytest.approx(np.pi * (9 - 2.25), rel=0.1)
    assert tube[5, 16, 16] == 0 and tube[5, 16, 21] == 1  # the hole, then the wall
    out = StringIO()
    call_command("mesh", ct[0].SeriesInstanceUID, "--mask", rt.SeriesInstanceUID, "--labels", "tube",
                 "--json", stdout=out, stderr=StringIO())
    (tube_mesh,) = json.loads(out.getvalue())["meshes"]
    assert tube_mesh["label"] == "7 tube" and tube_mesh["watertight"]


@pytest.mark.django_db
def test_a_mask_series_of_another_study_is_refused():
    ct = store_series(sphere_datasets(patient_id="OTHER-1"))
    elsewhere = store_series(sphere_datasets(patient_id="OTHER-2"))
    with pytest.raises(CommandError, match="not a series of study"):
        call_command("mesh", ct[0].SeriesInstanceUID, "--mask", elsewhere[0].SeriesInstanceUID,
                     stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_nifti_label_map_from_the_cli(tmp_path):
    from tests.factories.files import nifti_bytes

    ct = store_series(sphere_datasets(study_uid=uid(), patient_id="NII-1"))
    hu = sphere_hu(len(ct), ct[0].Rows)
    labels = np.zeros(hu.shape, np.uint8)  # [z, y, x] on the CT grid
    labels[hu > 0] = 3
    z0, z1, y0, y1, x0, x1 = BOX
    labels[z0:z1, y0:y1, x0:x1] = 5
    # NIfTI voxel (i, j, k) = CT (column, row, slice); RAS = LPS with x and y negated.
    affine = np.diag([-0.5, -0.5, 1.0, 1.0])
    path = tmp_path / "labels.nii"
    path.write_bytes(nifti_bytes(np.ascontiguousarray(labels.transpose(2, 1, 0)), affine=affine))
    out = StringIO()
    call_command("mesh", ct[0].SeriesInstanceUID, "--nifti", str(path), "--smooth-iterations", "0",
                 "--json", stdout=out, stderr=StringIO())
    meshes = {m["label"]: m for m in json.loads(out.getvalue())["meshes"]}
    assert sorted(meshes) == ["3", "5"]
    assert meshes["5"]["volume_mm3"] == pytest.approx((z1 - z0) * (y1 - y0) * 0.5 * (x1 - x0) * 0.5, rel=0.15)
    # An empty label map: a clean failure, no model.
    path.write_bytes(nifti_bytes(np.zeros((32, 32, 24), np.uint8), affine=affine))
    with pytest.raises(CommandError, match="no label with voxels"):
        call_command("mesh", ct[0].SeriesInstanceUID, "--nifti", str(path), stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_label_masks_are_made_one_at_a_time(tmp_path):
    """A label map of many labels (TotalSegmentator writes 117) never holds them all."""
    import tracemalloc

    from tests.factories.files import nifti_bytes

    ct = store_series(sphere_datasets(study_uid=uid(), patient_id="MANY-1"))
    geometry = volumes.plan_volume(services.series_slices(Series.objects.get(series_uid=ct[0].SeriesInstanceUID)))
    nz, ny, nx = geometry.shape
    labels = np.zeros((nz, ny, nx), np.uint8)
    for value in range(1, 13):  # twelve bands across the rows
        labels[:, (value - 1) * ny // 12 : value * ny // 12, :] = value
    path = tmp_path / "many.nii"
    path.write_bytes(nifti_bytes(np.ascontiguousarray(labels.transpose(2, 1, 0)), affine=np.diag([-0.5, -0.5, 1.0, 1.0])))
    masks.read_nifti_label_volumes(path, geometry)  # imports done, outside the count
    tracemalloc.start()
    try:
        found = masks.read_nifti_label_volumes(path, geometry)
        held, _ = tracemalloc.get_traced_memory()  # the label map on the CT grid, 2 bytes a voxel
        tracemalloc.reset_peak()
        seen = [(name, int(mask.sum())) for name, mask in found]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found.count == 12
    assert [name for name, _ in seen] == [str(v) for v in range(1, 13)]
    assert sum(voxels for _, voxels in seen) == labels.size
    assert held < 4 * labels.size and peak - held < 4 * labels.size  # about two masks at a time, not twelve
    asked = masks.read_nifti_label_volumes(path, geometry, labels=["3", "7"])
    assert asked.count == 2 and [name for name, _ in asked] == ["3", "7"]
