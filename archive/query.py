"""Attribute matching shared by QIDO-RS and C-FIND (PS3.4 C.2.2.2, PS3.18 8.3.4).

A query is a level and a mapping of DICOM keywords to match strings. ``build_query``
turns it into a queryset of index rows; ``row_attributes`` turns each row back into
keyword → value, which the two protocols then encode as DICOM JSON or as a data set.
Matching never opens a file.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Iterable

from django.db.models import Q, QuerySet

from .errors import InvalidInput
from .indexing import check_uid
from .models import Instance, Patient, Series, Study

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")


@dataclass(frozen=True)
class Attribute:
    keyword: str
    tag: int
    vr: str
    level: str
    field: str  # the column on the level's model


ATTRIBUTES: dict[str, Attribute] = {
    a.keyword: a
    for a in (
        Attribute("PatientID", 0x00100020, "LO", "PATIENT", "patient_id"),
        Attribute("IssuerOfPatientID", 0x00100021, "LO", "PATIENT", "issuer"),
        Attribute("PatientName", 0x00100010, "PN", "PATIENT", "patient_name"),
        Attribute("PatientBirthDate", 0x00100030, "DA", "PATIENT", "birth_date"),
        Attribute("PatientSex", 0x00100040, "CS", "PATIENT", "sex"),
        Attribute("StudyInstanceUID", 0x0020000D, "UI", "STUDY", "study_uid"),
        Attribute("StudyDate", 0x00080020, "DA", "STUDY", "study_date"),
        Attribute("StudyTime", 0x00080030, "TM", "STUDY", "study_time"),
        Attribute("AccessionNumber", 0x00080050, "SH", "STUDY", "accession_number"),
        Attribute("StudyID", 0x00200010, "SH", "STUDY", "study_id"),
        Attribute("StudyDescription", 0x00081030, "LO", "STUDY", "study_description"),
        Attribute("ReferringPhysicianName", 0x00080090, "PN", "STUDY", "referring_physician_name"),
        Attribute("ModalitiesInStudy", 0x00080061, "CS", "STUDY", "modalities"),
        Attribute("NumberOfStudyRelatedSeries", 0x00201206, "IS", "STUDY", "num_series"),
        Attribute("NumberOfStudyRelatedInstances", 0x00201208, "IS", "STUDY", "num_instances"),
        Attribute("SeriesInstanceUID", 0x0020000E, "UI", "SERIES", "series_uid"),
        Attribute("Modality", 0x00080060, "CS", "SERIES", "modality"),
        Attribute("SeriesNumber", 0x00200011, "IS", "SERIES", "series_number"),
        Attribute("SeriesDescription", 0x0008103E, "LO", "SERIES", "series_description"),
        Attribute("NumberOfSeriesRelatedInstances", 0x00201209, "IS", "SERIES", "num_instances"),
        Attribute("SOPInstanceUID", 0x00080018, "UI", "IMAGE", "sop_uid"),
        Attribute("SOPClassUID", 0x00080016, "UI", "IMAGE", "sop_class_uid"),
        Attribute("InstanceNumber", 0x00200013, "IS", "IMAGE", "instance_number"),
        Attribute("NumberOfFrames", 0x00280008, "IS", "IMAGE", "number_of_frames"),
        Attribute("Rows", 0x00280010, "US", "IMAGE", "rows"),
        Attribute("Columns", 0x00280011, "US", "IMAGE", "columns"),
    )
}
BY_TAG = {a.tag: a for a in ATTRIBUTES.values()}
# Counts are answers, never match keys.
_COUNTS = {"NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances"}

MODELS = {"PATIENT": Patient, "STUDY": Study, "SERIES": Series, "IMAGE": Instance}
# The ORM path from each level's model up to each level above it.
_PREFIX = {
    "PATIENT": {"PATIENT": ""},
    "STUDY": {"PATIENT": "patient__", "STUDY": ""},
    "SERIES": {"PATIENT": "study__patient__", "STUDY": "study__", "SERIES": ""},
    "IMAGE": {"PATIENT": "series__study__patient__", "STUDY": "series__study__", "SERIES": "series__", "IMAGE": ""},
}
_ORDER = {
    "PATIENT": ("patient_id", "pk"),
    "STUDY": ("study_date", "study_time", "pk"),
    "SERIES": ("series_number", "pk"),
    "IMAGE": ("instance_number", "pk"),
}
# What each level returns by default (PS3.18 Tables 6.7.1-2, 2a and 2b).
DEFAULT_RETURN = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "STUDY": (
        "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
        "StudyDescription", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    ),
    "SERIES": (
        "Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
    ),
    "IMAGE": ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames"),
}
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def path_for(level: str, attribute: Attribute) -> str:
    try:
        return _PREFIX[level][attribute.level] + attribute.field
    except KeyError:
        raise InvalidInput(f"{attribute.keyword} cannot be matched at the {level} level") from None


def attributes_for(level: str) -> list[Attribute]:
    """The index attributes visible from ``level``: its own and those of levels above."""
    return [a for a in ATTRIBUTES.values() if a.level in _PREFIX[level]]


def build_query(level: str, keys: dict[str, str], base: QuerySet | None = None) -> QuerySet:
    """Rows of ``level`` matching every key; keys with an empty value match anything."""
    if level not in MODELS:
        raise InvalidInput(f"unknown query level {level!r}")
    qs = base if base is not None else MODELS[level].objects.all()
    for keyword, value in keys.items():
        attribute = ATTRIBUTES.get(keyword)
        if attribute is None or keyword in _COUNTS or value in ("", "*", None):
            continue
        qs = qs.filter(match(path_for(level, attribute), attribute, str(value)))
    return qs.order_by(*_ORDER[level])


def match(path: str, attribute: Attribute, value: str) -> Q:
    """One key's condition (PS3.4 C.2.2.2.1–C.2.2.2.5)."""
    vr = attribute.vr
    if vr == "UI":
        uids = [u.strip() for u in re.split(r"[\\,]", value) if u.strip()]
        for uid in uids:
            check_uid(uid, attribute.keyword)
        return Q(**{f"{path}__in": uids})
    if vr in ("DA", "TM"):
        return _range(path, attribute, value)
    if attribute.keyword == "ModalitiesInStudy":
        condition = Q()
        for modality in re.split(r"[\\,]", value):
            condition |= Q(**{f"{path}__regex": rf"(^|\\){re.escape(modality.strip())}(\\|$)"})
        return condition
    if vr == "IS":
        try:
            return Q(**{path: int(value)})
        except ValueError:
            raise InvalidInput(f"{attribute.keyword} must be an integer, got {value!r}") from None
    if "*" in value or "?" in value:
        pattern = "^" + "".join(
            ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value
        ) + "$"
        return Q(**{f"{path}__{'iregex' if vr == 'PN' else 'regex'}": pattern})
    return Q(**{f"{path}__iexact" if vr == "PN" else path: value})


def _range(path: str, attribute: Attribute, value: str) -> Q:
    check = _check_date if attribute.vr == "DA" else _check_time
    if "-" not in value:
        check(attribute.keyword, value)
        return Q(**{path: value}) if attribute.vr == "DA" else Q(**{f"{path}__startswith": value})
    low, _, high = value.partition("-")
    condition = Q()
    if low:
        check(attribute.keyword, low)
        condition &= Q(**{f"{path}__gte": low})
    if high:
        check(attribute.keyword, high)
        # A time range's upper end includes everything that starts with it.
        condition &= Q(**{f"{path}__lte": high if attribute.vr == "DA" else high + "~"})
    if not low and not high:
        raise InvalidInput(f"{attribute.keyword} range {value!r} has no ends")
    return condition & ~Q(**{path: ""})


def _check_date(keyword: str, value: str) -> None:
    try:
        if not _DATE.match(value):
            raise ValueError
        dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise InvalidInput(f"{keyword} must be a date YYYYMMDD or a range of them, got {value!r}") from None


def _check_time(keyword: str, value: str) -> None:
    if not _TIME.match(value) or int(value[:2]) > 23:
        raise InvalidInput(f"{keyword} must be a time HHMMSS.FFFFFF or a range of them, got {value!r}")


def value_paths(level: str, keywords: Iterable[str]) -> dict[str, str]:
    """keyword → ORM path for the index attributes among ``keywords``."""
    paths = {}
    for keyword in keywords:
        attribute = ATTRIBUTES.get(keyword)
        if attribute is not None and attribute.level in _PREFIX[level]:
            paths[keyword] = path_for(level, attribute)
    return paths


def row_attributes(row: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """keyword → value for one ``.values()`` row; ``None`` and "" mean empty."""
    return {keyword: row[path] for keyword, path in paths.items()}
