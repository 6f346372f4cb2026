"""VL Photographic Image: photographs of objects, and the textures of 3D models.

Two builders share one header: ``build_photo_from_jpeg`` keeps a JPEG byte for byte
as a single encapsulated frame, and ``build_photo_from_pixels`` stores decoded 8-bit
pixels losslessly (JPEG-LS lossless when an encoder is installed, else uncompressed).
``read_photo_jpeg`` and ``read_photo_pixels`` are the way back.

# PS3.3 A.32.4 (VL Photographic Image IOD), C.8.12.1 (VL Image),
# C.7.6.1 (General Image), C.7.6.3 (Image Pixel), C.7.6.14 (Acquisition Context)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, UID

from archive.dicom.jpeg import read_jpeg_info, transfer_syntax_for
from archive.dicom.part10 import file_meta_for
from archive.dicom.refs import (
    VITRINE_EQUIPMENT,
    Equipment,
    PatientInfo,
    SeriesRef,
    StudyRef,
    dicom_date,
    dicom_datetime,
    dicom_time,
    new_instance,
)
from archive.errors import InvalidInput, WrongSOPClass

__all__ = [
    "PHOTO_SOP_CLASS",
    "PhotoInfo",
    "build_photo_from_jpeg",
    "build_photo_from_pixels",
    "read_photo_jpeg",
    "read_photo_pixels",
]

PHOTO_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.4"


@dataclass(frozen=True)
class PhotoInfo:
    """Per-image facts: when it was taken, what it was called, how it was derived.

    ``acquired`` comes from EXIF when known; ``source_name`` is the original file name
    (kept in Content Description, and as a CS-safe Content Label); ``derivation``
    says what was done to the pixels (Derivation Description, Image Type DERIVED).
    """

    acquired: datetime | None = None
    source_name: str = ""
    derivation: str = ""
    lossy_source: bool = False
    modality: str = "XC"

    def __post_init__(self) -> None:
        if len(self.source_name) > 64:
            raise InvalidInput(f"source_name must be at most 64 characters, got {self.source_name!r}")
        if self.modality not in ("XC", "OT", "GM"):
            raise InvalidInput(f"modality must be XC, GM or OT, got {self.modality!r}")


def _header(
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    instance_number: int,
    info: PhotoInfo,
    equipment: Equipment,
) -> Dataset:
    ds = new_instance(
        sop_class_uid=PHOTO_SOP_CLASS, instance_uid=instance_uid, created=created, patient=patient,
        study=study, series=series, modality=info.modality, equipment=equipment,
    )
    # PS3.3 C.7.6.1 General Image, C.7.10.1 General Acquisition
    taken = info.acquired or created
    ds.ContentDate = dicom_date(taken)
    ds.ContentTime = dicom_time(taken)
    if info.acquired is not None:
        ds.AcquisitionDateTime = dicom_datetime(info.acquired)
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    if info.source_name:
        ds.ContentLabel = _content_label(info.source_name)
        ds.ContentDescription = info.source_name
    if info.derivation:
        ds.DerivationDescription = info.derivation
    # PS3.3 C.7.6.14 Acquisition Context: nothing known, Type 2 so present and empty.
    ds.AcquisitionContextSequence = DicomSequence()
    return ds


def _content_label(name: str) -> str:
    """A CS-safe label (upper case, digits, underscore, <= 16) from a file name."""
    label = "".join(c if c.isalnum() else "_" for c in name.upper())
    return (label.encode("ascii", "replace").decode().replace("?", "_") or "IMAGE")[:16]


def build_photo_from_jpeg(
    jpeg: bytes,
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    instance_number: int = 1,
    info: PhotoInfo = PhotoInfo(),
    equipment: Equipment = VITRINE_EQUIPMENT,
) -> Dataset:
    """A VL Photographic Image holding ``jpeg`` unchanged as its one frame.

    The transfer syntax follows the JPEG process (baseline: JPEG Baseline 1.2.840.
    10008.1.2.4.50) and is recorded in ``ds.file_meta``.

    Raises
    ------
    InvalidInput
        If the JPEG is malformed, not 8-bit, or of a process no transfer syntax
        carries (progressive, arithmetic): decode it and use the pixel builder.
    """
    jinfo = read_jpeg_info(jpeg)
    syntax = transfer_syntax_for(jinfo)
    if syntax is None or jinfo.precision != 8:
        raise InvalidInput(
            f"JPEG process {jinfo.process!r} ({jinfo.precision}-bit) cannot be kept as is; "
            "decode it and store pixels losslessly"
        )
    ds = _header(
        patient=patient, study=study, series=series, instance_uid=instance_uid,
        created=created, instance_number=instance_number, info=info, equipment=equipment,
    )
    _pixel_module(ds, rows=jinfo.rows, columns=jinfo.columns, samples=jinfo.components,
                  photometric=jinfo.photometric_interpretation)
    lossless = jinfo.process == "lossless"
    # PS3.3 C.8.12.1: Lossy Image Compression "01" once any lossy step happened.
    ds.LossyImageCompression = "00" if lossless and not info.lossy_source else "01"
    if not lossless:
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PixelData = encapsulate([bytes(jpeg)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    _set_syntax(ds, syntax)
    return ds


def build_photo_from_pixels(
    pixels: np.ndarray,
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    instance_number: int = 1,
    info: PhotoInfo = PhotoInfo(),
    equipment: Equipment = VITRINE_EQUIPMENT,
    compress: bool = True,
) -> Dataset:
    """A VL Photographic Image from decoded pixels, stored losslessly.

    Parameters
    ----------
    pixels
        ``(rows, columns)`` or ``(rows, columns, 3)`` uint8; orientation already applied.
    compress
        Use JPEG-LS lossless when an encoder is installed; otherwise (or if False)
        Explicit VR Little Endian.
    """
    if pixels.dtype != np.uint8:
        raise InvalidInput(f"pixels must be uint8 (VL images are 8-bit), got {pixels.dtype}")
    if pixels.ndim == 2:
        samples, photometric = 1, "MONOCHROME2"
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        samples, photometric = 3, "RGB"
    else:
        raise InvalidInput(f"pixels must be (rows, cols) or (rows, cols, 3), got {pixels.shape}")
    if min(pixels.shape[:2]) < 1 or max(pixels.shape[:2]) > 65535:
        raise InvalidInput(f"image size must be 1..65535 per side, got {pixels.shape[:2]}")
    ds = _header(
        patient=patient, study=study, series=series, instance_uid=instance_uid,
        created=created, instance_number=instance_number, info=info, equipment=equipment,
    )
    _pixel_module(ds, rows=pixels.shape[0], columns=pixels.shape[1], samples=samples,
                  photometric=photometric)
    ds.LossyImageCompression = "01" if info.lossy_source else "00"
    if info.lossy_source:
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.ImageType = ["DERIVED" if info.derivation else "ORIGINAL", "PRIMARY"]
    data = np.ascontiguousarray(pixels)
    _set_syntax(ds, ExplicitVRLittleEndian)
    ds.PixelData = data.tobytes()
    if compress and _jpegls_available():
        ds.compress(JPEGLSLossless, data, generate_instance_uid=False)
    return ds


def _jpegls_available() -> bool:
    from pydicom.pixels import get_encoder

    return bool(get_encoder(JPEGLSLossless).is_available)


def _pixel_module(ds: Dataset, *, rows: int, columns: int, samples: int, photometric: str) -> None:
    # PS3.3 C.7.6.3 Image Pixel with the VL Image constraints (8 bits, C.8.12.1.1).
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0


def _set_syntax(ds: Dataset, syntax: str) -> None:
    ds.file_meta = file_meta_for(ds, UID(syntax))


def _check_photo(ds: Dataset) -> None:
    if ds.get("SOPClassUID") != PHOTO_SOP_CLASS:
        raise WrongSOPClass(f"SOPClassUID must be {PHOTO_SOP_CLASS}, got {ds.get('SOPClassUID')!r}")


def read_photo_jpeg(ds: Dataset) -> bytes:
    """The JPEG kept by ``build_photo_from_jpeg``, byte-identical (frame pad removed)."""
    _check_photo(ds)
    syntax = ds.file_meta.TransferSyntaxUID
    if not syntax.is_compressed or not syntax.startswith("1.2.840.10008.1.2.4.5"):
        raise InvalidInput(f"photo transfer syntax is not JPEG, got {syntax}")
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    # An odd-length JPEG was padded with one NUL after its EOI (PS3.5 A.4).
    if frame.endswith(b"\xff\xd9\x00"):
        frame = frame[:-1]
    return bytes(frame)


def read_photo_pixels(ds: Dataset) -> np.ndarray:
    """Decoded pixels ``(rows, cols)`` or ``(rows, cols, 3)`` uint8, in RGB for colour."""
    _check_photo(ds)
    from pydicom.pixels import pixel_array

    arr = pixel_array(ds, as_rgb=True)
    return np.asarray(arr)
