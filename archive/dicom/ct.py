"""CT Image Storage series from a volume, one classic instance per slice.

Classic CT is what every viewer and the meshing pipeline read best. The geometry comes
in as a ``VolumeGeometry`` in patient coordinates (LPS, millimetres): the directions of
increasing column and row index, the pixel spacing and the step between slices, from
which each slice gets its Image Position (Patient). ``read_ct_volume`` stacks a series
back into a volume and its geometry, so tests can check the round trip in mm.

# PS3.3 A.3 (CT Image IOD), C.7.6.2 (Image Plane), C.8.2.1 (CT Image),
# C.7.4.1 (Frame of Reference)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from archive.dicom.part10 import file_meta_for
from archive.dicom.refs import (
    VITRINE_EQUIPMENT,
    Equipment,
    PatientInfo,
    SeriesRef,
    StudyRef,
    check_uid,
    dicom_date,
    dicom_time,
    new_instance,
)
from archive.errors import InvalidInput, WrongSOPClass

__all__ = [
    "CT_SOP_CLASS",
    "Rescale",
    "VolumeGeometry",
    "build_ct_slice",
    "read_ct_volume",
    "update_ct_slice",
]

CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
_DTYPES = (np.dtype("uint16"), np.dtype("int16"))


def _vec(name: str, value: Sequence[float], *, unit: bool = False) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or not np.isfinite(arr).all():
        raise InvalidInput(f"{name} must be three finite numbers, got {tuple(value)!r}")
    if unit:
        norm = np.linalg.norm(arr)
        if norm == 0:
            raise InvalidInput(f"{name} must not be the zero vector")
        arr = arr / norm
    return arr


@dataclass(frozen=True)
class VolumeGeometry:
    """Where a volume's voxels are, in patient LPS millimetres.

    ``row_direction`` is the direction of increasing column index (first triplet of
    Image Orientation (Patient)), ``column_direction`` that of increasing row index.
    ``pixel_spacing_mm`` is (between rows, between columns), as in Pixel Spacing.
    ``slice_step_mm`` is the vector from one slice's origin to the next.
    """

    pixel_spacing_mm: tuple[float, float]
    slice_step_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    row_direction: tuple[float, float, float] = (1.0, 0.0, 0.0)
    column_direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        if len(self.pixel_spacing_mm) != 2 or min(self.pixel_spacing_mm) <= 0:
            raise InvalidInput(f"pixel_spacing_mm must be two positive numbers, got {self.pixel_spacing_mm!r}")
        _vec("origin_mm", self.origin_mm)
        row = _vec("row_direction", self.row_direction, unit=True)
        col = _vec("column_direction", self.column_direction, unit=True)
        if abs(float(row @ col)) > 1e-4:
            raise InvalidInput(
                f"row_direction {self.row_direction!r} and column_direction "
                f"{self.column_direction!r} must be orthogonal"
            )
        step = _vec("slice_step_mm", self.slice_step_mm)
        if np.linalg.norm(step) == 0:
            raise InvalidInput(f"slice_step_mm must not be zero, got {self.slice_step_mm!r}")

    @classmethod
    def from_voxel_size(cls, voxel_mm: tuple[float, float, float]) -> VolumeGeometry:
        """Axis-aligned geometry from a curator's voxel size (x, y, z) in mm."""
        if len(voxel_mm) != 3 or min(voxel_mm) <= 0:
            raise InvalidInput(f"voxel size must be three positive numbers in mm, got {voxel_mm!r}")
        x, y, z = (float(v) for v in voxel_mm)
        return cls(pixel_spacing_mm=(y, x), slice_step_mm=(0.0, 0.0, z))

    @property
    def normal(self) -> np.ndarray:
        return np.cross(_vec("r", self.row_direction, unit=True), _vec("c", self.column_direction, unit=True))

    @property
    def spacing_between_slices_mm(self) -> float:
        return abs(float(self.normal @ np.asarray(self.slice_step_mm, dtype=np.float64)))

    def position(self, index: int) -> np.ndarray:
        return np.asarray(self.origin_mm, np.float64) + index * np.asarray(self.slice_step_mm, np.float64)


@dataclass(frozen=True)
class Rescale:
    """Stored value to output unit: ``out = slope * stored + intercept`` (C.11.1.1.2)."""

    slope: float = 1.0
    intercept: float = 0.0
    hounsfield: bool = False

    def __post_init__(self) -> None:
        if not np.isfinite([self.slope, self.intercept]).all() or self.slope == 0:
            raise InvalidInput(f"rescale slope must be finite and non-zero, got {self.slope!r}")


def _ds_number(value: float) -> str:
    """A DS string of at most 16 characters (PS3.5 6.2)."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.6g}"
    return text


def build_ct_slice(
    pixels: np.ndarray,
    *,
    index: int,
    geometry: VolumeGeometry,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    frame_of_reference_uid: str,
    created: datetime,
    rescale: Rescale = Rescale(),
    equipment: Equipment = VITRINE_EQUIPMENT,
    derivation: str = "",
) -> Dataset:
    """One CT Image instance: slice ``index`` of a volume.

    Parameters
    ----------
    pixels
        ``(rows, columns)`` uint16 or int16, rows along ``column_direction``.
    index
        0-based slice index; Instance Number is ``index + 1``.

    Raises
    ------
    InvalidInput
        For an unsupported dtype, a non-2D array or malformed UIDs.
    """
    if pixels.dtype not in _DTYPES:
        raise InvalidInput(f"CT pixels must be uint16 or int16, got {pixels.dtype}")
    if pixels.ndim != 2 or min(pixels.shape) < 1 or max(pixels.shape) > 65535:
        raise InvalidInput(f"CT slice must be a 2-D array up to 65535 a side, got {pixels.shape}")
    check_uid("frame_of_reference_uid", frame_of_reference_uid)
    ds = new_instance(
        sop_class_uid=CT_SOP_CLASS, instance_uid=instance_uid, created=created, patient=patient,
        study=study, series=series, modality="CT", equipment=equipment,
    )
    ds.PatientPosition = ""
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    # PS3.3 C.7.6.1 General Image
    ds.InstanceNumber = index + 1
    ds.AcquisitionNumber = 1
    ds.ContentDate = dicom_date(created)
    ds.ContentTime = dicom_time(created)
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    if derivation:
        ds.DerivationDescription = derivation[:1024]
    # PS3.3 C.7.6.2 Image Plane
    ds.ImageOrientationPatient = [_ds_number(v) for v in (*geometry.row_direction, *geometry.column_direction)]
    ds.ImagePositionPatient = [_ds_number(v) for v in geometry.position(index)]
    ds.PixelSpacing = [_ds_number(v) for v in geometry.pixel_spacing_mm]
    thickness = geometry.slice_thickness_mm or geometry.spacing_between_slices_mm
    ds.SliceThickness = _ds_number(thickness)
    ds.SpacingBetweenSlices = _ds_number(geometry.spacing_between_slices_mm)
    ds.SliceLocation = _ds_number(float(geometry.normal @ geometry.position(index)))
    # PS3.3 C.8.2.1 CT Image
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.KVP = ""
    ds.RescaleIntercept = _ds_number(rescale.intercept)
    ds.RescaleSlope = _ds_number(rescale.slope)
    ds.RescaleType = "HU" if rescale.hounsfield else "US"
    # PS3.3 C.7.6.3 Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OW"
    ds.file_meta = file_meta_for(ds, ExplicitVRLittleEndian)
    return ds


def update_ct_slice(ds: Dataset, *, index: int, geometry: VolumeGeometry, instance_uid: str) -> None:
    """Turn a slice's data set into slice ``index`` of the same series, in place.

    Changes exactly what ``build_ct_slice`` makes differ between slices of one
    series: SOP Instance UID, Instance Number, Image Position and Slice Location.
    """
    check_uid("instance_uid", instance_uid)
    ds.SOPInstanceUID = instance_uid
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [_ds_number(v) for v in geometry.position(index)]
    ds.SliceLocation = _ds_number(float(geometry.normal @ geometry.position(index)))
    ds.file_meta.MediaStorageSOPInstanceUID = instance_uid


def read_ct_volume(datasets: Sequence[Dataset]) -> tuple[np.ndarray, VolumeGeometry, Rescale]:
    """Stack CT instances (any order) into ``(slices, rows, cols)`` stored values.

    Slices are sorted along the normal of their orientation; the geometry is rebuilt
    from the first two positions.
    """
    if not datasets:
        raise InvalidInput("no CT instances to read")
    for ds in datasets:
        if ds.SOPClassUID != CT_SOP_CLASS:
            raise WrongSOPClass(f"SOPClassUID must be {CT_SOP_CLASS}, got {ds.SOPClassUID}")
    iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    ordered = sorted(datasets, key=lambda d: float(normal @ np.asarray(d.ImagePositionPatient, float)))
    vol = np.stack([d.pixel_array for d in ordered])
    first = np.asarray(ordered[0].ImagePositionPatient, float)
    step = (np.asarray(ordered[1].ImagePositionPatient, float) - first) if len(ordered) > 1 else \
        normal * float(ordered[0].SpacingBetweenSlices)
    geometry = VolumeGeometry(
        pixel_spacing_mm=tuple(float(v) for v in ordered[0].PixelSpacing),  # type: ignore[arg-type]
        slice_step_mm=tuple(step.tolist()),  # type: ignore[arg-type]
        origin_mm=tuple(first.tolist()),  # type: ignore[arg-type]
        row_direction=tuple(iop[:3].tolist()),  # type: ignore[arg-type]
        column_direction=tuple(iop[3:].tolist()),  # type: ignore[arg-type]
    )
    first_ds = ordered[0]
    rescale = Rescale(float(first_ds.RescaleSlope), float(first_ds.RescaleIntercept),
                      first_ds.get("RescaleType") == "HU")
    return vol, geometry, rescale
