"""Volume-preserving windowed-sinc mesh smoothing (Taubin, Zhang and Golub 1996).

Let ``W`` be the umbrella operator (each vertex moves to the mean of its edge
neighbours). Its eigenvalues ``mu = cos(theta)`` lie in [-1, 1]; smooth shapes live
near ``theta = 0``. We apply the low-pass filter ``f(W) = sum_n c_n w_n T_n(W)`` where
``T_n`` are Chebyshev polynomials (so ``T_n(cos theta) = cos(n theta)``), ``c_n`` the
Fourier-Chebyshev coefficients of the ideal step that passes ``theta < theta_pb``,
and ``w_n`` a window that damps the Gibbs ripple. Evaluating ``T_n(W) x`` by the
three-term recurrence costs one neighbour average per iteration. The pass band
follows VTK's ``vtkWindowedSincPolyDataFilter``: ``passband`` in (0, 2) and
``theta_pb = arccos(1 - passband / 2)``; lower values smooth more.

Boundary vertices (on an edge with one face) are held fixed. Work is a CSR
adjacency and a ``prange`` over vertices per iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba import njit, prange

from archive.errors import InvalidInput
from models3d.kernels.config import NJIT_PARALLEL, SMOOTH_ITERATIONS, SMOOTH_PASSBAND
from models3d.kernels.mesh import Mesh, check_mesh, numba_threads
from models3d.kernels.topology import vertex_corners, vertex_successors

WINDOWS = ("hamming", "nuttall")


@njit(**NJIT_PARALLEL)
def _dedupe(start, nbr, count, boundary):
    """Sort each vertex's list in place, keep unique ids first; flag odd multiplicity.

    count (V,) int64 receives the unique-neighbour count, boundary (V,) bool whether
    some neighbour appears once (an edge with a single face).
    """
    n = start.shape[0] - 1
    for v in prange(n):
        s, e = start[v], start[v + 1]
        for m in range(s + 1, e):  # insertion sort: lists are ~12 long
            x = nbr[m]
            p = m - 1
            while p >= s and nbr[p] > x:
                nbr[p + 1] = nbr[p]
                p -= 1
            nbr[p + 1] = x
        u, run, open_edge = 0, 0, False
        for m in range(s, e):
            if m > s and nbr[m] == nbr[m - 1]:
                run += 1
                continue
            if m > s and run == 1:
                open_edge = True
            nbr[s + u] = nbr[m]
            u += 1
            run = 1
        if run == 1:
            open_edge = True
        count[v] = u
        boundary[v] = open_edge


@njit(**NJIT_PARALLEL)
def _compact(start, nbr, count):
    """Pack the unique prefixes into a tight CSR: (V+1,) offsets, (E2,) int32 ids."""
    n = count.shape[0]
    off = np.zeros(n + 1, np.int64)
    for v in range(n):
        off[v + 1] = off[v] + count[v]
    out = np.empty(off[-1], np.int32)
    for v in prange(n):
        out[off[v]:off[v + 1]] = nbr[start[v]:start[v] + count[v]]
    return off, out


@njit(**NJIT_PARALLEL)
def _closed_oriented(off, succ):
    """Whether every half-edge ``v -> w`` is the only one from v to w and has exactly
    one twin ``w -> v``: a closed, consistently oriented manifold, where each vertex's
    successors are all its edge neighbours, each once.

    Twins are looked for from the lower vertex only: with no half-edge repeated, every
    half-edge has its twin exactly when the pairs found number half the half-edges.
    """
    n = off.shape[0] - 1
    bad = 0
    pairs = 0
    for v in prange(n):
        s, e = off[v], off[v + 1]
        for m in range(s, e):
            w = succ[m]
            if w == v:
                bad += 1
                continue
            for k in range(m + 1, e):
                if succ[k] == w:
                    bad += 1
            if v < w:
                twins = 0
                for k in range(off[w], off[w + 1]):
                    if succ[k] == v:
                        twins += 1
                if twins == 1:
                    pairs += 1
                else:
                    bad += 1
    return bad == 0 and 2 * pairs == succ.shape[0]


def vertex_adjacency(
    faces: np.ndarray, n_vertices: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge neighbours of every vertex, each once.

    A closed, consistently oriented manifold (what the isosurface makes) takes a short
    cut: each vertex's outgoing half-edges already name its neighbours once each, so
    half the entries are listed and nothing is sorted; the neighbours then come in face
    order. Any other mesh goes the general way (every corner, sorted, duplicates
    dropped), with neighbours sorted.

    Returns
    -------
    offsets : (V + 1,) int64
    neighbours : (2E,) int32
    boundary : (V,) bool, vertex lies on an edge used by one face
    """
    blocks = max(1, 8 * numba.get_num_threads())
    off, succ = vertex_successors(faces, n_vertices, blocks)
    if _closed_oriented(off, succ):
        return off, succ, np.zeros(n_vertices, np.bool_)
    start, nbr = vertex_corners(faces, n_vertices, blocks)
    count = np.zeros(n_vertices, np.int64)
    boundary = np.zeros(n_vertices, np.bool_)
    _dedupe(start, nbr, count, boundary)
    off, out = _compact(start, nbr, count)
    return off, out, boundary


@njit(**NJIT_PARALLEL)
def _first_step(off, nbr, fixed, x, out, acc, c0, c1):
    """out = W x and acc = c0 x + c1 W x, all (V, 3) float32; fixed/isolated keep x."""
    for v in prange(x.shape[0]):
        s, e = off[v], off[v + 1]
        if fixed[v] or e == s:
            wx, wy, wz = x[v, 0], x[v, 1], x[v, 2]
        else:
            wx = wy = wz = 0.0
            for m in range(s, e):
                u = nbr[m]
                wx += x[u, 0]
                wy += x[u, 1]
                wz += x[u, 2]
            inv = 1.0 / (e - s)
            wx, wy, wz = wx * inv, wy * inv, wz * inv
        out[v, 0], out[v, 1], out[v, 2] = wx, wy, wz
        acc[v, 0] = c0 * x[v, 0] + c1 * wx
        acc[v, 1] = c0 * x[v, 1] + c1 * wy
        acc[v, 2] = c0 * x[v, 2] + c1 * wz


@njit(**NJIT_PARALLEL)
def _to_float32(acc, centre, fixed, original, out):
    """out (V, 3) float32 = acc (V, 3) float32 + centre (3,); fixed vertices copied exactly."""
    for v in prange(acc.shape[0]):
        for d in range(3):
            out[v, d] = original[v, d] if fixed[v] else acc[v, d] + centre[d]


@njit(**NJIT_PARALLEL)
def _chebyshev_step(off, nbr, fixed, prev, cur, acc, coef):
    """prev <- 2 W cur - prev (in place: the next term); acc += coef * that.

    All (V, 3) float32, neighbour sums in float64. Writing over ``prev`` (read only at
    its own vertex) saves a third state array and its memory traffic.
    """
    for v in prange(cur.shape[0]):
        s, e = off[v], off[v + 1]
        if fixed[v] or e == s:
            wx, wy, wz = cur[v, 0], cur[v, 1], cur[v, 2]
        else:
            wx = wy = wz = 0.0
            for m in range(s, e):
                u = nbr[m]
                wx += cur[u, 0]
                wy += cur[u, 1]
                wz += cur[u, 2]
            inv = 1.0 / (e - s)
            wx, wy, wz = wx * inv, wy * inv, wz * inv
        x = 2.0 * wx - prev[v, 0]
        y = 2.0 * wy - prev[v, 1]
        z = 2.0 * wz - prev[v, 2]
        prev[v, 0], prev[v, 1], prev[v, 2] = x, y, z
        acc[v, 0] += coef * x
        acc[v, 1] += coef * y
        acc[v, 2] += coef * z


def _window(iterations: int, window: str) -> np.ndarray:
    x = np.pi * np.arange(iterations + 1) / (iterations + 1)
    if window == "hamming":
        return 0.54 + 0.46 * np.cos(x)
    # Nuttall: the flattest pass band, so the least change of scale.
    return 0.355768 + 0.487396 * np.cos(x) + 0.144232 * np.cos(2 * x) + 0.012604 * np.cos(3 * x)


def _raw_coefficients(theta: float, w: np.ndarray) -> np.ndarray:
    n = np.arange(1, len(w))
    return w * np.concatenate([[theta / np.pi], 2.0 * np.sin(n * theta) / (n * np.pi)])


def sinc_coefficients(iterations: int, passband: float, window: str = "nuttall") -> np.ndarray:
    """(iterations + 1,) float64 windowed Chebyshev coefficients with unit DC gain.

    The window lowers the response at the pass-band edge, which would shrink the
    shape; following Taubin et al. the cut-off is shifted by ``sigma`` so that the
    response at ``theta_pb`` is exactly 1 (found by bisection on a bracketing scan).
    """
    theta_pb = float(np.arccos(1.0 - passband / 2.0))
    w = _window(iterations, window)
    cos_n = np.cos(np.arange(iterations + 1) * theta_pb)

    def excess(sigma: float) -> float:
        return float(_raw_coefficients(theta_pb + sigma, w) @ cos_n) - 1.0

    sigmas = np.linspace(0.0, np.pi - theta_pb, 257)
    values = np.array([excess(s) for s in sigmas])
    sign_change = np.flatnonzero((values[:-1] < 0) & (values[1:] >= 0))
    sigma = 0.0
    if len(sign_change):
        lo, hi = sigmas[sign_change[0]], sigmas[sign_change[0] + 1]
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
        sigma = 0.5 * (lo + hi)
    coef = _raw_coefficients(theta_pb + sigma, w)
    return coef / coef.sum()


#: The share of the work that building the vertex adjacency takes, for progress.
ADJACENCY_SHARE = 0.15


def smooth(mesh: Mesh, iterations: int = SMOOTH_ITERATIONS, passband: float = SMOOTH_PASSBAND,
           window: str = "nuttall", threads: int | None = None,
           on_progress: Callable[[float], None] | None = None) -> Mesh:
    """Smooth a mesh with a windowed-sinc low-pass filter, preserving its volume.

    Parameters
    ----------
    mesh : Mesh
        (V, 3) float32 vertices, (F, 3) int32 faces; topology is kept.
    iterations : int
        Chebyshev degree; each costs one pass over the adjacency (default 20).
    passband : float
        In (0, 2); lower smooths more (default 0.1, as VTK).
    window : {"nuttall", "hamming"}
        Window on the coefficients. Nuttall (VTK's default since 9.2) keeps the
        scale best; Hamming is Taubin's original and changes sizes by up to ~1%.
    threads : int, optional
        Numba threads; all by default.
    on_progress : callable, optional
        Called after the adjacency is built and after every iteration with the share of
        the work done, ending at 1.0. An exception it raises stops the smoothing and
        propagates (a cancelled job).

    Returns
    -------
    Mesh
        New float32 vertices, the same faces array.

    Raises
    ------
    InvalidInput
        For a malformed mesh or parameters out of range.
    """
    mesh = check_mesh(mesh)
    if not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise InvalidInput(f"iterations must be a positive integer, got {iterations!r}")
    if not 0.0 < float(passband) < 2.0:
        raise InvalidInput(f"passband must be in (0, 2), got {passband!r}")
    if window not in WINDOWS:
        raise InvalidInput(f"window must be one of {WINDOWS}, got {window!r}")
    if len(mesh.faces) == 0:
        return mesh
    coef = sinc_coefficients(int(iterations), float(passband), window)
    report = on_progress or (lambda fraction: None)
    with numba_threads(threads, chunk=8192):
        off, nbr, boundary = vertex_adjacency(mesh.faces, len(mesh.vertices))
        report(ADJACENCY_SHARE)
        centre = mesh.vertices.mean(axis=0, dtype=np.float64)
        # float32 state about the centre (half the memory traffic of float64); each
        # vertex's neighbour sums are formed in float64.
        prev = (mesh.vertices - centre).astype(np.float32)
        cur = np.empty_like(prev)
        acc = np.empty_like(prev)
        _first_step(off, nbr, boundary, prev, cur, acc, float(coef[0]), float(coef[1]))
        for n in range(2, int(iterations) + 1):
            report(ADJACENCY_SHARE + (1.0 - ADJACENCY_SHARE) * (n - 1) / iterations)
            _chebyshev_step(off, nbr, boundary, prev, cur, acc, float(coef[n]))
            prev, cur = cur, prev
        out = np.empty(mesh.vertices.shape, np.float32)
        _to_float32(acc, centre, boundary, mesh.vertices, out)
    report(1.0)
    return Mesh(out, mesh.faces)
