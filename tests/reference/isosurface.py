"""Slow twin of models3d.kernels.isosurface: cell-by-cell loops and a dict, no Numba."""

from __future__ import annotations

import numpy as np

from models3d.kernels.cases import EDGE_CORNERS, TRI_COUNT, TRI_EDGES
from models3d.kernels.config import T_CLAMP, T_PAD


def isosurface(volume: np.ndarray, iso: float, spacing_mm) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes cell by cell on an explicitly padded copy, merging with a dict.

    The pad is marked with NaN ("outside"); an edge into the pad gets ``T_PAD``.
    Returns (V, 3) float64 ``x, y, z`` mm and (F, 3) int64 faces.
    """
    vol = np.pad(volume.astype(np.float64), 1, constant_values=np.nan)
    inside = np.nan_to_num(vol, nan=-np.inf) > iso
    dz, dy, dx = spacing_mm
    corners = [(c >> 2 & 1, c >> 1 & 1, c & 1) for c in range(8)]  # (dz, dy, dx) offsets
    ids: dict[tuple, int] = {}
    verts: list[tuple[float, float, float]] = []
    faces = []
    nz, ny, nx = vol.shape
    for k in range(nz - 1):
        for j in range(ny - 1):
            for i in range(nx - 1):
                case = sum(int(inside[k + a, j + b, i + c]) << n
                           for n, (a, b, c) in enumerate(corners))
                if TRI_COUNT[case] == 0:
                    continue
                tri_ids = []
                for e in TRI_EDGES[case, : 3 * TRI_COUNT[case]]:
                    p0 = np.add((k, j, i), corners[EDGE_CORNERS[e, 0]])
                    p1 = np.add((k, j, i), corners[EDGE_CORNERS[e, 1]])
                    key = (tuple(p0), tuple(p1))
                    if key not in ids:
                        f0, f1 = vol[tuple(p0)], vol[tuple(p1)]
                        if np.isnan(f0) or np.isnan(f1):
                            t = T_PAD
                        else:
                            t = min(max((iso - f0) / (f1 - f0), T_CLAMP), 1 - T_CLAMP)
                        p = p0 + t * (p1 - p0) - 1.0  # back to unpadded voxel indices
                        ids[key] = len(verts)
                        verts.append((p[2] * dx, p[1] * dy, p[0] * dz))
                    tri_ids.append(ids[key])
                faces.extend(tri_ids[n:n + 3] for n in range(0, len(tri_ids), 3))
    return np.array(verts, np.float64).reshape(-1, 3), np.array(faces, np.int64).reshape(-1, 3)
