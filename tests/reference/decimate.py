"""Slow twin of the quadric bookkeeping in models3d.kernels.decimate."""

from __future__ import annotations

import numpy as np


def vertex_quadrics(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 4, 4) area-weighted sums of plane quadrics, one face at a time."""
    q = np.zeros((len(vertices), 4, 4))
    v = np.asarray(vertices, np.float64)
    for f in faces:
        n = np.cross(v[f[1]] - v[f[0]], v[f[2]] - v[f[0]])
        area2 = np.linalg.norm(n)
        if area2 == 0:
            continue
        plane = np.append(n / area2, -(n / area2) @ v[f[0]])
        for vid in f:
            q[vid] += 0.5 * area2 * np.outer(plane, plane)
    return q
