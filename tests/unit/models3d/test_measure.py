"""Measurements and clean-up on meshes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from archive.errors import InvalidInput
from models3d import measure
from models3d.kernels import Mesh
from tests.factories.meshes import cube_mesh, grid_mesh, join_meshes, octasphere_mesh


def test_cube_measurements():
    m = measure.measure_mesh(cube_mesh(2.0, origin_mm=(1, 2, 3)))
    assert m.volume_mm3 == pytest.approx(8.0)
    assert m.area_mm2 == pytest.approx(24.0)
    assert m.bbox_min_mm == (1.0, 2.0, 3.0) and m.bbox_max_mm == (3.0, 4.0, 5.0)
    assert m.watertight and m.euler_characteristic == 2 and m.n_components == 1
    assert (m.n_vertices, m.n_faces) == (8, 12)


def test_inverted_cube_has_negative_volume():
    cube = cube_mesh()
    assert measure.volume_mm3(Mesh(cube.vertices, cube.faces[:, ::-1].copy())) == pytest.approx(-8)


def test_sphere_converges_to_analytic():
    sphere = octasphere_mesh(5, radius_mm=3.0)
    assert measure.volume_mm3(sphere) == pytest.approx(4 / 3 * np.pi * 27, rel=2e-3)
    assert measure.area_mm2(sphere) == pytest.approx(4 * np.pi * 9, rel=2e-3)
    assert measure.euler_characteristic(sphere) == 2


def test_watertight_rejects_holes_flips_and_open_sheets():
    cube = cube_mesh()
    assert measure.is_watertight(cube)
    assert not measure.is_watertight(Mesh(cube.vertices, cube.faces[1:]))
    flipped = cube.faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not measure.is_watertight(Mesh(cube.vertices, flipped))
    assert not measure.is_watertight(grid_mesh())
    assert measure.euler_characteristic(grid_mesh()) == 1  # a disc


def test_components_keep_largest_and_drop_islands():
    big = cube_mesh(3.0)
    small = cube_mesh(1.0, origin_mm=(10, 0, 0))
    tiny = cube_mesh(0.5, origin_mm=(20, 0, 0))
    both = join_meshes(small, big, tiny)
    n, labels = measure.connected_components(both)
    assert n == 3 and np.bincount(labels).tolist() == [12, 12, 12]
    largest = measure.keep_largest_component(both)
    assert measure.volume_mm3(largest) == pytest.approx(27.0)
    assert len(largest.vertices) == 8 and measure.is_watertight(largest)
    kept = measure.drop_islands(both, min_volume_mm3=0.9)
    assert measure.volume_mm3(kept) == pytest.approx(28.0)
    assert measure.connected_components(kept)[0] == 2
    with pytest.raises(InvalidInput):
        measure.drop_islands(both, -1.0)


def test_empty_mesh_measures_zero():
    empty = Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))
    m = measure.measure_mesh(empty)
    assert (m.volume_mm3, m.area_mm2, m.n_components, m.watertight) == (0.0, 0.0, 0, True)


def test_check_mesh_rejects_bad_ids():
    with pytest.raises(InvalidInput):
        measure.measure_mesh(Mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 3]], np.int32)))
