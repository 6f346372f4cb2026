"""Presentation 3 manifests for a DICOM study or series, from plain dataclasses.

Presentation API 3.0 §5.3 (Manifest), §5.4 (Canvas), §5.7 (Range).  A whole-slide
series is one canvas whose image has an ``ImageService3`` (the viewer tiles it); a
CT or MR series is one canvas per slice in position order; photographs get one
canvas each.  Every image body carries its image service, where IIIF Auth 2.0 probe
services can be attached (``auth_services``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from iiif.presentation.language import (
    PRESENTATION_CONTEXT,
    LanguageValue,
    Link,
    MetadataEntry,
    build_language_map,
    build_link,
    build_metadata,
    is_valid_rights,
)

__all__ = [
    "ImageRef",
    "ManifestInfo",
    "Provider",
    "SeriesKind",
    "SeriesRef",
    "build_canvas",
    "build_manifest",
    "build_thumbnail_url",
    "order_images",
]

THUMBNAIL_BOX_PX = 200


class SeriesKind(Enum):
    WSI = "wsi"  # one pyramid, one canvas
    VOLUME = "volume"  # CT/MR slices, one canvas each, by position
    PHOTOGRAPH = "photograph"  # one canvas per image, in the given order


@dataclass(frozen=True)
class ImageRef:
    """One image served by the Image API.

    ``service_id`` is the image service's base URI (info.json ``id``);
    ``position_mm`` orders slices along the normal of a volume.
    """

    service_id: str
    width: int
    height: int
    label: LanguageValue | None = None
    position_mm: float | None = None
    instance_number: int | None = None


@dataclass(frozen=True)
class SeriesRef:
    uid: str
    kind: SeriesKind
    images: tuple[ImageRef, ...]
    label: LanguageValue | None = None


@dataclass(frozen=True)
class Provider:
    """The institution (``provider``, §3.3.1): its URI, name, homepage and logo."""

    id: str
    label: LanguageValue
    homepage: str | None = None
    logo_url: str | None = None
    logo_format: str = "image/png"


@dataclass(frozen=True)
class ManifestInfo:
    """Descriptive and linking properties of a manifest.

    ``attribution`` becomes the ``requiredStatement``; ``rights`` is kept only when it
    is a Creative Commons or RightsStatements.org URI (§3.3.2), as the specification
    requires.  ``renderings`` are downloads (original DICOM, STL, OBJ, PDF),
    ``see_also`` machine-readable descriptions (DICOM JSON), ``homepage`` the portal
    page.
    """

    id: str
    label: LanguageValue
    summary: LanguageValue | None = None
    metadata: tuple[MetadataEntry, ...] = ()
    attribution: LanguageValue | None = None
    attribution_label: LanguageValue = field(default_factory=lambda: {"en": "Attribution"})
    rights: str | None = None
    provider: Provider | None = None
    homepage: Link | None = None
    see_also: tuple[Link, ...] = ()
    renderings: tuple[Link, ...] = ()
    auth_services: tuple[Mapping[str, Any], ...] = ()
    thumbnail_box_px: int = THUMBNAIL_BOX_PX


def build_thumbnail_url(image: ImageRef, box_px: int = THUMBNAIL_BOX_PX) -> str:
    """An Image API URL for a thumbnail that fits ``box_px`` without upscaling."""
    scale = min(1.0, box_px / image.width, box_px / image.height)
    if scale >= 1.0:
        size = "max"
    else:
        size = f"{max(1, round(image.width * scale))},{max(1, round(image.height * scale))}"
    return f"{image.service_id}/full/{size}/0/default.jpg"


def order_images(series: SeriesRef) -> list[ImageRef]:
    """Images in canvas order: volumes by position (then instance number)."""
    if series.kind is not SeriesKind.VOLUME:
        return list(series.images)

    def key(image: ImageRef) -> tuple[float, int]:
        position = image.position_mm if image.position_mm is not None else float("inf")
        return position, image.instance_number if image.instance_number is not None else 0

    return sorted(series.images, key=key)


def _image_service(image: ImageRef, auth_services: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    service: dict[str, Any] = {"id": image.service_id, "type": "ImageService3", "profile": "level2"}
    if auth_services:
        service["service"] = [dict(s) for s in auth_services]
    return service


def build_canvas(
    canvas_id: str,
    image: ImageRef,
    label: LanguageValue,
    *,
    auth_services: Sequence[Mapping[str, Any]] = (),
    thumbnail_box_px: int = THUMBNAIL_BOX_PX,
) -> dict[str, Any]:
    """One canvas painted by one image with its image service and a thumbnail."""
    if image.width <= 0 or image.height <= 0:
        raise ValueError(f"image size must be positive, got {image.width}x{image.height}")
    service = _image_service(image, auth_services)
    return {
        "id": canvas_id,
        "type": "Canvas",
        "label": build_language_map(label),
        "width": image.width,
        "height": image.height,
        "thumbnail": [
            {
                "id": build_thumbnail_url(image, thumbnail_box_px),
                "type": "Image",
                "format": "image/jpeg",
                "service": [service],
            }
        ],
        "items": [
            {
                "id": f"{canvas_id}/page",
                "type": "AnnotationPage",
                "items": [
                    {
                        "id": f"{canvas_id}/page/image",
                        "type": "Annotation",
                        "motivation": "painting",
                        "target": canvas_id,
                        "body": {
                            "id": f"{image.service_id}/full/max/0/default.jpg",
                            "type": "Image",
                            "format": "image/jpeg",
                            "width": image.width,
                            "height": image.height,
                            "service": [service],
                        },
                    }
                ],
            }
        ],
    }


def _canvas_label(series: SeriesRef, image: ImageRef, index: int) -> LanguageValue:
    if image.label is not None:
        return image.label
    if series.kind is SeriesKind.WSI:
        return series.label if series.label is not None else {"en": "Slide"}
    if series.kind is SeriesKind.VOLUME:
        return {"en": f"Slice {index + 1}"}
    return {"en": f"Image {index + 1}"}


def build_manifest(info: ManifestInfo, series: Sequence[SeriesRef]) -> dict[str, Any]:
    """Build a Presentation 3 manifest for a study (several series) or one series.

    Parameters
    ----------
    info : ManifestInfo
        Descriptive properties and links.
    series : sequence of SeriesRef
        In display order.  A ``WSI`` series must have exactly one image (its
        pyramid's image service).

    Returns
    -------
    dict
        JSON-ready; serve as ``PRESENTATION_MEDIA_TYPE``.  With more than one series,
        ``structures`` holds one Range per series for the viewer's index.

    Raises
    ------
    ValueError
        A WSI series with other than one image, or an empty series.
    """
    canvases: list[dict[str, Any]] = []
    ranges: list[dict[str, Any]] = []
    for one in series:
        if not one.images:
            raise ValueError(f"series {one.uid} has no images")
        if one.kind is SeriesKind.WSI and len(one.images) != 1:
            raise ValueError(
                f"WSI series {one.uid} must have one image service, got {len(one.images)}"
            )
        members = []
        for index, image in enumerate(order_images(one)):
            canvas_id = f"{info.id}/canvas/{image.service_id.rstrip('/').rsplit('/', 1)[-1]}"
            canvases.append(
                build_canvas(
                    canvas_id,
                    image,
                    _canvas_label(one, image, index),
                    auth_services=info.auth_services,
                    thumbnail_box_px=info.thumbnail_box_px,
                )
            )
            members.append({"id": canvas_id, "type": "Canvas"})
        ranges.append(
            {
                "id": f"{info.id}/range/{one.uid}",
                "type": "Range",
                "label": build_language_map(one.label if one.label is not None else one.uid),
                "items": members,
            }
        )
    manifest: dict[str, Any] = {
        "@context": PRESENTATION_CONTEXT,
        "id": info.id,
        "type": "Manifest",
        "label": build_language_map(info.label),
    }
    if info.summary is not None:
        manifest["summary"] = build_language_map(info.summary)
    metadata = build_metadata(info.metadata)
    if metadata:
        manifest["metadata"] = metadata
    if info.attribution is not None:
        manifest["requiredStatement"] = {
            "label": build_language_map(info.attribution_label, language="en"),
            "value": build_language_map(info.attribution),
        }
    if is_valid_rights(info.rights):
        manifest["rights"] = info.rights
    if info.provider is not None:
        manifest["provider"] = [_build_provider(info.provider)]
    if info.homepage is not None:
        manifest["homepage"] = [build_link(info.homepage)]
    if info.see_also:
        manifest["seeAlso"] = [build_link(link) for link in info.see_also]
    if info.renderings:
        manifest["rendering"] = [build_link(link) for link in info.renderings]
    if canvases:
        manifest["thumbnail"] = canvases[0]["thumbnail"]
    manifest["items"] = canvases
    if len(ranges) > 1:
        manifest["structures"] = ranges
    return manifest


def _build_provider(provider: Provider) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "id": provider.id,
        "type": "Agent",
        "label": build_language_map(provider.label, language="en"),
    }
    if provider.homepage is not None:
        agent["homepage"] = [
            {
                "id": provider.homepage,
                "type": "Text",
                "label": build_language_map(provider.label, language="en"),
                "format": "text/html",
            }
        ]
    if provider.logo_url is not None:
        agent["logo"] = [{"id": provider.logo_url, "type": "Image", "format": provider.logo_format}]
    return agent
