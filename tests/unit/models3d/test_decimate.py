"""Quadric decimation: target counts, topology, boundaries and bounded deviation."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from archive.errors import InvalidInput
from models3d import measure
from models3d.kernels import Mesh, decimate, isosurface
from models3d.kernels.decimate import _quadrics_and_locks
from models3d.kernels.smoothing import vertex_adjacency
from tests.factories.meshes import grid_mesh, join_meshes, noisy, octasphere_mesh
from tests.factories.volumes import porous_volume, sphere_volume
from tests.reference import decimate as reference
from tests.reference.meshes import hausdorff_mm
from tests.unit.models3d.conftest import needs_jit

# The package exports the function under the module's name: reach the module itself.
decimate_module = importlib.import_module("models3d.kernels.decimate")


@pytest.fixture(scope="module")
def sphere() -> Mesh:
    vol = sphere_volume((24, 24, 24))
    return isosurface(vol.data, vol.iso, vol.spacing_mm)


@pytest.mark.parametrize("n_blocks", [1, 5])
def test_quadrics_match_twin(n_blocks):
    mesh = noisy(octasphere_mesh(2), 0.05)
    q, locked = _quadrics_and_locks(mesh.vertices.astype(np.float64), mesh.faces, n_blocks)
    ref = reference.vertex_quadrics(mesh.vertices, mesh.faces)
    iu = np.triu_indices(4)
    assert np.allclose(q, ref[:, iu[0], iu[1]], rtol=1e-6, atol=1e-9)
    assert not locked.any()  # closed


def test_boundary_flags_match_adjacency():
    grid = grid_mesh(9)
    _, locked = _quadrics_and_locks(grid.vertices.astype(np.float64), grid.faces, 3)
    _, _, boundary = vertex_adjacency(grid.faces, len(grid.vertices))
    assert locked.sum() == 4 * 8
    assert np.array_equal(locked, boundary)


def test_progress_rises_pass_by_pass_and_an_exception_stops_the_run(sphere):
    seen: list[float] = []
    decimate(sphere, ratio=0.1, on_progress=seen.append)
    assert len(seen) >= 3 and seen == sorted(seen)
    assert 0.0 < seen[0] < 1.0 and seen[-1] == 1.0

    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        decimate(sphere, ratio=0.1, on_progress=cancel)


def test_boundary_flags_on_a_hole_and_on_a_flipped_face():
    closed = octasphere_mesh(2)
    # A missing face opens a hole: exactly its three corners are on a boundary.
    holed = closed.faces[1:]
    _, locked = _quadrics_and_locks(closed.vertices.astype(np.float64), holed, 3)
    assert set(np.flatnonzero(locked)) == set(closed.faces[0])
    # A face wound the wrong way leaves the surface closed: nothing is locked, although
    # the quick orientation test cannot tell and falls back to the full check.
    flipped = closed.faces.copy()
    flipped[0] = flipped[0, ::-1]
    q, locked = _quadrics_and_locks(closed.vertices.astype(np.float64), flipped, 3)
    assert not locked.any()
    q_closed, _ = _quadrics_and_locks(closed.vertices.astype(np.float64), closed.faces, 1)
    assert np.allclose(q, q_closed, rtol=1e-12, atol=1e-15)  # a plane's quadric ignores winding


@pytest.mark.parametrize("ratio", [0.5, 0.1])
def test_closed_sphere_reaches_target_and_stays_closed(sphere, ratio):
    out = decimate(sphere, ratio=ratio)
    target = round(len(sphere.faces) * ratio)
    assert target - 2 <= len(out.faces) <= target
    assert measure.is_watertight(out)
    assert measure.euler_characteristic(out) == 2
    assert measure.volume_mm3(out) == pytest.approx(measure.volume_mm3(sphere), rel=0.03)
    # Deviation bounded by a fraction of the 1 mm voxel.
    assert hausdorff_mm(sphere, out, n=500) < 0.5
    assert np.all(np.bincount(out.faces.ravel(), minlength=len(out.vertices)) > 0)


@needs_jit
def test_porous_genus_is_preserved():
    vol = porous_volume((40, 40, 40), period_vox=20.0, noise=0.0)
    mesh = isosurface(vol.data, vol.iso, vol.spacing_mm)
    out = decimate(mesh, ratio=0.2)
    assert len(out.faces) <= round(0.2 * len(mesh.faces))
    assert measure.is_watertight(out)
    assert measure.euler_characteristic(out) == measure.euler_characteristic(mesh)
    assert measure.connected_components(out)[0] == measure.connected_components(mesh)[0]


def test_boundary_is_preserved_exactly():
    grid = noisy(grid_mesh(12), 0.01, seed=4)
    out = decimate(grid, count=100)
    assert len(out.faces) <= 100
    assert measure.euler_characteristic(out) == 1  # still a disc
    boundary = np.concatenate([np.arange(12), np.arange(12) * 12, np.arange(12) * 12 + 11,
                               np.arange(132, 144)])
    kept = {tuple(p) for p in out.vertices.tolist()}
    assert all(tuple(p) in kept for p in grid.vertices[boundary].tolist())


def test_separate_components_all_survive():
    a = octasphere_mesh(3, 1.0)
    b = Mesh(a.vertices + np.float32(5.0), a.faces)
    out = decimate(join_meshes(a, b), ratio=0.25)
    assert measure.connected_components(out)[0] == 2
    assert measure.is_watertight(out)


def test_count_above_input_is_a_no_op(sphere):
    assert decimate(sphere, count=10**9) is not None
    assert len(decimate(sphere, count=10**9).faces) == len(sphere.faces)


@pytest.mark.parametrize("kwargs", [{}, {"ratio": 0.5, "count": 10}, {"ratio": 0.0},
                                    {"ratio": 1.5}, {"count": -1}])
def test_rejects_bad_targets(sphere, kwargs):
    with pytest.raises(InvalidInput):
        decimate(sphere, **kwargs)


@pytest.fixture
def many_blocks(monkeypatch):
    """Small meshes sweep in parallel blocks too (normally only large ones do)."""
    monkeypatch.setattr(decimate_module, "MIN_FACES_PER_BLOCK", 60)
    sweeps = []
    original = decimate_module._sweep

    def counting(*args):
        sweeps.append(len(args[13]) - 1)  # the number of blocks of this pass
        return original(*args)

    monkeypatch.setattr(decimate_module, "_sweep", counting)
    return sweeps


@pytest.mark.parametrize("shuffle", [False, True])
def test_parallel_blocks_keep_the_sphere_closed(sphere, many_blocks, shuffle):
    mesh = sphere
    if shuffle:  # vertex ids with no spatial order: renumbered along an axis first
        perm = np.random.default_rng(5).permutation(len(sphere.vertices))
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        mesh = Mesh(sphere.vertices[perm], inverse[sphere.faces].astype(np.int32))
    out = decimate(mesh, ratio=0.2, threads=2)
    assert max(many_blocks) > 1
    assert len(out.faces) <= round(0.2 * len(mesh.faces))
    assert len(out.faces) >= 0.9 * round(0.2 * len(mesh.faces))
    assert measure.is_watertight(out)
    assert measure.euler_characteristic(out) == 2
    assert measure.volume_mm3(out) == pytest.approx(measure.volume_mm3(sphere), rel=0.03)
    assert hausdorff_mm(sphere, out, n=500) < 0.5


def test_parallel_blocks_keep_boundaries_and_components(many_blocks):
    grid = noisy(grid_mesh(16), 0.01, seed=7)
    a = octasphere_mesh(3, 1.0)
    joined = join_meshes(grid, Mesh(a.vertices + np.float32(5.0), a.faces))
    out = decimate(joined, ratio=0.3, threads=2)
    assert max(many_blocks) > 1
    assert measure.connected_components(out)[0] == 2
    kept = {tuple(p) for p in out.vertices.tolist()}
    _, _, boundary = vertex_adjacency(grid.faces, len(grid.vertices))
    assert all(tuple(p) in kept for p in grid.vertices[boundary].tolist())
