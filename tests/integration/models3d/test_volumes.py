"""Reading a stored series into a volume: sorting, spacing checks, HU, patient space."""

from __future__ import annotations

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command

from archive.errors import InvalidInput
from archive.models import Series
from models3d import services, volumes
from models3d.models import Mesh
from tests.factories.datasets import ct_series

from .conftest import sphere_datasets, sphere_hu, store_series

pytestmark = pytest.mark.integration

ROW, COL = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])  # sagittal slices
ORIGIN = np.array([30.0, -20.0, 40.0])
CENTRE = np.array([25.0, -12.0, 33.0])
RADIUS_MM, SPACING = 5.0, (1.0, 0.5, 0.5)


def oblique_sphere(count=20, size=32):
    """A sphere around CENTRE (patient mm) on sagittal slices stacked along -x, stored
    in reverse order with instance numbers that do not follow the position."""
    normal = np.cross(ROW, COL)
    dz, dy, dx = SPACING
    datasets = ct_series(count, size=size, patient_id="OBLIQUE-1")
    jj, ii = np.mgrid[:size, :size]
    for k, ds in enumerate(datasets):
        origin = ORIGIN + k * dz * normal
        points = origin + ii[..., None] * dx * ROW + jj[..., None] * dy * COL
        r = np.linalg.norm(points - CENTRE, axis=-1)
        hu = np.round(np.clip((RADIUS_MM - r) / 2.0, -0.5, 0.5) * 2000)
        ds.ImagePositionPatient = [float(v) for v in origin]
        ds.ImageOrientationPatient = [*ROW.tolist(), *COL.tolist()]
        ds.PixelSpacing = [dy, dx]
        ds.InstanceNumber = (k * 7) % count + 1
        ds.RescaleSlope, ds.RescaleIntercept = 2, -1000  # stored = (HU + 1000) / 2
        ds.PixelData = ((hu + 1000) // 2).astype(np.int16).tobytes()
    return datasets[::-1]


@pytest.mark.django_db
def test_an_oblique_series_in_any_order_meshes_in_patient_space():
    datasets = store_series(oblique_sphere())
    series = Series.objects.get(series_uid=datasets[0].SeriesInstanceUID)
    geometry = volumes.plan_volume(services.series_slices(series))
    assert geometry.shape == (20, 32, 32) and geometry.spacing_mm == pytest.approx(SPACING)
    np.testing.assert_allclose(geometry.position_mm, ORIGIN)  # the first slice along the normal
    volume = volumes.read_volume(geometry)
    assert volume.dtype == np.int16 and volume.min() == -1000 and volume.max() == 1000
    out = StringIO()
    call_command("mesh", series.series_uid, "--threshold", "0", "--json", stdout=out, stderr=StringIO())
    (mesh,) = json.loads(out.getvalue())["meshes"]
    centre = (np.array(mesh["bbox_min_mm"]) + np.array(mesh["bbox_max_mm"])) / 2
    np.testing.assert_allclose(centre, CENTRE, atol=0.3)
    assert Mesh.objects.get().volume_mm3 == pytest.approx(4 / 3 * np.pi * RADIUS_MM**3, rel=0.05)


def _slices(positions, **overrides):
    base = {"path": "x", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2", "position_mm": (0.0, 0.0, 0.0),
            "orientation": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), "pixel_spacing_mm": (0.5, 0.5), "rows": 4, "columns": 4}
    return [volumes.SliceInfo(**{**base, "sop_uid": f"1.2.{n}", "position_mm": p, **overrides})
            for n, p in enumerate(positions)]


@pytest.mark.parametrize("positions, message", [
    ([(0, 0, 0), (0, 0, 1), (0, 0, 1)], "same position"),
    ([(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 4)], "not uniformly spaced"),
    ([(0, 0, 0), (0, 0.5, 1), (0, 1.0, 2)], "shifted in-plane"),
    ([(0, 0, 0)], "at least two slices"),
])
def test_irregular_stacks_are_refused(positions, message):
    with pytest.raises(InvalidInput, match=message):
        volumes.plan_volume(_slices([tuple(map(float, p)) for p in positions]))


def test_mixed_slices_are_refused():
    mixed = _slices([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
    mixed[1] = volumes.SliceInfo(**{**mixed[1].__dict__, "rows": 8})
    with pytest.raises(InvalidInput, match="differ in size"):
        volumes.plan_volume(mixed)
    tilted = _slices([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
    tilted[1] = volumes.SliceInfo(**{**tilted[1].__dict__, "orientation": (1.0, 0.0, 0.0, 0.0, 0.9, 0.1)})
    with pytest.raises(InvalidInput, match="ImageOrientationPatient"):
        volumes.plan_volume(tilted)


@pytest.mark.parametrize("overrides, dtype", [
    ({}, np.int16),
    ({"signed": False, "bits_stored": 16, "intercept": 0.0}, np.uint16),  # micro-CT raw values
    ({"slope": 0.5}, np.float32),
])
def test_the_volume_dtype_follows_the_rescale(overrides, dtype):
    assert volumes.plan_volume(_slices([(0.0, 0.0, 0.0), (0.0, 0.0, 1.0)], **overrides)).dtype == dtype


@pytest.mark.django_db
def test_values_beyond_int16_widen_to_float32():
    datasets = sphere_datasets(slices=4, size=8, patient_id="WIDE-1")
    datasets[2].RescaleIntercept = 40000  # HU = stored + 40000 > 32767
    store_series(datasets)
    series = Series.objects.get(series_uid=datasets[0].SeriesInstanceUID)
    volume = volumes.read_volume(volumes.plan_volume(services.series_slices(series)))
    assert volume.dtype == np.float32
    hu = sphere_hu(4, 8)
    np.testing.assert_array_equal(volume[1], hu[1])
    np.testing.assert_array_equal(volume[2], hu[2].astype(np.int32) + 1024 + 40000)
