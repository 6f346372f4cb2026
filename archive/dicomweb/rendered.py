"""WADO-RS ``/rendered`` and ``/thumbnail`` (PS3.18 8.3.5, 9.5): consumer-ready JPEG or PNG.

Grayscale goes through the Modality LUT and a VOI window before it becomes 8 bits: the
``window=center,width[,function]`` parameter, else the instance's own window, else the
data's range. The windowing itself is the IIIF layer's (one implementation for both).
Pure: imports no Django.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.pixels import pixel_array

from iiif.imageapi.window import VoiFunction, Window, apply_modality_lut, apply_window, window_from_range

from ..errors import InvalidInput, NotAcceptable
from ..multipart import parse_accept

RENDERED_TYPES = ("image/jpeg", "image/png")
THUMBNAIL_PX = 256
_MAX_VIEWPORT = 8192
_FUNCTIONS = {"linear": VoiFunction.LINEAR, "linear-exact": VoiFunction.LINEAR_EXACT, "sigmoid": VoiFunction.SIGMOID}


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = "image/jpeg"
    window: Window | None = None
    viewport: tuple[int, int] | None = None
    quality: int = 90


def negotiate_image(accept: str) -> str:
    for media in parse_accept(accept):
        for offered in RENDERED_TYPES:
            if media.matches(offered):
                return offered
    raise NotAcceptable(f"rendered images are image/jpeg or image/png; the Accept header asks for {accept!r}")


def parse_render_options(params: dict[str, str], accept: str, thumbnail: bool) -> RenderOptions:
    """Read ``window``, ``viewport`` and ``quality`` (PS3.18 8.3.5.1), refusing bad values."""
    window = None
    if text := params.get("window"):
        parts = text.split(",")
        try:
            if len(parts) not in (2, 3):
                raise ValueError
            center, width = float(parts[0]), float(parts[1])
            function = _FUNCTIONS[parts[2].strip().lower()] if len(parts) == 3 else VoiFunction.LINEAR
            window = Window(center, width, function)
        except (ValueError, KeyError):
            raise InvalidInput(
                f"window must be center,width[,linear|linear-exact|sigmoid] with width > 0, got {text!r}"
            ) from None
    viewport = (THUMBNAIL_PX, THUMBNAIL_PX) if thumbnail else None
    if text := params.get("viewport"):
        try:
            vw, vh = (int(v) for v in text.split(",")[:2])
            if not (0 < vw <= _MAX_VIEWPORT and 0 < vh <= _MAX_VIEWPORT):
                raise ValueError
        except ValueError:
            raise InvalidInput(f"viewport must be width,height from 1 to {_MAX_VIEWPORT}, got {text!r}") from None
        viewport = (vw, vh)
    quality = 90
    if text := params.get("quality"):
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise InvalidInput(f"quality must be 1 to 100, got {text!r}")
        quality = int(text)
    return RenderOptions(negotiate_image(accept), window, viewport, quality)


def render_frame(path: str, metadata: dict, frame: int, options: RenderOptions) -> bytes:
    """One frame (numbered from 1) of a stored instance as JPEG or PNG bytes."""
    if "7FE00010" not in metadata:
        raise NotAcceptable("the instance has no pixel data to render")
    pixels = pixel_array(path, index=frame - 1)
    photometric = _value(metadata, "00280004", "MONOCHROME2")
    if photometric.startswith("MONOCHROME"):
        image = Image.fromarray(_grayscale(pixels, metadata, options.window, photometric == "MONOCHROME1"))
    else:
        if pixels.dtype != np.uint8:
            pixels = (pixels.astype(np.float64) * 255.0 / max(float(pixels.max()), 1.0)).astype(np.uint8)
        image = Image.fromarray(pixels if pixels.ndim == 3 else pixels[..., 0], "RGB")
    if options.viewport:
        image.thumbnail(options.viewport, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if options.media_type == "image/png":
        image.save(buffer, "PNG")
    else:
        image.save(buffer, "JPEG", quality=options.quality)
    return buffer.getvalue()


def _grayscale(pixels: np.ndarray, metadata: dict, window: Window | None, invert: bool) -> np.ndarray:
    values = apply_modality_lut(
        pixels, float(_value(metadata, "00281053", 1.0)), float(_value(metadata, "00281052", 0.0))
    )
    if window is None:
        center, width = _value(metadata, "00281050", None), _value(metadata, "00281051", None)
        window = Window(float(center), float(width)) if center is not None and width and float(width) >= 1 else window_from_range(values)
    out = apply_window(values, window)
    return 255 - out if invert else out


def _value(metadata: dict, tag: str, default):
    values = metadata.get(tag, {}).get("Value")
    return values[0] if values else default
