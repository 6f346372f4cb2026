"""Isosurfaces of scalar volumes: a flying-edges style marching cubes.

Design after Schroeder, Maynard and Geveci, "Flying Edges" (2015): pass 1 trims
each x-row of voxels to its inside span and counts its x-edge crossings; pass 2
sweeps each row of cells, counting y/z-edge crossings and triangles; prefix sums
turn the counts into output offsets; pass 3 sweeps again and writes vertices and
triangles straight into preallocated arrays. A vertex is created on the edge it
interpolates and owned by that edge's lower row, so every edge crossing has
exactly one vertex id and the mesh comes out merged without a hash table.

Inside means ``value > iso`` (a voxel exactly at ``iso`` counts as a hair below
it: symbolic perturbation), so integer data at an integer iso stays manifold. The
volume is padded with "outside" *conceptually* (index tests, no copy), so surfaces
that reach the edge are closed half a voxel beyond the edge voxels. Each slab of z
runs in its own thread; memory is the output plus a few ints per row.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from archive.errors import InvalidInput
from models3d.kernels.cases import TRI_COUNT, TRI_EDGES
from models3d.kernels.config import NJIT, NJIT_PARALLEL, T_CLAMP, T_PAD
from models3d.kernels.mesh import Mesh, empty_mesh, numba_threads
from models3d.typed import Spacing, Vertices, Volume

SUPPORTED_DTYPES = (np.uint8, np.int16, np.uint16, np.float32)


@njit(**NJIT_PARALLEL)
def _row_spans(vol, thr, first, last, xcount):
    """Pass 1: per x-row, first/last inside voxel and x-edge crossings (pads included).

    vol (nz, ny, nx) any numeric dtype; first, last, xcount (nz + 2, ny + 2) int64,
    indexed by padded row ``(k + 1, j + 1)``; empty rows keep ``first = nx, last = -1``.
    """
    nz, ny, nx = vol.shape
    for k in prange(nz):
        for j in range(ny):
            lo, hi, n, prev = nx, -1, 0, False
            for i in range(nx):
                cur = vol[k, j, i] > thr
                if cur:
                    if lo == nx:
                        lo = i
                    hi = i
                if cur != prev:
                    n += 1
                prev = cur
            if prev:
                n += 1
            first[k + 1, j + 1] = lo
            last[k + 1, j + 1] = hi
            xcount[k + 1, j + 1] = n


@njit(**NJIT)
def _fill_columns(vol, thr, k, j, lo, hi, buf):
    """buf[i + 1] = inside bits of rows (k,j), (k,j+1), (k+1,j), (k+1,j+1) at x = i.

    The bits sit at 0, 2, 4, 6 (the cell corners at x0), so a cell's case is
    ``buf[i + 1] | buf[i + 2] << 1``; 0 is all outside, 0x55 all inside. Filled for
    i in [lo - 1, hi + 1]; rows outside the volume (pads) contribute 0.
    buf (nx + 2,) uint8. A branch-free loop over x so LLVM can vectorise it.
    """
    nz, ny, _ = vol.shape
    m0 = np.uint8(1 if (k >= 0 and j >= 0) else 0)
    m1 = np.uint8(4 if (k >= 0 and j + 1 < ny) else 0)
    m2 = np.uint8(16 if (k + 1 < nz and j >= 0) else 0)
    m3 = np.uint8(64 if (k + 1 < nz and j + 1 < ny) else 0)
    r00 = vol[max(k, 0), max(j, 0)]
    r01 = vol[max(k, 0), min(j + 1, ny - 1)]
    r10 = vol[min(k + 1, nz - 1), max(j, 0)]
    r11 = vol[min(k + 1, nz - 1), min(j + 1, ny - 1)]
    buf[lo] = 0
    buf[hi + 2] = 0
    for i in range(lo, hi + 1):
        buf[i + 1] = ((m0 if r00[i] > thr else np.uint8(0)) | (m1 if r01[i] > thr else np.uint8(0))
                      | (m2 if r10[i] > thr else np.uint8(0)) | (m3 if r11[i] > thr else np.uint8(0)))


@njit(**NJIT)
def _span(first, last, kk, jj):
    """Inside span over the four rows around cell row (kk, jj) in padded indices."""
    lo = min(min(first[kk, jj], first[kk, jj + 1]), min(first[kk + 1, jj], first[kk + 1, jj + 1]))
    hi = max(max(last[kk, jj], last[kk, jj + 1]), max(last[kk + 1, jj], last[kk + 1, jj + 1]))
    return lo, hi


@njit(**NJIT_PARALLEL)
def _count_cells(vol, thr, first, last, tri_count, ycount, zcount, ntri):
    """Pass 2: per cell row, y/z crossings owned by its lower row and its triangle count.

    ycount, zcount (nz + 2, ny + 2) int64 by padded row; ntri (nz + 1, ny + 1) int64.
    """
    nz, ny, nx = vol.shape
    for kk in prange(nz + 1):
        k = kk - 1
        buf = np.zeros(nx + 2, np.uint8)
        for jj in range(ny + 1):
            j = jj - 1
            lo, hi = _span(first, last, kk, jj)
            if lo > hi:
                continue
            _fill_columns(vol, thr, k, j, lo, hi, buf)
            ny_, nz_, nt = 0, 0, 0
            for i in range(lo - 1, hi + 1):
                c0, c1 = buf[i + 1], buf[i + 2]
                if c0 == c1 and (c0 == 0 or c0 == 0x55):
                    continue  # the common case: a cell wholly outside or inside
                col = np.int64(c0)
                nt += tri_count[col | (np.int64(c1) << 1)]
                ny_ += (col ^ (col >> 2)) & 1
                nz_ += (col ^ (col >> 4)) & 1
            ycount[kk, jj] = ny_
            zcount[kk, jj] = nz_
            ntri[kk, jj] = nt


@njit(**NJIT)
def _t(vol, iso, k0, j0, i0, k1, j1, i1, pad, t_clamp, t_pad):
    """Crossing parameter from voxel 0 to voxel 1, clamped; ``t_pad`` if one end is pad."""
    if pad:
        return t_pad
    f0 = float(vol[k0, j0, i0])
    f1 = float(vol[k1, j1, i1])
    t = (iso - f0) / (f1 - f0)
    return min(max(t, t_clamp), 1.0 - t_clamp)


@njit(**NJIT)
def _emit_slab(kk, vol, thr, iso, dz, dy, dx, first, last, tri_count, tri_edges,
               xoff, yoff, zoff, toff, t_clamp, t_pad, verts, faces, ids, buf):
    """Pass 3 for the cell rows of slab kk (cells between planes kk - 1 and kk)."""
    nz, ny, nx = vol.shape
    k = kk - 1
    for jj in range(ny + 1):
        j = jj - 1
        lo, hi = _span(first, last, kk, jj)
        if lo > hi:
            continue
        _fill_columns(vol, thr, k, j, lo, hi, buf)
        cx0, cx1, cx2, cx3 = xoff[kk, jj], xoff[kk, jj + 1], xoff[kk + 1, jj], xoff[kk + 1, jj + 1]
        cy0, cy2 = yoff[kk, jj], yoff[kk + 1, jj]
        cz0, cz1 = zoff[kk, jj], zoff[kk, jj + 1]
        f = toff[kk, jj]
        for i in range(lo - 1, hi + 1):
            c0, c1 = buf[i + 1], buf[i + 2]
            if c0 == c1 and (c0 == 0 or c0 == 0x55):
                continue
            case = np.int64(c0) | (np.int64(c1) << 1)
            b = case
            ex0, ex1 = (b ^ (b >> 1)) & 1, (b >> 2 ^ b >> 3) & 1
            ex2, ex3 = (b >> 4 ^ b >> 5) & 1, (b >> 6 ^ b >> 7) & 1
            ey0, ey2 = (b ^ b >> 2) & 1, (b >> 4 ^ b >> 6) & 1
            ez0, ez2 = (b ^ b >> 4) & 1, (b >> 2 ^ b >> 6) & 1
            if ex0:
                t = _t(vol, iso, k, j, i, k, j, i + 1, i < 0 or i + 1 >= nx, t_clamp, t_pad)
                verts[cx0, 0] = (i + t) * dx
                verts[cx0, 1] = j * dy
                verts[cx0, 2] = k * dz
            if ey0:
                t = _t(vol, iso, k, j, i, k, j + 1, i, j < 0 or j + 1 >= ny, t_clamp, t_pad)
                verts[cy0, 0] = i * dx
                verts[cy0, 1] = (j + t) * dy
                verts[cy0, 2] = k * dz
            if ez0:
                t = _t(vol, iso, k, j, i, k + 1, j, i, k < 0 or k + 1 >= nz, t_clamp, t_pad)
                verts[cz0, 0] = i * dx
                verts[cz0, 1] = j * dy
                verts[cz0, 2] = (k + t) * dz
            ids[0], ids[1], ids[2], ids[3] = cx0, cx1, cx2, cx3
            ids[4], ids[5], ids[6], ids[7] = cy0, cy0 + ey0, cy2, cy2 + ey2
            ids[8], ids[9], ids[10], ids[11] = cz0, cz0 + ez0, cz1, cz1 + ez2
            for m in range(tri_count[case]):
                faces[f, 0] = ids[tri_edges[case, 3 * m]]
                faces[f, 1] = ids[tri_edges[case, 3 * m + 1]]
                faces[f, 2] = ids[tri_edges[case, 3 * m + 2]]
                f += 1
            cx0 += ex0
            cx1 += ex1
            cx2 += ex2
            cx3 += ex3
            cy0 += ey0
            cy2 += ey2
            cz0 += ez0
            cz1 += ez2


@njit(**NJIT_PARALLEL)
def _emit(vol, thr, iso, dz, dy, dx, first, last, tri_count, tri_edges,
          xoff, yoff, zoff, toff, t_clamp, t_pad, verts, faces):
    """Pass 3: write (V, 3) float32 vertices and (F, 3) int32 faces at the given offsets.

    xoff, yoff, zoff (nz + 2, ny + 2) int64 first vertex id of each row's x/y/z edges;
    toff (nz + 1, ny + 1) int64 first triangle of each cell row.
    """
    nz, ny, nx = vol.shape
    for kk in prange(nz + 1):
        ids = np.empty(12, np.int64)
        buf = np.zeros(nx + 2, np.uint8)
        _emit_slab(kk, vol, thr, iso, dz, dy, dx, first, last, tri_count, tri_edges,
                   xoff, yoff, zoff, toff, t_clamp, t_pad, verts, faces, ids, buf)


def _threshold(volume: np.ndarray, iso: float) -> int | float:
    """The value ``thr`` with ``v > thr`` exactly when ``v > iso``, in the volume's domain."""
    if np.issubdtype(volume.dtype, np.integer):
        info = np.iinfo(volume.dtype)
        return int(min(max(math.floor(iso), info.min - 1), info.max))
    return float(iso)


def check_volume(volume: Volume, spacing: Spacing) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Validate a volume and its spacing; return a C-contiguous view and float spacing."""
    if not isinstance(volume, np.ndarray) or volume.ndim != 3:
        raise InvalidInput(f"volume must be a 3-D array, got {getattr(volume, 'shape', type(volume))}")
    if volume.dtype not in [np.dtype(d) for d in SUPPORTED_DTYPES]:
        raise InvalidInput(f"volume dtype must be uint8, int16, uint16 or float32, got {volume.dtype}")
    try:
        dz, dy, dx = (float(s) for s in spacing)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"spacing must be three numbers (dz, dy, dx), got {spacing!r}") from exc
    if not all(math.isfinite(s) and s > 0 for s in (dz, dy, dx)):
        raise InvalidInput(f"spacing must be positive, got {tuple(spacing)}")
    if volume.dtype == np.float32 and volume.size and not np.isfinite(volume).all():
        raise InvalidInput("volume must not contain NaN or infinity")
    return np.ascontiguousarray(volume), (dz, dy, dx)


def isosurface(volume: Volume, iso: float, spacing: Spacing, threads: int | None = None) -> Mesh:
    """Extract the closed, merged, outward-oriented isosurface ``value = iso``.

    Parameters
    ----------
    volume : (nz, ny, nx) uint8, int16, uint16 or float32
        Indexed ``[z, y, x]``. Not copied unless it is not C-contiguous.
    iso : float
        Voxels with ``value > iso`` are inside.
    spacing : (3,) float
        ``(dz, dy, dx)`` in mm, all positive.
    threads : int, optional
        Numba threads (slabs of z run in parallel); all available by default.

    Returns
    -------
    Mesh
        ``vertices`` (V, 3) float32 ``x, y, z`` in mm with voxel ``(0, 0, 0)`` at the
        origin; ``faces`` (F, 3) int32 with outward normals. Every edge crossing has
        one vertex; surfaces reaching the volume edge close half a voxel outside it.

    Raises
    ------
    InvalidInput
        For a wrong dtype, shape, spacing, iso or thread count, or NaN data.
    """
    vol, (dz, dy, dx) = check_volume(volume, spacing)
    if not math.isfinite(float(iso)):
        raise InvalidInput(f"iso must be finite, got {iso!r}")
    nz, ny, nx = vol.shape
    if vol.size == 0:
        return empty_mesh()
    thr = _threshold(vol, float(iso))
    thr = np.int64(thr) if isinstance(thr, int) else np.float64(thr)
    with numba_threads(threads):
        first = np.full((nz + 2, ny + 2), nx, np.int64)
        last = np.full((nz + 2, ny + 2), -1, np.int64)
        xcount = np.zeros((nz + 2, ny + 2), np.int64)
        _row_spans(vol, thr, first, last, xcount)
        ycount = np.zeros_like(xcount)
        zcount = np.zeros_like(xcount)
        ntri = np.zeros((nz + 1, ny + 1), np.int64)
        _count_cells(vol, thr, first, last, TRI_COUNT, ycount, zcount, ntri)
        per_row = (xcount + ycount + zcount).ravel()
        n_vertices = int(per_row.sum())
        n_faces = int(ntri.sum())
        if n_faces == 0:
            return empty_mesh()
        if n_vertices >= 2**31:
            raise InvalidInput(f"surface too large: {n_vertices} vertices exceed int32 ids")
        start = (np.cumsum(per_row) - per_row).reshape(xcount.shape)
        toff = (np.cumsum(ntri.ravel()) - ntri.ravel()).reshape(ntri.shape)
        verts = np.empty((n_vertices, 3), np.float32)
        faces = np.empty((n_faces, 3), np.int32)
        _emit(vol, thr, float(iso), dz, dy, dx, first, last, TRI_COUNT, TRI_EDGES,
              start, start + xcount, start + xcount + ycount, toff, T_CLAMP, T_PAD, verts, faces)
    return Mesh(verts, faces)


def to_patient_space(vertices: Vertices, position_mm, orientation) -> Vertices:
    """Map volume vertices (mm, voxel (0,0,0) at origin) to DICOM patient coordinates.

    Parameters
    ----------
    vertices : (V, 3) float
        ``x, y, z`` in mm as produced by :func:`isosurface`: x along columns,
        y along rows, z along slices.
    position_mm : (3,) float
        ImagePositionPatient (0020,0032) of the first slice, in mm.
    orientation : (6,) float
        ImageOrientationPatient (0020,0037): row direction cosines then column
        direction cosines. The slice direction is their cross product (PS3.3
        C.7.6.2.1.1), assuming slices are stacked along increasing position.

    Returns
    -------
    (V, 3) float32
        Patient-space coordinates in mm.
    """
    row = np.asarray(orientation, dtype=np.float64)[:3]
    col = np.asarray(orientation, dtype=np.float64)[3:6]
    origin = np.asarray(position_mm, dtype=np.float64).reshape(3)
    if len(np.asarray(orientation).ravel()) != 6:
        raise InvalidInput(f"orientation must have six cosines, got {orientation!r}")
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 \
            or abs(row @ col) > 1e-3:
        raise InvalidInput(f"orientation must be two orthonormal vectors, got {orientation!r}")
    normal = np.cross(row, col)
    axes = np.stack([row, col, normal])  # rows: where +x, +y, +z of the volume point
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    return (v @ axes + origin).astype(np.float32)
