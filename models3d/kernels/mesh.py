"""The ``Mesh`` value every kernel takes and returns, and its input checks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import numba
import numpy as np

from archive.errors import InvalidInput
from models3d.typed import Faces, Vertices


class Mesh(NamedTuple):
    """An indexed triangle mesh.

    Attributes
    ----------
    vertices : (V, 3) float32
        ``x, y, z`` in mm, origin at the centre of voxel ``(0, 0, 0)``.
    faces : (F, 3) int32
        Vertex ids, counter-clockwise seen from outside (outward normals).
    """

    vertices: Vertices
    faces: Faces


def empty_mesh() -> Mesh:
    """A mesh with no vertices and no faces."""
    return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))


def check_mesh(mesh: Mesh, name: str = "mesh") -> Mesh:
    """Validate shapes and ids; return the mesh as contiguous float32/int32 arrays.

    Raises
    ------
    InvalidInput
        If the arrays have the wrong shape or a face names a missing vertex.
    """
    vertices = np.ascontiguousarray(mesh[0], dtype=np.float32)
    faces = np.ascontiguousarray(mesh[1], dtype=np.int32)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise InvalidInput(f"{name}.vertices must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise InvalidInput(f"{name}.faces must have shape (F, 3), got {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InvalidInput(
            f"{name}.faces must index 0..{len(vertices) - 1}, "
            f"got {faces.min()}..{faces.max()}"
        )
    if not np.all(np.isfinite(vertices)):
        raise InvalidInput(f"{name}.vertices must be finite")
    return Mesh(vertices, faces)


def check_threads(threads: int | None) -> int:
    """Return the thread count to use: ``threads`` or all of Numba's threads."""
    available = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    if threads is None:
        return int(available)
    if not isinstance(threads, (int, np.integer)) or threads < 1:
        raise InvalidInput(f"threads must be a positive integer, got {threads!r}")
    return int(min(threads, available))


@contextlib.contextmanager
def numba_threads(threads: int | None, chunk: int = 0) -> Iterator[None]:
    """Run the body with ``threads`` Numba threads, restoring the count after.

    ``chunk`` > 0 hands ``prange`` iterations out in chunks of that size on demand
    instead of one static block per thread, so a thread that the OS preempts (the
    machine is shared) does not hold the others up at every barrier.
    """
    wanted = check_threads(threads)
    previous = numba.get_num_threads()
    numba.set_num_threads(wanted)
    previous_chunk = numba.set_parallel_chunksize(chunk)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(previous_chunk)
        numba.set_num_threads(previous)


@contextlib.contextmanager
def parallel_chunks(chunk: int) -> Iterator[None]:
    """Hand ``prange`` iterations out in chunks of ``chunk`` (0: one static block per
    thread) for the body, keeping the thread count; restores the previous setting.

    Kernels whose ``prange`` runs over a few dozen blocks or chunks want 1: a thread
    that the OS preempts then holds up one block, not half of the loop.
    """
    previous = numba.set_parallel_chunksize(chunk)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(previous)
