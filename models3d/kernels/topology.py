"""Vertex -> face incidence (CSR), built in parallel.

Smoothing and decimation both start from the faces around every vertex. A serial
build is two passes over the faces (count, then fill) that no ``prange`` can share
without atomics. Here the vertex ids are cut into contiguous *blocks*; one parallel
pass over chunks of faces lists, per block, the faces touching it (a face lands in
each block one of its corners falls in, at most three), and each block then counts
and fills its own vertices' lists alone, so no two threads ever write one entry.

Meshes from the isosurface number their vertices slab by slab, so a face's corners
are nearly always in one block and the lists add little; any other numbering is
still correct, only with up to three list entries per face.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from models3d.kernels.config import NJIT, NJIT_PARALLEL
from models3d.kernels.mesh import parallel_chunks

_FACES, _CORNERS, _NEXT = 0, 1, 2  # what _vertex_faces lists per vertex


@njit(**NJIT)
def _zeros(shape0, shape1):
    """(shape0, shape1) int64 zeros, filled serially: inside a parallel kernel
    ``np.zeros`` becomes a parallel loop, which under one-at-a-time scheduling (chunk
    size 1) would hand out every element separately."""
    out = np.empty((shape0, shape1), np.int64)
    for i in range(shape0):
        for j in range(shape1):
            out[i, j] = 0
    return out


@njit(**NJIT_PARALLEL)
def _vertex_faces(faces, n_vertices, n_blocks, mode, off):
    """(V+1,) int64 offsets and int32 entries, each vertex's faces in face order.

    faces (F, 3) int32; ``n_blocks`` (>= 1) is the number of vertex blocks and of
    face chunks (a few per thread keeps threads busy on a shared machine). Entries
    are, by ``mode``: _FACES, face ids (3F); _CORNERS, the corner after and the corner
    before the vertex in each of its faces (6F, offsets doubled); _NEXT, the corner
    after only (3F). ``off`` (V+1,) int64 zeros receives the offsets.
    """
    corners = mode == _CORNERS
    width = 2 if corners else 1
    n_faces = faces.shape[0]
    bsize = max(1, (n_vertices + n_blocks - 1) // n_blocks)
    nb = max(1, (n_vertices + bsize - 1) // bsize)
    nchunks = n_blocks
    csize = max(1, (n_faces + nchunks - 1) // nchunks)
    # 1. Per chunk of faces, how many entries each block's list gets.
    hist = _zeros(nchunks, nb)
    for c in prange(nchunks):
        for f in range(c * csize, min(n_faces, (c + 1) * csize)):
            k0, k1, k2 = faces[f, 0] // bsize, faces[f, 1] // bsize, faces[f, 2] // bsize
            hist[c, k0] += 1
            if k1 != k0:
                hist[c, k1] += 1
            if k2 != k0 and k2 != k1:
                hist[c, k2] += 1
    # Block-major, chunk-minor placement keeps each block's list in face order.
    pos = _zeros(nchunks, nb)
    bstart = _zeros(1, nb + 1)[0]
    total = 0
    for k in range(nb):
        bstart[k] = total
        for c in range(nchunks):
            pos[c, k] = total
            total += hist[c, k]
    bstart[nb] = total
    listed = np.empty(total, np.int32)
    for c in prange(nchunks):
        cursor = pos[c].copy()
        for f in range(c * csize, min(n_faces, (c + 1) * csize)):
            k0, k1, k2 = faces[f, 0] // bsize, faces[f, 1] // bsize, faces[f, 2] // bsize
            listed[cursor[k0]] = f
            cursor[k0] += 1
            if k1 != k0:
                listed[cursor[k1]] = f
                cursor[k1] += 1
            if k2 != k0 and k2 != k1:
                listed[cursor[k2]] = f
                cursor[k2] += 1
    # 2. Each block counts its own vertices' faces, then prefix sums (block-local first).
    block_total = _zeros(1, nb + 1)[0]
    for k in prange(nb):
        lo, hi = k * bsize, min(n_vertices, (k + 1) * bsize)
        for i in range(bstart[k], bstart[k + 1]):
            f = listed[i]
            for m in range(3):
                u = faces[f, m]
                if lo <= u < hi:
                    off[u + 1] += 1
        for u in range(lo, hi):
            off[u + 1] += off[u] if u > lo else 0
        block_total[k + 1] = off[hi] if hi > lo else 0
    for k in range(nb):
        block_total[k + 1] += block_total[k]
    for k in prange(nb):
        lo, hi = k * bsize, min(n_vertices, (k + 1) * bsize)
        for u in range(lo + 1, hi + 1):
            off[u] = width * (off[u] + block_total[k])
    # 3. Each block fills its own vertices' lists.
    ref = np.empty(off[n_vertices], np.int32)
    for k in prange(nb):
        lo, hi = k * bsize, min(n_vertices, (k + 1) * bsize)
        if hi <= lo:
            continue
        cursor = off[lo:hi].copy()
        for i in range(bstart[k], bstart[k + 1]):
            f = listed[i]
            for m in range(3):
                u = faces[f, m]
                if lo <= u < hi:
                    at = cursor[u - lo]
                    if corners:
                        ref[at] = faces[f, (m + 1) % 3]
                        ref[at + 1] = faces[f, (m + 2) % 3]
                        cursor[u - lo] = at + 2
                    else:
                        ref[at] = faces[f, (m + 1) % 3] if mode == _NEXT else f
                        cursor[u - lo] = at + 1
    return off, ref


def _incidence(faces: np.ndarray, n_vertices: int, n_blocks: int, mode: int) -> tuple[np.ndarray, np.ndarray]:
    if n_vertices == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.int32)
    off = np.zeros(int(n_vertices) + 1, np.int64)
    with parallel_chunks(1):
        return _vertex_faces(np.ascontiguousarray(faces, np.int32), int(n_vertices), max(1, int(n_blocks)), mode, off)


def vertex_faces(faces: np.ndarray, n_vertices: int, n_blocks: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The faces around every vertex.

    Parameters
    ----------
    faces : (F, 3) int32
        Vertex ids in ``[0, n_vertices)``.
    n_vertices : int
    n_blocks : int
        Vertex blocks (and face chunks) the work is split into; any value >= 1 gives
        the same result.

    Returns
    -------
    offsets : (V + 1,) int64
    face_ids : (3F,) int32
        ``face_ids[offsets[v]:offsets[v + 1]]`` are the faces using vertex ``v``, in
        increasing order (a face naming ``v`` twice is listed twice).
    """
    return _incidence(faces, n_vertices, n_blocks, _FACES)


def vertex_corners(faces: np.ndarray, n_vertices: int, n_blocks: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """For every vertex, the other two corners of each of its faces.

    Returns
    -------
    offsets : (V + 1,) int64
    corners : (6F,) int32
        Pairs ``(next, previous)``: the corner after and the corner before ``v`` in
        each face using ``v`` (face order), so the half-edges ``v -> next`` and
        ``previous -> v``.
    """
    return _incidence(faces, n_vertices, n_blocks, _CORNERS)


def vertex_successors(faces: np.ndarray, n_vertices: int, n_blocks: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """For every vertex, the corner after it in each of its faces: its outgoing
    half-edges ``v -> next``.

    On a closed, consistently oriented manifold these are the vertex's edge neighbours,
    each once, half the entries of ``vertex_corners``.

    Returns
    -------
    offsets : (V + 1,) int64
    successors : (3F,) int32, face order
    """
    return _incidence(faces, n_vertices, n_blocks, _NEXT)
