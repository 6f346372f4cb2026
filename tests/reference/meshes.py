"""Slow, obviously correct geometry used as an oracle by the meshing tests and bench."""

from __future__ import annotations

import numpy as np


def _segment_distance(p, a, b):
    ab = b - a
    t = np.einsum("...i,...i->...", p - a, ab) / np.maximum(np.einsum("...i,...i->...", ab, ab),
                                                            1e-300)
    closest = a + np.clip(t, 0.0, 1.0)[..., None] * ab
    return np.linalg.norm(p - closest, axis=-1)


def point_triangle_distance(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Exact distance from points p (..., 3) to triangles tri (..., 3, 3), float64."""
    p = np.asarray(p, np.float64)
    a, b, c = (np.asarray(tri[..., i, :], np.float64) for i in range(3))
    n = np.cross(b - a, c - a)
    nn = np.maximum(np.einsum("...i,...i->...", n, n), 1e-300)
    d_plane = np.einsum("...i,...i->...", p - a, n) / nn
    proj = p - d_plane[..., None] * n
    # Barycentric test of the projection: inside when all three sub-areas agree with n.
    inside = np.ones(p.shape[:-1] if p.ndim > tri.ndim - 1 else d_plane.shape, bool)
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("...i,...i->...", np.cross(v - u, proj - u), n) >= 0
    plane = np.abs(d_plane) * np.sqrt(nn)
    edges = np.minimum(np.minimum(_segment_distance(p, a, b), _segment_distance(p, b, c)),
                       _segment_distance(p, c, a))
    return np.where(inside, plane, edges)


def distance_to_surface(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                        chunk_pairs: int = 4_000_000) -> np.ndarray:
    """(N,) exact distance from each point to the nearest triangle, by brute force.

    Every point is tested against every triangle (in chunks), so keep N * F modest
    (the tests use a few thousand of each; the bench uses VTK's cell locator).
    """
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    points = np.asarray(points, np.float64)
    out = np.full(len(points), np.inf)
    step_p = max(1, chunk_pairs // max(len(tri), 1))
    for s in range(0, len(points), step_p):
        p = points[s:s + step_p, None, :]
        out[s:s + step_p] = point_triangle_distance(p, tri[None, :, :, :]).min(axis=1)
    return out


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) points spread uniformly over the surface (area-weighted)."""
    rng = np.random.default_rng(seed)
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(tri), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    return np.einsum("ni,nij->nj", w, tri[pick])


def hausdorff_mm(mesh_a, mesh_b, n: int = 20_000) -> float:
    """Symmetric Hausdorff distance estimated from surface samples of both meshes."""
    pa = np.concatenate([mesh_a[0], sample_surface(mesh_a[0], mesh_a[1], n)])
    pb = np.concatenate([mesh_b[0], sample_surface(mesh_b[0], mesh_b[1], n)])
    return float(max(distance_to_surface(pa, mesh_b[0], mesh_b[1]).max(),
                     distance_to_surface(pb, mesh_a[0], mesh_a[1]).max()))


def surface_deviation_mm(original, simplified, n: int = 200_000) -> tuple[float, float]:
    """Mean and 99th percentile of the distance from the original's surface to the other.

    Exact distances from VTK's static cell locator (vtk is a bench dependency).
    """
    import vtk
    from vtk.util import numpy_support

    pts = sample_surface(original[0], original[1], n)
    poly = vtk.vtkPolyData()
    points = vtk.vtkPoints()
    points.SetData(numpy_support.numpy_to_vtk(np.asarray(simplified[0], np.float64), deep=True))
    cells = vtk.vtkCellArray()
    faces = np.asarray(simplified[1], np.int64)
    cells.SetData(numpy_support.numpy_to_vtkIdTypeArray(np.arange(0, 3 * len(faces) + 1, 3,
                                                                  dtype=np.int64), deep=True),
                  numpy_support.numpy_to_vtkIdTypeArray(faces.ravel().copy(), deep=True))
    poly.SetPoints(points)
    poly.SetPolys(cells)
    locator = vtk.vtkStaticCellLocator()
    locator.SetDataSet(poly)
    locator.BuildLocator()
    closest, cell, sub, dist2 = [0.0, 0.0, 0.0], vtk.reference(0), vtk.reference(0), \
        vtk.reference(0.0)
    d = np.empty(len(pts))
    for i, p in enumerate(pts.tolist()):
        locator.FindClosestPoint(p, closest, cell, sub, dist2)
        d[i] = float(dist2)
    d = np.sqrt(d)
    return float(d.mean()), float(np.percentile(d, 99))
