"""Windowed-sinc smoothing: the slow twin, volume preservation, roughness, boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from archive.errors import InvalidInput
from models3d import measure
from models3d.kernels import Mesh, isosurface, smooth
from models3d.kernels.smoothing import sinc_coefficients, vertex_adjacency
from models3d.kernels.topology import vertex_successors
from tests.factories.meshes import grid_mesh, noisy, octasphere_mesh
from tests.factories.volumes import sphere_volume
from tests.reference import smoothing as reference


def roughness(mesh: Mesh) -> float:
    """Mean distance of each vertex from the mean of its neighbours."""
    off, nbr, _ = vertex_adjacency(mesh.faces, len(mesh.vertices))
    v = mesh.vertices.astype(np.float64)
    sums = np.add.reduceat(v[nbr], off[:-1], axis=0)
    means = sums / np.diff(off)[:, None]
    return float(np.linalg.norm(v - means, axis=1).mean())


@pytest.mark.parametrize("window", ["hamming", "nuttall"])
def test_matches_dense_twin(window):
    mesh = noisy(octasphere_mesh(2), 0.05, seed=1)
    coef = sinc_coefficients(12, 0.1, window)
    fast = smooth(mesh, iterations=12, passband=0.1, window=window)
    slow = reference.smooth(mesh.vertices, mesh.faces, coef)
    assert np.allclose(fast.vertices, slow, atol=1e-5)
    assert fast.faces is mesh.faces or np.array_equal(fast.faces, mesh.faces)


@pytest.mark.parametrize("window", ["hamming", "nuttall"])
def test_coefficients_pass_the_band_edge_and_dc(window):
    coef = sinc_coefficients(20, 0.1, window)
    assert coef.sum() == pytest.approx(1.0)
    theta_pb = np.arccos(1 - 0.1 / 2)
    edge = coef @ np.cos(np.arange(21) * theta_pb)
    stop = coef @ np.cos(np.arange(21) * np.pi / 2)
    assert edge == pytest.approx(1.0, abs=0.02)
    assert abs(stop) < 0.05


def test_staircase_sphere_keeps_volume_and_gets_smoother():
    vol = sphere_volume((32, 32, 32))
    exact = isosurface(vol.data, 0.0, vol.spacing_mm)
    blocky = isosurface((vol.data > 0).astype(np.uint8), 0.5, vol.spacing_mm)
    out = smooth(blocky, iterations=20, passband=0.1)
    assert measure.volume_mm3(out) == pytest.approx(measure.volume_mm3(blocky), rel=2e-3)
    assert measure.volume_mm3(out) == pytest.approx(measure.volume_mm3(exact), rel=1e-2)
    assert roughness(out) < 0.5 * roughness(blocky)
    assert measure.is_watertight(out)


def test_noisy_sphere_gets_closer_to_the_sphere():
    sphere = octasphere_mesh(4, radius_mm=10.0)
    rough = noisy(sphere, 0.2, seed=2)
    out = smooth(rough, iterations=20, passband=0.1)
    err_before = np.abs(np.linalg.norm(rough.vertices, axis=1) - 10.0).mean()
    err_after = np.abs(np.linalg.norm(out.vertices, axis=1) - 10.0).mean()
    assert err_after < 0.5 * err_before
    assert measure.volume_mm3(out) == pytest.approx(measure.volume_mm3(sphere), rel=1e-2)


def _neighbour_sets(faces, n_vertices):
    sets = [set() for _ in range(n_vertices)]
    for a, b, c in faces.tolist():
        for u, w in ((a, b), (b, c), (c, a)):
            sets[u].add(w)
            sets[w].add(u)
    return sets


def _flipped(mesh, face):
    faces = mesh.faces.copy()
    faces[face] = faces[face, ::-1]
    return faces


@pytest.mark.parametrize("case", ["closed", "open", "one face flipped", "shuffled ids"])
def test_adjacency_lists_every_neighbour_once(case):
    """Closed oriented meshes take the successor short cut; open, inconsistently
    oriented and renumbered ones must give the same neighbour sets, and the boundary."""
    mesh = octasphere_mesh(2)
    faces = {
        "closed": mesh.faces,
        "open": grid_mesh(6).faces,
        "one face flipped": _flipped(mesh, 7),
        "shuffled ids": np.random.default_rng(4).permutation(len(mesh.vertices)).astype(np.int32)[mesh.faces],
    }[case]
    n = int(faces.max()) + 1
    off, nbr, boundary = vertex_adjacency(faces, n)
    got = [nbr[off[v]:off[v + 1]].tolist() for v in range(n)]
    assert [sorted(g) for g in got] == [sorted(s) for s in _neighbour_sets(faces, n)]
    assert all(len(g) == len(set(g)) for g in got)
    # A flipped face still shares each of its edges with one other face: no boundary.
    assert boundary.sum() == (4 * 5 if case == "open" else 0)
    short_cut = case in ("closed", "shuffled ids")
    assert np.array_equal(nbr, vertex_successors(faces, n)[1]) == short_cut
    assert all(g == sorted(g) for g in got) or short_cut


def test_boundary_vertices_stay_put():
    grid = grid_mesh(8)
    bumpy = noisy(grid, 0.05, seed=3)
    out = smooth(bumpy, iterations=10)
    _, _, boundary = vertex_adjacency(grid.faces, len(grid.vertices))
    assert boundary.sum() == 4 * 7
    assert np.array_equal(out.vertices[boundary], bumpy.vertices[boundary])
    assert not np.allclose(out.vertices[~boundary], bumpy.vertices[~boundary])


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"passband": 0.0},
                                    {"passband": 2.0}, {"window": "boxcar"}])
def test_rejects_bad_parameters(kwargs):
    with pytest.raises(InvalidInput):
        smooth(octasphere_mesh(1), **kwargs)


def test_progress_after_each_iteration_and_an_exception_stops_it():
    mesh = octasphere_mesh(3)
    seen: list[float] = []
    smoothed = smooth(mesh, 10, on_progress=seen.append)
    assert len(seen) == 1 + 9 + 1  # the adjacency, iterations 2-10, the end
    assert seen == sorted(seen) and 0.0 < seen[0] < 1.0 and seen[-1] == 1.0
    assert np.array_equal(smoothed.vertices, smooth(mesh, 10).vertices)

    class Cancelled(Exception):
        pass

    def cancel_at_half(fraction: float) -> None:
        if fraction >= 0.5:
            raise Cancelled

    with pytest.raises(Cancelled):
        smooth(mesh, 10, on_progress=cancel_at_half)
