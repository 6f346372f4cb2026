"""Encapsulated documents: STL, OBJ and MTL models, and PDF.

Each builder returns a data set whose Encapsulated Document holds the original bytes;
its reader gives them back byte-identical, trimmed to EncapsulatedDocumentLength
(OB values are padded to even length). For payloads too big to hold in memory, build
the header with ``build_document_header`` and stream the bytes with
``archive.dicom.part10.write_document_file``.

# PS3.3 A.45.1 (Encapsulated PDF IOD), A.85.1 (Encapsulated STL IOD),
# A.85.2 (Encapsulated OBJ IOD), A.85.3 (Encapsulated MTL IOD)
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from archive.dicom.part10 import file_meta_for
from archive.dicom.refs import (
    VITRINE_EQUIPMENT,
    Equipment,
    MeshMeasurements,
    PatientInfo,
    SeriesRef,
    SourceSeriesRef,
    StudyRef,
    check_uid,
    code_item,
    dicom_date,
    dicom_datetime,
    dicom_time,
    new_instance,
)
from archive.errors import InvalidInput, WrongSOPClass

__all__ = [
    "DocumentKind",
    "ModelInfo",
    "RelatedFile",
    "build_document_header",
    "build_mtl_instance",
    "build_obj_instance",
    "build_pdf_instance",
    "build_stl_instance",
    "copy_encapsulated_document",
    "encapsulated_document_span",
    "read_encapsulated_document",
    "read_encapsulated_mtl",
    "read_encapsulated_obj",
    "read_encapsulated_pdf",
    "read_encapsulated_stl",
]

# Private coding scheme (PS3.16 8.2: designators starting "99" are local).
VITRINE_SCHEME = "99VITRINE"
MILLIMETRE = ("mm", "UCUM", "millimeter")
FORMAT_CONVERSION = ("MESHFMTCONV", VITRINE_SCHEME, "Mesh file format conversion")


class DocumentKind(enum.Enum):
    """SOP class, modality and MIME type of each encapsulated family (PS3.4 B.5)."""

    PDF = ("1.2.840.10008.5.1.4.1.1.104.1", "DOC", "application/pdf")
    STL = ("1.2.840.10008.5.1.4.1.1.104.3", "M3D", "model/stl")
    OBJ = ("1.2.840.10008.5.1.4.1.1.104.4", "M3D", "model/obj")
    MTL = ("1.2.840.10008.5.1.4.1.1.104.5", "M3D", "model/mtl")

    @property
    def sop_class_uid(self) -> str:
        return self.value[0]

    @property
    def modality(self) -> str:
        return self.value[1]

    @property
    def mime_type(self) -> str:
        return self.value[2]

    @property
    def is_model(self) -> bool:
        return self is not DocumentKind.PDF


@dataclass(frozen=True)
class RelatedFile:
    """Another instance a model refers to by a relative URI inside its bytes.

    ``uri`` is the name as written in the OBJ (``mtllib``) or MTL (``map_Kd``).
    """

    uri: str
    sop_class_uid: str
    sop_instance_uid: str
    mime_type: str

    def __post_init__(self) -> None:
        check_uid("related sop_class_uid", self.sop_class_uid)
        check_uid("related sop_instance_uid", self.sop_instance_uid)
        if not self.uri or len(self.uri) > 1024:
            raise InvalidInput(f"related file uri must be 1..1024 characters, got {self.uri!r}")


@dataclass(frozen=True)
class ModelInfo:
    """What the Manufacturing 3D Model module says about a model (PS3.3 A.85).

    ``derivation`` is set when the model was converted from another format
    (``"PLY converted to OBJ by trimesh 4.x"``); ``algorithm`` names the converter.
    """

    frame_of_reference_uid: str
    model_group_uid: str = ""
    measurements: MeshMeasurements | None = None
    derivation: str = ""
    algorithm: tuple[str, str] | None = None
    related: tuple[RelatedFile, ...] = ()

    def __post_init__(self) -> None:
        check_uid("frame_of_reference_uid", self.frame_of_reference_uid)
        if self.model_group_uid:
            check_uid("model_group_uid", self.model_group_uid)
        if len(self.derivation) > 1024:
            raise InvalidInput(f"derivation must be <= 1024 characters, got {len(self.derivation)}")


def _check_kind_inputs(kind: DocumentKind, model: ModelInfo | None, length: int) -> None:
    if length < 0:
        raise InvalidInput(f"document length must be >= 0, got {length}")
    if kind.is_model and model is None:
        raise TypeError(f"a {kind.name} document needs model=ModelInfo(...)")
    if not kind.is_model and model is not None:
        raise TypeError("a PDF document takes no model information")


def build_document_header(
    kind: DocumentKind,
    *,
    length: int,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    instance_number: int = 1,
    title: str = "",
    equipment: Equipment = VITRINE_EQUIPMENT,
    model: ModelInfo | None = None,
    source: SourceSeriesRef | None = None,
) -> Dataset:
    """Build every attribute of an encapsulated document except the bytes themselves.

    Parameters
    ----------
    kind
        The document family, which fixes SOP class, Modality and MIME type.
    length
        The true byte length of the document (EncapsulatedDocumentLength).
    model
        Required for STL, OBJ and MTL; ``None`` for PDF.
    source
        The series the document was derived from, if any (Source Instance Sequence).

    Returns
    -------
    pydicom.Dataset
        Without (0042,0011); add it, or stream it with ``part10.write_document_file``.

    Raises
    ------
    InvalidInput
        If a UID, length or text value is malformed.
    """
    check_uid("instance_uid", instance_uid)
    _check_kind_inputs(kind, model, length)
    if len(title) > 64:
        raise InvalidInput(f"title must be at most 64 characters, got {title!r}")

    # PS3.3 C.24.1 Encapsulated Document Series; C.7.5.1 / C.7.5.2 Equipment
    ds = new_instance(
        sop_class_uid=kind.sop_class_uid, instance_uid=instance_uid, created=created, patient=patient,
        study=study, series=series, modality=kind.modality, equipment=equipment,
    )
    # PS3.3 C.24.2 Encapsulated Document
    ds.InstanceNumber = instance_number
    ds.ContentDate = dicom_date(created)
    ds.ContentTime = dicom_time(created)
    ds.AcquisitionDateTime = dicom_datetime(created)
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = DicomSequence()
    ds.MIMETypeOfEncapsulatedDocument = kind.mime_type
    ds.EncapsulatedDocumentLength = length
    if source is not None and source.sop_refs:
        ds.SourceInstanceSequence = source.source_instance_sequence()
    if model is not None:
        _apply_model(ds, model, source)
    ds.file_meta = file_meta_for(ds)
    return ds


def _apply_model(ds: Dataset, model: ModelInfo, source: SourceSeriesRef | None) -> None:
    """Frame of Reference, references and the Manufacturing 3D Model module."""
    # PS3.3 C.7.4.1 Frame of Reference: a mesh made from a CT shares its frame.
    if source is not None and source.frame_of_reference_uid:
        ds.FrameOfReferenceUID = source.frame_of_reference_uid
    else:
        ds.FrameOfReferenceUID = model.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    if model.related:
        # PS3.3 C.24.2: Referenced Instance Sequence with the relative URI the file uses.
        items = []
        for related in model.related:
            item = Dataset()
            item.ReferencedSOPClassUID = related.sop_class_uid
            item.ReferencedSOPInstanceUID = related.sop_instance_uid
            item.RelativeURIReferenceWithinEncapsulatedDocument = related.uri
            items.append(item)
        ds.ReferencedInstanceSequence = DicomSequence(items)
        ds.ListOfMIMETypes = sorted({r.mime_type for r in model.related})
    # PS3.3 A.85: Manufacturing 3D Model Module (units, group, description)
    ds.MeasurementUnitsCodeSequence = DicomSequence([code_item(*MILLIMETRE)])
    if model.model_group_uid:
        ds.ModelGroupUID = model.model_group_uid
    if model.measurements is not None:
        ds.ContentDescription = model.measurements.describe()[:64]
    if model.derivation:
        ds.DerivationDescription = model.derivation
        ds.DerivationCodeSequence = DicomSequence([code_item(*FORMAT_CONVERSION)])
    if model.algorithm is not None:
        name, version = model.algorithm
        algo = Dataset()
        algo.AlgorithmFamilyCodeSequence = DicomSequence([code_item(*FORMAT_CONVERSION)])
        algo.AlgorithmName = name[:64]
        algo.AlgorithmVersion = version[:64]
        ds.DerivationAlgorithmSequence = DicomSequence([algo])


def _build(kind: DocumentKind, payload: bytes, **kwargs: object) -> Dataset:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"{kind.name} payload must be bytes, got {type(payload).__name__}")
    if len(payload) == 0:
        raise InvalidInput(f"{kind.name} payload must not be empty (EncapsulatedDocument is Type 1)")
    ds = build_document_header(kind, length=len(payload), **kwargs)  # type: ignore[arg-type]
    data = bytes(payload)
    # OB values have even length (PS3.5 7.1.1); the true length is recorded above.
    ds.EncapsulatedDocument = data + b"\x00" if len(data) & 1 else data
    return ds


def build_stl_instance(
    stl: bytes,
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    model: ModelInfo,
    instance_number: int = 1,
    title: str = "",
    equipment: Equipment = VITRINE_EQUIPMENT,
    source: SourceSeriesRef | None = None,
) -> Dataset:
    """Encapsulated STL (PS3.3 A.85.1); ``stl`` is kept byte for byte."""
    return _build(
        DocumentKind.STL, stl, patient=patient, study=study, series=series,
        instance_uid=instance_uid, created=created, model=model,
        instance_number=instance_number, title=title, equipment=equipment, source=source,
    )


def build_obj_instance(
    obj: bytes,
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    model: ModelInfo,
    instance_number: int = 1,
    title: str = "",
    equipment: Equipment = VITRINE_EQUIPMENT,
    source: SourceSeriesRef | None = None,
) -> Dataset:
    """Encapsulated OBJ (PS3.3 A.85.2); ``model.related`` names its MTL."""
    return _build(
        DocumentKind.OBJ, obj, patient=patient, study=study, series=series,
        instance_uid=instance_uid, created=created, model=model,
        instance_number=instance_number, title=title, equipment=equipment, source=source,
    )


def build_mtl_instance(
    mtl: bytes,
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    model: ModelInfo,
    instance_number: int = 1,
    title: str = "",
    equipment: Equipment = VITRINE_EQUIPMENT,
) -> Dataset:
    """Encapsulated MTL (PS3.3 A.85.3); ``model.related`` names its textures."""
    ds = _build(
        DocumentKind.MTL, mtl, patient=patient, study=study, series=series,
        instance_uid=instance_uid, created=created, model=model,
        instance_number=instance_number, title=title, equipment=equipment,
    )
    # The Encapsulated MTL IOD has no Frame of Reference module (PS3.3 A.85.3).
    del ds.FrameOfReferenceUID
    del ds.PositionReferenceIndicator
    return ds


def build_pdf_instance(
    pdf: bytes,
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    instance_number: int = 1,
    title: str = "",
    equipment: Equipment = VITRINE_EQUIPMENT,
) -> Dataset:
    """Encapsulated PDF (PS3.3 A.45.1). Raises InvalidInput unless ``pdf`` starts with %PDF-."""
    if not bytes(pdf[:1024]).lstrip(b"\x00\t\r\n ").startswith(b"%PDF-"):
        raise InvalidInput(f"pdf must start with '%PDF-', got {bytes(pdf[:8])!r}")
    ds = _build(
        DocumentKind.PDF, pdf, patient=patient, study=study, series=series,
        instance_uid=instance_uid, created=created, instance_number=instance_number,
        title=title, equipment=equipment,
    )
    ds.ConversionType = "WSD"  # PS3.3 C.8.6.1 SC Equipment: workstation
    return ds


def read_encapsulated_document(ds: Dataset, *, kind: DocumentKind | None = None) -> bytes:
    """The original bytes of an encapsulated document, without the even-length pad.

    Raises
    ------
    WrongSOPClass
        If ``kind`` is given and the data set is of another SOP class.
    InvalidInput
        If the document is missing or shorter than EncapsulatedDocumentLength.
    """
    if kind is not None and ds.get("SOPClassUID") != kind.sop_class_uid:
        raise WrongSOPClass(
            f"SOPClassUID must be {kind.sop_class_uid} ({kind.name}), got {ds.get('SOPClassUID')!r}"
        )
    if "EncapsulatedDocument" not in ds:
        raise InvalidInput("EncapsulatedDocument (0042,0011) is missing")
    data = bytes(ds.EncapsulatedDocument or b"")
    length = ds.get("EncapsulatedDocumentLength")
    if length is None:
        return data
    if length > len(data) or len(data) - length > 1:
        raise InvalidInput(
            f"EncapsulatedDocumentLength {length} disagrees with the {len(data)} bytes stored"
        )
    return data[:length]


def read_encapsulated_stl(ds: Dataset) -> bytes:
    return read_encapsulated_document(ds, kind=DocumentKind.STL)


def read_encapsulated_obj(ds: Dataset) -> bytes:
    return read_encapsulated_document(ds, kind=DocumentKind.OBJ)


def read_encapsulated_mtl(ds: Dataset) -> bytes:
    return read_encapsulated_document(ds, kind=DocumentKind.MTL)


def read_encapsulated_pdf(ds: Dataset) -> bytes:
    return read_encapsulated_document(ds, kind=DocumentKind.PDF)


def encapsulated_document_span(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Where the document of a Part 10 file at ``path`` lies: (byte offset, length).

    The length is EncapsulatedDocumentLength when present (the stored value may carry a
    pad byte), else the value's length.

    Raises
    ------
    InvalidInput
        The file holds no EncapsulatedDocument, or its stated length runs past the value.
    """
    header = dcmread(path, defer_size=0, stop_before_pixels=True)
    raw = header.get_item(Tag(0x0042, 0x0011), keep_deferred=True)
    if not isinstance(raw, RawDataElement):
        raise InvalidInput(f"{os.fspath(path)!r} holds no EncapsulatedDocument")
    length = header.get("EncapsulatedDocumentLength", raw.length)
    if length > raw.length:
        raise InvalidInput(f"EncapsulatedDocumentLength {length} exceeds stored {raw.length}")
    return raw.value_tell, length


def copy_encapsulated_document(
    path: str | os.PathLike[str], out: BinaryIO, *, chunk_size: int = 8 * 1024 * 1024
) -> int:
    """Copy the document of a Part 10 file at ``path`` to ``out`` without loading it.

    Returns the number of bytes copied (EncapsulatedDocumentLength when present).
    """
    offset, length = encapsulated_document_span(path)
    with open(path, "rb") as fp:
        fp.seek(offset)
        remaining = length
        while remaining:
            chunk = fp.read(min(chunk_size, remaining))
            if not chunk:
                raise InvalidInput(f"{os.fspath(path)!r} ends inside its EncapsulatedDocument")
            out.write(chunk)
            remaining -= len(chunk)
    return length

