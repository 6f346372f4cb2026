"""Isosurface kernel: invariants against the slow twin, scikit-image and analytic shapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from archive.errors import InvalidInput
from models3d import measure
from models3d.kernels import Mesh, isosurface, to_patient_space
from tests.factories.volumes import (
    box_volume,
    integer_sphere_volume,
    random_volume,
    sphere_volume,
)
from tests.reference import isosurface as reference
from tests.unit.models3d.conftest import needs_jit


def assert_clean(mesh: Mesh) -> None:
    """Merged, non-degenerate, closed and outward."""
    assert len(np.unique(mesh.vertices, axis=0)) == len(mesh.vertices)
    assert np.all(np.bincount(mesh.faces.ravel(), minlength=len(mesh.vertices)) > 0)
    assert measure.face_areas_mm2(mesh).min() > 0
    assert measure.is_watertight(mesh)
    assert measure.volume_mm3(mesh) > 0


def nearest_both_ways(a: np.ndarray, b: np.ndarray) -> float:
    return float(max(cKDTree(a).query(b)[0].max(), cKDTree(b).query(a)[0].max()))


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.int16, np.uint16])
def test_matches_slow_twin(dtype):
    vol = integer_sphere_volume((10, 11, 12), radius_vox=3.5, dtype=dtype)
    fast = isosurface(vol.data, vol.iso, (1.5, 1.0, 0.5))
    verts, faces = reference.isosurface(vol.data, vol.iso, (1.5, 1.0, 0.5))
    assert len(fast.vertices) == len(verts) and len(fast.faces) == len(faces)
    assert nearest_both_ways(fast.vertices, verts) < 1e-5
    assert measure.volume_mm3(fast) == pytest.approx(measure.volume_mm3(Mesh(verts, faces)),
                                                     rel=1e-6)
    assert measure.euler_characteristic(fast) == measure.euler_characteristic(Mesh(verts, faces))
    assert_clean(fast)


def test_sphere_is_a_closed_sphere():
    vol = sphere_volume((40, 40, 40))
    mesh = isosurface(vol.data, vol.iso, vol.spacing_mm)
    assert_clean(mesh)
    assert measure.euler_characteristic(mesh) == 2
    assert measure.connected_components(mesh)[0] == 1


@needs_jit
def test_analytic_sphere_256():
    """Volume and area within 0.01% of the analytic ball at 256**3 (the spec's target)."""
    n = 256
    vol = sphere_volume((n, n, n))
    radius = 0.35 * (n - 1)
    mesh = isosurface(vol.data, vol.iso, vol.spacing_mm)
    assert measure.volume_mm3(mesh) == pytest.approx(4 / 3 * np.pi * radius**3, rel=1e-4)
    assert measure.area_mm2(mesh) == pytest.approx(4 * np.pi * radius**2, rel=1e-4)
    assert measure.is_watertight(mesh)
    assert measure.euler_characteristic(mesh) == 2


def test_vertices_agree_with_scikit_image_at_half_integer_iso():
    from skimage.measure import marching_cubes

    vol = integer_sphere_volume((20, 22, 24), radius_vox=6.3, dtype=np.int16)
    data = vol.data.astype(np.int16)
    spacing = (2.0, 1.0, 0.5)
    ours = isosurface(data, 100.5, spacing)
    sk_verts, _, _, _ = marching_cubes(data.astype(np.float32), 100.5, spacing=spacing)
    sk_xyz = np.unique(sk_verts[:, ::-1], axis=0)  # skimage gives (z, y, x)
    assert len(sk_xyz) == len(ours.vertices)
    voxel = np.array(spacing[::-1])
    assert nearest_both_ways(ours.vertices / voxel, sk_xyz / voxel) < 1e-5


def test_float_sphere_agrees_with_scikit_image():
    from skimage.measure import marching_cubes

    vol = sphere_volume((30, 30, 30))
    ours = isosurface(vol.data, 0.0, vol.spacing_mm)
    sk_verts, _, _, _ = marching_cubes(vol.data, 0.0)
    assert nearest_both_ways(ours.vertices, np.unique(sk_verts[:, ::-1], axis=0)) < 1e-4


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16])
def test_integer_iso_on_integer_data_stays_merged_and_closed(dtype):
    vol = integer_sphere_volume((24, 24, 24), dtype=dtype)
    assert np.count_nonzero(vol.data == vol.iso) > 50  # the case this test is about
    mesh = isosurface(vol.data, vol.iso, vol.spacing_mm)
    assert_clean(mesh)
    assert measure.euler_characteristic(mesh) == 2


def test_anisotropic_spacing_scales_coordinates():
    vol = sphere_volume((20, 24, 28))
    iso_mesh = isosurface(vol.data, 0.0, (1.0, 1.0, 1.0))
    aniso = isosurface(vol.data, 0.0, (2.5, 0.8, 0.5))
    assert np.allclose(aniso.vertices, iso_mesh.vertices * np.array([0.5, 0.8, 2.5]), atol=1e-4)
    assert np.array_equal(aniso.faces, iso_mesh.faces)
    assert measure.volume_mm3(aniso) == pytest.approx(measure.volume_mm3(iso_mesh) * 1.0,
                                                      rel=1e-4)


def test_single_voxel_sits_where_expected():
    """One inside voxel at (z, y, x) = (2, 3, 4): an octahedron around x=4*dx, y=3*dy, z=2*dz."""
    data = np.zeros((5, 6, 7), np.uint8)
    data[2, 3, 4] = 10
    spacing = (3.0, 2.0, 0.5)
    mesh = isosurface(data, 5.0, spacing)
    assert len(mesh.faces) == 8 and len(mesh.vertices) == 6
    centre = mesh.vertices.mean(axis=0)
    assert np.allclose(centre, [4 * 0.5, 3 * 2.0, 2 * 3.0], atol=1e-6)
    lo, hi = measure.bounding_box_mm(mesh)
    assert np.allclose(hi - lo, [2 * 0.5 * 0.5, 2 * 0.5 * 2.0, 2 * 0.5 * 3.0], atol=1e-6)


def test_patient_space_transform_places_known_points():
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    # Rows run along patient -y, columns along +z: an oblique sagittal-like frame.
    orientation = (0, -1, 0, 0, 0, 1)
    out = to_patient_space(verts, (10.0, 20.0, 30.0), orientation)
    expected = [[10, 20, 30], [10, 19, 30], [10, 20, 31], [10 - 1, 20, 30]]
    assert np.allclose(out, expected, atol=1e-6)
    with pytest.raises(InvalidInput):
        to_patient_space(verts, (0, 0, 0), (1, 0, 0, 1, 0, 0))


def test_empty_volume_gives_no_faces():
    mesh = isosurface(np.zeros((4, 5, 6), np.int16), 0.0, (1, 1, 1))
    assert mesh.vertices.shape == (0, 3) and mesh.faces.shape == (0, 3)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32


def test_all_inside_closes_to_a_box_half_a_voxel_out():
    vol = box_volume((4, 5, 6))
    mesh = isosurface(vol.data, vol.iso, (1.0, 1.0, 1.0))
    assert_clean(mesh)
    assert measure.euler_characteristic(mesh) == 2
    lo, hi = measure.bounding_box_mm(mesh)
    assert np.allclose(lo, [-0.5, -0.5, -0.5]) and np.allclose(hi, [5.5, 4.5, 3.5])
    # A 6 x 5 x 4 mm box whose 12 edges lose a prism of section 1/8 mm² (over their
    # length less the two corner cubes) and whose 8 corner cubes of 1/8 mm³ keep only
    # the tetrahedron x + y + z >= 1 (1/48 mm³).
    box = 6 * 5 * 4 - 4 * ((6 - 1) + (5 - 1) + (4 - 1)) * 0.125 - 8 * (0.125 - 1 / 48)
    assert measure.volume_mm3(mesh) == pytest.approx(box, rel=1e-6)


def test_threads_do_not_change_the_result():
    vol = random_volume(3, shape=(20, 17, 15), high=5)
    one = isosurface(vol.data, vol.iso, (1, 1, 1), threads=1)
    two = isosurface(vol.data, vol.iso, (1, 1, 1), threads=2)
    assert np.array_equal(one.vertices, two.vertices) and np.array_equal(one.faces, two.faces)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), high=st.integers(2, 6),
       dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.float32]))
def test_random_volumes_are_watertight_consistent_and_non_negative(seed, high, dtype):
    vol = random_volume(seed, shape=(5, 6, 7), dtype=dtype, high=high)
    mesh = isosurface(vol.data, vol.iso, (1.0, 1.0, 1.0))
    if len(mesh.faces):
        assert measure.is_watertight(mesh)  # implies consistent winding
        assert measure.face_areas_mm2(mesh).min() > 0
        assert len(np.unique(mesh.vertices, axis=0)) == len(mesh.vertices)
    assert measure.volume_mm3(mesh) >= 0
    n_inside = np.count_nonzero(vol.data > vol.iso)
    assert (len(mesh.faces) == 0) == (n_inside == 0)


@pytest.mark.parametrize("bad", [
    {"volume": np.zeros((3, 3)), "iso": 0.0, "spacing": (1, 1, 1)},
    {"volume": np.zeros((3, 3, 3), np.float64), "iso": 0.0, "spacing": (1, 1, 1)},
    {"volume": np.zeros((3, 3, 3), np.uint8), "iso": 0.0, "spacing": (1, 0, 1)},
    {"volume": np.zeros((3, 3, 3), np.uint8), "iso": np.nan, "spacing": (1, 1, 1)},
    {"volume": np.full((3, 3, 3), np.nan, np.float32), "iso": 0.0, "spacing": (1, 1, 1)},
    {"volume": np.zeros((3, 3, 3), np.uint8), "iso": 0.0, "spacing": (1, 1, 1), "threads": 0},
])
def test_rejects_bad_input(bad):
    with pytest.raises(InvalidInput):
        isosurface(**bad)


def test_iso_outside_the_dtype_range():
    data = np.full((3, 3, 3), 7, np.uint8)
    assert len(isosurface(data, 255.0, (1, 1, 1)).faces) == 0
    assert measure.is_watertight(isosurface(data, -3.0, (1, 1, 1)))


def test_progress_after_each_pass_and_an_exception_stops_it():
    from models3d.kernels.isosurface import PASS_SHARES

    vol = sphere_volume((24, 24, 24))
    seen: list[float] = []
    mesh = isosurface(vol.data, vol.iso, vol.spacing_mm, on_progress=seen.append)
    assert seen == list(PASS_SHARES) and seen[-1] == 1.0
    assert np.array_equal(mesh.faces, isosurface(vol.data, vol.iso, vol.spacing_mm).faces)

    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        isosurface(vol.data, vol.iso, vol.spacing_mm, on_progress=cancel)
