"""Parse the four path segments of an Image API 3.0 request into frozen dataclasses.

``{identifier}/{region}/{size}/{rotation}/{quality}.{format}`` (Image API 3.0 §4).
Parsing checks syntax only; :mod:`iiif.imageapi.resolve` checks the request against
an image's dimensions and the server's limits.  Every refusal is an
:class:`~iiif.errors.InvalidIIIFRequest` (400) that names the parameter and value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from iiif.errors import InvalidIIIFRequest, UnsupportedFeature

__all__ = [
    "FORMAT_MEDIA_TYPES",
    "ImageFormat",
    "ImageRequest",
    "Quality",
    "Region",
    "RegionKind",
    "Rotation",
    "Size",
    "SizeKind",
    "parse_image_request",
    "parse_quality_format",
    "parse_region",
    "parse_rotation",
    "parse_size",
]

# Plain decimal numbers only: no sign, no exponent, no "inf"/"nan" (Image API 3.0 §4.1).
_INT = r"[0-9]+"
_DECIMAL = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PIXELS_RE = re.compile(rf"({_INT}),({_INT}),({_INT}),({_INT})")
_PERCENT_RE = re.compile(rf"pct:({_DECIMAL}),({_DECIMAL}),({_DECIMAL}),({_DECIMAL})")
_SIZE_WH_RE = re.compile(rf"(!)?({_INT})?,({_INT})?")
_SIZE_PCT_RE = re.compile(rf"pct:({_DECIMAL})")
_ROTATION_RE = re.compile(rf"(!)?({_DECIMAL})")


class RegionKind(Enum):
    FULL = "full"
    SQUARE = "square"
    PIXELS = "pixels"
    PERCENT = "percent"


@dataclass(frozen=True)
class Region:
    """A region as asked: pixels are integers, percentages may be fractional."""

    kind: RegionKind
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0


class SizeKind(Enum):
    MAX = "max"  # max, ^max
    WIDTH = "width"  # w,  ^w,
    HEIGHT = "height"  # ,h  ^,h
    PERCENT = "percent"  # pct:n  ^pct:n
    EXACT = "exact"  # w,h  ^w,h
    CONFINED = "confined"  # !w,h  ^!w,h


@dataclass(frozen=True)
class Size:
    """A size as asked; ``upscale`` is the ``^`` prefix."""

    kind: SizeKind
    upscale: bool = False
    width: int | None = None
    height: int | None = None
    percent: float | None = None


@dataclass(frozen=True)
class Rotation:
    """Clockwise degrees in ``[0, 360)`` after an optional horizontal mirror (``!``)."""

    degrees: int = 0
    mirror: bool = False


class Quality(Enum):
    DEFAULT = "default"
    COLOR = "color"
    GRAY = "gray"
    BITONAL = "bitonal"


class ImageFormat(Enum):
    JPG = "jpg"
    PNG = "png"
    WEBP = "webp"


FORMAT_MEDIA_TYPES: dict[ImageFormat, str] = {
    ImageFormat.JPG: "image/jpeg",
    ImageFormat.PNG: "image/png",
    ImageFormat.WEBP: "image/webp",
}


@dataclass(frozen=True)
class ImageRequest:
    region: Region
    size: Size
    rotation: Rotation
    quality: Quality
    format: ImageFormat


def _refuse(parameter: str, value: str, why: str) -> InvalidIIIFRequest:
    return InvalidIIIFRequest(f"{parameter} {value!r} {why}")


def parse_region(region: str) -> Region:
    """Parse the region segment: ``full``, ``square``, ``x,y,w,h`` or ``pct:x,y,w,h``.

    Parameters
    ----------
    region : str
        The path segment, already percent-decoded.

    Returns
    -------
    Region

    Raises
    ------
    InvalidIIIFRequest
        Malformed numbers, or a zero width or height (Image API 3.0 §4.1).
    """
    if region == "full":
        return Region(RegionKind.FULL)
    if region == "square":
        return Region(RegionKind.SQUARE)
    match = _PIXELS_RE.fullmatch(region)
    kind = RegionKind.PIXELS
    if match is None:
        match = _PERCENT_RE.fullmatch(region)
        kind = RegionKind.PERCENT
    if match is None:
        raise _refuse("region", region, "is not full, square, x,y,w,h or pct:x,y,w,h")
    x, y, width, height = (float(group) for group in match.groups())
    if width <= 0 or height <= 0:
        raise _refuse("region", region, "has a zero width or height")
    if kind is RegionKind.PERCENT and (x >= 100 or y >= 100):
        raise _refuse("region", region, "starts at or beyond 100%, outside the image")
    return Region(kind, x, y, width, height)


def parse_size(size: str) -> Size:
    """Parse the size segment: ``max``, ``w,``, ``,h``, ``pct:n``, ``w,h``, ``!w,h``.

    Each form may carry the ``^`` prefix that allows upscaling.

    Parameters
    ----------
    size : str
        The path segment, already percent-decoded.

    Returns
    -------
    Size

    Raises
    ------
    InvalidIIIFRequest
        Malformed numbers, zero or negative sizes, ``pct:n`` above 100 without
        ``^``, and ``full`` (removed in 3.0).
    """
    upscale = size.startswith("^")
    body = size[1:] if upscale else size
    if body == "max":
        return Size(SizeKind.MAX, upscale)
    match = _SIZE_PCT_RE.fullmatch(body)
    if match is not None:
        percent = float(match.group(1))
        if percent <= 0:
            raise _refuse("size", size, "asks for zero percent")
        if percent > 100 and not upscale:
            raise _refuse("size", size, "is above 100% without the ^ prefix")
        return Size(SizeKind.PERCENT, upscale, percent=percent)
    match = _SIZE_WH_RE.fullmatch(body)
    if match is None:
        raise _refuse("size", size, "is not max, w,, ,h, pct:n, w,h or !w,h")
    confined, width_text, height_text = match.groups()
    width = int(width_text) if width_text is not None else None
    height = int(height_text) if height_text is not None else None
    if width == 0 or height == 0:
        raise _refuse("size", size, "has a zero width or height")
    if width is None and height is None:
        raise _refuse("size", size, "names neither a width nor a height")
    if confined and (width is None or height is None):
        raise _refuse("size", size, "needs both w and h after !")
    if confined:
        return Size(SizeKind.CONFINED, upscale, width, height)
    if width is not None and height is not None:
        return Size(SizeKind.EXACT, upscale, width, height)
    if width is not None:
        return Size(SizeKind.WIDTH, upscale, width=width)
    return Size(SizeKind.HEIGHT, upscale, height=height)


def parse_rotation(rotation: str) -> Rotation:
    """Parse the rotation segment: ``n`` or ``!n`` degrees clockwise, ``0 <= n <= 360``.

    Only multiples of 90 are rendered (compliance level 2 asks no more).

    Raises
    ------
    InvalidIIIFRequest
        Malformed numbers or values above 360.
    UnsupportedFeature
        Angles that are not multiples of 90 (also a 400).
    """
    match = _ROTATION_RE.fullmatch(rotation)
    if match is None:
        raise _refuse("rotation", rotation, "is not a number of degrees, optionally after !")
    degrees = float(match.group(2))
    if degrees > 360:
        raise _refuse("rotation", rotation, "is above 360 degrees")
    if degrees % 90 != 0:
        raise UnsupportedFeature(
            f"rotation {rotation!r} is not a multiple of 90 degrees; only 0, 90, 180 and 270"
            " (with optional ! mirroring) are supported"
        )
    return Rotation(int(degrees) % 360, match.group(1) is not None)


def parse_quality_format(quality_format: str) -> tuple[Quality, ImageFormat]:
    """Split ``{quality}.{format}`` and parse both halves.

    Raises
    ------
    InvalidIIIFRequest
        A missing extension, an unknown quality or an unsupported format.
    """
    quality_text, dot, format_text = quality_format.rpartition(".")
    if not dot:
        raise _refuse("quality.format", quality_format, "has no .format extension")
    try:
        quality = Quality(quality_text)
    except ValueError:
        raise _refuse(
            "quality", quality_text, "is not one of default, color, gray, bitonal"
        ) from None
    try:
        image_format = ImageFormat(format_text)
    except ValueError:
        raise _refuse("format", format_text, "is not one of jpg, png, webp") from None
    return quality, image_format


def parse_image_request(region: str, size: str, rotation: str, quality_format: str) -> ImageRequest:
    """Parse an Image API 3.0 image request from its four path segments.

    Parameters
    ----------
    region, size, rotation, quality_format : str
        The percent-decoded path segments after the identifier, for example
        ``"pct:10,10,50,50"``, ``"^!512,512"``, ``"!90"``, ``"gray.png"``.

    Returns
    -------
    ImageRequest

    Raises
    ------
    InvalidIIIFRequest
        The first malformed segment, named in the detail.
    """
    parsed_region = parse_region(region)
    parsed_size = parse_size(size)
    parsed_rotation = parse_rotation(rotation)
    quality, image_format = parse_quality_format(quality_format)
    return ImageRequest(parsed_region, parsed_size, parsed_rotation, quality, image_format)
