"""The answer to an Image API request for an opened image, shared by both front doors.

:func:`iiif.views.image` (through Django) and :mod:`iiif.fastpath` (public images,
Django's stack skipped) both call :func:`answer_image`, so the bytes, the media type
and the canonical URI cannot differ between them.  Two per-process caches keep repeat
requests cheap:

* the **tile plans** (``services.tile_plans``): for a request that turned out to be a whole stored tile, where
  that tile lies (level, column, row) and its canonical path, keyed by the source and
  the request's own spelling.  A repeat skips parsing, resolving and planning and
  reads the stored frame again (the page cache holds it);
* the **rendered images** (``services.rendered_cache``): what had to be decoded and
  encoded (thumbnails, regions, padded edge tiles), keyed by source and canonical
  request.

Both are keyed by the source's key, which names the stored files; stored files never
change in place, so neither can go stale.  Access is checked before either is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings

from archive.errors import NotAcceptable
from iiif import services
from iiif.imageapi import parse_image_request, render_image, resolve
from iiif.imageapi.parse import FORMAT_MEDIA_TYPES, ImageFormat
from iiif.imageapi.plan import Passthrough, plan_request
from iiif.imageapi.tiled import read_jpeg_size

# Published in info.json and enforced by resolve (always the same three numbers).
MAX_AREA = int(getattr(settings, "VITRINE_IIIF_MAX_AREA", 4096 * 4096))
MAX_WIDTH = getattr(settings, "VITRINE_IIIF_MAX_WIDTH", None)
MAX_HEIGHT = getattr(settings, "VITRINE_IIIF_MAX_HEIGHT", None)
# Public images may be cached by browsers and proxies; private ones only by the
# browser that asked.
PUBLIC_CACHE = "public, max-age=86400"
PRIVATE_CACHE = "private, max-age=300"
_JPEG = FORMAT_MEDIA_TYPES[ImageFormat.JPG]
# A plan is a few small ints and a short string: count each as this many bytes.
_PLAN_BYTES = 256


def image_id_url(request, identifier: str) -> str:
    """The image's base URI, with the identifier as the client wrote it: the validator
    compares info.json's ``id`` with the URL it fetched."""
    return f"{services.public_root(request)}/iiif/3/{quote(identifier, safe=':~')}"


@dataclass(frozen=True)
class ImageAnswer:
    """The encoded image, its media type and its canonical path (Image API 3.0 §4.7)."""

    body: bytes
    media_type: str
    canonical_path: str


def answer_image(
    opened: services.OpenedImage, region: str, size: str, rotation: str, quality_format: str
) -> ImageAnswer:
    """Answer ``{region}/{size}/{rotation}/{quality_format}`` of an image the caller may see.

    Raises
    ------
    InvalidIIIFRequest
        A malformed or unsatisfiable request (400).
    NotAcceptable
        A stored frame that cannot be decoded (406).
    """
    source = opened.source
    request_key = (opened.key, region, size, rotation, quality_format)
    tile = services.tile_plans.get(request_key)
    if tile is not None:
        level, col, row, tile_size, canonical_path = tile
        data = source.read_tile(level, col, row)
        if read_jpeg_size(data) == tile_size:  # as render_image checks before passing through
            return ImageAnswer(data, _JPEG, canonical_path)
    parsed = parse_image_request(region, size, rotation, quality_format)
    resolved = resolve(parsed, source.width, source.height, MAX_WIDTH, MAX_HEIGHT, MAX_AREA)
    rendered_key = (opened.key, resolved.canonical_path)
    cached = services.rendered_cache.get(rendered_key)
    if cached is not None:
        return ImageAnswer(cached[0], cached[1], resolved.canonical_path)
    plan = plan_request(source, resolved)
    try:
        body, media_type = render_image(source, resolved)
    except OSError as exc:  # Pillow on a stored frame it cannot decode
        raise NotAcceptable(f"a stored frame of this image cannot be decoded: {exc}") from None
    if _is_whole_stored_tile(plan, source, resolved):
        # The bytes came from storage: keep where they lie, not the bytes.
        tile_size = (resolved.output_width, resolved.output_height)
        services.tile_plans.put(request_key, (plan.level, plan.col, plan.row, tile_size, resolved.canonical_path), _PLAN_BYTES)
    else:
        services.rendered_cache.put(rendered_key, (body, media_type), len(body))
    return ImageAnswer(body, media_type, resolved.canonical_path)


def _is_whole_stored_tile(plan, source, resolved) -> bool:
    """A passthrough of a full-size tile.  Edge tiles are stored padded, so they are
    cropped and re-encoded: those go to the rendered cache instead."""
    if not isinstance(plan, Passthrough):
        return False
    level = source.levels[plan.level]
    return (resolved.output_width, resolved.output_height) == (level.tile_width, level.tile_height)
