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

from .dicomjson import dataset_to_json
from .errors import InvalidInput
from .part10 import Layout, read_part10

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
        part = read_part10(fp, size, keep=BULK_THRESHOLD_BYTES)
        ds = part.dataset
        if ds is None:  # deflated, big endian, or unusual: pydicom reads it
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, defer_size=BULK_THRESHOLD_BYTES)
            except (InvalidDicomError, ValueError, KeyError, EOFError, OSError) as exc:
                raise InvalidInput(f"the file cannot be read as DICOM: {exc}") from None
        try:
            metadata = _to_json(ds)
        except (ValueError, TypeError, OverflowError, KeyError) as exc:
            raise InvalidInput(f"the data set holds a malformed value: {exc}") from None
    # The index fields are read back from the JSON: converting them through pydicom a
    # second time would cost as much as the JSON itself.
    uids = {keyword: _text(metadata, tag) for keyword, tag in _UID_TAGS.items()}
    for keyword, value in uids.items():
        if not value:
            raise InvalidInput(f"the data set has no {keyword}")
        check_uid(value, keyword)
    meta_sop = part.meta.get(0x0003, "")
    if meta_sop and meta_sop != uids["SOPInstanceUID"]:
        raise InvalidInput(
            f"MediaStorageSOPInstanceUID {meta_sop} differs from SOPInstanceUID "
            f"{uids['SOPInstanceUID']}"
        )
    return IndexEntry(
        sop_class_uid=uids["SOPClassUID"],
        sop_uid=uids["SOPInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        transfer_syntax_uid=part.layout.transfer_syntax,
        layout=part.layout,
        patient={
            "patient_id": _text(metadata, "00100020"),
            "issuer": _text(metadata, "00100021"),
            "patient_name": _text(metadata, "00100010"),
            "birth_date": _text(metadata, "00100030"),
            "sex": _text(metadata, "00100040"),
        },
        study={
            "study_date": _text(metadata, "00080020")[:8],
            "study_time": _text(metadata, "00080030"),
            "accession_number": _text(metadata, "00080050"),
            "study_id": _text(metadata, "00200010"),
            "study_description": _text(metadata, "00081030")[:64],
            "referring_physician_name": _text(metadata, "00080090"),
        },
        series={
            "modality": _text(metadata, "00080060"),
            "series_number": _int(metadata, "00200011"),
            "series_description": _text(metadata, "0008103E")[:64],
            "frame_of_reference_uid": _text(metadata, "00200052"),
        },
        instance={
            "instance_number": _int(metadata, "00200013"),
            "number_of_frames": _int(metadata, "00280008"),
            "rows": _int(metadata, "00280010"),
            "columns": _int(metadata, "00280011"),
        },
        metadata=metadata,
    )


_UID_TAGS = {
    "SOPClassUID": "00080016",
    "SOPInstanceUID": "00080018",
    "StudyInstanceUID": "0020000D",
    "SeriesInstanceUID": "0020000E",
}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def _text(metadata: dict[str, Any], tag: str) -> str:
    """An element's value as the index keeps it: multiple values joined by backslash,
    person names in their DICOM string form, "" when absent or empty."""
    values = metadata.get(tag, {}).get("Value")
    if not values:
        return ""
    texts = []
    for value in values:
        if isinstance(value, dict):  # PN: component groups
            groups = [value.get(group, "") for group in _PN_GROUPS]
            while groups and not groups[-1]:
                groups.pop()
            value = "=".join(groups)
        texts.append("" if value is None else str(value))
    return "\\".join(texts).strip()


def _int(metadata: dict[str, Any], tag: str) -> int | None:
    values = metadata.get(tag, {}).get("Value")
    if not values or values[0] in (None, ""):
        return None
    try:
        return int(values[0])
    except (ValueError, TypeError):
        return None


def _bulk_uri(tag: int) -> str:
    return f"{BULK_PLACEHOLDER}{tag:08X}"


def _to_json(ds: pydicom.Dataset) -> dict[str, Any]:
    """DICOM JSON of the data set, bulk data replaced by BulkDataURIs (PS3.18 F.2.6)."""
    return dataset_to_json(ds, _bulk_uri, BULK_THRESHOLD_BYTES)
