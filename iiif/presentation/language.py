"""Language maps, rights URIs and the small linked resources of Presentation 3.

Presentation API 3.0 §4.2 (language maps), §3.3.2 (``rights``), §3.3.1 (``homepage``,
``seeAlso``, ``rendering``).  Pure: plain data in, JSON-ready dicts out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NO_LANGUAGE",
    "PRESENTATION_CONTEXT",
    "PRESENTATION_MEDIA_TYPE",
    "LanguageMap",
    "LanguageValue",
    "Link",
    "MetadataEntry",
    "build_language_map",
    "build_link",
    "build_metadata",
    "is_valid_rights",
]

PRESENTATION_CONTEXT = "http://iiif.io/api/presentation/3/context.json"
PRESENTATION_MEDIA_TYPE = f'application/ld+json;profile="{PRESENTATION_CONTEXT}"'
NO_LANGUAGE = "none"  # §4.2: values of unknown language, such as DICOM names and codes

LanguageMap = dict[str, list[str]]
LanguageValue = str | Sequence[str] | Mapping[str, str | Sequence[str]]
"""A plain string (no language), several strings, or ``{language: text or texts}``."""

# §3.3.2: Creative Commons licences and public-domain marks, RightsStatements.org.
_RIGHTS_RE = re.compile(
    r"https?://(?:creativecommons\.org/(?:licenses|publicdomain)/[a-z0-9.\-/]+"
    r"|rightsstatements\.org/vocab/[A-Za-z\-]+/[0-9.]+/?)"
)


def build_language_map(value: LanguageValue, *, language: str = NO_LANGUAGE) -> LanguageMap:
    """Turn a string, strings or ``{lang: text}`` into a language map, dropping blanks.

    Raises
    ------
    ValueError
        Nothing non-blank to show.
    """
    if isinstance(value, str):
        entries: dict[str, Any] = {language: [value]}
    elif isinstance(value, Mapping):
        entries = {
            lang: [texts] if isinstance(texts, str) else list(texts)
            for lang, texts in value.items()
        }
    else:
        entries = {language: list(value)}
    result = {
        lang: [text.strip() for text in texts if text and text.strip()]
        for lang, texts in entries.items()
    }
    result = {lang: texts for lang, texts in result.items() if texts}
    if not result:
        raise ValueError(f"a language map needs at least one non-blank text, got {value!r}")
    return result


def is_valid_rights(uri: str | None) -> bool:
    """Whether ``uri`` may be a Presentation 3 ``rights`` value (CC or RightsStatements.org)."""
    return uri is not None and _RIGHTS_RE.fullmatch(uri) is not None


@dataclass(frozen=True)
class MetadataEntry:
    """One label/value pair shown to the user (DICOM attribute or curator field)."""

    label: LanguageValue
    value: LanguageValue


def build_metadata(entries: Sequence[MetadataEntry]) -> list[dict[str, LanguageMap]]:
    """Metadata pairs as language maps, skipping entries whose value is blank."""
    built = []
    for entry in entries:
        try:
            value = build_language_map(entry.value)
        except ValueError:
            continue
        built.append({"label": build_language_map(entry.label, language="en"), "value": value})
    return built


@dataclass(frozen=True)
class Link:
    """A linked external resource: homepage, seeAlso, rendering or logo.

    ``type`` is a Presentation 3 class (``Text``, ``Dataset``, ``Model``, ``Image``).
    """

    id: str
    type: str
    label: LanguageValue | None = None
    format: str | None = None
    profile: str | None = None
    language: tuple[str, ...] = ()
    thumbnail_url: str | None = None
    thumbnail_format: str = "image/jpeg"


def build_link(link: Link) -> dict[str, Any]:
    """A linked resource as JSON."""
    built: dict[str, Any] = {"id": link.id, "type": link.type}
    if link.label is not None:
        built["label"] = build_language_map(link.label, language="en")
    if link.format is not None:
        built["format"] = link.format
    if link.profile is not None:
        built["profile"] = link.profile
    if link.language:
        built["language"] = list(link.language)
    if link.thumbnail_url is not None:
        built["thumbnail"] = [
            {"id": link.thumbnail_url, "type": "Image", "format": link.thumbnail_format}
        ]
    return built
