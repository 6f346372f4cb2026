"""Slow twin of models3d.kernels.smoothing: a dense matrix polynomial."""

from __future__ import annotations

import numpy as np


def smooth(vertices: np.ndarray, faces: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Windowed-sinc smoothing as a dense polynomial in the umbrella matrix ``W``.

    Boundary vertices (an edge with one face) keep their place. (V, 3) float64 out.
    """
    n = len(vertices)
    edges: dict[tuple[int, int], int] = {}
    for f in faces:
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            key = (min(a, b), max(a, b))
            edges[key] = edges.get(key, 0) + 1
    adj = np.zeros((n, n))
    fixed = np.zeros(n, bool)
    for (a, b), count in edges.items():
        adj[a, b] = adj[b, a] = 1.0
        if count == 1:
            fixed[a] = fixed[b] = True
    deg = adj.sum(axis=1)
    w = np.where(deg[:, None] > 0, adj / np.maximum(deg, 1)[:, None], 0.0)
    w[fixed | (deg == 0)] = 0.0
    w[fixed | (deg == 0), fixed | (deg == 0)] = 1.0
    x = np.asarray(vertices, np.float64)
    t_prev, t_cur = np.eye(n), w
    filt = coefficients[0] * t_prev + coefficients[1] * t_cur
    for c in coefficients[2:]:
        t_prev, t_cur = t_cur, 2 * w @ t_cur - t_prev
        filt += c * t_cur
    return filt @ x
