"""VL Whole Slide Microscopy Image: one multi-frame TILED_FULL instance per pyramid level.

``build_wsi_level`` returns the header of one level (everything but Pixel Data);
``write_wsi_level`` streams that level's encoded tiles, row by row as TILED_FULL
orders them, into a Part 10 file through ``part10.open_frame_writer`` with a Basic
(or Extended) Offset Table, so a level of any size passes through memory one tile at
a time. ``read_wsi_frame`` gives a frame's bytes back.

With TILED_FULL the position of every frame follows from its index, so there is no
Per-Frame Functional Groups Sequence (PS3.3 C.7.6.17.3).

# PS3.3 A.32.8 (VL Whole Slide Microscopy Image IOD), C.8.12.4 (WSM Image),
# C.8.12.14 (Microscope Slide Layer Tile Organization), C.8.12.5 (Optical Path),
# C.7.6.17 (Multi-frame Dimension), C.8.12.6.1 (WSM Image Frame Type macro),
# C.8.12.2 (Specimen), C.8.12.15 (Multi-Resolution Pyramid)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.sequence import Sequence as DicomSequence

from archive.dicom.part10 import file_meta_for, open_frame_writer
from archive.dicom.refs import (
    VITRINE_EQUIPMENT,
    Equipment,
    PatientInfo,
    SeriesRef,
    StudyRef,
    check_uid,
    code_item,
    dicom_date,
    dicom_datetime,
    dicom_time,
    new_instance,
)
from archive.errors import InvalidInput

__all__ = [
    "WSI_SOP_CLASS",
    "LevelSpec",
    "SlideInfo",
    "build_wsi_level",
    "read_wsi_frame",
    "write_wsi_level",
]

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_BRIGHTFIELD = ("111744", "DCM", "Brightfield illumination")
_FULL_SPECTRUM = ("414298005", "SCT", "Full Spectrum")
_SLIDE = ("433466003", "SCT", "Microscope slide")


@dataclass(frozen=True)
class SlideInfo:
    """What is the same for every level of one slide (UIDs from the caller)."""

    container_id: str
    specimen_id: str
    specimen_uid: str
    pyramid_uid: str
    frame_of_reference_uid: str
    dimension_organization_uid: str
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("specimen_uid", "pyramid_uid", "frame_of_reference_uid", "dimension_organization_uid"):
            check_uid(name, getattr(self, name))
        for name in ("container_id", "specimen_id"):
            value = getattr(self, name)
            if not value or len(value) > 64:
                raise InvalidInput(f"{name} must be 1..64 characters, got {value!r}")


@dataclass(frozen=True)
class LevelSpec:
    """One pyramid level: matrix size, tile size, spacing and encoding."""

    index: int
    total_columns: int
    total_rows: int
    tile_columns: int
    tile_rows: int
    pixel_spacing_mm: tuple[float, float] | None
    photometric: str = "YBR_FULL_422"
    transfer_syntax_uid: str = JPEG_BASELINE
    compression_ratio: float | None = None

    def __post_init__(self) -> None:
        for name in ("total_columns", "total_rows", "tile_columns", "tile_rows"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInput(f"level {self.index} {name} must be a positive int, got {value!r}")
        if self.tile_columns > 65535 or self.tile_rows > 65535:
            raise InvalidInput(f"level {self.index} tiles must be <= 65535 a side")
        if self.total_columns >= 2**32 or self.total_rows >= 2**32:
            raise InvalidInput(f"level {self.index} matrix must be < 2**32 a side")
        if self.pixel_spacing_mm is not None and min(self.pixel_spacing_mm) <= 0:
            raise InvalidInput(f"level {self.index} pixel_spacing_mm must be positive, got {self.pixel_spacing_mm}")
        if self.photometric not in ("YBR_FULL_422", "YBR_FULL", "RGB"):
            raise InvalidInput(f"photometric must be YBR_FULL_422, YBR_FULL or RGB, got {self.photometric!r}")

    @property
    def tiles_across(self) -> int:
        return math.ceil(self.total_columns / self.tile_columns)

    @property
    def tiles_down(self) -> int:
        return math.ceil(self.total_rows / self.tile_rows)

    @property
    def number_of_frames(self) -> int:
        return self.tiles_across * self.tiles_down


def _srgb_profile() -> bytes:
    """An sRGB ICC profile (Optical Path ICC Profile is required for colour, C.8.12.5)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _code_item(code: tuple[str, str, str]) -> DicomSequence:
    return DicomSequence([code_item(*code)])


def build_wsi_level(
    *,
    level: LevelSpec,
    slide: SlideInfo,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    equipment: Equipment = VITRINE_EQUIPMENT,
) -> Dataset:
    """The header of one pyramid level (no Pixel Data; stream it with write_wsi_level).

    Level 0 is ORIGINAL\\PRIMARY\\VOLUME\\NONE, the others DERIVED\\PRIMARY\\VOLUME\\
    RESAMPLED. Imaged Volume Width/Height are the physical size when the spacing is
    known.
    """
    ds = new_instance(
        sop_class_uid=WSI_SOP_CLASS, instance_uid=instance_uid, created=created, patient=patient,
        study=study, series=series, modality="SM", equipment=equipment,
    )
    ds.FrameOfReferenceUID = slide.frame_of_reference_uid
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.PyramidUID = slide.pyramid_uid
    if slide.description:
        ds.PyramidDescription = slide.description[:1024]
    # PS3.3 C.8.12.4 Whole Slide Microscopy Image
    first = level.index == 0
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"] if first else \
        ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    ds.InstanceNumber = level.index + 1
    ds.ContentDate = dicom_date(created)
    ds.ContentTime = dicom_time(created)
    ds.AcquisitionDateTime = dicom_datetime(created)
    ds.VolumetricProperties = "VOLUME"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = level.photometric
    ds.PlanarConfiguration = 0
    ds.NumberOfFrames = level.number_of_frames
    ds.Rows = level.tile_rows
    ds.Columns = level.tile_columns
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    if level.compression_ratio is not None:
        ds.LossyImageCompressionRatio = f"{level.compression_ratio:.4g}"
    if level.pixel_spacing_mm is not None:
        row_mm, col_mm = level.pixel_spacing_mm
        ds.ImagedVolumeWidth = float(level.total_columns * col_mm)
        ds.ImagedVolumeHeight = float(level.total_rows * row_mm)
        ds.ImagedVolumeDepth = 0.001
    # PS3.3 C.8.12.14 Microscope Slide Layer Tile Organization
    ds.TotalPixelMatrixColumns = level.total_columns
    ds.TotalPixelMatrixRows = level.total_rows
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 0
    origin.YOffsetInSlideCoordinateSystem = 0
    ds.TotalPixelMatrixOriginSequence = DicomSequence([origin])
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.AcquisitionContextSequence = DicomSequence()
    _dimensions(ds, slide)
    _functional_groups(ds, level)
    _specimen(ds, slide)
    _optical_path(ds)
    ds.file_meta = file_meta_for(ds, level.transfer_syntax_uid)
    return ds


def _dimensions(ds: Dataset, slide: SlideInfo) -> None:
    """PS3.3 C.7.6.17: TILED_FULL, indexed by column then row of the total matrix."""
    org = Dataset()
    org.DimensionOrganizationUID = slide.dimension_organization_uid
    ds.DimensionOrganizationSequence = DicomSequence([org])
    ds.DimensionOrganizationType = "TILED_FULL"
    index = []
    for pointer, label in ((0x0048021E, "Column Position"), (0x0048021F, "Row Position")):
        item = Dataset()
        item.DimensionOrganizationUID = slide.dimension_organization_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x0048021A  # Plane Position (Slide) Sequence
        item.DimensionDescriptionLabel = label
        index.append(item)
    ds.DimensionIndexSequence = DicomSequence(index)


def _functional_groups(ds: Dataset, level: LevelSpec) -> None:
    """PS3.3 C.8.12.6: shared groups only (TILED_FULL needs no per-frame items)."""
    import highdicom as hd

    shared = Dataset()
    if level.pixel_spacing_mm is not None:
        shared.PixelMeasuresSequence = hd.PixelMeasuresSequence(
            pixel_spacing=level.pixel_spacing_mm, slice_thickness=0.001,
        )
    frame_type = Dataset()
    frame_type.FrameType = list(ds.ImageType)
    shared.WholeSlideMicroscopyImageFrameTypeSequence = DicomSequence([frame_type])
    path_id = Dataset()
    path_id.OpticalPathIdentifier = "1"
    shared.OpticalPathIdentificationSequence = DicomSequence([path_id])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])


def _specimen(ds: Dataset, slide: SlideInfo) -> None:
    """PS3.3 C.8.12.2 Specimen module: one slide holding one specimen."""
    import highdicom as hd

    ds.ContainerIdentifier = slide.container_id
    ds.IssuerOfTheContainerIdentifierSequence = DicomSequence()
    ds.ContainerTypeCodeSequence = _code_item(_SLIDE)
    description = hd.SpecimenDescription(specimen_id=slide.specimen_id, specimen_uid=slide.specimen_uid)
    ds.SpecimenDescriptionSequence = DicomSequence([description])


def _optical_path(ds: Dataset) -> None:
    """PS3.3 C.8.12.5 Optical Path: brightfield, full spectrum, sRGB."""
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.IlluminationTypeCodeSequence = _code_item(_BRIGHTFIELD)
    path.IlluminationColorCodeSequence = _code_item(_FULL_SPECTRUM)
    path.ICCProfile = _srgb_profile()
    path.ColorSpace = "SRGB"
    ds.OpticalPathSequence = DicomSequence([path])
    ds.NumberOfOpticalPaths = 1


def write_wsi_level(
    path: str | os.PathLike[str],
    header: Dataset,
    frames: Iterable[bytes],
    *,
    extended_offsets: bool = False,
) -> Path:
    """Stream a level's frames (TILED_FULL order) after ``header`` into a Part 10 file.

    Raises
    ------
    ValueError
        If the number of frames differs from NumberOfFrames (nothing is left behind).
    """
    with open_frame_writer(
        path, header, transfer_syntax_uid=header.file_meta.TransferSyntaxUID,
        number_of_frames=int(header.NumberOfFrames), extended=extended_offsets,
    ) as writer:
        for frame in frames:
            writer.add_frame(frame)
    return Path(path)


def read_wsi_frame(path: str | os.PathLike[str], index: int) -> bytes:
    """The encoded bytes of frame ``index`` (0-based) of a level file, pad removed."""
    ds = dcmread(path)
    n = int(ds.NumberOfFrames)
    if not 0 <= index < n:
        raise InvalidInput(f"frame index must be in 0..{n - 1}, got {index}")
    for i, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=n)):
        if i == index:
            if frame.endswith(b"\xff\xd9\x00"):
                frame = frame[:-1]
            return bytes(frame)
    raise InvalidInput(f"frame {index} not found")
