"""The image information document (info.json) and the response headers of Image API 3.0.

Image API 3.0 §5 (info.json), §6 (compliance), §7.1 (media types), §4.7 and §6.2
(canonical and profile ``Link`` headers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from iiif.imageapi.plan import supported_qualities
from iiif.imageapi.resolve import Limits, ResolvedRequest, is_within_limits
from iiif.imageapi.sources import ImageSource

__all__ = [
    "EXTRA_FEATURES",
    "EXTRA_FORMATS",
    "IMAGE_CONTEXT",
    "INFO_MEDIA_TYPE",
    "PROFILE",
    "PROFILE_URI",
    "PROTOCOL",
    "build_image_link_header",
    "build_info",
    "build_link_header",
    "build_scale_factors",
]

IMAGE_CONTEXT = "http://iiif.io/api/image/3/context.json"
PROTOCOL = "http://iiif.io/api/image"
PROFILE = "level2"
PROFILE_URI = "http://iiif.io/api/image/3/level2.json"
INFO_MEDIA_TYPE = f'application/ld+json;profile="{IMAGE_CONTEXT}"'
"""Content type of info.json (Image API 3.0 §7.1); plain ``application/json`` is the
fallback for clients that do not ask for JSON-LD."""

EXTRA_FORMATS = ("webp",)  # jpg and png are level 2 already
EXTRA_FEATURES = (
    # Level 2 features, listed as well so that clients need not know the level table.
    "baseUriRedirect",
    "cors",
    "jsonldMediaType",
    "regionByPct",
    "regionByPx",
    "regionSquare",
    "rotationBy90s",
    "sizeByConfinedWh",
    "sizeByH",
    "sizeByPct",
    "sizeByW",
    "sizeByWh",
    # Beyond level 2.
    "mirroring",
    "sizeUpscaling",
)
LINK_HEADER_FEATURES = ("canonicalLinkHeader", "profileLinkHeader")


def build_scale_factors(width: int, height: int, tile_width: int, tile_height: int) -> list[int]:
    """Powers of two from 1 until the whole image fits in one tile."""
    factors = [1]
    while (
        math.ceil(width / factors[-1]) > tile_width or math.ceil(height / factors[-1]) > tile_height
    ):
        factors.append(factors[-1] * 2)
    return factors


def build_info(
    id_url: str,
    source: ImageSource,
    *,
    max_width: int | None = None,
    max_height: int | None = None,
    max_area: int | None = None,
    auth_services: Sequence[Mapping[str, Any]] | None = None,
    rights: str | None = None,
    link_headers: bool = True,
) -> dict[str, Any]:
    """Build the info.json document of an image service.

    Parameters
    ----------
    id_url : str
        The service's base URI, ``{scheme}://{server}{/prefix}/{identifier}``, with no
        trailing slash and no ``/info.json`` (§5.1 ``id``).
    source : ImageSource
    max_width, max_height, max_area : int or None
        Limits the image request handler enforces (pass the same to ``resolve``).
    auth_services : sequence of dict or None
        IIIF Auth 2.0 services (``AuthProbeService2`` with its nested access service),
        built by the caller; they are listed under ``service`` as given.
    rights : str or None
        A rights URI (Creative Commons, RightsStatements.org).
    link_headers : bool
        Whether the image responses carry canonical and profile ``Link`` headers
        (:func:`build_image_link_header`); advertised as features.

    Returns
    -------
    dict
        Ready for ``json.dumps``; serve it as :data:`INFO_MEDIA_TYPE`.
    """
    if not id_url.startswith(("http://", "https://")) or id_url.endswith(("/", "/info.json")):
        raise ValueError(
            f"id_url must be an http(s) base URI with no trailing part, got {id_url!r}"
        )
    limits = Limits(max_width, max_height, max_area)
    levels = source.levels
    level0 = levels[0]
    info: dict[str, Any] = {
        "@context": IMAGE_CONTEXT,
        "id": id_url,
        "type": "ImageService3",
        "protocol": PROTOCOL,
        "profile": PROFILE,
        "width": int(source.width),
        "height": int(source.height),
    }
    if limits.max_width is not None:
        info["maxWidth"] = limits.max_width
    if limits.max_height is not None:
        info["maxHeight"] = limits.max_height
    if limits.max_area is not None:
        info["maxArea"] = limits.max_area
    tiles: dict[str, Any] = {"width": int(level0.tile_width)}
    if level0.tile_height != level0.tile_width:
        tiles["height"] = int(level0.tile_height)
    tiles["scaleFactors"] = build_scale_factors(
        source.width, source.height, level0.tile_width, level0.tile_height
    )
    info["tiles"] = [tiles]
    sizes = [
        {"width": int(level.width), "height": int(level.height)}
        for level in sorted(levels, key=lambda level: level.width)
        if is_within_limits(level.width, level.height, limits)
    ]
    if sizes:
        info["sizes"] = sizes
    qualities = supported_qualities(source.is_grayscale)
    info["extraQualities"] = [q.value for q in qualities if q.value != "default"]
    info["extraFormats"] = list(EXTRA_FORMATS)
    info["extraFeatures"] = list(EXTRA_FEATURES) + (
        list(LINK_HEADER_FEATURES) if link_headers else []
    )
    if rights is not None:
        if not rights.startswith(("http://", "https://")):
            raise ValueError(f"rights must be a URI, got {rights!r}")
        info["rights"] = rights
    if auth_services:
        services = [dict(service) for service in auth_services]
        for service in services:
            if not ("id" in service or "@id" in service) or not (
                "type" in service or "@type" in service
            ):
                raise ValueError(f"each auth service needs an id and a type, got {service!r}")
        info["service"] = services
    return info


def build_image_link_header(id_url: str, resolved: ResolvedRequest) -> str:
    """The ``Link`` header of an image response: canonical URI and compliance profile.

    Parameters
    ----------
    id_url : str
        The service's base URI (as in info.json ``id``).
    resolved : ResolvedRequest

    Returns
    -------
    str
        ``<{id}/{canonical}>;rel="canonical", <.../level2.json>;rel="profile"``
    """
    return build_link_header(id_url, resolved.canonical_path)


def build_link_header(id_url: str, canonical_path: str) -> str:
    """:func:`build_image_link_header` from the canonical path alone (a cached answer's)."""
    return f'<{id_url}/{canonical_path}>;rel="canonical", <{PROFILE_URI}>;rel="profile"'
