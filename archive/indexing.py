"""From a Part 10 file to the row values the index keeps. Pure: imports no Django.

``read_index_entry`` checks the file's structure, reads the attributes QIDO-RS and
C-FIND match on, and renders the DICOM JSON metadata (PS3.18 F.2) with bulk data left
out. Bulk data elements get a BulkDataURI that starts with ``BULK_PLACEHOLDER``; the
HTTP layer puts the request's base URL in its place when it serves the metadata.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from .errors import InvalidInput
from .dicomjson import dataset_to_json
from .part10 import Layout, scan_part10

BULK_PLACEHOLDER = "vitrine-bulk:"
# Values longer than this go to bulk data rather than inline JSON (PS3.18 8.3.5).
BULK_THRESHOLD_BYTES = 1024
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class IndexEntry:
    """Everything the index needs from one instance."""

    sop_class_uid: str
    sop_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str
    layout: Layout
    patient: dict[str, str] = field(default_factory=dict)
    study: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    instance: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def check_uid(value: str, keyword: str) -> str:
    """A UID as PS3.5 9.1 allows it: digits and dots, at most 64 characters."""
    if not value or len(value) > 64 or not _UID.match(value):
        raise InvalidInput(f"{keyword} is not a valid UID: {value!r}")
    return value


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while data := fp.read(chunk):
            digest.update(data)
    return digest.hexdigest()


def read_index_entry(path: str | Path) -> IndexEntry:
    """Check and read one Part 10 file.

    Raises
    ------
    InvalidInput
        The file is not Part 10, is truncated, or lacks one of SOPClassUID,
        SOPInstanceUID, StudyInstanceUID and SeriesInstanceUID.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as fp:
        layout = scan_part10(fp, size)
        fp.seek(0)
        try:
            ds = pydicom.dcmread(fp, defer_size=BULK_THRESHOLD_BYTES)
            ds.file_meta  # noqa: B018 - force the meta group to be read
            uids = {
                keyword: str(ds.get(keyword, "") or "").strip()
                for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
            }
        except (InvalidDicomError, ValueError, KeyError, EOFError, OSError) as exc:
            raise InvalidInput(f"the file cannot be read as DICOM: {exc}") from None
        for keyword, value in uids.items():
            if not value:
                raise InvalidInput(f"the data set has no {keyword}")
            check_uid(value, keyword)
        meta_sop = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or "").strip()
        if meta_sop and meta_sop != uids["SOPInstanceUID"]:
            raise InvalidInput(
                f"MediaStorageSOPInstanceUID {meta_sop} differs from SOPInstanceUID "
                f"{uids['SOPInstanceUID']}"
            )
        try:
            metadata = _to_json(ds)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidInput(f"the data set holds a malformed value: {exc}") from None
    return IndexEntry(
        sop_class_uid=uids["SOPClassUID"],
        sop_uid=uids["SOPInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=layout.transfer_syntax,
        layout=layout,
        patient={
            "patient_id": _text(ds, "PatientID"),
            "issuer": _text(ds, "IssuerOfPatientID"),
            "patient_name": _text(ds, "PatientName"),
            "birth_date": _text(ds, "PatientBirthDate"),
            "sex": _text(ds, "PatientSex"),
        },
        study={
            "study_date": _text(ds, "StudyDate")[:8],
            "study_time": _text(ds, "StudyTime"),
            "accession_number": _text(ds, "AccessionNumber"),
            "study_id": _text(ds, "StudyID"),
            "study_description": _text(ds, "StudyDescription")[:64],
            "referring_physician_name": _text(ds, "ReferringPhysicianName"),
        },
        series={
            "modality": _text(ds, "Modality"),
            "series_number": _int(ds, "SeriesNumber"),
            "series_description": _text(ds, "SeriesDescription")[:64],
            "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID"),
        },
        instance={
            "instance_number": _int(ds, "InstanceNumber"),
            "number_of_frames": _int(ds, "NumberOfFrames"),
            "rows": _int(ds, "Rows"),
            "columns": _int(ds, "Columns"),
        },
        metadata=metadata,
    )


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except (ValueError, TypeError):
        return ""
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: pydicom.Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (ValueError, TypeError):
        return None


def _bulk_uri(tag: int) -> str:
    return f"{BULK_PLACEHOLDER}{tag:08X}"


def _to_json(ds: pydicom.Dataset) -> dict[str, Any]:
    """DICOM JSON of the data set, bulk data replaced by BulkDataURIs (PS3.18 F.2.6)."""
    return dataset_to_json(ds, _bulk_uri, BULK_THRESHOLD_BYTES)
