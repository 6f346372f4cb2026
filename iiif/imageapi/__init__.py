"""IIIF Image API 3.0, pure: parse, resolve, plan, render, info.json.  No Django.

The Django views call, in order::

    ident = parse_identifier(identifier)                   # 404 / 400
    request = parse_image_request(region, size, rotation, quality_format)   # 400
    resolved = resolve(request, source.width, source.height, max_width, max_height, max_area)
    body, media_type = render_image(source, resolved)
    link = build_image_link_header(id_url, resolved)
"""

from iiif.imageapi.identifiers import ImageIdentifier, format_identifier, parse_identifier
from iiif.imageapi.info import INFO_MEDIA_TYPE, build_image_link_header, build_info
from iiif.imageapi.parse import ImageRequest, parse_image_request
from iiif.imageapi.render import render_image
from iiif.imageapi.resolve import ResolvedRequest, resolve
from iiif.imageapi.sources import ArraySource, GrayscaleSource, ImageSource, Level
from iiif.imageapi.tiled import TiledPyramidSource

__all__ = [
    "INFO_MEDIA_TYPE",
    "ArraySource",
    "GrayscaleSource",
    "ImageIdentifier",
    "ImageRequest",
    "ImageSource",
    "Level",
    "ResolvedRequest",
    "TiledPyramidSource",
    "build_image_link_header",
    "build_info",
    "format_identifier",
    "parse_identifier",
    "parse_image_request",
    "render_image",
    "resolve",
]
