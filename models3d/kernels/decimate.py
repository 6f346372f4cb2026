"""Quadric-error edge-collapse decimation (Garland and Heckbert 1997), in parallel.

Every vertex carries the sum of the area-weighted plane quadrics of its faces; an
edge ``(a, b)`` collapses to the point minimising ``p' (Q_a + Q_b) p`` (or the best
of its ends and midpoint when that system is singular). Instead of a global heap we
run passes: each pass picks an error threshold from a sample of the cached edge
errors (the quantile that would remove ``FRACTION_GAIN`` of what is left to
remove), then sweeps the faces once and collapses every edge under it whose faces
no earlier collapse of the same pass has made stale. Fewer, coarser passes are
faster; more, finer passes come closer to the greedy order of a heap.

**Parallel sweep.** Vertex ids are cut into contiguous blocks (a spatial slab each,
since the isosurface numbers vertices slab by slab; other meshes are renumbered along
their longest axis first). A face whose three corners lie in one block is *pure*; a
vertex with an impure face is a *border* vertex this pass. Each block sweeps its own
pure faces in its own thread and collapses only edges between two non-border
vertices of the block, so every face it reads or rewrites is one of its own pure
faces and every vertex it moves is its own: blocks never touch the same data and
need no locks. The block boundaries shift every pass, so border vertices get their
turn. Near the target the sweep runs as one block, so it stops exactly there.

Each interior edge's error is cached once, in the face that runs it from the lower
vertex id to the higher (the other face holds +inf), and an edge refused by the rules
below is set to +inf until a collapse next to it makes its face stale: the sample
then reflects edges that can still go. A collapse is refused when it would

* move a boundary vertex or join two of them (an interior vertex may collapse onto
  a boundary vertex, which stays put: boundaries are preserved exactly),
* break the link condition (the edge's endpoints share other neighbours than the
  two opposite vertices: collapsing would pinch the surface and change topology),
* flip or nearly flip a surviving face (normal turns by more than ~78 degrees).

Closed manifold input therefore stays closed, manifold and of the same genus.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit, prange

from archive.errors import InvalidInput
from models3d.kernels.config import NJIT, NJIT_PARALLEL
from models3d.kernels.mesh import Mesh, check_mesh, check_threads, numba_threads
from models3d.kernels.topology import _zeros, vertex_faces

#: A surviving face whose normal turns further than this cosine blocks a collapse.
MIN_NORMAL_COS = 0.2
#: Faces sampled per pass to pick the error threshold.
_SAMPLE = 65_537
#: Each pass aims to make this share of the remaining collapses possible.
FRACTION_GAIN = 0.5
#: Blocks per thread: several, so a thread the OS preempts holds the others up less.
BLOCKS_PER_THREAD = 8
#: A block sweeps at least this many faces; smaller meshes run as one block.
MIN_FACES_PER_BLOCK = 40_000
#: When less than this share of the live faces is left to remove, sweep as one block.
SERIAL_TAIL = 0.02
#: The tail aims at all of what is left: one serial pass instead of three or so.
TAIL_GAIN = 1.0
#: Fewer blocks while less than this share of the live faces lies within one block
#: (blocks only a few rows of vertices thick would leave most vertices on a border).
MIN_PURE_SHARE = 0.6
_INF = np.float32(np.inf)
#: The small helpers of the sweep and the error update are inlined into their callers
#: by Numba itself (LLVM left them as calls): ~15 % less CPU time in the sweep.
_NJIT_INLINE = dict(NJIT, inline="always")


@njit(**NJIT_PARALLEL)
def _face_quadrics(v, faces, bounds, q, turning):
    """Per vertex: q (V, 10) float64, the sum of the area-weighted plane quadrics
    [aa ab ac ad bb bc bd cc cd dd] of its faces, and turning (V,) int64, the sum of
    h(next) - h(previous) over its faces for a hash h of vertex ids.

    Around a vertex of a closed, consistently oriented surface every neighbour comes
    once as the corner after it and once as the corner before it, so ``turning`` is 0;
    a vertex on an edge used by one face has a neighbour whose hash does not cancel.

    Each block of vertex ids [bounds[k], bounds[k + 1]) is one task that scans every
    face and adds only to its own vertices, so no two tasks write the same row and
    each vertex sums its faces in face order whatever the number of blocks.
    """
    for k in prange(bounds.shape[0] - 1):
        lo, hi = bounds[k], bounds[k + 1]
        for vid in range(lo, hi):
            turning[vid] = 0
            for m in range(10):
                q[vid, m] = 0.0
        for f in range(faces.shape[0]):
            a, b, d = faces[f, 0], faces[f, 1], faces[f, 2]
            in_a, in_b, in_d = lo <= a < hi, lo <= b < hi, lo <= d < hi
            if not (in_a or in_b or in_d):
                continue
            p = _plane_quadric(v, a, b, d)
            for vid, inside, after, before in ((a, in_a, b, d), (b, in_b, d, a), (d, in_d, a, b)):
                if inside:
                    for m in range(10):
                        q[vid, m] += p[m]
                    turning[vid] += _mix(after) - _mix(before)


@njit(**_NJIT_INLINE)
def _mix(x):
    """A hash of a vertex id in [0, 2**31 - 1): distinct ids get distinct values, and
    sums of a few of them stay far inside int64 (no wrap-around, even in Python)."""
    return (np.int64(x) * np.int64(2654435761)) % np.int64(2147483647)


@njit(**NJIT_PARALLEL)
def _boundary_flags(faces, off, ref, locked):
    """locked (V,) bool: the vertex has an edge used by a single face.

    faces (F, 3) int32, off/ref the vertex -> faces CSR. Vertices go in chunks so that
    each chunk has its own scratch for the corner lists.
    """
    n = off.shape[0] - 1
    n_chunks = min(n, 1024)
    size = (n + n_chunks - 1) // n_chunks if n else 1
    for c in prange(n_chunks):
        corners = np.empty(64, np.int64)
        for vid in range(c * size, min(n, (c + 1) * size)):
            degree = off[vid + 1] - off[vid]
            if 2 * degree > corners.shape[0]:
                corners = np.empty(2 * degree, np.int64)
            for i in range(degree):
                f = ref[off[vid] + i]
                a, b, d = faces[f, 0], faces[f, 1], faces[f, 2]
                # the corners after and before vid: half-edges vid->next and prev->vid
                if a == vid:
                    corners[2 * i], corners[2 * i + 1] = b, d
                elif b == vid:
                    corners[2 * i], corners[2 * i + 1] = d, a
                else:
                    corners[2 * i], corners[2 * i + 1] = a, b
            locked[vid] = _seen_once(corners, 2 * degree)


@njit(**_NJIT_INLINE)
def _plane_quadric(v, a, b, d):
    """The area-weighted quadric of the plane of face (a, b, d), as a 10-tuple
    [aa ab ac ad bb bc bd cc cd dd] (all zero for a degenerate face)."""
    ux, uy, uz = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
    wx, wy, wz = v[d, 0] - v[a, 0], v[d, 1] - v[a, 1], v[d, 2] - v[a, 2]
    nx, ny, nz = uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx
    length = np.sqrt(nx * nx + ny * ny + nz * nz)
    if length == 0.0:
        return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    nx, ny, nz = nx / length, ny / length, nz / length
    dd = -(nx * v[a, 0] + ny * v[a, 1] + nz * v[a, 2])
    w = 0.5 * length
    return (w * nx * nx, w * nx * ny, w * nx * nz, w * nx * dd, w * ny * ny,
            w * ny * nz, w * ny * dd, w * nz * nz, w * nz * dd, w * dd * dd)


@njit(**NJIT)
def _seen_once(corners, n):
    """True if some value occurs exactly once in corners[:n] (an edge with one face)."""
    for i in range(n):
        # a closed fan pairs next corners (even slots) with previous ones (odd slots)
        start = 1 - i % 2
        found = False
        for j in range(start, n, 2):
            if corners[j] == corners[i]:
                found = True
                break
        if not found:
            for j in range(i % 2, n, 2):
                if j != i and corners[j] == corners[i]:
                    found = True
                    break
        if not found:
            return True
    return False


@njit(**_NJIT_INLINE)
def _qerr(q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, x, y, z):
    """Quadric error p' Q p for quadric coefficients q0..q9 at point (x, y, z)."""
    return (q0 * x * x + 2 * q1 * x * y + 2 * q2 * x * z + 2 * q3 * x + q4 * y * y
            + 2 * q5 * y * z + 2 * q6 * y + q7 * z * z + 2 * q8 * z + q9)


@njit(**_NJIT_INLINE)
def _optimum(q, v, a, b, a_fixed, b_fixed):
    """Best point for collapsing edge (a, b): (error, x, y, z) under Q_a + Q_b.

    q (V, 10) float64 quadrics, v (V, 3) float64. A fixed end (on a boundary) pins
    the point to that end; a singular system falls back to the best of the ends
    and the midpoint.
    """
    q0, q1, q2, q3, q4 = q[a, 0] + q[b, 0], q[a, 1] + q[b, 1], q[a, 2] + q[b, 2], \
        q[a, 3] + q[b, 3], q[a, 4] + q[b, 4]
    q5, q6, q7, q8, q9 = q[a, 5] + q[b, 5], q[a, 6] + q[b, 6], q[a, 7] + q[b, 7], \
        q[a, 8] + q[b, 8], q[a, 9] + q[b, 9]
    if a_fixed or b_fixed:
        e = a if a_fixed else b
        x, y, z = v[e, 0], v[e, 1], v[e, 2]
        return max(_qerr(q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, x, y, z), 0.0), x, y, z
    c0, c1, c2 = q4 * q7 - q5 * q5, q1 * q7 - q5 * q2, q1 * q5 - q4 * q2
    det = q0 * c0 - q1 * c1 + q2 * c2
    scale = (abs(q0) + abs(q4) + abs(q7)) ** 3
    mx, my, mz = 0.5 * (v[a, 0] + v[b, 0]), 0.5 * (v[a, 1] + v[b, 1]), 0.5 * (v[a, 2] + v[b, 2])
    if scale > 0 and abs(det) > 1e-9 * scale:
        b0, b1, b2 = -q3, -q6, -q8
        x = (b0 * c0 - q1 * (b1 * q7 - q5 * b2) + q2 * (b1 * q5 - q4 * b2)) / det
        y = (q0 * (b1 * q7 - q5 * b2) - b0 * c1 + q2 * (q1 * b2 - b1 * q2)) / det
        z = (q0 * (q4 * b2 - q5 * b1) - q1 * (q1 * b2 - b1 * q2) + b0 * c2) / det
        # Keep the optimum near the edge: far-away optima come from near-flat regions.
        sx, sy, sz = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
        if (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= 4.0 * (sx * sx + sy * sy + sz * sz):
            # At the optimum A p = -b, so p'A p + 2 b'p + c reduces to b'p + c.
            return max(q3 * x + q6 * y + q8 * z + q9, 0.0), x, y, z
    best = _qerr(q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, mx, my, mz)
    bx, by, bz = mx, my, mz
    for e in (a, b):
        err = _qerr(q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, v[e, 0], v[e, 1], v[e, 2])
        if err < best:
            best, bx, by, bz = err, v[e, 0], v[e, 1], v[e, 2]
    return max(best, 0.0), bx, by, bz


@njit(**NJIT_PARALLEL)
def _update_errors(v, faces, alive, q, err, stale, locked, touched, moved_in):
    """Recompute err (F, 3) float32 in faces flagged stale.

    Edge m runs from corner m to m+1 and is cached only where that goes from the lower
    vertex id to the higher. Only edges with an end moved in pass ``moved_in``
    (``touched``) change; +inf entries (new, or refused) are computed afresh.
    """
    n = faces.shape[0]
    size = 16384
    for c in prange((n + size - 1) // size):
        for f in range(c * size, min(n, (c + 1) * size)):
            if alive[f] and stale[f]:
                for m in range(3):
                    a, b = faces[f, m], faces[f, (m + 1) % 3]
                    if a > b or (locked[a] and locked[b]):
                        err[f, m] = np.inf  # cached in the twin face, or can never collapse
                    elif touched[a] == moved_in or touched[b] == moved_in or not err[f, m] < np.inf:
                        err[f, m] = _optimum(q, v, a, b, locked[a], locked[b])[0]
                stale[f] = False


@njit(**NJIT_PARALLEL)
def _centred_float64(vertices):
    """(V, 3) float64 copy of float32 ``vertices`` about their bounding-box centre, and
    the centre (3,) float64 (vertices sum in float64 about it with less rounding)."""
    n = vertices.shape[0]
    n_chunks = max(1, min(n, 256))
    size = (n + n_chunks - 1) // n_chunks
    lo = np.empty((n_chunks, 3))
    hi = np.empty((n_chunks, 3))
    for c in prange(n_chunks):
        lo[c, 0] = lo[c, 1] = lo[c, 2] = np.inf
        hi[c, 0] = hi[c, 1] = hi[c, 2] = -np.inf
        for i in range(c * size, min(n, (c + 1) * size)):
            for d in range(3):
                x = vertices[i, d]
                lo[c, d] = min(lo[c, d], x)
                hi[c, d] = max(hi[c, d], x)
    centre = np.empty(3)
    for d in range(3):
        low, high = np.inf, -np.inf
        for c in range(n_chunks):
            low, high = min(low, lo[c, d]), max(high, hi[c, d])
        centre[d] = (low + high) / 2 if n else 0.0
    out = np.empty((n, 3))
    for c in prange(n_chunks):
        for i in range(c * size, min(n, (c + 1) * size)):
            for d in range(3):
                out[i, d] = np.float64(vertices[i, d]) - centre[d]
    return out, centre


@njit(**NJIT_PARALLEL)
def _copy_faces(faces):
    """A copy of (F, 3) int32 faces, written by all threads."""
    out = np.empty_like(faces)
    n = faces.shape[0]
    size = 65536
    for c in prange((n + size - 1) // size):
        for f in range(c * size, min(n, (c + 1) * size)):
            out[f, 0], out[f, 1], out[f, 2] = faces[f, 0], faces[f, 1], faces[f, 2]
    return out


@njit(**NJIT)
def _drop_dead(faces, err, stale, alive):
    """Move the live faces (and their err, stale) to the front, in order; return their count."""
    k = 0
    for f in range(faces.shape[0]):
        if alive[f]:
            if k != f:
                faces[k, 0], faces[k, 1], faces[k, 2] = faces[f, 0], faces[f, 1], faces[f, 2]
                err[k, 0], err[k, 1], err[k, 2] = err[f, 0], err[f, 1], err[f, 2]
                stale[k] = stale[f]
                alive[k] = True
            k += 1
    return k


@njit(**NJIT_PARALLEL)
def _compact(v, centre, faces, alive, used, n_chunks):
    """The live faces, in order, over the vertices they use, in order and renumbered:
    (U, 3) float32 vertices ``v + centre`` and (K, 3) int32 faces. used (V,) uint8
    zeros is scratch; ids and faces go in chunks counted first, then filled."""
    nv, nf = v.shape[0], faces.shape[0]
    v_size = (nv + n_chunks - 1) // n_chunks
    f_size = (nf + n_chunks - 1) // n_chunks
    n_kept = np.empty(n_chunks, np.int64)
    for c in prange(n_chunks):
        k = 0
        for f in range(c * f_size, min(nf, (c + 1) * f_size)):
            if alive[f]:  # every thread that writes here writes the same value
                used[faces[f, 0]] = 1
                used[faces[f, 1]] = 1
                used[faces[f, 2]] = 1
                k += 1
        n_kept[c] = k
    n_used = np.empty(n_chunks, np.int64)
    for c in prange(n_chunks):
        k = 0
        for u in range(c * v_size, min(nv, (c + 1) * v_size)):
            if used[u]:  # (not k += used[u]: a uint8 sum wraps in plain Python)
                k += 1
        n_used[c] = k
    f_start = np.empty(n_chunks, np.int64)
    v_start = np.empty(n_chunks, np.int64)
    total_f, total_v = 0, 0
    for c in range(n_chunks):
        f_start[c], v_start[c] = total_f, total_v
        total_f += n_kept[c]
        total_v += n_used[c]
    new_id = np.empty(nv, np.int32)
    out_v = np.empty((total_v, 3), np.float32)
    for c in prange(n_chunks):
        k = v_start[c]
        for u in range(c * v_size, min(nv, (c + 1) * v_size)):
            if used[u]:
                new_id[u] = k
                for d in range(3):
                    out_v[k, d] = np.float32(v[u, d] + centre[d])
                k += 1
    out_f = np.empty((total_f, 3), np.int32)
    for c in prange(n_chunks):
        k = f_start[c]
        for f in range(c * f_size, min(nf, (c + 1) * f_size)):
            if alive[f]:
                for d in range(3):
                    out_f[k, d] = new_id[faces[f, d]]
                k += 1
    return out_v, out_f


@njit(**NJIT)
def _sample_errors(err, alive, n_samples, seed):
    """Finite cached errors of up to ``n_samples`` live faces picked pseudo-randomly."""
    n = err.shape[0]
    out = np.empty(3 * n_samples, np.float32)
    k = 0
    state = (seed * 7919 + 12345) % 2147483648
    for _ in range(2 * n_samples):
        if k > out.shape[0] - 3 or n == 0:
            break
        state = (state * 1103515245 + 12345) % 2147483648  # an LCG: deterministic
        f = (state >> 4) % n
        if alive[f]:
            for m in range(3):
                if np.isfinite(err[f, m]):
                    out[k] = err[f, m]
                    k += 1
    return out[:k]


@njit(**NJIT_PARALLEL)
def _assign_blocks(bounds, block):
    """block (V,) int32 = index of the [bounds[k], bounds[k+1]) range holding each id."""
    for k in prange(bounds.shape[0] - 1):
        for u in range(bounds[k], bounds[k + 1]):
            block[u] = k


@njit(**NJIT_PARALLEL)
def _pure_faces(faces, alive, block, n_blocks, border, layout, n_chunks, tag):
    """Live faces with all corners in one block, grouped by block in face order:
    (P,) int32 face ids and (n_blocks + 1,) int64 starts. Every corner of a live
    impure face gets ``border = layout``. tag (F,) int16 is scratch: each face's
    block (-1 if dead or impure), so the second pass reads no corners."""
    n = faces.shape[0]
    size = max(1, (n + n_chunks - 1) // n_chunks)
    hist = _zeros(n_chunks, n_blocks)
    for c in prange(n_chunks):
        for f in range(c * size, min(n, (c + 1) * size)):
            tag[f] = -1
            if not alive[f]:
                continue
            a, b, d = faces[f, 0], faces[f, 1], faces[f, 2]
            k = block[a]
            if block[b] == k and block[d] == k:
                hist[c, k] += 1
                tag[f] = k
            else:  # every thread that writes here writes the same value
                border[a] = layout
                border[b] = layout
                border[d] = layout
    pos = _zeros(n_chunks, n_blocks)
    starts = _zeros(1, n_blocks + 1)[0]
    total = 0
    for k in range(n_blocks):
        starts[k] = total
        for c in range(n_chunks):
            pos[c, k] = total
            total += hist[c, k]
    starts[n_blocks] = total
    out = np.empty(total, np.int32)
    for c in prange(n_chunks):
        cursor = pos[c].copy()
        for f in range(c * size, min(n, (c + 1) * size)):
            k = tag[f]
            if k >= 0:
                out[cursor[k]] = f
                cursor[k] += 1
    return out, starts


@njit(**_NJIT_INLINE)
def _turns(v, u, w, ex, ey, ez, px, py, pz):
    """True if moving the corner at e of a face (e, u, w), in that order, to p flips or
    degenerates it: the normal turns further than ``MIN_NORMAL_COS`` (compared
    squared, no roots)."""
    ux, uy, uz = v[u, 0], v[u, 1], v[u, 2]
    wx, wy, wz = v[w, 0], v[w, 1], v[w, 2]
    ax, ay, az, bx, by, bz = ux - ex, uy - ey, uz - ez, wx - ex, wy - ey, wz - ez
    x0, y0, z0 = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    ax, ay, az, bx, by, bz = ux - px, uy - py, uz - pz, wx - px, wy - py, wz - pz
    x1, y1, z1 = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    l0 = x0 * x0 + y0 * y0 + z0 * z0
    l1 = x1 * x1 + y1 * y1 + z1 * z1
    dot = x0 * x1 + y0 * y1 + z0 * z1
    return l1 <= 1e-24 * l0 or dot <= 0.0 or dot * dot < MIN_NORMAL_COS * MIN_NORMAL_COS * l0 * l1


@njit(**_NJIT_INLINE)
def _turns_face(v, x, y, z, end, px, py, pz):
    """:func:`_turns` for the face (x, y, z) holding vertex ``end``, moved to p."""
    if x == end:
        u, w = y, z
    elif y == end:
        u, w = z, x
    else:
        u, w = x, y
    return _turns(v, u, w, v[end, 0], v[end, 1], v[end, 2], px, py, pz)


@njit(**_NJIT_INLINE)
def _can_collapse(v, faces, alive, off, ref, lo, a, b, px, py, pz, stamp, mark):
    """The link condition (exactly two shared neighbours) and no surviving face turned
    over, for moving a and b to p; one walk over each end's faces.

    off/ref: the block's CSR, vertex ids offset by ``lo``. Returns 0 if allowed, 1 if
    the link condition fails, 2 if a face would flip (found first: no more walking).
    """
    for r in range(off[a - lo], off[a - lo + 1]):
        f = ref[r]
        if alive[f]:
            x, y, z = faces[f, 0], faces[f, 1], faces[f, 2]
            mark[x] = stamp
            mark[y] = stamp
            mark[z] = stamp
            if x != b and y != b and z != b and _turns_face(v, x, y, z, a, px, py, pz):
                return 2
    shared = 0
    for r in range(off[b - lo], off[b - lo + 1]):
        f = ref[r]
        if alive[f]:
            x, y, z = faces[f, 0], faces[f, 1], faces[f, 2]
            for u in (x, y, z):
                if u != a and u != b and mark[u] == stamp:
                    mark[u] = -stamp  # count each shared vertex once
                    shared += 1
            if x != a and y != a and z != a and _turns_face(v, x, y, z, b, px, py, pz):
                return 2
    return 0 if shared == 2 else 1


@njit(**_NJIT_INLINE)
def _collapse(v, q, faces, alive, stale, off, ref, lo, a, b, px, py, pz):
    """Move a to p, fold b into a; return the number of faces that die (usually 2)."""
    v[a, 0], v[a, 1], v[a, 2] = px, py, pz
    for k in range(10):
        q[a, k] += q[b, k]
    dead = 0
    for end in (a, b):
        for r in range(off[end - lo], off[end - lo + 1]):
            g = ref[r]
            if not alive[g]:
                continue
            has_a = faces[g, 0] == a or faces[g, 1] == a or faces[g, 2] == a
            has_b = faces[g, 0] == b or faces[g, 1] == b or faces[g, 2] == b
            if has_a and has_b:
                alive[g] = False
                dead += 1
                continue
            for k in range(3):
                if faces[g, k] == b:
                    faces[g, k] = a
            stale[g] = True
    return dead


@njit(**NJIT)
def _sweep_block(v, faces, alive, q, err, stale, locked, border, layout, touched, mark, pass_id,
                 threshold, lo, hi, own, quota, stamp, stamp_step):
    """Collapse edges under ``threshold`` among the block's pure faces ``own`` (int32,
    face order); vertices [lo, hi). Returns (faces removed, stamps used)."""
    n = hi - lo
    off = np.zeros(n + 1, np.int64)
    for i in range(own.shape[0]):
        for m in range(3):
            off[faces[own[i], m] - lo + 1] += 1
    for u in range(n):
        off[u + 1] += off[u]
    ref = np.empty(off[n], np.int32)
    cursor = off[:n].copy()
    for i in range(own.shape[0]):
        f = own[i]
        for m in range(3):
            u = faces[f, m] - lo
            ref[cursor[u]] = f
            cursor[u] += 1
    removed, tries = 0, 0
    for i in range(own.shape[0]):
        if removed >= quota:
            break
        f = own[i]
        if not alive[f] or stale[f]:
            continue
        for m in range(3):
            if not err[f, m] <= threshold:
                continue
            a, b = faces[f, m], faces[f, (m + 1) % 3]
            if touched[a] == pass_id or touched[b] == pass_id or (locked[a] and locked[b]):
                continue
            if border[a] == layout or border[b] == layout:
                continue  # some face of a or b belongs to another block this pass
            if locked[b]:  # keep the boundary vertex where it is
                a, b = b, a
            tries += 1
            _, px, py, pz = _optimum(q, v, a, b, locked[a], False)
            if _can_collapse(v, faces, alive, off, ref, lo, a, b, px, py, pz,
                             stamp + tries * stamp_step, mark):
                err[f, m] = np.inf  # refused until a collapse next to it makes f stale
                continue
            removed += _collapse(v, q, faces, alive, stale, off, ref, lo, a, b, px, py, pz)
            # Only a's face list is now out of date; faces around it are stale and skipped.
            touched[a] = pass_id
            touched[b] = pass_id
            break  # this face changed; move on
    return removed, tries


@njit(**NJIT_PARALLEL)
def _sweep(v, faces, alive, q, err, stale, locked, border, layout, touched, mark, pass_id, threshold,
           bounds, own, starts, quota, stamp, removed, tries):
    """One pass: every block sweeps its own faces in parallel (see the module docstring).
    removed/tries (n_blocks,) int64 receive each block's counts."""
    n_blocks = bounds.shape[0] - 1
    for k in prange(n_blocks):
        removed[k], tries[k] = _sweep_block(
            v, faces, alive, q, err, stale, locked, border, layout, touched, mark, pass_id, threshold,
            bounds[k], bounds[k + 1], own[starts[k]:starts[k + 1]], quota[k], stamp + k, n_blocks)


def _quadrics_and_locks(v: np.ndarray, faces: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, 10) float64 vertex quadrics and (V,) bool boundary flags; v (V, 3) float64.

    The flags need every vertex's fan (a vertex -> faces CSR) only where some vertex's
    hashes do not cancel; a closed, consistently oriented surface, such as every
    isosurface, has none and is done after one pass over the faces per block.
    """
    q = np.empty((len(v), 10))
    turning = np.empty(len(v), np.int64)
    _face_quadrics(v, faces, _block_bounds(len(v), max(1, n_blocks), 0), q, turning)
    locked = np.zeros(len(v), np.bool_)
    if turning.any():
        off, ref = vertex_faces(faces, len(v), n_blocks)
        _boundary_flags(faces, off, ref, locked)
    return q, locked


def _block_bounds(n_vertices: int, n_blocks: int, pass_id: int) -> np.ndarray:
    """(n_blocks + 1,) int64 id ranges, shifted by a different fraction every pass."""
    if n_blocks == 1:
        return np.array([0, n_vertices], np.int64)
    size = n_vertices / n_blocks
    shift = ((pass_id * 0.6180339887498949) % 1.0) * size
    inner = (shift + size * np.arange(1, n_blocks)).astype(np.int64)
    return np.concatenate([[0], np.minimum(inner, n_vertices), [n_vertices]]).astype(np.int64)


def _spatial_order(v: np.ndarray, faces: np.ndarray, n_blocks: int) -> np.ndarray | None:
    """A vertex order along the longest axis, or None if ids are already local enough
    (a face's corners within a small fraction of a block, as the isosurface gives)."""
    n = len(v)
    if n_blocks <= 1 or n == 0:
        return None
    sample = faces[:: max(1, len(faces) // 100_000)].astype(np.int64)
    spread = float(np.mean(sample.max(axis=1) - sample.min(axis=1)))
    if spread < n / (8 * n_blocks):
        return None
    lo, hi = v.min(axis=0), v.max(axis=0)
    axis = int(np.argmax(hi - lo))
    extent = max(float(hi[axis] - lo[axis]), 1e-30)
    key = np.minimum((v[:, axis] - lo[axis]) * (65535 / extent), 65535).astype(np.uint16)
    return np.argsort(key, kind="stable")  # a radix sort for 16-bit keys


def decimate(mesh: Mesh, ratio: float | None = None, count: int | None = None,
             threads: int | None = None, on_progress: Callable[[float], None] | None = None) -> Mesh:
    """Reduce a mesh to a target triangle count by quadric-error edge collapse.

    Parameters
    ----------
    mesh : Mesh
        (V, 3) float32 vertices, (F, 3) int32 faces.
    ratio : float, optional
        Target fraction of the faces to keep, in (0, 1].
    count : int, optional
        Target number of faces (give ``ratio`` or ``count``, not both).
    threads : int, optional
        Numba threads; all by default.
    on_progress : callable, optional
        Called after every pass with the share of the collapses done so far, in [0, 1].
        An exception it raises stops the decimation and propagates (a cancelled job).

    Returns
    -------
    Mesh
        At most the target number of faces where the collapse rules allow (boundary
        vertices, the link condition and flip checks can stop it short), with unused
        vertices removed.

    Raises
    ------
    InvalidInput
        For a malformed mesh or a missing/out-of-range target.
    """
    mesh = check_mesh(mesh)
    if (ratio is None) == (count is None):
        raise InvalidInput("give exactly one of ratio and count")
    n_faces = len(mesh.faces)
    if ratio is not None:
        if not 0.0 < float(ratio) <= 1.0:
            raise InvalidInput(f"ratio must be in (0, 1], got {ratio!r}")
        target = round(n_faces * float(ratio))
    else:
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise InvalidInput(f"count must be a non-negative integer, got {count!r}")
        target = int(count)
    if target >= n_faces:
        return mesh
    n_threads = check_threads(threads)
    # Every prange below runs over blocks or chunks, handed out one at a time.
    with numba_threads(n_threads, chunk=1):
        return _decimate(mesh, target, n_threads, on_progress or (lambda fraction: None))


def _decimate(mesh: Mesh, target: int, n_threads: int, on_progress: Callable[[float], None]) -> Mesh:
    """The passes of :func:`decimate` on a checked mesh, ``target`` < its face count."""
    max_blocks = max(1, n_threads * BLOCKS_PER_THREAD)
    v, centre = _centred_float64(mesh.vertices)
    faces = _copy_faces(mesh.faces)  # int32, rewritten in place by the collapses
    order = _spatial_order(v, faces, max_blocks)
    if order is not None:
        new_id = np.empty(len(order), np.int32)
        new_id[order] = np.arange(len(order), dtype=np.int32)
        v, faces = np.ascontiguousarray(v[order]), new_id[faces]
    n_vertices, n_faces = len(v), len(faces)
    # Every block of the quadric pass scans all faces: a few blocks, not max_blocks.
    q, locked = _quadrics_and_locks(v, faces, 2 * n_threads)
    alive = np.ones(n_faces, np.bool_)
    stale = np.ones(n_faces, np.bool_)
    # Cached edge errors, only compared. The first update computes every entry (all
    # vertices count as moved in "pass 0"), so the array needs no serial fill here.
    err = np.empty((n_faces, 3), np.float32)
    block = np.zeros(n_vertices, np.int32)
    border = np.zeros(n_vertices, np.int32)  # == layout: has a face in another block
    touched = np.zeros(n_vertices, np.int32)  # == pass id: moved or removed this pass
    mark = np.zeros(n_vertices, np.int64)
    tag = np.empty(n_faces, np.int16)  # scratch of _pure_faces, reused every pass
    n_alive, stamp, idle, pass_id, layout = n_faces, 1, 0, 0, 0
    while n_alive > target and idle < 3:
        pass_id += 1
        _update_errors(v, faces, alive, q, err, stale, locked, touched, pass_id - 1)
        remaining = n_alive - target
        sample = _sample_errors(err, alive, _SAMPLE, pass_id)
        gain = TAIL_GAIN if remaining < SERIAL_TAIL * n_alive else FRACTION_GAIN
        fraction = min(1.0, gain * remaining / n_alive + 0.05 * idle)
        threshold = float(np.quantile(sample, fraction)) if len(sample) else np.inf
        n_blocks = min(max_blocks, n_alive // MIN_FACES_PER_BLOCK)
        if n_blocks < 2 or remaining < SERIAL_TAIL * n_alive or idle:
            n_blocks = 1  # the tail, or a pass that found nothing: one block, no borders
        while True:
            bounds = _block_bounds(n_vertices, n_blocks, pass_id)
            _assign_blocks(bounds, block)
            layout += 1  # marks this layout's border vertices
            own, starts = _pure_faces(faces, alive, block, n_blocks, border, layout,
                                      max(1, min(256, len(faces) // 16384)), tag[:len(faces)])
            if n_blocks == 1 or starts[-1] >= MIN_PURE_SHARE * n_alive:
                break
            n_blocks //= 2
        if n_blocks == 1:
            quota = np.array([remaining], np.int64)
        else:  # shares of 90 %: a block may pass its quota by one collapse
            quota = (0.9 * remaining * np.diff(starts) / max(1, starts[-1])).astype(np.int64)
        removed = np.zeros(n_blocks, np.int64)
        tries = np.zeros(n_blocks, np.int64)
        _sweep(v, faces, alive, q, err, stale, locked, border, layout, touched, mark, pass_id,
               np.float32(threshold), bounds, own, starts, quota, stamp, removed, tries)
        stamp += (int(tries.max()) + 1) * n_blocks
        before, n_alive = n_alive, n_alive - int(removed.sum())
        on_progress(min(1.0, (n_faces - n_alive) / (n_faces - target)))
        idle = idle + 1 if n_alive == before else 0
        if idle:  # retry the edges refused so far: their neighbourhoods may have changed
            stale[:] = True
        if target < n_alive < 0.6 * len(faces):  # drop dead faces so later passes scan less
            n_live = _drop_dead(faces, err, stale, alive)
            faces, err, stale, alive = faces[:n_live], err[:n_live], stale[:n_live], alive[:n_live]
    out_v, out_f = _compact(v, centre, faces, alive, np.zeros(n_vertices, np.uint8),
                            max(1, min(256, n_vertices // 16384)))
    return Mesh(out_v, out_f)
