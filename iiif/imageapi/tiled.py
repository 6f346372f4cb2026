"""A tiled pyramid read through callables: the shape of a DICOM WSI series.

Each pyramid level is one VL Whole Slide Microscopy instance whose frames are tiles
in row-major order (TILED_FULL, PS3.3 C.8.12.4.1.1: frame = row * columns + col).
The Django layer supplies ``read_frame(level, frame_index) -> bytes``; this adapter
passes stored frames through and decodes them (Pillow, JPEG draft mode) to
composite regions.  DICOM frames at the right and bottom edges are padded to the full
tile size; the planner notices (:func:`read_jpeg_size`) and crops instead of passing
them through.
"""

from __future__ import annotations

import io
import math
import os
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
from PIL import Image

from iiif.imageapi.sources import (
    TILE_FORMAT_JPEG,
    Level,
    Pixels,
    as_pillow_array,
    as_pixels,
    check_region,
)

__all__ = [
    "DecodedTileCache",
    "FrameReader",
    "TiledPyramidSource",
    "decode_tile",
    "decode_tile_image",
    "read_jpeg_size",
]

FrameReader = Callable[[int, int], bytes]
"""``read_frame(level, frame_index) -> bytes``: one stored frame of one level."""

# JPEG start-of-frame markers that carry the image size (ITU T.81 B.2.2); not DHT,
# JPG, DAC (C4, C8, CC).
_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})


def read_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Read ``(width, height)`` from a JPEG's SOF segment without decoding.

    Returns ``None`` if ``data`` is not a JPEG stream or has no SOF before its scan.
    """
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE_MARKERS:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            if i + 9 > n:
                return None
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        if marker == 0xDA:  # start of scan before any SOF
            return None
        i += 2 + length
    return None


def decode_tile(data: bytes, *, grayscale: bool, reduce: int = 1) -> Pixels:
    """Decode an encoded tile to ``(h, w, c)`` uint8, shrunk by ``reduce`` (1, 2, 4, 8).

    JPEG tiles shrink in the DCT (Pillow draft mode), which skips most of the decode;
    other formats decode fully and then average blocks.  The result is
    ``(ceil(h / reduce), ceil(w / reduce))``.
    """
    return as_pixels(np.asarray(decode_tile_image(data, grayscale=grayscale, reduce=reduce)))


def decode_tile_image(data: bytes, *, grayscale: bool, reduce: int = 1) -> Image.Image:
    """:func:`decode_tile` as a Pillow image, mode ``L`` or ``RGB``."""
    opened = Image.open(io.BytesIO(data))
    mode = "L" if grayscale else "RGB"
    full_size = opened.size
    target = (math.ceil(full_size[0] / reduce), math.ceil(full_size[1] / reduce))
    if reduce > 1 and opened.format == "JPEG":
        opened.draft(mode, target)
    image: Image.Image = opened if opened.mode == mode else opened.convert(mode)
    if image.size != target:
        if image.size == full_size:
            image = image.reduce(reduce)
        else:
            image = image.resize(target, Image.Resampling.BOX)
    image.load()
    return image


# Pillow decodes with the GIL released, so a region's tiles decode on every core at
# once: the latency of a large region falls by about the number of cores.  Regions of
# fewer tiles than this decode in the calling thread.
_PARALLEL_TILES = 4
_decoders: ThreadPoolExecutor | None = None
_decoders_lock = threading.Lock()


def _decoder_pool() -> ThreadPoolExecutor:
    global _decoders
    with _decoders_lock:
        if _decoders is None:
            _decoders = ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="iiif-decode")
        return _decoders


class DecodedTileCache(Protocol):
    """Where decoded tiles are kept between requests (``iiif.services.SourceCache``)."""

    def get(self, key: tuple) -> Any | None: ...

    def put(self, key: tuple, value: Any, size: int) -> None: ...


class TiledPyramidSource:
    """A pyramid of tiled levels read frame by frame.

    Parameters
    ----------
    levels : sequence of Level
        Level 0 first, at full resolution; each with its tile size.
    read_frame : callable ``(level, frame_index) -> bytes``
        Returns one stored frame (a complete JPEG stream for JPEG Baseline WSI).
    tile_format : str or None
        ``"jpeg"`` when frames are JPEG streams that may be passed through.
    is_grayscale : bool
    decode_frame : callable ``(bytes, grayscale, reduce) -> (h, w, c) uint8`` or None
        For frames Pillow cannot read (native pixels, JPEG 2000 without a plugin);
        defaults to :func:`decode_tile`.
    decoded_cache : DecodedTileCache or None
        Keeps decoded tiles for the next region that touches them, under
        ``(cache_key, level, col, row, reduce)``; share one between sources (with a
        ``cache_key`` each) to bound the memory of all of them together.
    cache_key : hashable
        This source's part of the keys in ``decoded_cache``.
    """

    def __init__(
        self,
        levels: Sequence[Level],
        read_frame: FrameReader,
        *,
        tile_format: str | None = TILE_FORMAT_JPEG,
        is_grayscale: bool = False,
        decode_frame: Callable[..., Pixels] | None = None,
        decoded_cache: DecodedTileCache | None = None,
        cache_key: Hashable = None,
    ) -> None:
        if not levels:
            raise ValueError("levels must name at least level 0")
        for index, level in enumerate(levels):
            if min(level) <= 0:
                raise ValueError(f"level {index} must have positive sizes, got {level}")
        self._levels = [Level(*level) for level in levels]
        self._read_frame = read_frame
        self._tile_format = tile_format
        self._is_grayscale = is_grayscale
        self._decode = decode_frame or decode_tile
        self._decoded = decoded_cache
        self._cache_key = cache_key

    @property
    def width(self) -> int:
        return self._levels[0].width

    @property
    def height(self) -> int:
        return self._levels[0].height

    @property
    def levels(self) -> list[Level]:
        return list(self._levels)

    @property
    def is_grayscale(self) -> bool:
        return self._is_grayscale

    @property
    def tile_format(self) -> str | None:
        return self._tile_format

    def read_tile(self, level: int, col: int, row: int) -> bytes:
        """The stored frame for tile ``(col, row)`` of ``level``, untouched."""
        geometry = self._levels[level]
        if not (0 <= col < geometry.columns and 0 <= row < geometry.rows):
            raise ValueError(
                f"tile ({col}, {row}) is outside level {level}'s"
                f" {geometry.columns}x{geometry.rows} grid"
            )
        return self._read_frame(level, row * geometry.columns + col)

    def read_region(self, level: int, x: int, y: int, w: int, h: int, *, reduce: int = 1) -> Pixels:
        return as_pixels(np.asarray(self.read_region_image(level, x, y, w, h, reduce=reduce)))

    def read_region_image(
        self, level: int, x: int, y: int, w: int, h: int, *, reduce: int = 1
    ) -> Image.Image:
        """:meth:`read_region` as a Pillow image (``L`` or ``RGB``), for the renderer.

        Only the tiles the region touches are read; they are decoded (in parallel
        when there are several) and pasted straight into the result.
        """
        geometry = self._levels[level]
        check_region(geometry, x, y, w, h, reduce)
        tw, th = geometry.tile_width, geometry.tile_height
        if tw % reduce or th % reduce:
            full = self.read_region_image(level, x, y, w, h)
            return full.reduce(reduce)
        mode = "L" if self._is_grayscale else "RGB"
        out = Image.new(mode, (math.ceil(w / reduce), math.ceil(h / reduce)))
        cells = [
            (col, row)
            for row in range(y // th, (y + h - 1) // th + 1)
            for col in range(x // tw, (x + w - 1) // tw + 1)
        ]
        tiles = self._decoded_tiles(level, cells, reduce)
        for (col, row), tile in zip(cells, tiles):
            # Offsets are multiples of reduce (x, y and the tile sizes are): exact.
            # paste clips what falls outside, such as the padding of edge frames.
            out.paste(tile, ((col * tw - x) // reduce, (row * th - y) // reduce))
        return out

    def _decoded_tiles(self, level: int, cells: list[tuple[int, int]], reduce: int) -> list[Image.Image]:
        """The decoded tiles of ``cells``, from the cache or decoded (in parallel)."""
        keys = [(self._cache_key, level, col, row, reduce) for col, row in cells]
        cache = self._decoded
        tiles = [cache.get(key) for key in keys] if cache is not None else [None] * len(keys)
        missing = [i for i, tile in enumerate(tiles) if tile is None]
        stored = [self.read_tile(level, *cells[i]) for i in missing]

        def decode(data: bytes) -> Image.Image:
            return self._decode_image(data, reduce)

        if len(stored) >= _PARALLEL_TILES:
            decoded = list(_decoder_pool().map(decode, stored))
        else:
            decoded = [decode(data) for data in stored]
        for i, tile in zip(missing, decoded):
            tiles[i] = tile
            if cache is not None:
                cache.put(keys[i], tile, tile.width * tile.height * len(tile.getbands()))
        return tiles  # type: ignore[return-value]

    def _decode_image(self, data: bytes, reduce: int) -> Image.Image:
        if self._decode is decode_tile:
            return decode_tile_image(data, grayscale=self._is_grayscale, reduce=reduce)
        pixels = self._decode(data, grayscale=self._is_grayscale, reduce=reduce)
        return Image.fromarray(as_pillow_array(pixels))
