"""IIIF Presentation 3, pure: manifests and collections from plain dataclasses.  No Django."""

from iiif.presentation.collection import CollectionInfo, MemberRef, build_collection, count_pages
from iiif.presentation.language import (
    PRESENTATION_CONTEXT,
    PRESENTATION_MEDIA_TYPE,
    Link,
    MetadataEntry,
    build_language_map,
    is_valid_rights,
)
from iiif.presentation.manifest import (
    ImageRef,
    ManifestInfo,
    Provider,
    SeriesKind,
    SeriesRef,
    build_manifest,
)

__all__ = [
    "PRESENTATION_CONTEXT",
    "PRESENTATION_MEDIA_TYPE",
    "CollectionInfo",
    "ImageRef",
    "Link",
    "ManifestInfo",
    "MemberRef",
    "MetadataEntry",
    "Provider",
    "SeriesKind",
    "SeriesRef",
    "build_collection",
    "build_language_map",
    "build_manifest",
    "count_pages",
    "is_valid_rights",
]
