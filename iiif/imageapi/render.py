"""Render a resolved Image API request from a source into encoded bytes.

Order of operations follows Image API 3.0 §4: region, size, rotation (mirror first),
quality, format.
"""

from __future__ import annotations

import io

from PIL import Image

from iiif.errors import SizeLimitExceeded
from iiif.imageapi.parse import FORMAT_MEDIA_TYPES, ImageFormat, Quality
from iiif.imageapi.plan import Composite, Passthrough, plan_composite, plan_request
from iiif.imageapi.resolve import ResolvedRequest
from iiif.imageapi.sources import ImageSource, as_pillow_array
from iiif.imageapi.tiled import read_jpeg_size

__all__ = [
    "BITONAL_THRESHOLD",
    "JPEG_QUALITY",
    "RENDER_MAX_AREA",
    "render_composite",
    "render_image",
]

JPEG_QUALITY = 90
PNG_COMPRESS_LEVEL = 3  # level 6 (Pillow's default) costs ~3x the time for ~5% smaller tiles
WEBP_QUALITY = 85
BITONAL_THRESHOLD = 128  # luma at or above is white
# A last guard for views that forget max_area: beyond this the request is refused
# rather than allocating gigabytes.  Publish a smaller maxArea in info.json.
RENDER_MAX_AREA = 100_000_000

_ROTATIONS = {
    90: Image.Transpose.ROTATE_270,  # Pillow rotates anticlockwise; IIIF clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}
_BITONAL_LUT = [0] * BITONAL_THRESHOLD + [255] * (256 - BITONAL_THRESHOLD)


def render_image(source: ImageSource, resolved: ResolvedRequest) -> tuple[bytes, str]:
    """Render a resolved request.

    Parameters
    ----------
    source : ImageSource
    resolved : ResolvedRequest
        From :func:`iiif.imageapi.resolve.resolve` with ``source.width`` and
        ``source.height``.

    Returns
    -------
    (bytes, media_type) : tuple of bytes and str
        The encoded image and its media type, e.g. ``"image/jpeg"``.  A request that
        is exactly one stored JPEG tile returns the stored bytes unchanged.

    Raises
    ------
    UnsupportedFeature
        ``color`` asked of a grayscale source (400).
    SizeLimitExceeded
        An output above :data:`RENDER_MAX_AREA` pixels (400).
    """
    if resolved.output_width * resolved.output_height > RENDER_MAX_AREA:
        raise SizeLimitExceeded(
            f"size {resolved.output_width},{resolved.output_height} is above the"
            f" {RENDER_MAX_AREA} pixel limit of this server"
        )
    plan = plan_request(source, resolved)
    if isinstance(plan, Passthrough):
        data = source.read_tile(plan.level, plan.col, plan.row)
        # DICOM pads edge frames to the full tile size: only pass through true sizes.
        if read_jpeg_size(data) == (resolved.output_width, resolved.output_height):
            return data, FORMAT_MEDIA_TYPES[ImageFormat.JPG]
        plan = plan_composite(source, resolved)
    return render_composite(source, resolved, plan)


def render_composite(
    source: ImageSource, resolved: ResolvedRequest, plan: Composite
) -> tuple[bytes, str]:
    """Decode, crop, resize, rotate, apply quality and encode (no passthrough)."""
    image = _read(source, plan)
    image = _resample(image, plan)
    if resolved.rotation.mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if resolved.rotation.degrees:
        image = image.transpose(_ROTATIONS[resolved.rotation.degrees])
    image = _apply_quality(image, resolved.quality)
    return _encode(image, resolved.format), FORMAT_MEDIA_TYPES[resolved.format]


def _read(source: ImageSource, plan: Composite) -> Image.Image:
    """The plan's read box as a Pillow image; tiled sources composite straight into one."""
    x, y, w, h = plan.read_box
    read_image = getattr(source, "read_region_image", None)
    if read_image is not None:
        image: Image.Image = read_image(plan.level, x, y, w, h, reduce=plan.reduce)
        return image
    pixels = source.read_region(plan.level, x, y, w, h, reduce=plan.reduce)
    return Image.fromarray(as_pillow_array(pixels))


def _resample(image: Image.Image, plan: Composite) -> Image.Image:
    """Crop to ``crop_box`` and scale to the output size (a plain crop when 1:1)."""
    x0, y0, x1, y1 = plan.crop_box
    size = (plan.output_width, plan.output_height)
    whole = (x0, y0, x1, y1) == (0, 0, image.width, image.height)
    if whole and image.size == size:
        return image
    if all(float(v).is_integer() for v in plan.crop_box) and (x1 - x0, y1 - y0) == size:
        return image.crop((int(x0), int(y0), int(x1), int(y1)))
    # Pillow scales by convolution, antialiased when shrinking; bicubic is ~25% cheaper
    # than Lanczos here with no visible difference at tile sizes.
    return image.resize(size, Image.Resampling.BICUBIC, box=plan.crop_box)


def _apply_quality(image: Image.Image, quality: Quality) -> Image.Image:
    if quality is Quality.GRAY and image.mode != "L":
        return image.convert("L")
    if quality is Quality.BITONAL:
        gray = image if image.mode == "L" else image.convert("L")
        return gray.point(_BITONAL_LUT)
    return image


def _encode(image: Image.Image, image_format: ImageFormat) -> bytes:
    buffer = io.BytesIO()
    if image_format is ImageFormat.JPG:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    elif image_format is ImageFormat.PNG:
        image.save(buffer, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        image.save(buffer, "WEBP", quality=WEBP_QUALITY)
    return buffer.getvalue()
