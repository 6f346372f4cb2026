"""Curator metadata: what a museum says about an object, and where it goes in DICOM.

A museum object is not a patient, but PACS viewers and DICOMweb clients show Patient
and Study attributes first, so the object's identity goes there (docs/metadata.md has
the full table):

=====================  ==========================================  =================
Curator field          DICOM attribute                             Seen by PACS users
=====================  ==========================================  =================
inventory_number       PatientID (0010,0020)                       yes: the ID column
title                  PatientName (0010,0010), StudyDescription   yes: name, study
holding_institution    InstitutionName (0008,0080),                yes
                       IssuerOfPatientID (0010,0021)
collection             VITRINE private (0077,1002)                 no
description            PatientComments (0010,4000)                 in detail views
object_date            VITRINE private (0077,1006) (free text)     no
scan_date              StudyDate/StudyTime                         yes
operator               OperatorsName (0008,1070)                   in detail views
rights, licence,       VITRINE private (0077,1003..1005)           no
attribution
=====================  ==========================================  =================

Clinical uploads (``kind="clinical"``) keep real patient fields instead. Fields without
a standard home live in a private block whose creator is ``VITRINE`` (PS3.5 7.8).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from pydicom.dataset import Dataset

from archive.dicom.refs import PatientInfo, StudyRef
from archive.errors import InvalidInput

__all__ = [
    "PRIVATE_CREATOR",
    "PRIVATE_GROUP",
    "CuratorMetadata",
    "build_metadata_attributes",
    "parse_sidecar",
    "read_private_metadata",
    "to_patient_info",
    "to_study_ref",
]

PRIVATE_GROUP = 0x0077
PRIVATE_CREATOR = "VITRINE"
# Element offsets in the VITRINE block: (offset, VR, field).
PRIVATE_ELEMENTS = (
    (0x01, "UT", "title"),
    (0x02, "LO", "collection"),
    (0x03, "UT", "rights"),
    (0x04, "UT", "licence"),
    (0x05, "UT", "attribution"),
    (0x06, "LO", "object_date"),
    (0x07, "LO", "inventory_number"),
)
_LIMITS = {"inventory_number": 64, "holding_institution": 64, "collection": 64, "object_date": 64,
           "operator": 64, "patient_name": 320, "title": 1024, "description": 10240,
           "rights": 10240, "attribution": 1024, "licence": 1024, "series_description": 64,
           "accession_number": 16, "study_id": 16}


@dataclass(frozen=True)
class CuratorMetadata:
    """What a curator (or a clinician) tells us about an upload.

    ``voxel_size_mm`` (x, y, z) is needed for TIFF stacks; ``pixel_spacing_mm`` for
    flat slide images. ``object_kind`` can force a route (``"slide"``, ``"photo"``).
    """

    inventory_number: str
    title: str = ""
    kind: str = "museum"
    holding_institution: str = ""
    collection: str = ""
    description: str = ""
    object_date: str = ""
    scan_date: datetime | None = None
    operator: str = ""
    rights: str = ""
    licence: str = ""
    attribution: str = ""
    accession_number: str = ""
    study_id: str = ""
    series_description: str = ""
    object_kind: str = ""
    voxel_size_mm: tuple[float, float, float] | None = None
    pixel_spacing_mm: float | None = None
    rescale_intercept: float = 0.0
    rescale_slope: float = 1.0
    hounsfield: bool = False
    patient_name: str = ""
    patient_birth_date: date | None = None
    patient_sex: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("museum", "clinical"):
            raise InvalidInput(f"kind must be 'museum' or 'clinical', got {self.kind!r}")
        if not self.inventory_number.strip():
            raise InvalidInput("inventory_number must not be empty")
        for name, limit in _LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string, got {type(value).__name__}")
            if len(value) > limit:
                raise InvalidInput(f"{name} must be at most {limit} characters, got {len(value)}")
        for name in ("inventory_number", "holding_institution", "collection", "object_date",
                     "operator", "accession_number", "study_id", "series_description"):
            if "\\" in getattr(self, name) or "\n" in getattr(self, name):
                raise InvalidInput(f"{name} must not contain backslashes or line breaks, got {getattr(self, name)!r}")
        if self.voxel_size_mm is not None and (len(self.voxel_size_mm) != 3 or min(self.voxel_size_mm) <= 0):
            raise InvalidInput(f"voxel_size_mm must be three positive numbers, got {self.voxel_size_mm!r}")
        if self.pixel_spacing_mm is not None and self.pixel_spacing_mm <= 0:
            raise InvalidInput(f"pixel_spacing_mm must be positive, got {self.pixel_spacing_mm!r}")
        if self.object_kind not in ("", "slide", "photo", "volume", "model", "document"):
            raise InvalidInput(f"object_kind must be slide, photo, volume, model or document, got {self.object_kind!r}")
        if self.patient_sex not in ("", "M", "F", "O"):
            raise InvalidInput(f"patient_sex must be M, F, O or empty, got {self.patient_sex!r}")


def _person_name(text: str) -> str:
    """A title as a PN value: one component, with PN delimiters neutralised."""
    return text.replace("^", " ").replace("=", "-").replace("\\", "/")[:64]


def to_patient_info(meta: CuratorMetadata) -> PatientInfo:
    """The Patient module for the upload: the object itself, or the real patient."""
    if meta.kind == "clinical":
        return PatientInfo(patient_id=meta.inventory_number, name=meta.patient_name,
                           birth_date=meta.patient_birth_date, sex=meta.patient_sex,
                           issuer=meta.holding_institution)
    return PatientInfo(patient_id=meta.inventory_number, name=_person_name(meta.title),
                       issuer=meta.holding_institution)


def to_study_ref(meta: CuratorMetadata, *, study_uid: str, started: datetime | None = None) -> StudyRef:
    """The General Study module: title as description, scan date as study date."""
    description = meta.title if meta.kind == "museum" else meta.description
    return StudyRef(study_uid=study_uid, study_id=meta.study_id, started=meta.scan_date or started,
                    description=description.replace("\n", " ").replace("\\", "/")[:64],
                    accession=meta.accession_number)


def build_metadata_attributes(meta: CuratorMetadata) -> Dataset:
    """Attributes every output instance of the upload carries, besides Patient/Study.

    Returns a Dataset to merge into each instance (``Target.extra``).
    """
    ds = Dataset()
    if meta.holding_institution:
        ds.InstitutionName = meta.holding_institution
    if meta.description:
        ds.PatientComments = meta.description
    if meta.operator:
        ds.OperatorsName = _person_name(meta.operator)
    if meta.kind == "museum":
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        for offset, vr, name in PRIVATE_ELEMENTS:
            value = getattr(meta, name)
            if value:
                block.add_new(offset, vr, value)
    return ds


def read_private_metadata(ds: Dataset) -> dict[str, str]:
    """The VITRINE private fields of an instance, by curator field name."""
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    except KeyError:
        return {}
    out = {}
    for offset, _vr, name in PRIVATE_ELEMENTS:
        if block.get_tag(offset) in ds:
            out[name] = str(block[offset].value)
    return out


_FIELDS = {f.name for f in fields(CuratorMetadata)}


def _coerce(name: str, value: Any) -> Any:
    """JSON value to the dataclass field's type, naming the field on failure."""
    try:
        if name == "scan_date":
            return None if value is None else datetime.fromisoformat(value)
        if name == "patient_birth_date":
            return None if value is None else date.fromisoformat(value)
        if name == "voxel_size_mm":
            if value is None:
                return None
            if not isinstance(value, list) or len(value) != 3:
                raise ValueError("expected a list of three numbers")
            return tuple(float(v) for v in value)
        if name in ("pixel_spacing_mm",):
            return None if value is None else float(value)
        if name in ("rescale_intercept", "rescale_slope"):
            return float(value)
        if name == "hounsfield":
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        return value
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"sidecar field {name!r}: {exc} (got {value!r})") from exc


def parse_sidecar(data: bytes | str) -> CuratorMetadata:
    """Parse and validate a JSON sidecar (an object whose keys are field names).

    Raises
    ------
    InvalidInput
        For malformed JSON, unknown keys, wrong types or over-long values.
    """
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"metadata sidecar is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"metadata sidecar must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise InvalidInput(f"metadata sidecar has unknown fields: {', '.join(unknown)}")
    if "inventory_number" not in raw:
        raise InvalidInput("metadata sidecar needs 'inventory_number'")
    return CuratorMetadata(**{k: _coerce(k, v) for k, v in raw.items()})
