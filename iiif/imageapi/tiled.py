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
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from iiif.imageapi.sources import (
    TILE_FORMAT_JPEG,
    Level,
    Pixels,
    as_pixels,
    check_region,
    reduce_pixels,
)

__all__ = ["FrameReader", "TiledPyramidSource", "decode_tile", "read_jpeg_size"]

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
    return as_pixels(np.asarray(image))


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
    """

    def __init__(
        self,
        levels: Sequence[Level],
        read_frame: FrameReader,
        *,
        tile_format: str | None = TILE_FORMAT_JPEG,
        is_grayscale: bool = False,
        decode_frame: Callable[..., Pixels] | None = None,
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
        geometry = self._levels[level]
        check_region(geometry, x, y, w, h, reduce)
        tw, th = geometry.tile_width, geometry.tile_height
        if tw % reduce or th % reduce:
            return reduce_pixels(self.read_region(level, x, y, w, h), reduce)
        channels = 1 if self._is_grayscale else 3
        out = np.empty((math.ceil(h / reduce), math.ceil(w / reduce), channels), np.uint8)
        for row in range(y // th, (y + h - 1) // th + 1):
            for col in range(x // tw, (x + w - 1) // tw + 1):
                tile = self._decode(
                    self.read_tile(level, col, row), grayscale=self._is_grayscale, reduce=reduce
                )
                self._paste(out, tile, col * tw - x, row * th - y, reduce)
        return out

    @staticmethod
    def _paste(out: Pixels, tile: Pixels, dx: int, dy: int, reduce: int) -> None:
        """Copy the overlap of ``tile`` placed at level offset ``(dx, dy)`` into ``out``."""
        # dx, dy, x and y are multiples of reduce, so reduced offsets are exact.
        ox, oy = dx // reduce, dy // reduce
        src_x0, src_y0 = max(0, -ox), max(0, -oy)
        dst_x0, dst_y0 = max(0, ox), max(0, oy)
        width = min(tile.shape[1] - src_x0, out.shape[1] - dst_x0)
        height = min(tile.shape[0] - src_y0, out.shape[0] - dst_y0)
        if width > 0 and height > 0:
            out[dst_y0 : dst_y0 + height, dst_x0 : dst_x0 + width] = tile[
                src_y0 : src_y0 + height, src_x0 : src_x0 + width
            ]
