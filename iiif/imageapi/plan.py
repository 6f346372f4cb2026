"""Decide how to answer a resolved request from a source's pyramid.

Two plans: :class:`Passthrough` when the request is exactly one stored JPEG tile
(the bytes go out untouched), and :class:`Composite` otherwise (read the smallest
level at or above the output size, shrinking JPEG tiles in the DCT where possible,
then crop, resize, rotate, apply quality, encode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iiif.errors import UnsupportedFeature
from iiif.imageapi.parse import ImageFormat, Quality
from iiif.imageapi.resolve import ResolvedRequest
from iiif.imageapi.sources import TILE_FORMAT_JPEG, ImageSource, Level

__all__ = [
    "Composite",
    "Passthrough",
    "Plan",
    "check_quality",
    "plan_composite",
    "plan_request",
    "select_level",
    "supported_qualities",
]

# A level may be up to one output pixel short of the asked size before a finer one is
# used: clients round tile sizes up, and re-reading a 4x larger level for a one-pixel
# difference would cost far more than it gains.
_LEVEL_SLACK_PX = 1.0
# A region this close to the output size at its level is read at scale 1 (_snap).
_SNAP_TOLERANCE_PX = 1e-6


@dataclass(frozen=True)
class Passthrough:
    """Send stored tile ``(col, row)`` of ``level`` as it is."""

    level: int
    col: int
    row: int


@dataclass(frozen=True)
class Composite:
    """Read ``read_box`` (level pixels, shrunk by ``reduce``) and resample ``crop_box``.

    ``crop_box`` is ``(x0, y0, x1, y1)`` in the pixels of the array that
    ``read_region`` returns, fractional where the region does not fall on level
    pixels; it is scaled to ``(output_width, output_height)``.
    """

    level: int
    reduce: int
    read_box: tuple[int, int, int, int]
    crop_box: tuple[float, float, float, float]
    output_width: int
    output_height: int


Plan = Passthrough | Composite


def supported_qualities(is_grayscale: bool) -> tuple[Quality, ...]:
    """Qualities a source can deliver: gray sources have no ``color``."""
    if is_grayscale:
        return (Quality.DEFAULT, Quality.GRAY, Quality.BITONAL)
    return (Quality.DEFAULT, Quality.COLOR, Quality.GRAY, Quality.BITONAL)


def check_quality(source: ImageSource, quality: Quality) -> None:
    """Raise :class:`UnsupportedFeature` (400) for ``color`` on a grayscale source."""
    if quality not in supported_qualities(source.is_grayscale):
        raise UnsupportedFeature(
            f"quality {quality.value!r} is not available for this grayscale image;"
            " use default, gray or bitonal"
        )


def _scale_factor(full: int, level: int) -> int:
    return max(1, round(full / level))


def level_scale(full: int, level: int) -> float:
    """The downsampling of a level: the integer factor when the level is ``full / sf``
    rounded either way (a pyramid of halvings, a DICOM WSI level), else the ratio."""
    sf = _scale_factor(full, level)
    if level in (full // sf, -(-full // sf)):
        return float(sf)
    return full / level


def _passthrough(source: ImageSource, resolved: ResolvedRequest) -> Passthrough | None:
    """The stored tile that is exactly this request, if there is one."""
    if source.tile_format != TILE_FORMAT_JPEG or resolved.format is not ImageFormat.JPG:
        return None
    if resolved.rotation.degrees or resolved.rotation.mirror:
        return None
    plain = Quality.GRAY if source.is_grayscale else Quality.COLOR
    if resolved.quality not in (Quality.DEFAULT, plain):
        return None
    region = resolved.region
    full_w, full_h = source.width, source.height
    for index, level in enumerate(source.levels):
        sf = _scale_factor(full_w, level.width)
        if sf != _scale_factor(full_h, level.height):
            continue
        span_w, span_h = level.tile_width * sf, level.tile_height * sf
        if region.x % span_w or region.y % span_h:
            continue
        col, row = region.x // span_w, region.y // span_h
        if col >= level.columns or row >= level.rows:
            continue
        expected_region = (min(span_w, full_w - region.x), min(span_h, full_h - region.y))
        expected_output = (
            min(level.tile_width, level.width - col * level.tile_width),
            min(level.tile_height, level.height - row * level.tile_height),
        )
        if (region.width, region.height) == expected_region and (
            resolved.output_width,
            resolved.output_height,
        ) == expected_output:
            return Passthrough(index, col, row)
    return None


def select_level(
    levels: list[Level], full_width: int, full_height: int, resolved: ResolvedRequest
) -> int:
    """The smallest level still at or above the output size (within one pixel).

    Level 0 is chosen only when no reduced level is large enough.
    """
    region = resolved.region
    best = 0
    best_scale = 1.0
    for index, level in enumerate(levels):
        sx, sy = level_scale(full_width, level.width), level_scale(full_height, level.height)
        wide_enough = region.width / sx > resolved.output_width - _LEVEL_SLACK_PX
        tall_enough = region.height / sy > resolved.output_height - _LEVEL_SLACK_PX
        if wide_enough and tall_enough and sx > best_scale:
            best, best_scale = index, sx
    return best


def plan_composite(source: ImageSource, resolved: ResolvedRequest) -> Composite:
    """Plan a decode-and-resample answer for any request."""
    levels = source.levels
    index = select_level(levels, source.width, source.height, resolved)
    level = levels[index]
    sx, sy = level_scale(source.width, level.width), level_scale(source.height, level.height)
    region = resolved.region
    fx0, fy0 = region.x / sx, region.y / sy
    fx1 = min(level.width, (region.x + region.width) / sx)
    fy1 = min(level.height, (region.y + region.height) / sy)
    # Shrink while reading (JPEG DCT scaling, block averages) by the largest power of
    # two that still leaves at least the output size.
    remaining = min((fx1 - fx0) / resolved.output_width, (fy1 - fy0) / resolved.output_height)
    reduce = 1
    while reduce < 8 and reduce * 2 <= remaining:
        reduce *= 2
    if reduce == 1:
        fx0, fx1 = _snap(fx0, fx1, resolved.output_width, level.width)
        fy0, fy1 = _snap(fy0, fy1, resolved.output_height, level.height)
    x0 = math.floor(fx0 / reduce) * reduce
    y0 = math.floor(fy0 / reduce) * reduce
    x1 = max(x0 + 1, min(level.width, math.ceil(fx1 - 1e-9)))
    y1 = max(y0 + 1, min(level.height, math.ceil(fy1 - 1e-9)))
    read_w, read_h = x1 - x0, y1 - y0
    array_w, array_h = math.ceil(read_w / reduce), math.ceil(read_h / reduce)
    crop = (
        (fx0 - x0) / reduce,
        (fy0 - y0) / reduce,
        min(array_w, (fx1 - x0) / reduce),
        min(array_h, (fy1 - y0) / reduce),
    )
    return Composite(
        index, reduce, (x0, y0, read_w, read_h), crop, resolved.output_width, resolved.output_height
    )


def _snap(f0: float, f1: float, output: int, size: int) -> tuple[float, float]:
    """At scale 1, move a span that starts between level pixels onto the nearest pixel.

    Resampling a whole image to shift it by a fraction of a pixel costs more than
    decoding it (a 1024 px region: ~11 ms), and moves nothing by more than half a
    level pixel, which is what the level's own rounding already allows.
    """
    if abs((f1 - f0) - output) > _SNAP_TOLERANCE_PX or f0 == int(f0):
        return f0, f1
    start = min(max(0, math.floor(f0 + 0.5)), size - output)
    return float(start), float(start + output)


def plan_request(source: ImageSource, resolved: ResolvedRequest) -> Plan:
    """Choose passthrough or composite for a resolved request.

    Parameters
    ----------
    source : ImageSource
    resolved : ResolvedRequest
        Resolved against ``source.width`` and ``source.height``.

    Returns
    -------
    Passthrough or Composite

    Raises
    ------
    UnsupportedFeature
        ``color`` asked of a grayscale source.
    """
    if (resolved.image_width, resolved.image_height) != (source.width, source.height):
        raise ValueError(
            f"request resolved for {resolved.image_width}x{resolved.image_height}, source is"
            f" {source.width}x{source.height}"
        )
    check_quality(source, resolved.quality)
    return _passthrough(source, resolved) or plan_composite(source, resolved)
