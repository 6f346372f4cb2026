"""Label masks on the grid of a CT series: DICOM SEG, RT Structure Sets, NIfTI label maps.

Pure: no Django. Each reader yields ``(label, mask)`` pairs, one per segment, ROI or
label value, where ``mask`` is ``(nz, ny, nx) uint8`` 0/1 on the grid of a
:class:`~models3d.volumes.VolumeGeometry` (slices in its order). A job meshes each at
0.5, so every label becomes its own model. Masks are made one at a time, as the job
asks for the next: a SEG of a hundred segments on a 512-slice CT would hold 13 GB as
a list (TotalSegmentator writes 117).

# PS3.3 A.51 (Segmentation IOD), C.8.8.5/C.8.8.6 (Structure Set ROI, ROI Contour:
# CLOSED_PLANAR contours, inner contours as holes by the even-odd rule)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from archive.errors import InvalidInput
from models3d.volumes import VolumeGeometry

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
#: A contour's points must lie this close to a slice (in slice spacings).
SLICE_TOLERANCE = 0.25


def _wanted(labels: Sequence[str], number: int, name: str) -> bool:
    return not labels or str(number) in labels or name in labels


def _label_name(number: int, name: str) -> str:
    return f"{number} {name}".strip()[:64]


@dataclass
class LabelMasks:
    """The masks of one mask source, made as they are iterated.

    ``count`` labels are planned (asked for, and present in the headers); iterating
    yields those of them that hold voxels, one mask at a time.
    """

    count: int
    masks: Iterator[tuple[str, np.ndarray]]

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        return self.masks


def _check_present(labels: Sequence[str], present: list[tuple[int, str]], what: str) -> int:
    """Raise for a label asked for that no header holds ("``what`` [labels]; it has …");
    the number of labels planned."""
    missing = [x for x in labels if not any(x in (str(n), name) for n, name in present)]
    if missing:
        raise InvalidInput(f"{what} {missing}; it has {[_label_name(n, name) for n, name in present]}")
    return sum(_wanted(labels, n, name) for n, name in present)


def read_label_volumes(paths: Sequence[str | Path], geometry: VolumeGeometry,
                       labels: Sequence[str] = ()) -> LabelMasks:
    """The masks held in a SEG or RTSTRUCT series, on the grid of ``geometry``.

    Parameters
    ----------
    paths
        The Part 10 files of the mask series.
    geometry
        The CT series the masks are drawn on.
    labels
        Segment numbers / ROI numbers or their names; empty for every one.

    Raises
    ------
    InvalidInput
        Here, for another SOP class or a label that no instance holds; while iterating,
        for masks off the grid.
    """
    if not paths:
        raise InvalidInput("the mask series holds no instance")
    headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in paths]
    sop_classes = {str(ds.SOPClassUID) for ds in headers}
    if sop_classes == {SEG_SOP_CLASS}:
        present = [(int(s.SegmentNumber), str(s.SegmentLabel)) for ds in headers for s in ds.SegmentSequence]
        count = _check_present(labels, present, "the segmentation has no segment")
        # highdicom reads each instance again, pixels and all, when its masks are made.
        return LabelMasks(count, (mask for path in paths for mask in read_seg_masks(path, geometry, labels)))
    if sop_classes == {RTSTRUCT_SOP_CLASS}:
        present = [(int(r.ROINumber), str(r.get("ROIName", "")))
                   for ds in headers for r in ds.get("StructureSetROISequence", [])]
        count = _check_present(labels, present, "the structure set has no ROI")
        # A structure set has no pixel data: the header pass read it whole.
        return LabelMasks(count, (mask for ds in headers for mask in read_rtstruct_masks(ds, geometry, labels)))
    raise InvalidInput(f"a mask series must hold DICOM SEG or RTSTRUCT only, got SOP classes {sorted(sop_classes)}")


# --- DICOM SEG (highdicom) ---------------------------------------------------------------


def read_seg_masks(path: str | Path, geometry: VolumeGeometry,
                   labels: Sequence[str] = ()) -> Iterator[tuple[str, np.ndarray]]:
    """One 0/1 mask per wanted segment of a Segmentation that references the series'
    slices, made as it is asked for."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    segments = [(int(s.SegmentNumber), str(s.SegmentLabel)) for s in seg.SegmentSequence]
    chosen = [(n, name) for n, name in segments if _wanted(labels, n, name)]
    if not chosen:
        return
    uids = [s.sop_uid for s in geometry.slices]
    referenced = {sop_uid for _study, _series, sop_uid in seg.get_source_image_uids()}
    if not referenced & set(uids):
        raise InvalidInput("the segmentation references none of the series' images")
    for number, name in chosen:
        try:
            pixels = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=uids, segment_numbers=[number],
                assert_missing_frames_are_empty=True, dtype=np.uint8)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise InvalidInput(f"segment {number} cannot be laid on the series' grid: {exc}") from None
        mask = np.ascontiguousarray((pixels[..., 0] > 0).astype(np.uint8))
        if mask.shape != geometry.shape:
            raise InvalidInput(f"segment {number} has shape {mask.shape}, the series {geometry.shape}")
        if mask.any():
            yield _label_name(number, name), mask


# --- RT Structure Set ----------------------------------------------------------------------


def _to_voxels(points_mm: np.ndarray, geometry: VolumeGeometry) -> np.ndarray:
    """(n, 3) patient mm to (n, 3) continuous voxel indices ``(i, j, k)`` = (column, row, slice)."""
    o = np.asarray(geometry.orientation, dtype=np.float64)
    row, col = o[:3], o[3:]
    axes = np.stack([row, col, np.cross(row, col)])
    dz, dy, dx = geometry.spacing_mm
    return ((points_mm - np.asarray(geometry.position_mm)) @ axes.T) / np.array([dx, dy, dz])


def fill_polygon(shape: tuple[int, int], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(rows, columns) bool: pixel centres inside a closed polygon by the even-odd rule.

    ``xs`` are column and ``ys`` row coordinates (pixel centres at integers).
    """
    rows, columns = shape
    inside = np.zeros(shape, dtype=bool)
    x0, y0 = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    keep = y0 != y1
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    if not len(x0):
        return inside
    for j in range(max(0, math.ceil(y0.min())), min(rows - 1, math.floor(max(y0.max(), y1.max()))) + 1):
        crosses = ((y0 <= j) & (j < y1)) | ((y1 <= j) & (j < y0))
        at = np.sort(x0[crosses] + (j - y0[crosses]) * (x1[crosses] - x0[crosses]) / (y1[crosses] - y0[crosses]))
        for a, b in zip(at[0::2], at[1::2]):
            lo, hi = max(0, math.ceil(a)), min(columns, math.ceil(b))
            if lo < hi:
                inside[j, lo:hi] = True
    return inside


def read_rtstruct_masks(source: str | Path | pydicom.Dataset, geometry: VolumeGeometry,
                        labels: Sequence[str] = ()) -> Iterator[tuple[str, np.ndarray]]:
    """One 0/1 mask per wanted ROI, made as it is asked for: closed planar contours
    filled slice by slice. ``source`` is the structure set's file, or the data set read
    from it.

    Contours of one ROI on one slice combine by the even-odd rule, so an inner
    contour cuts a hole (the common reading of PS3.3 C.8.8.6).
    """
    ds = source if isinstance(source, pydicom.Dataset) else pydicom.dcmread(str(source))
    names = {int(r.ROINumber): str(r.get("ROIName", "")) for r in ds.get("StructureSetROISequence", [])}
    nz, ny, nx = geometry.shape
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        name = names.get(number, "")
        if not _wanted(labels, number, name):
            continue
        mask = np.zeros(geometry.shape, dtype=np.uint8)
        for contour in roi.get("ContourSequence", []):
            if contour.get("ContourGeometricType", "CLOSED_PLANAR") != "CLOSED_PLANAR":
                continue
            points = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
            voxels = _to_voxels(points, geometry)
            k = float(np.median(voxels[:, 2]))
            slice_index = round(k)
            if np.abs(voxels[:, 2] - slice_index).max() > SLICE_TOLERANCE:
                raise InvalidInput(f"ROI {number} has a contour between slices (at slice {k:.2f}); "
                                   "contours must lie on the series' image planes")
            if not 0 <= slice_index < nz:
                continue
            mask[slice_index] ^= fill_polygon((ny, nx), voxels[:, 0], voxels[:, 1])
        if mask.any():
            yield _label_name(number, name), mask


# --- NIfTI label maps ------------------------------------------------------------------------


def read_nifti_label_volumes(path: str | Path, geometry: VolumeGeometry,
                             labels: Sequence[str] = ()) -> LabelMasks:
    """One 0/1 mask per wanted non-zero label value of a NIfTI-1 label map.

    Each CT voxel centre goes through the NIfTI affine (RAS; DICOM is LPS) to the
    nearest label voxel, so the label map may have another grid than the CT. The
    label map is resampled onto the CT grid once; the masks are cut from it one at a
    time as they are iterated.
    """
    from ingest.converters.volume import read_nifti

    nifti = read_nifti(Path(path))
    data = np.asarray(nifti.data)
    if data.ndim != 3:
        raise InvalidInput(f"a label map must be 3-D, got shape {data.shape}")
    values = np.rint(data).astype(np.int64)
    present = [int(v) for v in np.unique(values) if v != 0]
    chosen = [v for v in present if not labels or str(v) in labels]
    missing = [x for x in labels if x not in {str(v) for v in present}]
    if missing:
        raise InvalidInput(f"label map has no label {missing}; it has {present}")
    ras_to_voxel = np.linalg.inv(np.asarray(nifti.affine, dtype=np.float64))
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    o = np.asarray(geometry.orientation, dtype=np.float64)
    axes = np.stack([o[:3], o[3:], np.cross(o[:3], o[3:])])
    dz, dy, dx = geometry.spacing_mm
    nz, ny, nx = geometry.shape
    jj, ii = np.mgrid[:ny, :nx]
    plane = np.stack([ii.ravel() * dx, jj.ravel() * dy, np.zeros(ii.size)], axis=1) @ axes
    small = values.min(initial=0) >= np.iinfo(np.int16).min and values.max(initial=0) <= np.iinfo(np.int16).max
    grid = np.zeros(geometry.shape, dtype=np.int16 if small else np.int64)
    for k in range(nz):
        lps = plane + np.asarray(geometry.position_mm) + k * dz * axes[2]
        ijk = (np.c_[lps @ lps_to_ras.T, np.ones(len(lps))] @ ras_to_voxel.T)[:, :3]
        idx = np.rint(ijk).astype(np.int64)
        ok = np.all((idx >= 0) & (idx < np.array(values.shape)), axis=1)
        sampled = np.zeros(len(idx), dtype=grid.dtype)
        sampled[ok] = values[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        grid[k] = sampled.reshape(ny, nx)
    del values, data

    def masks() -> Iterator[tuple[str, np.ndarray]]:
        for v in chosen:
            mask = (grid == v).view(np.uint8)
            if mask.any():
                yield str(v), mask

    return LabelMasks(len(chosen), masks())
