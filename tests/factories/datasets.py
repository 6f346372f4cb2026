"""Synthetic DICOM data sets: small, seeded, valid."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

UID_ROOT = "1.2.826.0.1.3680043.10.1561."  # test UIDs only


def uid() -> str:
    return generate_uid(prefix=UID_ROOT)


def instance(sop_class_uid: str, *, transfer_syntax: str = ExplicitVRLittleEndian, **attributes) -> Dataset:
    """A minimal instance of ``sop_class_uid`` with new UIDs and a file meta group;
    ``attributes`` (DICOM keywords) are set on it as given."""
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = uid()
    ds.StudyInstanceUID = uid()
    ds.SeriesInstanceUID = uid()
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def ct_slice(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    index: int = 0,
    size: int = 16,
    patient_id: str = "P-001",
    patient_name: str = "Doe^Jane",
    study_date: str = "20240115",
    study_time: str = "101500",
    accession: str = "ACC-1",
    modality: str = "CT",
    seed: int = 0,
    transfer_syntax: str = ExplicitVRLittleEndian,
    **extra,
) -> Dataset:
    """One CT Image Storage slice with int16 pixels; every UID is new unless given."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or uid()
    ds.StudyInstanceUID = study_uid or uid()
    ds.SeriesInstanceUID = series_uid or uid()
    ds.FrameOfReferenceUID = extra.pop("frame_of_reference_uid", None) or uid()
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.AccessionNumber = accession
    ds.StudyID = "1"
    ds.StudyDescription = "Synthetic CT"
    ds.ReferringPhysicianName = "House^Gregory"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Axial"
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = size
    ds.Columns = size
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    rng = np.random.default_rng(seed + index)
    ds.PixelData = rng.integers(0, 2000, size=(size, size), dtype=np.int16).tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def jpeg_photo(pixels: np.ndarray, quality: int = 95, **attributes) -> Dataset:
    """A Secondary Capture RGB image in JPEG baseline (Pillow's YCbCr encoding)."""
    from PIL import Image
    from pydicom.encaps import encapsulate

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    ds = instance(SecondaryCaptureImageStorage, transfer_syntax=JPEGBaseline8Bit, Modality="OT", **attributes)
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian)
    return buffer.getvalue()


def ct_series(count: int = 3, **kwargs) -> list[Dataset]:
    """``count`` slices of one series in one study."""
    study_uid = kwargs.pop("study_uid", None) or uid()
    series_uid = kwargs.pop("series_uid", None) or uid()
    frame = uid()
    return [
        ct_slice(study_uid=study_uid, series_uid=series_uid, index=i, frame_of_reference_uid=frame, **kwargs)
        for i in range(count)
    ]


def write_files(datasets: list[Dataset], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
    return paths
