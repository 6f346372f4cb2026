"""Seeded synthetic volumes for the meshing tests and benchmarks (indexed [z, y, x])."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SyntheticVolume(NamedTuple):
    data: np.ndarray
    spacing_mm: tuple[float, float, float]
    iso: float


def _grid_mm(shape, spacing_mm, centre_mm):
    nz, ny, nx = shape
    dz, dy, dx = spacing_mm
    z = (np.arange(nz, dtype=np.float64) * dz - centre_mm[0])[:, None, None]
    y = (np.arange(ny, dtype=np.float64) * dy - centre_mm[1])[None, :, None]
    x = (np.arange(nx, dtype=np.float64) * dx - centre_mm[2])[None, None, :]
    return z, y, x


def sphere_volume(
    shape=(32, 32, 32), spacing_mm=(1.0, 1.0, 1.0), radius_mm=None, centre_mm=None,
    ramp_mm=None, dtype=np.float32,
) -> SyntheticVolume:
    """A ball as ``tanh`` of the signed distance: inside > 0, iso 0, value range (-1, 1).

    ``ramp_mm`` is the width of the tanh ramp (default: 2 of the largest spacing),
    wide enough that linear interpolation recovers the surface accurately.
    """
    extent = [(n - 1) * d for n, d in zip(shape, spacing_mm)]
    centre = np.array(centre_mm if centre_mm is not None else [e / 2 + 0.137 * d for e, d in
                                                                  zip(extent, spacing_mm)])
    radius = radius_mm if radius_mm is not None else 0.35 * min(extent)
    ramp = ramp_mm if ramp_mm is not None else 2.0 * max(spacing_mm)
    z, y, x = _grid_mm(shape, spacing_mm, centre)
    out = np.empty(shape, dtype=np.float32)
    for k in range(shape[0]):  # slab by slab: no (n, n, n) float64 temporaries
        r = np.sqrt(z[k] ** 2 + y[0] ** 2 + x[0] ** 2)
        out[k] = np.tanh((radius - r) / ramp)
    return SyntheticVolume(out.astype(dtype, copy=False), tuple(spacing_mm), 0.0)


def integer_sphere_volume(shape=(24, 24, 24), radius_vox=7.0, dtype=np.uint8,
                          slope: float = 3.0) -> SyntheticVolume:
    """A ball of rounded integers ``100 + slope * (radius - r)``: plateaus exactly at iso 100."""
    z, y, x = _grid_mm(shape, (1, 1, 1), [s / 2 - 0.5 for s in shape])
    r = np.sqrt(z**2 + y**2 + x**2)
    data = np.clip(np.round(100 + slope * (radius_vox - r)), 0, 200).astype(dtype)
    return SyntheticVolume(data, (1.0, 1.0, 1.0), 100.0)


def box_volume(shape=(8, 9, 10), value=1000, dtype=np.int16) -> SyntheticVolume:
    """Every voxel inside (``value`` everywhere, iso ``value - 1``)."""
    return SyntheticVolume(np.full(shape, value, dtype=dtype), (1.0, 1.0, 1.0), value - 1.0)


def random_volume(seed: int, shape=(6, 7, 8), dtype=np.uint8, high=4) -> SyntheticVolume:
    """Uniform random integers in ``[0, high)``: many ties with the iso ``high // 2``."""
    rng = np.random.default_rng(seed)
    return SyntheticVolume(rng.integers(0, high, size=shape).astype(dtype), (1.0, 1.0, 1.0),
                           float(high // 2))


def porous_volume(shape=(64, 64, 64), period_vox=24.0, noise=300.0, seed=0,
                  specimen: bool = False) -> SyntheticVolume:
    """A micro-CT-like porous bone/fossil: a warped gyroid in uint16 with noise.

    Bone is ~ 3000, pores ~ 1000, iso 2000. With ``specimen`` the porous block is
    cut to an ellipsoid filling 90 % of the field, surrounded by air (~ 500), as a
    specimen on a scanner bed, so the surface does not reach the volume's edge.
    Built slab by slab, so a 512**3 volume needs no float copy of the whole volume.
    """
    rng = np.random.default_rng(seed)
    w = 2 * np.pi / period_vox
    nz, ny, nx = shape
    y = np.arange(ny)[:, None] * w
    x = np.arange(nx)[None, :] * w
    out = np.empty(shape, dtype=np.uint16)
    for k in range(nz):
        z = k * w
        warp = 0.6 * np.sin(0.31 * x + 0.7 * z) * np.cos(0.23 * y)
        g = (np.sin(x + warp) * np.cos(y) + np.sin(y) * np.cos(z + warp)
             + np.sin(z) * np.cos(x)) + 0.3
        slab = 2000 + 1000 * g + rng.normal(0, noise, size=(ny, nx))
        if specimen:
            r2 = (((k - nz / 2) / (0.45 * nz)) ** 2 + ((y / w - ny / 2) / (0.45 * ny)) ** 2
                  + ((x / w - nx / 2) / (0.45 * nx)) ** 2)
            slab = np.where(r2 < 1.0, slab, 500 + rng.normal(0, noise, size=(ny, nx)))
        out[k] = np.clip(slab, 0, 65535).astype(np.uint16)
    return SyntheticVolume(out, (0.02, 0.02, 0.02), 2000.0)


def torso_volume(shape=(64, 64, 64), spacing_mm=(2.5, 0.8, 0.8), seed=0) -> SyntheticVolume:
    """A CT-torso-like int16 volume in HU: air, soft tissue, ribs, spine; iso 300 HU."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    yy = (np.arange(ny) - ny / 2)[:, None] / (ny / 2)
    xx = (np.arange(nx) - nx / 2)[None, :] / (nx / 2)
    out = np.empty(shape, dtype=np.int16)
    for k in range(nz):
        body = (xx / 0.85) ** 2 + (yy / 0.6) ** 2 < 1
        slab = np.where(body, 40.0, -1000.0)
        ring = np.abs(np.sqrt((xx / 0.75) ** 2 + (yy / 0.5) ** 2) - 1) < 0.04
        ribs = ring & (np.sin(2 * np.pi * (k / max(nz, 1)) * 6 + 0 * xx) > 0.2)
        spine = (xx / 0.09) ** 2 + ((yy - 0.35) / 0.09) ** 2 < 1
        slab = np.where(ribs | spine, 900.0, slab)
        slab += rng.normal(0, 25, size=(ny, nx))
        out[k] = np.clip(slab, -1024, 3071).astype(np.int16)
    return SyntheticVolume(out, tuple(spacing_mm), 300.0)
