"""Resolve a parsed request against an image's size and the server's limits.

Image API 3.0 §4.1 (region), §4.2 (size), §4.7 (canonical URI syntax) and §5.3
(``maxWidth``, ``maxHeight``, ``maxArea``).  The result is pixel arithmetic only;
no pixels are read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iiif.errors import (
    InvalidIIIFRequest,
    RegionOutsideImage,
    SizeLimitExceeded,
    UpscalingNotAllowed,
)
from iiif.imageapi.parse import (
    ImageFormat,
    ImageRequest,
    Quality,
    Region,
    RegionKind,
    Rotation,
    Size,
    SizeKind,
)

__all__ = [
    "Limits",
    "PixelRegion",
    "ResolvedRequest",
    "is_within_limits",
    "resolve",
    "resolve_region",
    "resolve_size",
]


@dataclass(frozen=True)
class PixelRegion:
    """A rectangle of full-resolution pixels, inside the image."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Limits:
    """Server limits; ``None`` means no limit.  ``max_height`` defaults to ``max_width``
    as Image API 3.0 §5.3 tells clients to assume."""

    max_width: int | None = None
    max_height: int | None = None
    max_area: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_width", "max_height", "max_area"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_height is not None and self.max_width is None:
            raise ValueError("max_height needs max_width (Image API 3.0 §5.3)")

    @property
    def effective_max_height(self) -> int | None:
        return self.max_height if self.max_height is not None else self.max_width


@dataclass(frozen=True)
class ResolvedRequest:
    """A request in pixels: what to cut from the full image and how big to return it.

    ``output_width`` and ``output_height`` are the size before rotation (§4.2 applies
    before §4.3); :attr:`final_size` is the size of the delivered image.
    """

    image_width: int
    image_height: int
    region: PixelRegion
    output_width: int
    output_height: int
    rotation: Rotation
    quality: Quality
    format: ImageFormat
    size_is_max: bool
    """Whether the output is what ``max`` gives: canonical size is then ``max``."""

    @property
    def final_size(self) -> tuple[int, int]:
        if self.rotation.degrees in (90, 270):
            return self.output_height, self.output_width
        return self.output_width, self.output_height

    @property
    def is_upscaled(self) -> bool:
        return self.output_width > self.region.width or self.output_height > self.region.height

    @property
    def canonical_path(self) -> str:
        """``{region}/{size}/{rotation}/{quality}.{format}`` in canonical form (§4.7)."""
        r = self.region
        if (r.x, r.y, r.width, r.height) == (0, 0, self.image_width, self.image_height):
            region = "full"
        else:
            region = f"{r.x},{r.y},{r.width},{r.height}"
        if self.size_is_max and not self.is_upscaled:
            size = "max"
        else:
            size = f"{'^' if self.is_upscaled else ''}{self.output_width},{self.output_height}"
        rotation = f"{'!' if self.rotation.mirror else ''}{self.rotation.degrees}"
        return f"{region}/{size}/{rotation}/{self.quality.value}.{self.format.value}"


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def resolve_region(region: Region, width: int, height: int) -> PixelRegion:
    """Turn a region into full-resolution pixels, clipped to the image.

    Raises
    ------
    RegionOutsideImage
        The region starts at or beyond the right or bottom edge (§4.1).
    """
    if region.kind is RegionKind.FULL:
        return PixelRegion(0, 0, width, height)
    if region.kind is RegionKind.SQUARE:
        side = min(width, height)
        return PixelRegion((width - side) // 2, (height - side) // 2, side, side)
    if region.kind is RegionKind.PIXELS:
        x, y = int(region.x), int(region.y)
        if x >= width or y >= height:
            raise RegionOutsideImage(
                f"region {x},{y},{int(region.width)},{int(region.height)} lies outside the"
                f" {width}x{height} image"
            )
        return PixelRegion(
            x, y, min(int(region.width), width - x), min(int(region.height), height - y)
        )
    # pct: the start floors so that any x < 100 stays inside; the end rounds.
    x0 = math.floor(region.x * width / 100)
    y0 = math.floor(region.y * height / 100)
    x1 = min(width, _round_half_up(min(100.0, region.x + region.width) * width / 100))
    y1 = min(height, _round_half_up(min(100.0, region.y + region.height) * height / 100))
    return PixelRegion(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def _scale_within(width: int, height: int, limits: Limits) -> float | None:
    """The largest scale of ``width x height`` inside the limits; ``None`` if unlimited."""
    scales = []
    if limits.max_width is not None:
        scales.append(limits.max_width / width)
    max_height = limits.effective_max_height
    if max_height is not None:
        scales.append(max_height / height)
    if limits.max_area is not None:
        scales.append(math.sqrt(limits.max_area / (width * height)))
    return min(scales) if scales else None


def _fit(width: int, height: int, scale: float, limits: Limits) -> tuple[int, int]:
    """Scale down (floor) and step back until inside the limits."""
    w = max(1, math.floor(width * scale + 1e-9))
    h = max(1, math.floor(height * scale + 1e-9))
    while not is_within_limits(w, h, limits) and w > 1:
        w -= 1
        h = max(1, math.floor(height * w / width))
    return w, h


def is_within_limits(w: int, h: int, limits: Limits) -> bool:
    """Whether a ``w x h`` image respects the limits."""
    max_height = limits.effective_max_height
    return (
        (limits.max_width is None or w <= limits.max_width)
        and (max_height is None or h <= max_height)
        and (limits.max_area is None or w * h <= limits.max_area)
    )


def _size_text(size: Size) -> str:
    prefix = "^" if size.upscale else ""
    if size.kind is SizeKind.MAX:
        return f"{prefix}max"
    if size.kind is SizeKind.PERCENT:
        return f"{prefix}pct:{size.percent:g}"
    bang = "!" if size.kind is SizeKind.CONFINED else ""
    w = "" if size.width is None else str(size.width)
    h = "" if size.height is None else str(size.height)
    return f"{prefix}{bang}{w},{h}"


def resolve_size(size: Size, region: PixelRegion, limits: Limits) -> tuple[int, int]:
    """Compute the output size (before rotation) for a region.

    Returns
    -------
    (width, height) : tuple of int

    Raises
    ------
    InvalidIIIFRequest
        The size rounds to zero pixels.
    UpscalingNotAllowed
        A result larger than the region in either dimension without ``^`` (§4.2;
        ``!w,h`` included, as the IIIF validator's ``size_noup`` test expects).
    SizeLimitExceeded
        A result beyond ``maxWidth``, ``maxHeight`` or ``maxArea``.
    """
    rw, rh = region.width, region.height
    if size.kind is SizeKind.MAX:
        scale = _scale_within(rw, rh, limits)
        if scale is None or (scale >= 1 and not size.upscale):
            return rw, rh
        return _fit(rw, rh, scale, limits)
    if size.kind is SizeKind.WIDTH:
        assert size.width is not None
        w, h = size.width, _round_half_up(rh * size.width / rw)
    elif size.kind is SizeKind.HEIGHT:
        assert size.height is not None
        w, h = _round_half_up(rw * size.height / rh), size.height
    elif size.kind is SizeKind.PERCENT:
        assert size.percent is not None
        w, h = _round_half_up(rw * size.percent / 100), _round_half_up(rh * size.percent / 100)
    elif size.kind is SizeKind.EXACT:
        assert size.width is not None and size.height is not None
        w, h = size.width, size.height
    else:
        assert size.width is not None and size.height is not None
        if size.width / rw <= size.height / rh:
            w, h = size.width, min(size.height, _round_half_up(rh * size.width / rw))
        else:
            w, h = min(size.width, _round_half_up(rw * size.height / rh)), size.height
    text = _size_text(size)
    if w <= 0 or h <= 0:
        raise InvalidIIIFRequest(f"size {text!r} gives a {w}x{h} image for a {rw}x{rh} region")
    if not size.upscale and (w > rw or h > rh):
        raise UpscalingNotAllowed(
            f"size {text!r} gives {w}x{h}, larger than the {rw}x{rh} region; prefix it with ^"
            " to upscale"
        )
    if not is_within_limits(w, h, limits):
        raise SizeLimitExceeded(
            f"size {text!r} gives {w}x{h}, beyond maxWidth={limits.max_width},"
            f" maxHeight={limits.effective_max_height}, maxArea={limits.max_area}"
        )
    return w, h


def resolve(
    request: ImageRequest,
    width: int,
    height: int,
    max_width: int | None = None,
    max_height: int | None = None,
    max_area: int | None = None,
) -> ResolvedRequest:
    """Resolve a parsed request against an image of ``width x height`` pixels.

    Parameters
    ----------
    request : ImageRequest
        From :func:`iiif.imageapi.parse.parse_image_request`.
    width, height : int
        Full-resolution size of the image (as in info.json).
    max_width, max_height, max_area : int or None
        The limits published in info.json; ``None`` for none.  ``max_height``
        defaults to ``max_width``.

    Returns
    -------
    ResolvedRequest

    Raises
    ------
    RegionOutsideImage, UpscalingNotAllowed, SizeLimitExceeded, InvalidIIIFRequest
        All HTTP 400.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    limits = Limits(max_width, max_height, max_area)
    region = resolve_region(request.region, width, height)
    output_width, output_height = resolve_size(request.size, region, limits)
    return ResolvedRequest(
        image_width=width,
        image_height=height,
        region=region,
        output_width=output_width,
        output_height=output_height,
        rotation=request.rotation,
        quality=request.quality,
        format=request.format,
        size_is_max=(output_width, output_height)
        == resolve_size(Size(SizeKind.MAX), region, limits),
    )
