"""Slow, obviously correct geometry used as an oracle by the meshing tests and bench."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


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
                        candidates: int = 16, chunk: int = 200_000) -> np.ndarray:
    """(N,) distance from each point to the nearest of ``candidates`` nearest triangles.

    Candidates are the triangles whose centroids are nearest; with well-shaped meshes
    and ``candidates`` >= 8 this is the exact point-to-surface distance.
    """
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]
    tree = cKDTree(tri.mean(axis=1))
    k = min(candidates, len(tri))
    out = np.empty(len(points))
    for s in range(0, len(points), chunk):
        p = np.asarray(points[s:s + chunk], np.float64)
        _, idx = tree.query(p, k=k)
        idx = idx.reshape(len(p), k)
        d = point_triangle_distance(p[:, None, :], tri[idx])
        out[s:s + chunk] = d.min(axis=1)
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
    """Mean and 99th percentile of the distance from the original's surface to the other."""
    pts = sample_surface(original[0], original[1], n)
    d = distance_to_surface(pts, simplified[0], simplified[1])
    return float(d.mean()), float(np.percentile(d, 99))
