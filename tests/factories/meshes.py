"""Small synthetic meshes with known measurements (outward, counter-clockwise faces)."""

from __future__ import annotations

import numpy as np

from models3d.kernels import Mesh


def cube_mesh(size_mm: float = 2.0, origin_mm=(0.0, 0.0, 0.0)) -> Mesh:
    """An axis-aligned closed cube: 8 vertices, 12 faces, volume size**3."""
    c = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], np.float64)
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    faces = [(a, b, c_) for a, b, c_, d in quads] + [(a, c_, d) for a, b, c_, d in quads]
    v = c * size_mm + np.asarray(origin_mm)
    return Mesh(v.astype(np.float32), np.array(faces, np.int32))


def octasphere_mesh(subdivisions: int = 3, radius_mm: float = 1.0) -> Mesh:
    """A closed sphere: an octahedron split ``subdivisions`` times, pushed to the radius."""
    v = [np.array(p, np.float64) for p in
         ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
    faces = [(0, 2, 4), (2, 1, 4), (1, 3, 4), (3, 0, 4), (2, 0, 5), (1, 2, 5), (3, 1, 5), (0, 3, 5)]
    def middle(a: int, b: int, mid: dict[tuple[int, int], int]) -> int:
        key = (min(a, b), max(a, b))
        if key not in mid:
            p = v[a] + v[b]
            v.append(p / np.linalg.norm(p))
            mid[key] = len(v) - 1
        return mid[key]

    for _ in range(subdivisions):
        mid: dict[tuple[int, int], int] = {}
        new = []
        for a, b, c in faces:
            ab, bc, ca = middle(a, b, mid), middle(b, c, mid), middle(c, a, mid)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    verts = np.array(v) * radius_mm
    return Mesh(verts.astype(np.float32), np.array(faces, np.int32))


def grid_mesh(n: int = 6, size_mm: float = 1.0) -> Mesh:
    """An open flat square in z = 0 of (n-1)**2 * 2 faces (a boundary all round)."""
    y, x = np.mgrid[0:n, 0:n] * (size_mm / (n - 1))
    v = np.stack([x.ravel(), y.ravel(), np.zeros(n * n)], axis=1)
    faces = []
    for j in range(n - 1):
        for i in range(n - 1):
            a = j * n + i
            faces += [(a, a + 1, a + n + 1), (a, a + n + 1, a + n)]
    return Mesh(v.astype(np.float32), np.array(faces, np.int32))


def join_meshes(*meshes: Mesh) -> Mesh:
    """Disjoint union of meshes."""
    verts, faces, base = [], [], 0
    for m in meshes:
        verts.append(m.vertices)
        faces.append(m.faces + base)
        base += len(m.vertices)
    return Mesh(np.concatenate(verts).astype(np.float32), np.concatenate(faces).astype(np.int32))


def noisy(mesh: Mesh, sigma_mm: float, seed: int = 0) -> Mesh:
    """The mesh with Gaussian noise added to every vertex."""
    rng = np.random.default_rng(seed)
    v = mesh.vertices + rng.normal(0.0, sigma_mm, mesh.vertices.shape)
    return Mesh(v.astype(np.float32), mesh.faces)
