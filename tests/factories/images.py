"""Synthetic images for the IIIF tests: small, seeded, built in one call."""

from __future__ import annotations

import io
import math

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from iiif.imageapi.sources import Level

VALIDATOR_SQUARE_PX = 100
VALIDATOR_GRID = 10


def build_validator_test_image() -> NDArray[np.uint8]:
    """The IIIF validator's test image: 10x10 squares of 100 px, ``(1000, 1000, 3)`` uint8.

    The validator checks the square in column ``x`` and row ``y`` against
    ``ValidationInfo().colorInfo[x][y]`` (it crops ``x * 100 + 13`` across and
    ``y * 100 + 13`` down), so the colours are read from the installed
    ``iiif_validator`` package rather than restated here.
    """
    from iiif_validator.validator import ValidationInfo

    colours = ValidationInfo().colorInfo
    image = np.empty((VALIDATOR_GRID * VALIDATOR_SQUARE_PX,) * 2 + (3,), np.uint8)
    for x in range(VALIDATOR_GRID):
        for y in range(VALIDATOR_GRID):
            top, left = y * VALIDATOR_SQUARE_PX, x * VALIDATOR_SQUARE_PX
            image[top : top + VALIDATOR_SQUARE_PX, left : left + VALIDATOR_SQUARE_PX] = colours[x][
                y
            ]
    return image


def build_quadrant_image(width: int = 64, height: int = 48) -> NDArray[np.uint8]:
    """Four flat quadrants: red top-left, green top-right, blue bottom-left, white bottom-right."""
    image = np.zeros((height, width, 3), np.uint8)
    half_w, half_h = width // 2, height // 2
    image[:half_h, :half_w] = (255, 0, 0)
    image[:half_h, half_w:] = (0, 255, 0)
    image[half_h:, :half_w] = (0, 0, 255)
    image[half_h:, half_w:] = (255, 255, 255)
    return image


def build_noise_image(
    width: int, height: int, *, seed: int = 0, gray: bool = False
) -> NDArray[np.uint8]:
    """Smooth seeded noise (JPEG-friendly), ``(h, w, 3)`` or ``(h, w)`` uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    return image[..., 0].copy() if gray else image.copy()


def encode_jpeg(pixels: NDArray[np.uint8], quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def build_jpeg_pyramid(
    pixels: NDArray[np.uint8], *, tile_size: int = 64, levels: int = 3, pad_edges: bool = False
) -> tuple[list[Level], dict[tuple[int, int], bytes]]:
    """Tile an image into a JPEG pyramid, halving per level, frames in row-major order.

    Returns the level geometry and ``{(level, frame_index): jpeg_bytes}``.  With
    ``pad_edges`` the right and bottom frames are padded to the full tile size, as
    DICOM WSI stores them.
    """
    geometry: list[Level] = []
    frames: dict[tuple[int, int], bytes] = {}
    current = Image.fromarray(pixels)
    for index in range(levels):
        if index:
            current = current.reduce(2)
        array = np.asarray(current)
        level = Level(current.width, current.height, tile_size, tile_size)
        geometry.append(level)
        for row in range(level.rows):
            for col in range(level.columns):
                tile = array[
                    row * tile_size : (row + 1) * tile_size, col * tile_size : (col + 1) * tile_size
                ]
                if pad_edges and tile.shape[:2] != (tile_size, tile_size):
                    padded = np.zeros((tile_size, tile_size) + tile.shape[2:], np.uint8)
                    padded[: tile.shape[0], : tile.shape[1]] = tile
                    tile = padded
                frames[(index, row * level.columns + col)] = encode_jpeg(np.ascontiguousarray(tile))
    return geometry, frames


def build_ct_slice(width: int = 32, height: int = 32) -> NDArray[np.uint16]:
    """A 16-bit ramp from 0 to 65535 across the columns, ``(h, w)`` uint16."""
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    return np.tile(ramp, (height, 1))


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)
