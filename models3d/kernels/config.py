"""Tolerances and compiler flags for the meshing kernels, in one place."""

from __future__ import annotations

from typing import Any

#: Keyword arguments for every ``@njit``: cached to disk so that only the first
#: run after an install pays the compile time. No ``fastmath``: the kernels must
#: give the same result with and without ``NUMBA_DISABLE_JIT=1``.
NJIT: dict[str, Any] = {"cache": True, "nogil": True}
#: As ``NJIT`` for the kernels that run ``prange`` loops over slabs or vertices.
NJIT_PARALLEL: dict[str, Any] = {"cache": True, "nogil": True, "parallel": True}

#: Edge-crossing parameters are clamped into ``[T_CLAMP, 1 - T_CLAMP]`` (in voxel
#: units along the edge). A voxel exactly at the iso value is treated as lying a
#: hair below it (symbolic perturbation), which would put a vertex exactly on that
#: voxel; the clamp keeps every vertex strictly inside its own edge, so no two
#: vertices coincide and no triangle has zero area, even after rounding to float32
#: at coordinates up to ~1500 voxels.
T_CLAMP = 2e-4

#: Where a surface crosses out of the volume it is closed half a voxel outside the
#: edge voxels (the volume is conceptually padded with "outside").
T_PAD = 0.5

#: Default number of windowed-sinc iterations and pass band (0 < pass band < 2).
SMOOTH_ITERATIONS = 20
SMOOTH_PASSBAND = 0.1
