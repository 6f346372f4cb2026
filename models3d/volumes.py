"""A stored CT (or MR, micro-CT) series as one volume in Hounsfield units.

Pure: no Django. The service hands in each instance's file path and DICOM JSON
metadata; ``plan_volume`` checks the geometry from the metadata alone (no pixel is
read before the series is known to form a regular grid), and ``read_volume``
allocates the volume once and fills it slice by slice with pydicom.

# PS3.3 C.7.6.2 (Image Plane: ImagePositionPatient, ImageOrientationPatient,
# PixelSpacing), C.11.1 (Modality LUT: RescaleSlope, RescaleIntercept)
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from archive.errors import InvalidInput
from archive.part10 import EXPLICIT_LE, IMPLICIT_LE, scan_part10
from models3d.kernels import to_patient_space
from models3d.typed import Spacing, Vertices

#: Gaps between slices may differ by this much (mm) or this fraction, whichever is larger.
SPACING_TOLERANCE_MM = 0.01
SPACING_TOLERANCE_REL = 0.01
#: Direction cosines of two slices may differ by this much and still be parallel.
ORIENTATION_TOLERANCE = 1e-4
#: Colour of the threshold mask in the preview (RGB) and its opacity.
OVERLAY_RGB = (255, 140, 0)
OVERLAY_ALPHA = 0.5

_INT16 = np.iinfo(np.int16)
_UINT16 = np.iinfo(np.uint16)


@dataclass(frozen=True)
class SliceInfo:
    """What the geometry check needs from one image, read from its DICOM JSON."""

    path: str
    sop_class_uid: str
    sop_uid: str
    position_mm: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing_mm: tuple[float, float]  # (between rows, between columns)
    rows: int
    columns: int
    slope: float = 1.0
    intercept: float = 0.0
    bits_stored: int = 16
    signed: bool = True
    frames: int = 1
    bits_allocated: int = 16
    transfer_syntax: str = ""  # "" when unknown: pydicom reads the pixels


@dataclass(frozen=True)
class VolumeGeometry:
    """A checked series: slices sorted along the slice normal, and the grid they form.

    ``spacing_mm`` is ``(dz, dy, dx)``; ``position_mm`` is ImagePositionPatient of the
    first slice (voxel (0, 0, 0)); ``dtype`` the volume's planned dtype.
    """

    slices: tuple[SliceInfo, ...]
    shape: tuple[int, int, int]
    spacing_mm: Spacing
    position_mm: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    dtype: np.dtype

    def to_patient(self, vertices: Vertices) -> Vertices:
        """Volume-frame vertices ``(V, 3)`` (mm, voxel (0,0,0) at origin) to patient mm."""
        return to_patient_space(vertices, self.position_mm, self.orientation)


def _values(metadata: dict[str, Any], tag: str) -> list[Any] | None:
    element = metadata.get(tag)
    if not element:
        return None
    return element.get("Value")


def _floats(metadata: dict[str, Any], tag: str, keyword: str, count: int, sop_uid: str) -> tuple[float, ...]:
    values = _values(metadata, tag)
    if values is None or len(values) != count:
        raise InvalidInput(f"instance {sop_uid} has no {keyword} with {count} values, got {values!r}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InvalidInput(f"instance {sop_uid} has a malformed {keyword}: {values!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise InvalidInput(f"instance {sop_uid} has a non-finite {keyword}: {values!r}")
    return out


def _first(metadata: dict[str, Any], tag: str, default: Any) -> Any:
    values = _values(metadata, tag)
    return values[0] if values else default


def slice_from_json(path: str, sop_uid: str, sop_class_uid: str, metadata: dict[str, Any],
                    transfer_syntax: str = "") -> SliceInfo:
    """Read one image's plane and pixel description from its DICOM JSON.

    Raises
    ------
    InvalidInput
        If the image lacks position, orientation, spacing or size.
    """
    if "7FE00010" not in metadata:
        raise InvalidInput(f"instance {sop_uid} holds no pixel data (SOP class {sop_class_uid})")
    rows, columns = int(_first(metadata, "00280010", 0)), int(_first(metadata, "00280011", 0))
    if rows < 1 or columns < 1:
        raise InvalidInput(f"instance {sop_uid} has no Rows/Columns")
    samples = int(_first(metadata, "00280002", 1))
    if samples != 1:
        raise InvalidInput(f"instance {sop_uid} has {samples} samples per pixel; meshing needs grey levels")
    return SliceInfo(
        path=path,
        sop_class_uid=sop_class_uid,
        sop_uid=sop_uid,
        position_mm=_floats(metadata, "00200032", "ImagePositionPatient", 3, sop_uid),  # type: ignore[arg-type]
        orientation=_floats(metadata, "00200037", "ImageOrientationPatient", 6, sop_uid),  # type: ignore[arg-type]
        pixel_spacing_mm=_floats(metadata, "00280030", "PixelSpacing", 2, sop_uid),  # type: ignore[arg-type]
        rows=rows,
        columns=columns,
        slope=float(_first(metadata, "00281053", 1.0)),
        intercept=float(_first(metadata, "00281052", 0.0)),
        bits_stored=int(_first(metadata, "00280101", 16)),
        signed=int(_first(metadata, "00280103", 0)) == 1,
        frames=int(_first(metadata, "00280008", 1) or 1),
        bits_allocated=int(_first(metadata, "00280100", 16)),
        transfer_syntax=transfer_syntax,
    )


def _unit_normal(orientation: Sequence[float]) -> np.ndarray:
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3 or abs(row @ col) > 1e-3:
        raise InvalidInput(f"ImageOrientationPatient must be two orthonormal vectors, got {tuple(orientation)}")
    return np.cross(row, col)


def _planned_dtype(slices: Sequence[SliceInfo]) -> np.dtype:
    """int16 or uint16 when every rescale is integral and fits, else float32."""
    integral = all(float(s.slope).is_integer() and float(s.intercept).is_integer() for s in slices)
    if not integral:
        return np.dtype(np.float32)
    lows, highs = [], []
    for s in slices:
        lo, hi = (-(1 << (s.bits_stored - 1)), (1 << (s.bits_stored - 1)) - 1) if s.signed else (0, (1 << s.bits_stored) - 1)
        a, b = s.intercept + s.slope * lo, s.intercept + s.slope * hi
        lows.append(min(a, b))
        highs.append(max(a, b))
    if min(lows) >= 0 and max(highs) <= _UINT16.max:
        return np.dtype(np.uint16)  # micro-CT stacks: unsigned raw values kept exact
    # Stored ranges are usually far wider than the values used (16 bits for 12 bits of
    # CT): plan int16 and widen to float32 only if a slice's values do not fit.
    return np.dtype(np.int16)


def plan_volume(slices: Sequence[SliceInfo]) -> VolumeGeometry:
    """Sort slices along their normal and check that they form a regular grid.

    Returns
    -------
    VolumeGeometry

    Raises
    ------
    InvalidInput
        Fewer than two slices, multi-frame images, differing size, spacing or
        orientation, two slices at one position, slices sheared against the normal
        (gantry tilt), or gaps that are not uniform.
    """
    if len(slices) < 2:
        raise InvalidInput(f"a volume needs at least two slices, the series has {len(slices)}")
    first = slices[0]
    for s in slices:
        if s.frames != 1:
            raise InvalidInput(f"instance {s.sop_uid} has {s.frames} frames; meshing reads single-frame slices")
        if (s.rows, s.columns) != (first.rows, first.columns):
            raise InvalidInput(f"slices differ in size: {first.rows}x{first.columns} and {s.rows}x{s.columns} "
                               f"(instance {s.sop_uid})")
        if not np.allclose(s.pixel_spacing_mm, first.pixel_spacing_mm, rtol=0, atol=1e-4):
            raise InvalidInput(f"slices differ in PixelSpacing: {first.pixel_spacing_mm} and {s.pixel_spacing_mm} "
                               f"(instance {s.sop_uid})")
        if not np.allclose(s.orientation, first.orientation, rtol=0, atol=ORIENTATION_TOLERANCE):
            raise InvalidInput(f"slices differ in ImageOrientationPatient: {first.orientation} and "
                               f"{s.orientation} (instance {s.sop_uid})")
    if min(first.pixel_spacing_mm) <= 0:
        raise InvalidInput(f"PixelSpacing must be positive, got {first.pixel_spacing_mm}")
    normal = _unit_normal(first.orientation)
    positions = np.array([s.position_mm for s in slices], dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    ordered = tuple(slices[i] for i in order)
    gaps = np.diff(along)
    if np.any(gaps < SPACING_TOLERANCE_MM):
        k = int(np.argmin(gaps))
        raise InvalidInput(f"two slices lie at the same position {along[k]:.3f} mm along the slice normal "
                           f"(instances {ordered[k].sop_uid} and {ordered[k + 1].sop_uid})")
    step = float(np.median(gaps))
    tolerance = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_REL * step)
    worst = int(np.argmax(np.abs(gaps - step)))
    if abs(gaps[worst] - step) > tolerance:
        raise InvalidInput(
            f"slices are not uniformly spaced: gaps range from {gaps.min():.4g} to {gaps.max():.4g} mm "
            f"along the slice normal (median {step:.4g} mm; the gap after slice {worst + 1} of "
            f"{len(gaps) + 1} is {gaps[worst]:.4g} mm). Mesh a part with uniform spacing or resample the series."
        )
    # In-plane offsets of every slice must match the first: otherwise the stack is sheared.
    drift = positions - positions[0] - np.outer(along - along[0], normal)
    limit = max(SPACING_TOLERANCE_MM, 0.05 * min(first.pixel_spacing_mm))
    if np.abs(drift).max() > limit:
        raise InvalidInput(f"slices are shifted in-plane by up to {np.abs(drift).max():.3g} mm "
                           "(a tilted gantry?); meshing needs an unsheared stack")
    row_mm, col_mm = first.pixel_spacing_mm
    return VolumeGeometry(
        slices=ordered,
        shape=(len(ordered), first.rows, first.columns),
        spacing_mm=(step, float(row_mm), float(col_mm)),
        position_mm=tuple(float(x) for x in positions[0]),  # type: ignore[arg-type]
        orientation=first.orientation,
        dtype=_planned_dtype(ordered),
    )


# Little-endian native pixels read straight from the file, as pydicom would return them:
# every stored bit used, one frame.
_RAW_SYNTAXES = frozenset({IMPLICIT_LE, EXPLICIT_LE})


def _raw_pixels(info: SliceInfo) -> np.ndarray | None:
    """The slice's pixels read at their offset in the file, or None where pydicom must
    decode them (compressed, big endian, packed bits, several frames)."""
    if (info.transfer_syntax not in _RAW_SYNTAXES or info.frames != 1
            or info.bits_allocated not in (8, 16) or info.bits_stored != info.bits_allocated):
        return None
    with open(info.path, "rb") as fp:
        layout = scan_part10(fp, os.fstat(fp.fileno()).st_size)
    dtype = np.dtype(f"<{'i' if info.signed else 'u'}{info.bits_allocated // 8}")
    count = info.rows * info.columns
    if layout.pixel_offset is None or (layout.pixel_length or 0) < count * dtype.itemsize:
        return None
    return np.fromfile(info.path, dtype=dtype, count=count, offset=layout.pixel_offset).reshape(info.rows, info.columns)


def _stored_pixels(info: SliceInfo) -> np.ndarray:
    from pydicom.pixels import pixel_array

    raw = _raw_pixels(info)
    if raw is not None:
        return raw
    try:
        pixels = pixel_array(info.path)  # reads only the pixel module: no full data set
    except (ValueError, NotImplementedError, RuntimeError, AttributeError, TypeError) as exc:
        raise InvalidInput(f"instance {info.sop_uid}: the pixel data cannot be decoded: {exc}") from None
    if pixels.shape != (info.rows, info.columns):
        raise InvalidInput(f"instance {info.sop_uid}: pixel data of shape {pixels.shape}, expected "
                           f"({info.rows}, {info.columns})")
    return pixels


def _rescale_into(out: np.ndarray, pixels: np.ndarray, slope: int, intercept: int) -> bool:
    """Write ``pixels * slope + intercept`` into integer ``out``; False if it does not fit.

    With slope 1 and an intercept of ``out``'s type the sum runs in that type: modular
    arithmetic gives the exact result whenever the result fits, which is checked first.
    """
    limits = np.iinfo(out.dtype)
    if pixels.size == 0:
        return True
    lo, hi = int(pixels.min()) * slope + intercept, int(pixels.max()) * slope + intercept
    if min(lo, hi) < limits.min or max(lo, hi) > limits.max:
        return False
    if slope == 1 and limits.min <= intercept <= limits.max and pixels.dtype.itemsize <= out.dtype.itemsize:
        np.add(pixels, out.dtype.type(intercept), out=out, casting="unsafe")
    else:
        out[...] = pixels.astype(np.int64) * slope + intercept
    return True


def read_slice(info: SliceInfo) -> np.ndarray:
    """One slice in rescaled units (HU for CT) as ``(rows, columns) float32``."""
    pixels = _stored_pixels(info).astype(np.float32)
    return pixels * np.float32(info.slope) + np.float32(info.intercept)


def read_volume(geometry: VolumeGeometry,
                on_slice: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Read every slice into one volume in rescaled units (HU for CT).

    Parameters
    ----------
    geometry : VolumeGeometry
        From :func:`plan_volume`.
    on_slice : callable, optional
        Called as ``on_slice(done, total)`` after each slice; may raise to stop.

    Returns
    -------
    (nz, ny, nx) int16, uint16 or float32
        Indexed ``[z, y, x]`` in the order of ``geometry.slices``. Allocated once;
        int16 is widened to float32 (one copy) if a slice's values do not fit.
    """
    volume = np.empty(geometry.shape, dtype=geometry.dtype)
    total = len(geometry.slices)
    for k, info in enumerate(geometry.slices):
        pixels = _stored_pixels(info)
        if volume.dtype != np.float32 and not _rescale_into(volume[k], pixels, int(info.slope), int(info.intercept)):
            volume = volume.astype(np.float32)  # values beyond the planned integer type: widen once
        if volume.dtype == np.float32:
            np.multiply(pixels, np.float32(info.slope), out=volume[k], casting="unsafe")
            volume[k] += np.float32(info.intercept)
        if on_slice is not None:
            on_slice(k + 1, total)
    return volume


def render_overlay_png(image: np.ndarray, mask: np.ndarray) -> bytes:
    """A greyscale slice with the voxels where ``mask`` is set tinted, as PNG.

    The grey levels stretch the slice's 1st to 99th percentile (so CT and micro-CT
    both show); the tint is :data:`OVERLAY_RGB` at :data:`OVERLAY_ALPHA`.
    """
    from PIL import Image

    image = np.asarray(image, dtype=np.float32)
    if mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    lo, hi = (float(p) for p in np.percentile(image, [1, 99])) if image.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    grey = np.clip((image - lo) / (hi - lo) * 255.0, 0, 255)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    tint = np.asarray(OVERLAY_RGB, dtype=np.float32)
    rgb[mask] = (1 - OVERLAY_ALPHA) * rgb[mask] + OVERLAY_ALPHA * tint
    out = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(out, format="PNG")
    return out.getvalue()
