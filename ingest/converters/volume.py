"""CT and micro-CT volumes: TIFF slice stacks and NIfTI-1 files to CT Image series.

A TIFF stack (a folder of single-page TIFFs in natural name order, or one multipage
TIFF) is checked in full from its headers first: every slice must share size and
sample type, or nothing is written. Slices are then converted one at a time, so memory
holds one slice whatever the stack size. The curator gives the voxel size.

NIfTI-1 files (``.nii``, ``.nii.gz``) are read by our own small reader: header,
sform (else qform, else pixdim) affine, scl_slope/scl_inter. NIfTI world space is
RAS; DICOM patient space is LPS, so x and y change sign.
"""

from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archive.dicom.ct import Rescale, VolumeGeometry, build_ct_slice, update_ct_slice
from archive.dicom.part10 import encode_header, write_native_pixel_file
from archive.errors import InvalidInput
from ingest.converters.base import BackgroundWriter, OutputFile, Target, output_set

__all__ = [
    "Nifti", "convert_nifti", "convert_tiff_stack", "list_tiff_slices", "read_nifti", "write_ct_series",
]

_TIFF_SUFFIXES = (".tif", ".tiff")


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_tiff_slices(source: Path) -> list[Path]:
    """The TIFF files of a folder, in natural order (slice_2 before slice_10)."""
    if source.is_file():
        return [source]
    files = [p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in _TIFF_SUFFIXES
             and not p.name.startswith(".")]
    if not files:
        raise InvalidInput(f"{source.name}: folder holds no .tif/.tiff slices")
    return sorted(files, key=_natural_key)


def _storable(dtype: np.dtype, where: str) -> np.dtype:
    """The CT storage type for a TIFF sample type (8-bit widened, 16-bit kept)."""
    if dtype in (np.uint8, np.uint16):
        return np.dtype("uint16")
    if dtype in (np.int8, np.int16):
        return np.dtype("int16")
    raise InvalidInput(f"{where}: sample type {dtype} is not supported; slices must be 8 or 16-bit")


@dataclass(frozen=True)
class _Stack:
    files: list[Path]
    multipage: bool
    count: int
    shape: tuple[int, int]
    dtype: np.dtype


def _inspect_stack(files: list[Path]) -> _Stack:
    """Check every slice's header; raise InvalidInput naming the first that differs."""
    import tifffile

    def describe(path: Path) -> list[tuple[tuple[int, ...], np.dtype]]:
        try:
            # An open handle spares tifffile a realpath() per file (slow on overlay fs).
            with open(path, "rb") as fh, tifffile.TiffFile(fh) as tif:
                return [(tuple(p.shape), np.dtype(p.dtype)) for p in tif.pages]  # type: ignore[union-attr]
        except (tifffile.TiffFileError, OSError, ValueError) as exc:
            raise InvalidInput(f"{path.name}: unreadable TIFF ({exc})") from exc

    if len(files) == 1:
        pages = describe(files[0])
        names = [f"{files[0].name} page {i + 1}" for i in range(len(pages))]
        multipage = True
    else:
        pages, names = [], []
        for path in files:
            found = describe(path)
            if len(found) != 1:
                raise InvalidInput(f"{path.name}: a stack slice must have one page, got {len(found)}")
            pages.append(found[0])
            names.append(path.name)
        multipage = False
    shape0, dtype0 = pages[0]
    if len(shape0) != 2:
        raise InvalidInput(f"{names[0]}: slices must be single-channel 2-D images, got shape {shape0}")
    for name, (shape, dtype) in zip(names, pages):
        if shape != shape0:
            raise InvalidInput(f"{name}: slice size {shape} differs from the first slice {shape0}")
        if dtype != dtype0:
            raise InvalidInput(f"{name}: slice sample type {dtype} differs from the first slice {dtype0}")
    _storable(dtype0, names[0])
    return _Stack(files, multipage, len(pages), shape0, dtype0)  # type: ignore[arg-type]


def _iter_slices(stack: _Stack) -> Iterator[np.ndarray]:
    import tifffile

    if stack.multipage:
        with tifffile.TiffFile(stack.files[0]) as tif:
            for page in tif.pages:
                yield page.asarray()  # type: ignore[union-attr]
    else:
        for path in stack.files:
            with open(path, "rb") as fh, tifffile.TiffFile(fh) as tif:
                yield tif.pages[0].asarray()  # type: ignore[union-attr]


def convert_tiff_stack(
    source: Path,
    target: Target,
    *,
    voxel_mm: tuple[float, float, float] | None,
    rescale: Rescale = Rescale(),
) -> list[OutputFile]:
    """A folder of TIFF slices, or a multipage TIFF, to a CT Image series.

    Parameters
    ----------
    voxel_mm
        Voxel size (x, y, z) in mm, given by the curator. Required.

    Raises
    ------
    InvalidInput
        If the voxel size is missing, or slices differ in size or sample type, or
        are not 8/16-bit single-channel images.
    """
    if voxel_mm is None:
        raise InvalidInput("voxel_mm is required for TIFF stacks (voxel size x, y, z in mm)")
    geometry = VolumeGeometry.from_voxel_size(voxel_mm)
    stack = _inspect_stack(list_tiff_slices(Path(source)))
    store = _storable(stack.dtype, stack.files[0].name)
    widened = store.itemsize != stack.dtype.itemsize
    planes = (plane.astype(store, copy=False) for plane in _iter_slices(stack))
    return write_ct_series(
        planes, stack.count, target, name=Path(source).name, geometry=geometry, rescale=rescale,
        derivation=f"{stack.dtype} samples widened to 16 bits" if widened else "",
    )


def write_ct_series(
    planes: Iterator[np.ndarray],
    count: int,
    target: Target,
    *,
    name: str,
    geometry: VolumeGeometry,
    rescale: Rescale,
    derivation: str = "",
) -> list[OutputFile]:
    """Write ``count`` slices as one CT series, one Part 10 file per slice.

    The first slice is built with ``build_ct_slice``; the following ones reuse its
    header and change only what differs per slice (UID, number, position), and files
    are written on a background thread, so a stack converts at close to disk speed.
    """
    series = target.new_series(name)
    frame = target.uids()
    target.on_progress("ct", 0.0)
    header = None
    with output_set(target.out_dir, name) as outputs, BackgroundWriter() as writer:
        for index, plane in enumerate(planes):
            uid = target.uids()
            if header is None:
                header = build_ct_slice(
                    plane, index=index, geometry=geometry, patient=target.patient,
                    study=target.study, series=series, instance_uid=uid,
                    frame_of_reference_uid=frame, created=target.now, rescale=rescale,
                    equipment=target.equipment, derivation=derivation,
                )
                if target.extra is not None:
                    header.update(target.extra)
                del header.PixelData
                first = plane
            else:
                if plane.shape != first.shape or plane.dtype != first.dtype:
                    raise InvalidInput(f"{name}: slice {index + 1} differs in size or type from slice 1")
                update_ct_slice(header, index=index, geometry=geometry, instance_uid=uid)
            path = outputs.path_for(header)
            outputs.record(header, path)
            pixels = np.ascontiguousarray(plane, dtype=plane.dtype.newbyteorder("<"))
            writer.submit(write_native_pixel_file, path, encode_header(header), pixels)
            target.on_progress("ct", (index + 1) / count)
        writer.drain()
    if len(outputs.files) != count:
        raise InvalidInput(f"{name}: expected {count} slices, read {len(outputs.files)}")
    return outputs.files


# NIfTI-1 datatype codes (nifti1.h) to numpy sample types.
_NIFTI_TYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4"}


@dataclass(frozen=True)
class Nifti:
    """A NIfTI-1 volume: data ``(x, y, z)``, its voxel-to-RAS affine and scaling."""

    data: np.ndarray
    affine: np.ndarray
    slope: float
    intercept: float


def _quaternion_affine(b: float, c: float, d: float, pixdim: tuple[float, ...], offset: tuple[float, ...]) -> np.ndarray:
    """The qform affine of NIfTI-1 method 2."""
    a = np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    rot = np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([pixdim[1], pixdim[2], pixdim[3] * qfac])
    affine[:3, 3] = offset
    return affine


def read_nifti(path: Path) -> Nifti:
    """Read a single-file NIfTI-1 volume (``.nii`` or ``.nii.gz``).

    Raises
    ------
    InvalidInput
        For a bad header, a non-3D volume, an unknown datatype or truncated data.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InvalidInput(f"{Path(path).name}: corrupt gzip stream ({exc})") from exc
    if len(raw) < 352:
        raise InvalidInput(f"{Path(path).name}: {len(raw)} bytes is too short for a NIfTI-1 header")
    endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
    if struct.unpack(f"{endian}i", raw[:4])[0] != 348 or raw[344:347] != b"n+1":
        raise InvalidInput(f"{Path(path).name}: not a single-file NIfTI-1 (sizeof_hdr/magic)")
    dim = struct.unpack(f"{endian}8h", raw[40:56])
    datatype, _bitpix = struct.unpack(f"{endian}hh", raw[70:74])
    pixdim = struct.unpack(f"{endian}8f", raw[76:108])
    vox_offset = int(struct.unpack(f"{endian}f", raw[108:112])[0])
    slope, inter = struct.unpack(f"{endian}ff", raw[112:120])
    qform_code, sform_code = struct.unpack(f"{endian}hh", raw[252:256])
    quat = struct.unpack(f"{endian}6f", raw[256:280])
    srow = np.array(struct.unpack(f"{endian}12f", raw[280:328]), dtype=np.float64).reshape(3, 4)
    ndim = dim[0]
    if not 2 <= ndim <= 7 or any(n > 1 for n in dim[4:ndim + 1]):
        raise InvalidInput(f"{Path(path).name}: only 3-D volumes are supported, got dim {dim[:ndim + 1]}")
    shape = tuple(max(1, n) for n in dim[1:4])
    if datatype not in _NIFTI_TYPES:
        raise InvalidInput(f"{Path(path).name}: NIfTI datatype {datatype} is not supported")
    dtype = np.dtype(endian + _NIFTI_TYPES[datatype])
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if vox_offset < 352 or vox_offset + nbytes > len(raw):
        raise InvalidInput(f"{Path(path).name}: data is truncated ({len(raw) - vox_offset} of {nbytes} bytes)")
    data = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=vox_offset)
    data = data.reshape(shape, order="F")
    if sform_code > 0:
        affine = np.vstack([srow, [0, 0, 0, 1]])
    elif qform_code > 0:
        affine = _quaternion_affine(quat[0], quat[1], quat[2], pixdim, quat[3:])
    else:
        affine = np.diag([pixdim[1] or 1.0, pixdim[2] or 1.0, pixdim[3] or 1.0, 1.0])
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InvalidInput(f"{Path(path).name}: degenerate voxel-to-world affine")
    return Nifti(data=data, affine=affine, slope=float(slope), intercept=float(inter))


def _to_stored(data: np.ndarray, slope: float, intercept: float) -> tuple[np.ndarray, Rescale]:
    """Integer 16-bit samples and the rescale that maps them back to NIfTI values."""
    base = Rescale(slope if slope not in (0.0,) and np.isfinite(slope) else 1.0,
                   intercept if np.isfinite(intercept) else 0.0)
    kind = data.dtype.kind
    if data.dtype.itemsize <= 2 and kind in "iu":
        store = np.uint16 if kind == "u" else np.int16
        return data.astype(store), base
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if kind in "iu" and lo >= -32768 and hi <= 32767:
        return data.astype(np.int16), base
    # Wider or float samples: map [lo, hi] linearly onto int16, compose the rescale.
    step = (hi - lo) / 65535.0 or 1.0
    stored = np.rint((np.nan_to_num(data, nan=lo) - lo) / step - 32768).astype(np.int16)
    return stored, Rescale(base.slope * step, base.intercept + base.slope * (lo + 32768 * step))


def convert_nifti(path: Path, target: Target, *, hounsfield: bool = False) -> list[OutputFile]:
    """A NIfTI-1 volume to a CT Image series placed by its affine (RAS to LPS)."""
    nifti = read_nifti(Path(path))
    stored, rescale = _to_stored(nifti.data, nifti.slope, nifti.intercept)
    rescale = Rescale(rescale.slope, rescale.intercept, hounsfield)
    lps = np.diag([-1.0, -1.0, 1.0]) @ nifti.affine[:3]
    col_vec, row_vec, slice_vec, origin = lps[:, 0], lps[:, 1], lps[:, 2], lps[:, 3]
    geometry = VolumeGeometry(
        pixel_spacing_mm=(float(np.linalg.norm(row_vec)), float(np.linalg.norm(col_vec))),
        slice_step_mm=tuple(slice_vec.tolist()),  # type: ignore[arg-type]
        origin_mm=tuple(origin.tolist()),  # type: ignore[arg-type]
        row_direction=tuple((col_vec / np.linalg.norm(col_vec)).tolist()),  # type: ignore[arg-type]
        column_direction=tuple((row_vec / np.linalg.norm(row_vec)).tolist()),  # type: ignore[arg-type]
        slice_thickness_mm=float(np.linalg.norm(slice_vec)),
    )
    planes = (np.ascontiguousarray(stored[:, :, k].T) for k in range(stored.shape[2]))
    # DICOM column index = NIfTI i, row index = NIfTI j.
    return write_ct_series(planes, stored.shape[2], target, name=Path(path).name, geometry=geometry,
                           rescale=rescale, derivation=f"NIfTI-1 {Path(path).name} converted")
