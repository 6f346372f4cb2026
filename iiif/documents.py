"""From index rows to the Presentation builders' dataclasses (manifests and collections).

The pure builders in :mod:`iiif.presentation` know nothing of the ORM; this module
reads ``Study``/``Series``/``Instance`` rows and hands them plain ``ManifestInfo``,
``SeriesRef``, ``CollectionInfo`` and ``MemberRef`` values.

Collections: the top collection lists the curators' collections
(``ingest.Collection``, each listing its objects' studies) and then the groups the
index gives by itself: ``all`` (every study the caller may see) and one per modality
(``sm`` slides, ``ct``, ``xc`` photographs...). A curated collection whose slug is also
a derived group's name takes that name over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.db.models import Prefetch

from archive.models import Instance, Series, Study, can_read_private
from iiif.errors import ImageNotFound
from iiif.presentation import (
    CollectionInfo,
    ImageRef,
    Link,
    ManifestInfo,
    MemberRef,
    MetadataEntry,
    SeriesKind,
    SeriesRef,
)
from iiif.services import WSI_SOP_CLASS, _value, _values, pyramid_level
from ingest.models import Collection, Object

MODALITY_LABELS = {
    "SM": "Whole-slide images",
    "CT": "CT",
    "MR": "MR",
    "XC": "Photographs",
    "GM": "Photographs (general microscopy)",
    "OT": "Other images",
    "DX": "Radiographs",
    "CR": "Radiographs",
    "US": "Ultrasound",
}


@dataclass(frozen=True)
class Urls:
    """Where the documents live, from the public root (``scheme://host``)."""

    root: str

    def image(self, identifier: str) -> str:
        return f"{self.root}/iiif/3/{identifier}"

    def study_manifest(self, study_uid: str) -> str:
        return f"{self.root}/iiif/presentation/studies/{study_uid}/manifest"

    def series_manifest(self, series_uid: str) -> str:
        return f"{self.root}/iiif/presentation/series/{series_uid}/manifest"

    def collection(self, slug: str) -> str:
        return f"{self.root}/iiif/presentation/collections/{slug}"


# --- manifests --------------------------------------------------------------------------


def build_series_ref(series: Series, urls: Urls) -> SeriesRef | None:
    """The images of one series; ``None`` when it has nothing to show (SR, PDF, STL)."""
    rows = list(
        Instance.objects.filter(series=series)
        .order_by("instance_number", "pk")
        .values("sop_uid", "sop_class_uid", "rows", "columns", "number_of_frames", "instance_number", "metadata")
    )
    label = series.series_description or f"Series {series.series_number or ''}".strip()
    wsi = [r for r in rows if r["sop_class_uid"] == WSI_SOP_CLASS]
    if wsi:
        levels = [level for level in (pyramid_level(r["metadata"]) for r in wsi) if level is not None]
        if not levels:
            return None
        top = max(levels, key=lambda level: level.width)
        image = ImageRef(urls.image(series.series_uid), top.width, top.height, label=label)
        return SeriesRef(series.series_uid, SeriesKind.WSI, (image,), label=label)
    images: list[ImageRef] = []
    grayscale = True
    for row in rows:
        if not row["rows"] or not row["columns"] or "7FE00010" not in row["metadata"] and "7FE00008" not in row["metadata"]:
            continue
        metadata = row["metadata"]
        grayscale &= str(_value(metadata, "00280004", "MONOCHROME2")).upper().startswith("MONOCHROME")
        frames = row["number_of_frames"] or 1
        if frames == 1:
            images.append(ImageRef(
                urls.image(row["sop_uid"]), row["columns"], row["rows"],
                position_mm=slice_position_mm(metadata), instance_number=row["instance_number"],
            ))
        else:
            for n in range(1, frames + 1):
                images.append(ImageRef(
                    urls.image(f"{row['sop_uid']}:{n}"), row["columns"], row["rows"],
                    label={"en": f"Frame {n}"}, instance_number=row["instance_number"],
                ))
    if not images:
        return None
    positioned = grayscale and all(i.position_mm is not None for i in images)
    kind = SeriesKind.VOLUME if positioned else SeriesKind.PHOTOGRAPH
    return SeriesRef(series.series_uid, kind, tuple(images), label=label)


def slice_position_mm(metadata: dict) -> float | None:
    """Position along the slice normal: Image Position (Patient) · (row × column cosines)."""
    position = [float(v) for v in _values(metadata, "00200032")]
    orientation = [float(v) for v in _values(metadata, "00200037")]
    if len(position) != 3 or len(orientation) != 6:
        return None
    r, c = orientation[:3], orientation[3:]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    value = sum(p * n for p, n in zip(position, normal))
    return value if math.isfinite(value) else None


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def study_label(study: Study) -> str:
    name = study.patient.patient_name.replace("^", " ").strip() if study.patient_id else ""
    return study.study_description or name or f"Study {study.study_uid}"


def build_manifest_info(study: Study, document_id: str, urls: Urls, auth: Sequence[dict[str, Any]], label: str) -> ManifestInfo:
    patient = study.patient
    metadata = (
        MetadataEntry({"en": "Object or patient"}, patient.patient_name.replace("^", " ").strip()),
        MetadataEntry({"en": "Identifier"}, patient.patient_id),
        MetadataEntry({"en": "Study date"}, _date(study.study_date)),
        MetadataEntry({"en": "Description"}, study.study_description),
        MetadataEntry({"en": "Accession number"}, study.accession_number),
        MetadataEntry({"en": "Modalities"}, study.modalities.replace("\\", ", ")),
        MetadataEntry({"en": "Study Instance UID"}, study.study_uid),
    )
    see_also = (
        Link(f"{urls.root}/dicomweb/studies/{study.study_uid}/metadata", "Dataset",
             label={"en": "DICOM JSON metadata"}, format="application/dicom+json"),
    )
    return ManifestInfo(id=document_id, label=label, metadata=metadata, see_also=see_also, auth_services=tuple(auth))


def study_manifest_parts(study: Study, urls: Urls, auth) -> tuple[ManifestInfo, list[SeriesRef]]:
    refs = [ref for s in study.series.order_by("series_number", "pk") if (ref := build_series_ref(s, urls))]
    if not refs:
        raise ImageNotFound(f"study {study.study_uid} has no image the viewer can show")
    info = build_manifest_info(study, urls.study_manifest(study.study_uid), urls, auth, study_label(study))
    return info, refs


def series_manifest_parts(series: Series, urls: Urls, auth) -> tuple[ManifestInfo, list[SeriesRef]]:
    ref = build_series_ref(series, urls)
    if ref is None:
        raise ImageNotFound(f"series {series.series_uid} has no image the viewer can show")
    label = series.series_description or study_label(series.study)
    info = build_manifest_info(series.study, urls.series_manifest(series.series_uid), urls, auth, label)
    return info, [ref]


# --- collections ------------------------------------------------------------------------


@dataclass(frozen=True)
class CollectionEntry:
    slug: str
    label: str
    summary: str | None = None


#: A collection's members: each study with the label it is listed under.
Members = list[tuple[Study, str]]


class CollectionSource(Protocol):
    def list_collections(self, user) -> list[CollectionEntry]: ...

    def members(self, slug: str, user) -> tuple[CollectionEntry, Members] | None:
        """The collection and its members, or None if there is no such collection for
        this caller."""


class IndexCollections:
    """Collections derived from the index: ``all``, and one per modality in the archive."""

    def _visible(self, user):
        return Study.objects.visible_to(user).select_related("patient")

    def list_collections(self, user) -> list[CollectionEntry]:
        modalities: set[str] = set()
        for text in self._visible(user).values_list("modalities", flat=True).distinct():
            modalities.update(m for m in text.split("\\") if m)
        entries = [CollectionEntry("all", "All studies", "Every study you may see")]
        for code in sorted(modalities):
            entries.append(CollectionEntry(code.lower(), MODALITY_LABELS.get(code, code), f"Studies with {code} series"))
        return entries

    def members(self, slug: str, user) -> tuple[CollectionEntry, Members] | None:
        studies = self._visible(user).order_by("-study_date", "study_uid")
        if slug == "all":
            entry = CollectionEntry("all", "All studies", "Every study you may see")
            return entry, [(study, study_label(study)) for study in studies]
        code = slug.upper()
        if not code.isalnum() or len(code) > 16:
            return None
        chosen = [s for s in studies.filter(modalities__contains=code) if code in s.modalities.split("\\")]
        if not chosen:
            return None
        entry = CollectionEntry(slug, MODALITY_LABELS.get(code, code), f"Studies with {code} series")
        return entry, [(study, study_label(study)) for study in chosen]


class CuratedCollections:
    """The curators' collections (``ingest.Collection``): a collection is listed to
    everyone when it is public, and to those who may read private data otherwise; it
    holds the studies of its objects that the caller may see (an object's own
    visibility applies too), in inventory-number order, labelled with the object."""

    def _collections(self, user):
        collections = Collection.objects.order_by("name")
        return collections if can_read_private(user) else collections.filter(public=True)

    def list_collections(self, user) -> list[CollectionEntry]:
        return [_curated_entry(c) for c in self._collections(user)]

    def members(self, slug: str, user) -> tuple[CollectionEntry, Members] | None:
        collection = self._collections(user).filter(slug=slug).first()
        if collection is None:
            return None
        objects = Object.objects.visible_to(user).filter(collection=collection).order_by("inventory_number", "pk")
        visible = Study.objects.visible_to(user).select_related("patient").order_by("study_date", "study_uid")
        members: Members = []
        for obj in objects.prefetch_related(Prefetch("studies", queryset=visible)):
            studies = list(obj.studies.all())
            name = obj.title or obj.inventory_number
            for study in studies:
                members.append((study, name if len(studies) == 1 else f"{name}: {study_label(study)}"))
        return _curated_entry(collection), members


def _curated_entry(collection) -> CollectionEntry:
    return CollectionEntry(collection.slug, collection.name, collection.description or None)


class Collections:
    """Several sources as one: listed in order; the first that knows a slug answers."""

    def __init__(self, *sources: CollectionSource):
        self.sources = sources

    def list_collections(self, user) -> list[CollectionEntry]:
        entries: list[CollectionEntry] = []
        taken: set[str] = set()
        for source in self.sources:
            for entry in source.list_collections(user):
                if entry.slug not in taken:
                    taken.add(entry.slug)
                    entries.append(entry)
        return entries

    def members(self, slug: str, user) -> tuple[CollectionEntry, Members] | None:
        for source in self.sources:
            if (found := source.members(slug, user)) is not None:
                return found
        return None


COLLECTIONS = Collections(CuratedCollections(), IndexCollections())


def top_collection_parts(user, urls: Urls) -> tuple[CollectionInfo, list[MemberRef]]:
    info = CollectionInfo(id=urls.collection("top"), label={"en": "Vitrine"}, summary={"en": "Collections of this archive"})
    members = [
        MemberRef(id=urls.collection(entry.slug), type="Collection", label={"en": entry.label})
        for entry in COLLECTIONS.list_collections(user)
    ]
    return info, members


def collection_parts(slug: str, user, urls: Urls) -> tuple[CollectionInfo, list[MemberRef]]:
    found = COLLECTIONS.members(slug, user)
    if found is None:
        raise ImageNotFound(f"no collection is called {slug!r}")
    entry, studies = found
    info = CollectionInfo(
        id=urls.collection(slug), label={"en": entry.label},
        summary={"en": entry.summary} if entry.summary else None,
    )
    members = [
        MemberRef(id=urls.study_manifest(study.study_uid), type="Manifest", label=label)
        for study, label in studies
    ]
    return info, members
