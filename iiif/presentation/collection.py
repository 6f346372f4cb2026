"""Presentation 3 collections, paged by nesting.

Presentation API 3.0 has no page object for collections (§5.2; ``CollectionPage``
belongs to Change Discovery).  A collection with more members than ``page_size``
therefore lists sub-collections, one per page, each pointing back with ``partOf``.
Mirador 4 shows nested collections in its collection dialog and fetches each page
when the user opens it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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

__all__ = ["PAGE_SIZE", "CollectionInfo", "MemberRef", "build_collection", "count_pages"]

PAGE_SIZE = 200


@dataclass(frozen=True)
class MemberRef:
    """A manifest or collection listed in a collection."""

    id: str
    type: str  # "Manifest" or "Collection"
    label: LanguageValue
    thumbnail_url: str | None = None
    thumbnail_service_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ("Manifest", "Collection"):
            raise ValueError(f"type must be Manifest or Collection, got {self.type!r}")


@dataclass(frozen=True)
class CollectionInfo:
    id: str
    label: LanguageValue
    summary: LanguageValue | None = None
    metadata: tuple[MetadataEntry, ...] = ()
    rights: str | None = None
    homepage: Link | None = None
    thumbnail_url: str | None = None


def count_pages(members: int, page_size: int = PAGE_SIZE) -> int:
    """How many pages ``members`` items fill (at least one)."""
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, got {page_size}")
    return max(1, math.ceil(members / page_size))


def _member(member: MemberRef) -> dict[str, Any]:
    built: dict[str, Any] = {
        "id": member.id,
        "type": member.type,
        "label": build_language_map(member.label),
    }
    if member.thumbnail_url is not None:
        thumbnail: dict[str, Any] = {
            "id": member.thumbnail_url,
            "type": "Image",
            "format": "image/jpeg",
        }
        if member.thumbnail_service_id is not None:
            thumbnail["service"] = [
                {"id": member.thumbnail_service_id, "type": "ImageService3", "profile": "level2"}
            ]
        built["thumbnail"] = [thumbnail]
    return built


def build_collection(
    info: CollectionInfo,
    members: Sequence[MemberRef],
    *,
    page_size: int = PAGE_SIZE,
    page: int | None = None,
    page_id: Callable[[int], str] | None = None,
) -> dict[str, Any]:
    """Build a collection, or one page of it.

    Parameters
    ----------
    info : CollectionInfo
    members : sequence of MemberRef
        All members, in display order (the top collection lists collections, a
        collection lists its objects or studies).
    page_size : int
        Largest number of members listed in one document.
    page : int or None
        ``None`` for the collection itself; ``1..count_pages`` for one page.
    page_id : callable ``page -> URI`` or None
        Where page ``n`` is served; defaults to ``{info.id}/page/{n}``.

    Returns
    -------
    dict
        The collection listing its members when they fit in one page; else the
        collection listing its pages as sub-collections; or the page asked for,
        listing its members with ``partOf`` the collection.

    Raises
    ------
    ValueError
        ``page`` outside ``1..count_pages`` (the view answers 404).
    """
    pages = count_pages(len(members), page_size)
    make_page_id = page_id or (lambda n: f"{info.id}/page/{n}")
    label = build_language_map(info.label)
    if page is not None:
        if not 1 <= page <= pages:
            raise ValueError(f"page must be between 1 and {pages}, got {page}")
        first = (page - 1) * page_size
        chunk = members[first : first + page_size]
        document = _header(make_page_id(page), _page_label(label, first, len(chunk)))
        document["partOf"] = [{"id": info.id, "type": "Collection", "label": label}]
        document["items"] = [_member(m) for m in chunk]
        return document
    document = _header(info.id, label)
    if info.summary is not None:
        document["summary"] = build_language_map(info.summary)
    metadata = build_metadata(info.metadata)
    if metadata:
        document["metadata"] = metadata
    if is_valid_rights(info.rights):
        document["rights"] = info.rights
    if info.homepage is not None:
        document["homepage"] = [build_link(info.homepage)]
    if info.thumbnail_url is not None:
        document["thumbnail"] = [
            {"id": info.thumbnail_url, "type": "Image", "format": "image/jpeg"}
        ]
    if pages == 1:
        document["items"] = [_member(m) for m in members]
    else:
        document["items"] = [
            {
                "id": make_page_id(n),
                "type": "Collection",
                "label": _page_label(
                    label, (n - 1) * page_size, len(members[(n - 1) * page_size : n * page_size])
                ),
            }
            for n in range(1, pages + 1)
        ]
    return document


def _header(document_id: str, label: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "@context": PRESENTATION_CONTEXT,
        "id": document_id,
        "type": "Collection",
        "label": label,
    }


def _page_label(label: dict[str, list[str]], first: int, count: int) -> dict[str, list[str]]:
    span = f"{first + 1}–{first + count}"
    return {lang: [f"{texts[0]} ({span})"] for lang, texts in label.items()}
