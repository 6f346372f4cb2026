"""Pure meshing pipeline: volume in, measured mesh out (no Django, no I/O).

``mesh_volume`` chains crop/downsample -> threshold -> isosurface -> optional
keep-largest / drop-islands -> windowed-sinc smoothing -> quadric decimation ->
measurements, reporting progress through ``on_progress(stage, fraction)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from archive.errors import InvalidInput
from models3d import measure
from models3d.kernels import Mesh, decimate, isosurface, smooth
from models3d.kernels.config import SMOOTH_ITERATIONS, SMOOTH_PASSBAND
from models3d.kernels.isosurface import SUPPORTED_DTYPES, check_volume
from models3d.measure import MeshMeasurements
from models3d.typed import ProgressCallback, Spacing, Volume

#: Hounsfield presets: one value is an iso level, a pair is a [low, high] band.
HU_PRESETS: dict[str, tuple[float, ...]] = {
    "bone": (300.0,),
    "soft_tissue": (-300.0, 200.0),
    "skin": (-500.0,),
}


@dataclass(frozen=True)
class MeshParams:
    """What to mesh and how.

    Give exactly one of ``iso`` (a level), ``band`` ((low, high) inclusive),
    ``preset`` (a key of :data:`HU_PRESETS`) or ``otsu=True``. ``crop`` is a voxel
    box ``(z0, z1, y0, y1, x0, x1)`` (half-open); ``downsample`` an integer block
    size. ``smooth_iterations=0`` skips smoothing; ``decimate_ratio`` (a share of the
    faces) or ``decimate_count`` (at most this many faces) turns decimation on, so a
    job with a triangle budget decimates before the one measuring pass.
    """

    iso: float | None = None
    band: tuple[float, float] | None = None
    preset: str | None = None
    otsu: bool = False
    crop: tuple[int, int, int, int, int, int] | None = None
    downsample: int = 1
    keep_largest: bool = False
    min_island_mm3: float = 0.0
    smooth_iterations: int = SMOOTH_ITERATIONS
    smooth_passband: float = SMOOTH_PASSBAND
    decimate_ratio: float | None = None
    decimate_count: int | None = None
    threads: int | None = None


def otsu_threshold(volume: Volume, bins: int = 256) -> float:
    """Otsu's threshold: the level maximising the between-class variance of a histogram.

    Parameters
    ----------
    volume : ndarray
        Any numeric array; NaNs are not allowed.
    bins : int
        Histogram bins over ``[min, max]``.

    Returns
    -------
    float
        A level between two bin centres; values above it form the bright class.
    """
    lo, hi = float(np.min(volume)), float(np.max(volume))
    if lo == hi:
        raise InvalidInput(f"volume is constant ({lo}): no Otsu threshold")
    counts = np.zeros(bins, np.int64)
    flat = volume.reshape(volume.shape[0], -1)
    for slab in flat:  # slab by slab: no float copy of the whole volume
        counts += np.histogram(slab, bins=bins, range=(lo, hi))[0]
    centres = lo + (np.arange(bins) + 0.5) * (hi - lo) / bins
    w0 = np.cumsum(counts).astype(np.float64)
    m0 = np.cumsum(counts * centres)
    total, mean_all = w0[-1], m0[-1]
    w1 = total - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * w0 - total * m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    k = int(np.argmax(between))
    return float((centres[k] + centres[min(k + 1, bins - 1)]) / 2)


def crop_and_downsample(volume: Volume, spacing_mm: Spacing, crop=None, factor: int = 1):
    """Crop a voxel box and block-average by ``factor``.

    Returns
    -------
    volume : ndarray
        The cropped view (factor 1) or a float32 block mean.
    spacing_mm : tuple
        The new spacing.
    offset_mm : (3,) float64
        ``x, y, z`` to add to vertices so they sit in the original volume's frame.
    """
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise InvalidInput(f"downsample must be a positive integer, got {factor!r}")
    box = crop if crop is not None else (0, volume.shape[0], 0, volume.shape[1], 0, volume.shape[2])
    if len(box) != 6:
        raise InvalidInput(f"crop must be (z0, z1, y0, y1, x0, x1), got {crop!r}")
    z0, z1, y0, y1, x0, x1 = (int(b) for b in box)
    for lo, hi, n, axis in ((z0, z1, volume.shape[0], "z"), (y0, y1, volume.shape[1], "y"),
                            (x0, x1, volume.shape[2], "x")):
        if not 0 <= lo < hi <= n:
            raise InvalidInput(f"crop {axis} range must lie in [0, {n}] and be non-empty, "
                               f"got ({lo}, {hi})")
    sub = volume[z0:z1, y0:y1, x0:x1]
    dz, dy, dx = spacing_mm
    offset = np.array([x0 * dx, y0 * dy, z0 * dz], np.float64)
    if factor == 1:
        return sub, (dz, dy, dx), offset
    nz, ny, nx = (s // factor for s in sub.shape)
    if min(nz, ny, nx) == 0:
        raise InvalidInput(f"downsample {factor} leaves nothing of a {sub.shape} crop")
    out = np.empty((nz, ny, nx), np.float32)
    for k in range(nz):
        block = sub[k * factor:(k + 1) * factor, : ny * factor, : nx * factor].astype(np.float32)
        out[k] = block.reshape(factor, ny, factor, nx, factor).mean(axis=(0, 2, 4))
    offset += (factor - 1) / 2 * np.array([dx, dy, dz])
    return out, (dz * factor, dy * factor, dx * factor), offset


def _surface_input(volume: np.ndarray, params: MeshParams) -> tuple[np.ndarray, float]:
    """The array and iso to hand to ``isosurface`` for the chosen threshold."""
    chosen = [params.iso is not None, params.band is not None, params.preset is not None,
              bool(params.otsu)]
    if sum(chosen) != 1:
        raise InvalidInput("give exactly one of iso, band, preset and otsu")
    band = params.band
    if params.preset is not None:
        if params.preset not in HU_PRESETS:
            raise InvalidInput(f"preset must be one of {sorted(HU_PRESETS)}, got {params.preset!r}")
        levels = HU_PRESETS[params.preset]
        if len(levels) == 1:
            return volume, levels[0]
        band = (levels[0], levels[1])
    if band is not None:
        low, high = (float(b) for b in band)
        if not low <= high:
            raise InvalidInput(f"band must have low <= high, got {band!r}")
        mask = np.empty(volume.shape, np.uint8)  # one byte per voxel: the band's membership
        for k in range(volume.shape[0]):
            mask[k] = (volume[k] >= low) & (volume[k] <= high)
        return mask, 0.5
    if params.otsu or params.iso is None:
        return volume, otsu_threshold(volume)
    return volume, float(params.iso)


def mesh_volume(volume: Volume, spacing_mm: Spacing, params: MeshParams,
                on_progress: ProgressCallback | None = None) -> tuple[Mesh, MeshMeasurements]:
    """Mesh a volume end to end.

    Parameters
    ----------
    volume : (nz, ny, nx) uint8, int16, uint16 or float32
        Indexed ``[z, y, x]``.
    spacing_mm : (3,) float
        ``(dz, dy, dx)`` in mm.
    params : MeshParams
    on_progress : callable, optional
        Called as ``on_progress(stage, fraction)`` with stages ``"isosurface"``,
        ``"components"``, ``"smooth"``, ``"decimate"``, ``"measure"``.

    Returns
    -------
    (Mesh, MeshMeasurements)
        Vertices in mm in the frame of the *uncropped* volume (voxel (0,0,0) at origin).

    Raises
    ------
    InvalidInput
        For bad input or parameters.
    """
    report = on_progress or (lambda stage, fraction: None)
    vol, spacing = check_volume(volume, spacing_mm)
    vol, spacing, offset = crop_and_downsample(vol, spacing, params.crop, params.downsample)
    data, iso = _surface_input(vol, params)
    report("isosurface", 0.0)
    mesh = isosurface(data, iso, spacing, threads=params.threads,
                      on_progress=lambda fraction: report("isosurface", fraction))
    report("isosurface", 1.0)
    if params.keep_largest or params.min_island_mm3 > 0:
        report("components", 0.0)
        if params.min_island_mm3 > 0:
            mesh = measure.drop_islands(mesh, params.min_island_mm3)
        if params.keep_largest:
            mesh = measure.keep_largest_component(mesh)
        report("components", 1.0)
    if params.smooth_iterations > 0 and len(mesh.faces):
        report("smooth", 0.0)
        mesh = smooth(mesh, params.smooth_iterations, params.smooth_passband, threads=params.threads,
                      on_progress=lambda fraction: report("smooth", fraction))
        report("smooth", 1.0)
    if params.decimate_ratio is not None and params.decimate_count is not None:
        raise InvalidInput("give at most one of decimate_ratio and decimate_count")
    if params.decimate_ratio is not None and len(mesh.faces):
        report("decimate", 0.0)
        mesh = decimate(mesh, ratio=params.decimate_ratio, threads=params.threads,
                        on_progress=lambda fraction: report("decimate", fraction))
        report("decimate", 1.0)
    elif params.decimate_count is not None and len(mesh.faces) > params.decimate_count:
        report("decimate", 0.0)
        mesh = decimate(mesh, count=params.decimate_count, threads=params.threads,
                        on_progress=lambda fraction: report("decimate", fraction))
        report("decimate", 1.0)
    if np.any(offset):
        mesh = Mesh((mesh.vertices.astype(np.float64) + offset).astype(np.float32), mesh.faces)
    report("measure", 0.0)
    measurements = measure.measure_mesh(mesh)
    report("measure", 1.0)
    return mesh, measurements


def warm_up() -> None:
    """Load every kernel a job runs, for each volume type the isosurface takes
    (``SUPPORTED_DTYPES``, each a specialization of its own), by meshing a small ball
    through every stage: from Numba's disk cache in about a second, or compiled (about
    a minute of one core) where the cache is empty, as after an install. A job that
    comes after starts computing at once."""
    z, y, x = np.mgrid[:12, :12, :12]
    ball = ((z - 5.5) ** 2 + (y - 5.5) ** 2 + (x - 5.5) ** 2 < 16).astype(np.uint8) * 100
    params = MeshParams(iso=50.0, keep_largest=True, min_island_mm3=1.0, smooth_iterations=2, decimate_ratio=0.5)
    for dtype in SUPPORTED_DTYPES:
        mesh_volume(ball.astype(dtype), (1.0, 1.0, 1.0), params)
        mesh_volume(ball.astype(dtype), (1.0, 1.0, 1.0), replace(params, decimate_ratio=None, decimate_count=100))
