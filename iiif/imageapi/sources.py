"""Where pixels come from: the ``ImageSource`` protocol and the in-memory sources.

A source is a pyramid of levels (level 0 at full resolution).  The renderer asks
it for stored tiles (to pass JPEG bytes through untouched) or for decoded regions.
The tiled DICOM WSI adapter lives in :mod:`iiif.imageapi.tiled`.  Sources may keep
per-instance state (a lazily built pyramid); nothing here is cached globally.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from iiif.imageapi.window import Window, apply_modality_lut, apply_window, window_from_range

__all__ = [
    "TILE_FORMAT_JPEG",
    "ArraySource",
    "GrayscaleSource",
    "ImageSource",
    "Level",
    "Pixels",
    "reduce_pixels",
]

Pixels = NDArray[np.uint8]
"""Decoded pixels, ``(h, w, c)`` uint8 with ``c`` 1 (gray) or 3 (RGB)."""

TILE_FORMAT_JPEG = "jpeg"


class Level(NamedTuple):
    """One pyramid level: its size and its tile size, in that level's pixels."""

    width: int
    height: int
    tile_width: int
    tile_height: int

    @property
    def columns(self) -> int:
        return math.ceil(self.width / self.tile_width)

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.tile_height)


@runtime_checkable
class ImageSource(Protocol):
    """What the planner and the renderer need from an image.

    ``read_region`` takes coordinates in the level's own pixels; ``x`` and ``y`` must
    be multiples of ``reduce`` (1, 2, 4 or 8) and it returns
    ``(ceil(h / reduce), ceil(w / reduce), c)`` uint8, each output pixel averaging a
    ``reduce x reduce`` block.  ``read_tile`` returns the stored encoded tile when
    ``tile_format`` is ``"jpeg"``; other sources raise ``TypeError``.
    """

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def levels(self) -> list[Level]: ...

    @property
    def is_grayscale(self) -> bool: ...

    @property
    def tile_format(self) -> str | None: ...

    def read_tile(self, level: int, col: int, row: int) -> bytes: ...

    def read_region(
        self, level: int, x: int, y: int, w: int, h: int, *, reduce: int = 1
    ) -> Pixels: ...


def reduce_pixels(pixels: Pixels, factor: int) -> Pixels:
    """Average ``factor x factor`` blocks (edges use partial blocks), ``(h, w, c)`` uint8."""
    if factor == 1:
        return pixels
    reduced = Image.fromarray(as_pillow_array(pixels)).reduce(factor)
    return as_pixels(np.asarray(reduced))


def as_pillow_array(pixels: Pixels) -> NDArray[np.uint8]:
    """``(h, w, 1)`` to ``(h, w)`` for Pillow; RGB unchanged (views, no copies)."""
    return pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels


def as_pixels(array: NDArray[np.uint8]) -> Pixels:
    """``(h, w)`` to ``(h, w, 1)``; RGB unchanged (views, no copies)."""
    return array[..., None] if array.ndim == 2 else array


def check_region(level: Level, x: int, y: int, w: int, h: int, reduce: int) -> None:
    """Raise ``ValueError`` unless the region lies in the level and aligns to ``reduce``."""
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > level.width or y + h > level.height:
        raise ValueError(
            f"region {x},{y},{w},{h} is not inside the {level.width}x{level.height} level"
        )
    if reduce not in (1, 2, 4, 8) or x % reduce or y % reduce:
        raise ValueError(f"reduce must be 1, 2, 4 or 8 dividing x and y, got {reduce} at {x},{y}")


class ArraySource:
    """An in-memory image (a photograph, a decoded frame) with a lazy pyramid.

    Parameters
    ----------
    pixels : (h, w), (h, w, 1) or (h, w, 3) uint8 array
        Not copied; do not modify it afterwards.
    tile_size : int
        Tile size advertised in info.json; the pyramid halves until the image fits
        in one tile.
    """

    tile_format: str | None = None

    def __init__(self, pixels: NDArray[np.uint8], *, tile_size: int = 512) -> None:
        if pixels.dtype != np.uint8:
            raise TypeError(f"pixels must be uint8, got {pixels.dtype}")
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.ndim != 3 or pixels.shape[2] not in (1, 3) or 0 in pixels.shape:
            raise ValueError(f"pixels must be (h, w), (h, w, 1) or (h, w, 3), got {pixels.shape}")
        if tile_size <= 0:
            raise ValueError(f"tile_size must be positive, got {tile_size}")
        self._full = pixels
        self._tile_size = tile_size

    @property
    def width(self) -> int:
        return int(self._full.shape[1])

    @property
    def height(self) -> int:
        return int(self._full.shape[0])

    @property
    def is_grayscale(self) -> bool:
        return int(self._full.shape[2]) == 1

    @cached_property
    def _pyramid(self) -> list[Pixels]:
        arrays = [self._full]
        while max(arrays[-1].shape[:2]) > self._tile_size:
            arrays.append(reduce_pixels(arrays[-1], 2))
        return arrays

    @property
    def levels(self) -> list[Level]:
        t = self._tile_size
        return [Level(int(a.shape[1]), int(a.shape[0]), t, t) for a in self._pyramid]

    def read_tile(self, level: int, col: int, row: int) -> bytes:
        raise TypeError("ArraySource stores no encoded tiles; use read_region")

    def read_region(self, level: int, x: int, y: int, w: int, h: int, *, reduce: int = 1) -> Pixels:
        check_region(self.levels[level], x, y, w, h, reduce)
        return reduce_pixels(self._pyramid[level][y : y + h, x : x + w], reduce)


class GrayscaleSource:
    """A 16-bit (or 8-bit, or float) grayscale frame shown through a VOI window.

    The Modality LUT (slope, intercept) and the window are applied in floating point
    before the values meet 8 bits (PS3.3 C.11.1, C.11.2), so high values are never
    truncated; MONOCHROME1 is inverted after windowing.

    Parameters
    ----------
    stored : (h, w) integer or float array
        Stored pixel values, as in Pixel Data.
    slope, intercept : float
        Rescale Slope and Rescale Intercept.
    window : Window or None
        A window in output units; ``None`` spans the data's range.
    invert : bool
        True for MONOCHROME1.
    tile_size : int
    """

    tile_format: str | None = None
    is_grayscale = True

    def __init__(
        self,
        stored: NDArray[np.integer] | NDArray[np.floating],
        *,
        slope: float = 1.0,
        intercept: float = 0.0,
        window: Window | None = None,
        invert: bool = False,
        tile_size: int = 512,
    ) -> None:
        if stored.ndim != 2 or 0 in stored.shape:
            raise ValueError(f"stored must be a non-empty (h, w) array, got {stored.shape}")
        if not (
            np.issubdtype(stored.dtype, np.integer) or np.issubdtype(stored.dtype, np.floating)
        ):
            raise TypeError(f"stored must be integer or float, got {stored.dtype}")
        self._stored = stored
        self._slope = float(slope)
        self._intercept = float(intercept)
        self._window = window
        self._invert = invert
        self._tile_size = tile_size

    @property
    def width(self) -> int:
        return int(self._stored.shape[1])

    @property
    def height(self) -> int:
        return int(self._stored.shape[0])

    @cached_property
    def window(self) -> Window:
        """The window in use (the given one, or the data's range)."""
        if self._window is not None:
            return self._window
        return window_from_range(apply_modality_lut(self._stored, self._slope, self._intercept))

    @cached_property
    def _eight_bit(self) -> ArraySource:
        values = apply_modality_lut(self._stored, self._slope, self._intercept)
        pixels = apply_window(values, self.window)
        if self._invert:
            pixels = 255 - pixels
        return ArraySource(pixels, tile_size=self._tile_size)

    @property
    def levels(self) -> list[Level]:
        return self._eight_bit.levels

    def read_tile(self, level: int, col: int, row: int) -> bytes:
        raise TypeError("GrayscaleSource stores no encoded tiles; use read_region")

    def read_region(self, level: int, x: int, y: int, w: int, h: int, *, reduce: int = 1) -> Pixels:
        return self._eight_bit.read_region(level, x, y, w, h, reduce=reduce)
