"""Measurements and clean-up of triangle meshes (pure NumPy + Numba, no Django).

All functions take a :class:`~models3d.kernels.Mesh` with ``vertices`` (V, 3)
float32 in mm and ``faces`` (F, 3) int32 with outward (counter-clockwise) winding.
Sums are accumulated in float64 about the bounding-box centre for precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from archive.errors import InvalidInput
from models3d.kernels.config import NJIT
from models3d.kernels.mesh import Mesh, check_mesh


@dataclass(frozen=True)
class MeshMeasurements:
    """What a finished mesh measures; all lengths in mm."""

    n_vertices: int
    n_faces: int
    n_components: int
    volume_mm3: float
    area_mm2: float
    bbox_min_mm: tuple[float, float, float]
    bbox_max_mm: tuple[float, float, float]
    watertight: bool
    euler_characteristic: int


def _centred(mesh: Mesh) -> np.ndarray:
    v = np.asarray(mesh.vertices, dtype=np.float64)
    if len(v) == 0:
        return v
    return v - (v.min(axis=0) + v.max(axis=0)) / 2


def volume_mm3(mesh: Mesh) -> float:
    """Signed enclosed volume in mm³ by the divergence theorem (> 0 for outward faces)."""
    v = _centred(mesh)
    f = mesh.faces
    if len(f) == 0:
        return 0.0
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)


def face_areas_mm2(mesh: Mesh) -> np.ndarray:
    """(F,) float64 area of each triangle in mm²."""
    v = _centred(mesh)
    f = mesh.faces
    if len(f) == 0:
        return np.zeros(0)
    cross = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return 0.5 * np.sqrt(np.einsum("ij,ij->i", cross, cross))


def area_mm2(mesh: Mesh) -> float:
    """Total surface area in mm²."""
    return float(face_areas_mm2(mesh).sum())


def bounding_box_mm(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """``(min, max)`` corners, each (3,) float64 ``x, y, z`` in mm (zeros when empty)."""
    if len(mesh.vertices) == 0:
        return np.zeros(3), np.zeros(3)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    return v.min(axis=0), v.max(axis=0)


def _sorted_edge_keys(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """(3F,) int64, sorted: each half-edge ``a -> b`` as ``2 (min V + max) + (a > b)``,
    its undirected edge with the direction in the lowest bit."""
    f = faces.astype(np.int64)
    a = f.ravel()
    b = f[:, [1, 2, 0]].ravel()
    keys = 2 * (np.minimum(a, b) * n_vertices + np.maximum(a, b)) + (a > b)
    keys.sort()
    return keys


def _watertight(keys: np.ndarray) -> bool:
    """Sorted keys pair up as (edge forwards, edge backwards), every edge once."""
    if len(keys) % 2:
        return False
    first, second = keys[0::2], keys[1::2]
    return bool(np.all(first % 2 == 0) and np.array_equal(second, first + 1))


def _n_edges(keys: np.ndarray) -> int:
    undirected = keys >> 1
    return int(len(undirected) and 1 + np.count_nonzero(undirected[1:] != undirected[:-1]))


def _n_used(faces: np.ndarray, n_vertices: int) -> int:
    used = np.zeros(n_vertices, bool)
    used[faces.ravel()] = True
    return int(np.count_nonzero(used))


def is_watertight(mesh: Mesh) -> bool:
    """True if every edge is shared by exactly two faces with opposite orientation.

    That also means the winding is consistent. An empty mesh is watertight.
    """
    if len(mesh.faces) == 0:
        return True
    return _watertight(_sorted_edge_keys(mesh.faces, len(mesh.vertices)))


def count_edges(mesh: Mesh) -> int:
    """Number of distinct undirected edges."""
    return _n_edges(_sorted_edge_keys(mesh.faces, len(mesh.vertices)))


def euler_characteristic(mesh: Mesh) -> int:
    """``V - E + F`` over the vertices that faces use (2 per closed sphere-like surface)."""
    if len(mesh.faces) == 0:
        return 0
    return _n_used(mesh.faces, len(mesh.vertices)) - count_edges(mesh) + len(mesh.faces)


@njit(**NJIT)
def _label_faces(faces, n_vertices):
    """(F,) int64 component label per face, 0..n-1 by first appearance; union-find on vertices."""
    parent = np.arange(n_vertices)
    for f in range(faces.shape[0]):
        for m in range(1, 3):
            a, b = faces[f, 0], faces[f, m]
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            if a != b:
                parent[max(a, b)] = min(a, b)
    label = np.full(n_vertices, -1, np.int64)
    out = np.empty(faces.shape[0], np.int64)
    n = 0
    for f in range(faces.shape[0]):
        r = faces[f, 0]
        while parent[r] != r:
            r = parent[r]
        if label[r] < 0:
            label[r] = n
            n += 1
        out[f] = label[r]
    return out


def connected_components(mesh: Mesh) -> tuple[int, np.ndarray]:
    """Label faces by edge/vertex connectivity.

    Returns
    -------
    n : int
        Number of components.
    labels : (F,) int64
        Component of each face, numbered by first appearance.
    """
    mesh = check_mesh(mesh)
    if len(mesh.faces) == 0:
        return 0, np.zeros(0, np.int64)
    labels = _label_faces(mesh.faces, len(mesh.vertices))
    return int(labels.max()) + 1, labels


def component_volumes_mm3(mesh: Mesh, labels: np.ndarray, n: int) -> np.ndarray:
    """(n,) float64 signed enclosed volume of each component in mm³."""
    v = _centred(mesh)
    f = mesh.faces
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    per_face = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    return np.bincount(labels, weights=per_face, minlength=n)


def select_faces(mesh: Mesh, keep: np.ndarray) -> Mesh:
    """The mesh restricted to faces where ``keep`` (F,) bool is set, unused vertices dropped."""
    faces = mesh.faces[keep]
    used = np.zeros(len(mesh.vertices), bool)
    used[faces.ravel()] = True
    new_id = np.cumsum(used, dtype=np.int64) - 1
    return Mesh(np.ascontiguousarray(mesh.vertices[used]), new_id[faces].astype(np.int32))


def keep_largest_component(mesh: Mesh) -> Mesh:
    """Keep only the component with the largest absolute enclosed volume."""
    n, labels = connected_components(mesh)
    if n <= 1:
        return mesh
    vols = np.abs(component_volumes_mm3(mesh, labels, n))
    return select_faces(mesh, labels == int(np.argmax(vols)))


def drop_islands(mesh: Mesh, min_volume_mm3: float) -> Mesh:
    """Remove components whose absolute enclosed volume is below ``min_volume_mm3``."""
    if not min_volume_mm3 >= 0:
        raise InvalidInput(f"min_volume_mm3 must be >= 0, got {min_volume_mm3!r}")
    n, labels = connected_components(mesh)
    if n == 0:
        return mesh
    vols = np.abs(component_volumes_mm3(mesh, labels, n))
    return select_faces(mesh, vols[labels] >= min_volume_mm3)


def measure_mesh(mesh: Mesh) -> MeshMeasurements:
    """All of the above in one :class:`MeshMeasurements`."""
    mesh = check_mesh(mesh)
    n, _ = connected_components(mesh)
    lo, hi = bounding_box_mm(mesh)
    keys = _sorted_edge_keys(mesh.faces, len(mesh.vertices))  # one sort for both
    euler = _n_used(mesh.faces, len(mesh.vertices)) - _n_edges(keys) + len(mesh.faces) if len(mesh.faces) else 0
    return MeshMeasurements(
        n_vertices=len(mesh.vertices), n_faces=len(mesh.faces), n_components=n,
        volume_mm3=volume_mm3(mesh), area_mm2=area_mm2(mesh),
        bbox_min_mm=(float(lo[0]), float(lo[1]), float(lo[2])),
        bbox_max_mm=(float(hi[0]), float(hi[1]), float(hi[2])),
        watertight=len(mesh.faces) == 0 or _watertight(keys), euler_characteristic=euler,
    )
