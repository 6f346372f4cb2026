"""Small frozen value objects that every builder takes.

A builder never invents a UID or reads the clock: the caller passes these objects,
so the same inputs always give the same data set. Each dataclass validates itself
in ``__post_init__`` and fills its part of a data set with ``apply_to``.

# PS3.3 C.7.1.1 (Patient), C.7.2.1 (General Study), C.7.3.1 (General Series),
# C.7.4.1 (Frame of Reference), C.7.5.2 (Enhanced General Equipment)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from archive.errors import InvalidInput

__all__ = [
    "Equipment",
    "MeshMeasurements",
    "PatientInfo",
    "SeriesRef",
    "SourceSeriesRef",
    "StudyRef",
    "check_uid",
    "code_item",
    "dicom_date",
    "dicom_datetime",
    "dicom_time",
    "VITRINE_EQUIPMENT",
]

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_SEXES = ("M", "F", "O", "")


def check_uid(name: str, value: str) -> str:
    """Return ``value`` if it is a valid DICOM UID (PS3.5 9.1), else raise InvalidInput."""
    if not isinstance(value, str) or len(value) > 64 or not _UID_RE.match(value):
        raise InvalidInput(f"{name} must be a DICOM UID (digits and dots, <= 64), got {value!r}")
    return value


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """One item of a code sequence (PS3.3 8.8, Code Sequence Macro; short values only)."""
    if not 0 < len(value) <= 16 or not 0 < len(scheme) <= 16 or not 0 < len(meaning) <= 64:
        raise ValueError(f"code ({value!r}, {scheme!r}, {meaning!r}) does not fit SH/SH/LO")
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def dicom_date(value: date | datetime) -> str:
    """DA value (PS3.5 6.2)."""
    return value.strftime("%Y%m%d")


def dicom_time(value: datetime) -> str:
    """TM value with microseconds (PS3.5 6.2)."""
    return value.strftime("%H%M%S.%f")


def dicom_datetime(value: datetime) -> str:
    """DT value, with the UTC offset when the datetime is aware (PS3.5 6.2)."""
    text = value.strftime("%Y%m%d%H%M%S.%f")
    if value.tzinfo is not None:
        text += value.strftime("%z")
    return text


def _check_lo(name: str, value: str, limit: int = 64) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if len(value) > limit or "\\" in value or any(c in value for c in "\r\n\f"):
        raise InvalidInput(
            f"{name} must be at most {limit} characters without backslash or line breaks, "
            f"got {value!r}"
        )


@dataclass(frozen=True)
class PatientInfo:
    """The Patient module (PS3.3 C.7.1.1). For a museum object, see ingest.metadata."""

    patient_id: str
    name: str = ""
    birth_date: date | None = None
    sex: str = ""
    issuer: str = ""

    def __post_init__(self) -> None:
        _check_lo("patient_id", self.patient_id)
        _check_lo("issuer", self.issuer)
        if not self.patient_id:
            raise InvalidInput("patient_id must not be empty, got ''")
        if len(self.name) > 320 or "\\" in self.name:
            raise InvalidInput(f"name must be a PN of at most 320 characters, got {self.name!r}")
        if self.sex not in _SEXES:
            raise InvalidInput(f"sex must be one of M, F, O or empty, got {self.sex!r}")

    def apply_to(self, ds: Dataset) -> None:
        ds.PatientID = self.patient_id
        ds.PatientName = self.name
        ds.PatientBirthDate = dicom_date(self.birth_date) if self.birth_date else ""
        ds.PatientSex = self.sex
        if self.issuer:
            ds.IssuerOfPatientID = self.issuer


@dataclass(frozen=True)
class StudyRef:
    """The General Study module (PS3.3 C.7.2.1)."""

    study_uid: str
    study_id: str = ""
    started: datetime | None = None
    description: str = ""
    accession: str = ""
    referring_physician: str = ""

    def __post_init__(self) -> None:
        check_uid("study_uid", self.study_uid)
        _check_lo("study_id", self.study_id, 16)
        _check_lo("description", self.description)
        _check_lo("accession", self.accession, 16)

    def apply_to(self, ds: Dataset) -> None:
        ds.StudyInstanceUID = self.study_uid
        ds.StudyID = self.study_id
        ds.StudyDate = dicom_date(self.started) if self.started else ""
        ds.StudyTime = dicom_time(self.started) if self.started else ""
        ds.AccessionNumber = self.accession
        ds.ReferringPhysicianName = self.referring_physician
        if self.description:
            ds.StudyDescription = self.description


@dataclass(frozen=True)
class SeriesRef:
    """Series identity (PS3.3 C.7.3.1 / C.24.1)."""

    series_uid: str
    number: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        check_uid("series_uid", self.series_uid)
        if not isinstance(self.number, int) or not 0 <= self.number < 2**31:
            raise InvalidInput(f"series number must be a non-negative int, got {self.number!r}")
        _check_lo("series description", self.description)

    def apply_to(self, ds: Dataset, *, modality: str) -> None:
        ds.Modality = modality
        ds.SeriesInstanceUID = self.series_uid
        ds.SeriesNumber = self.number
        if self.description:
            ds.SeriesDescription = self.description


@dataclass(frozen=True)
class SourceSeriesRef:
    """The series an object was derived from (a CT series a mesh came from).

    ``sop_refs`` holds ``(sop_class_uid, sop_instance_uid)`` pairs.
    """

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str = ""
    sop_refs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        check_uid("source study_uid", self.study_uid)
        check_uid("source series_uid", self.series_uid)
        if self.frame_of_reference_uid:
            check_uid("source frame_of_reference_uid", self.frame_of_reference_uid)
        for cls_uid, inst_uid in self.sop_refs:
            check_uid("source sop class uid", cls_uid)
            check_uid("source sop instance uid", inst_uid)

    def source_instance_sequence(self) -> DicomSequence:
        """Source Instance Sequence items (PS3.3 C.24.2, 10.3 SOP Instance Reference Macro)."""
        items = []
        for cls_uid, inst_uid in self.sop_refs:
            item = Dataset()
            item.ReferencedSOPClassUID = cls_uid
            item.ReferencedSOPInstanceUID = inst_uid
            items.append(item)
        return DicomSequence(items)


@dataclass(frozen=True)
class Equipment:
    """General and Enhanced General Equipment (PS3.3 C.7.5.1, C.7.5.2); all Type 1 there."""

    manufacturer: str
    model_name: str
    device_serial_number: str
    software_versions: str
    institution_name: str = ""

    def __post_init__(self) -> None:
        for name in ("manufacturer", "model_name", "device_serial_number", "software_versions"):
            value = getattr(self, name)
            _check_lo(name, value)
            if not value:
                raise InvalidInput(f"equipment {name} must not be empty, got ''")
        _check_lo("institution_name", self.institution_name)

    def apply_to(self, ds: Dataset) -> None:
        ds.Manufacturer = self.manufacturer
        ds.ManufacturerModelName = self.model_name
        ds.DeviceSerialNumber = self.device_serial_number
        ds.SoftwareVersions = self.software_versions
        if self.institution_name:
            ds.InstitutionName = self.institution_name


VITRINE_EQUIPMENT = Equipment(
    manufacturer="Vitrine",
    model_name="Vitrine ingest",
    device_serial_number="0",
    software_versions="0.1.0",
)


@dataclass(frozen=True)
class MeshMeasurements:
    """What a mesh measures, in millimetres (triangles counted, not estimated)."""

    triangles: int
    volume_mm3: float | None = None
    area_mm2: float | None = None
    bbox_min_mm: tuple[float, float, float] | None = None
    bbox_max_mm: tuple[float, float, float] | None = None
    extra: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.triangles < 0:
            raise InvalidInput(f"triangles must be >= 0, got {self.triangles}")
        for name in ("volume_mm3", "area_mm2"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidInput(f"{name} must be >= 0, got {value}")

    def describe(self) -> str:
        """A compact summary that fits Content Description (LO, 64 characters)."""
        parts = [f"{self.triangles} tri"]
        if self.bbox_min_mm is not None and self.bbox_max_mm is not None:
            size = [b - a for a, b in zip(self.bbox_min_mm, self.bbox_max_mm)]
            parts.append("{:.4g}x{:.4g}x{:.4g} mm".format(*size))
        if self.area_mm2 is not None:
            parts.append(f"{self.area_mm2:.5g} mm2")
        if self.volume_mm3 is not None:
            parts.append(f"{self.volume_mm3:.5g} mm3")
        return "; ".join(parts)[:64]


def new_instance(
    *,
    sop_class_uid: str,
    instance_uid: str,
    created: datetime,
    patient: "PatientInfo",
    study: "StudyRef",
    series: "SeriesRef",
    modality: str,
    equipment: "Equipment",
) -> Dataset:
    """A data set with the modules every Vitrine instance starts from.

    PS3.3 C.12.1 SOP Common (UTF-8, creation time), C.7.1.1 Patient, C.7.2.1 General
    Study, C.7.3.1 General Series, C.7.5.1 General Equipment.
    """
    check_uid("instance_uid", instance_uid)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = instance_uid
    ds.InstanceCreationDate = dicom_date(created)
    ds.InstanceCreationTime = dicom_time(created)
    patient.apply_to(ds)
    study.apply_to(ds)
    series.apply_to(ds, modality=modality)
    equipment.apply_to(ds)
    return ds
