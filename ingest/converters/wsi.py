"""Whole-slide images to a VL Whole Slide Microscopy series, one instance per level.

Three roads, best first:

1. A tiled TIFF pyramid with JPEG tiles (generic pyramidal TIFF, Aperio SVS): every
   tile's bytes are read raw with tifffile and copied into a frame, with the shared
   JPEGTables merged in front so each frame is a standalone JPEG. Nothing is decoded.
2. Other formats OpenSlide reads (NDPI, MRXS, SCN...): regions are read tile by tile
   and encoded once as baseline JPEG.
3. A big flat JPEG/PNG/TIFF: pyvips builds a tiled JPEG pyramid in a temporary TIFF
   (threaded, streaming), which then takes road 1.

Frames are streamed into each level's Part 10 file, so memory holds a tile at a time.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from archive.dicom.jpeg import merge_jpeg_tables, read_jpeg_info, transfer_syntax_for
from archive.dicom.wsi import LevelSpec, SlideInfo, build_wsi_level, write_wsi_level
from archive.errors import InvalidInput, UnsupportedMediaType
from ingest.converters.base import OutputFile, Target, output_set

__all__ = ["TiffLevel", "convert_wsi", "find_tiff_levels", "iter_tiff_tiles", "is_tiled_pyramid"]

DEFAULT_TILE = 256
DEFAULT_QUALITY = 90
DEFAULT_MAX_PIXELS = 50_000_000_000
_BOT_LIMIT = 0xFFFFFFFF - 64 * 1024 * 1024
_MPP_RE = re.compile(r"MPP\s*=\s*([0-9.]+)")


@dataclass(frozen=True)
class TiffLevel:
    """Where one level's tiles are in a TIFF file and how they are coded."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    tables: bytes | None
    rgb: bool
    spacing_mm: tuple[float, float] | None


def _tiff_spacing_mm(page) -> tuple[float, float] | None:  # type: ignore[no-untyped-def]
    """(row, column) spacing from X/YResolution, or from an Aperio 'MPP =' description."""
    match = _MPP_RE.search(str(page.description or ""))
    if match and float(match.group(1)) > 0:
        mm = float(match.group(1)) / 1000.0
        return (mm, mm)
    unit = page.tags.get("ResolutionUnit")
    xres, yres = page.tags.get("XResolution"), page.tags.get("YResolution")
    if unit is None or xres is None or yres is None or int(unit.value) not in (2, 3):
        return None
    per_unit_mm = 25.4 if int(unit.value) == 2 else 10.0

    def mm(value) -> float:  # type: ignore[no-untyped-def]
        num, den = value if isinstance(value, tuple) else (value, 1)
        return per_unit_mm * den / num if num else 0.0

    row_mm, col_mm = mm(yres.value), mm(xres.value)
    return (row_mm, col_mm) if row_mm > 0 and col_mm > 0 else None


def find_tiff_levels(path: Path) -> list[TiffLevel]:
    """The tiled, JPEG-coded, 3-sample levels of a TIFF, largest first ([] if none).

    Stripped pages (Aperio thumbnail, label, macro) and pages whose aspect ratio
    differs from the largest level are left out.
    """
    import tifffile

    found = []
    try:
        with tifffile.TiffFile(path) as tif:
            pages = []
            for page in tif.pages:
                pages.append(page)
                for sub in getattr(page, "pages", None) or []:
                    pages.append(sub)
            for page in pages:
                if not (getattr(page, "is_tiled", False) and page.compression == 7
                        and page.samplesperpixel == 3 and page.planarconfig == 1
                        and page.bitspersample == 8 and page.photometric in (2, 6)):
                    continue
                found.append(TiffLevel(
                    width=page.imagewidth, height=page.imagelength,
                    tile_width=page.tilewidth, tile_height=page.tilelength,
                    offsets=tuple(page.dataoffsets), counts=tuple(page.databytecounts),
                    tables=page.jpegtables, rgb=page.photometric == 2,
                    spacing_mm=_tiff_spacing_mm(page),
                ))
    except (tifffile.TiffFileError, OSError, ValueError, struct.error) as exc:
        raise InvalidInput(f"{path.name}: unreadable TIFF ({exc})") from exc
    found.sort(key=lambda lv: lv.width * lv.height, reverse=True)
    if not found:
        return []
    base = found[0]
    aspect = base.width / base.height
    levels = [lv for lv in found if abs(lv.width / lv.height - aspect) / aspect < 0.02
              or lv.width <= lv.tile_width]
    return _fill_spacing(levels)


def _fill_spacing(levels: list[TiffLevel]) -> list[TiffLevel]:
    """Derive missing level spacings from level 0 by the size ratio."""
    base = levels[0]
    if base.spacing_mm is None:
        return levels
    out = [base]
    for lv in levels[1:]:
        if lv.spacing_mm is None or lv.spacing_mm == base.spacing_mm:
            spacing = (base.spacing_mm[0] * base.height / lv.height, base.spacing_mm[1] * base.width / lv.width)
            lv = TiffLevel(**{**lv.__dict__, "spacing_mm": spacing})
        out.append(lv)
    return out


def is_tiled_pyramid(path: Path) -> bool:
    """True for a TIFF whose largest level is tiled with JPEG (road 1)."""
    try:
        return bool(find_tiff_levels(path))
    except InvalidInput:
        return False


def _blank_tile(width: int, height: int, quality: int, rgb: bool) -> bytes:
    """A white JPEG tile for sparse TIFF tiles (byte count 0)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (255, 255, 255)).save(buf, "JPEG", quality=quality, keep_rgb=rgb)
    return buf.getvalue()


def iter_tiff_tiles(path: Path, level: TiffLevel, *, quality: int = DEFAULT_QUALITY) -> Iterator[bytes]:
    """Each tile of ``level`` as a standalone JPEG, in TIFF (= TILED_FULL) order."""
    blank: bytes | None = None
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, count in zip(level.offsets, level.counts):
            if count == 0:
                blank = blank or _blank_tile(level.tile_width, level.tile_height, quality, level.rgb)
                yield blank
                continue
            data = os.pread(fd, count, offset)
            if len(data) != count:
                raise InvalidInput(f"{path.name}: tile at byte {offset} is truncated")
            yield merge_jpeg_tables(data, level.tables, mark_rgb=level.rgb)
    finally:
        os.close(fd)


def _tiff_level_spec(path: Path, index: int, level: TiffLevel) -> LevelSpec:
    """Check the first non-empty tile is baseline JPEG and describe the level."""
    first = next((i for i, c in enumerate(level.counts) if c), None)
    photometric = "RGB" if level.rgb else "YBR_FULL_422"
    if first is not None:
        with open(path, "rb") as fp:
            fp.seek(level.offsets[first])
            tile = merge_jpeg_tables(fp.read(level.counts[first]), level.tables, mark_rgb=level.rgb)
        info = read_jpeg_info(tile)
        if transfer_syntax_for(info) != "1.2.840.10008.1.2.4.50":
            raise UnsupportedMediaType(f"{path.name}: level {index} tiles are {info.process} JPEG, not baseline")
        photometric = info.photometric_interpretation
    raw = level.width * level.height * 3
    packed = sum(level.counts) or 1
    return LevelSpec(
        index=index, total_columns=level.width, total_rows=level.height,
        tile_columns=level.tile_width, tile_rows=level.tile_height,
        pixel_spacing_mm=level.spacing_mm, photometric=photometric,
        compression_ratio=raw / packed,
    )


def _slide_info(target: Target, name: str) -> SlideInfo:
    container = (target.patient.patient_id or name)[:64]
    return SlideInfo(
        container_id=container, specimen_id=container, specimen_uid=target.uids(),
        pyramid_uid=target.uids(), frame_of_reference_uid=target.uids(),
        dimension_organization_uid=target.uids(), description=name,
    )


def _write_tiff_pyramid(path: Path, target: Target, name: str, *, quality: int) -> list[OutputFile]:
    levels = find_tiff_levels(path)
    specs = [_tiff_level_spec(path, i, lv) for i, lv in enumerate(levels)]
    slide = _slide_info(target, name)
    series = target.new_series(name)
    total = sum(s.number_of_frames for s in specs)
    done = 0
    target.on_progress("wsi", 0.0)
    with output_set(target.out_dir, name) as outputs:
        for spec, level in zip(specs, levels):
            ds = build_wsi_level(
                level=spec, slide=slide, patient=target.patient, study=target.study,
                series=series, instance_uid=target.uids(), created=target.now,
                equipment=target.equipment,
            )
            if target.extra is not None:
                ds.update(target.extra)
            out = outputs.path_for(ds)
            # Beyond 4 GiB of frames a Basic Offset Table cannot point; use the Extended one.
            extended = sum(level.counts) + 8 * len(level.counts) > _BOT_LIMIT
            write_wsi_level(out, ds, iter_tiff_tiles(path, level, quality=quality), extended_offsets=extended)
            outputs.record(ds, out)
            done += spec.number_of_frames
            target.on_progress("wsi", done / total)
    return outputs.files


def _openslide_frames(slide, level: int, tile: int, quality: int) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    """Tiles of an OpenSlide level, composited on white and encoded as baseline JPEG."""
    from PIL import Image

    width, height = slide.level_dimensions[level]
    scale = slide.level_downsamples[level]
    for ty in range(math.ceil(height / tile)):
        for tx in range(math.ceil(width / tile)):
            region = slide.read_region((int(tx * tile * scale), int(ty * tile * scale)), level, (tile, tile))
            canvas = Image.new("RGB", region.size, (255, 255, 255))
            canvas.paste(region, mask=region.split()[3])
            buf = io.BytesIO()
            canvas.save(buf, "JPEG", quality=quality)
            yield buf.getvalue()


def _write_openslide(path: Path, target: Target, name: str, *, tile: int, quality: int) -> list[OutputFile]:
    import openslide

    try:
        slide = openslide.OpenSlide(str(path))
    except openslide.OpenSlideError as exc:
        raise InvalidInput(f"{name}: OpenSlide cannot read this slide ({exc})") from exc
    try:
        mpp_x = slide.properties.get(openslide.PROPERTY_NAME_MPP_X)
        mpp_y = slide.properties.get(openslide.PROPERTY_NAME_MPP_Y)
        info = _slide_info(target, name)
        series = target.new_series(name)
        target.on_progress("wsi", 0.0)
        with output_set(target.out_dir, name) as outputs:
            for level, (width, height) in enumerate(slide.level_dimensions):
                down = slide.level_downsamples[level]
                spacing = (float(mpp_y) * down / 1000, float(mpp_x) * down / 1000) if mpp_x and mpp_y else None
                spec = LevelSpec(index=level, total_columns=width, total_rows=height, tile_columns=tile,
                                 tile_rows=tile, pixel_spacing_mm=spacing, photometric="YBR_FULL_422")
                ds = build_wsi_level(level=spec, slide=info, patient=target.patient, study=target.study,
                                     series=series, instance_uid=target.uids(), created=target.now,
                                     equipment=target.equipment)
                if target.extra is not None:
                    ds.update(target.extra)
                out = outputs.path_for(ds)
                write_wsi_level(out, ds, _openslide_frames(slide, level, tile, quality))
                outputs.record(ds, out)
                target.on_progress("wsi", (level + 1) / slide.level_count)
        return outputs.files
    finally:
        slide.close()


def _write_flat(path: Path, target: Target, name: str, *, tile: int, quality: int,
                max_pixels: int, spacing_mm: float | None) -> list[OutputFile]:
    import pyvips

    try:
        image = pyvips.Image.new_from_file(str(path), access="sequential")
    except pyvips.Error as exc:
        raise UnsupportedMediaType(f"{name}: not an image libvips can read ({exc})") from exc
    if image.width * image.height > max_pixels:
        raise InvalidInput(f"{name}: {image.width} x {image.height} pixels exceeds max_pixels={max_pixels}")
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    if image.bands == 1:
        image = image.colourspace("srgb")
    image = image.cast("uchar")
    with tempfile.TemporaryDirectory(prefix=".vitrine-pyramid-", dir=target.out_dir) as tmp:
        pyramid = Path(tmp) / "pyramid.tif"
        kwargs: dict[str, object] = {}
        if spacing_mm:
            # libvips resolution is in pixels per mm; resunit only picks the TIFF unit.
            kwargs = {"xres": 1.0 / spacing_mm, "yres": 1.0 / spacing_mm, "resunit": "cm"}
        image.tiffsave(str(pyramid), tile=True, pyramid=True, compression="jpeg", Q=quality,
                       tile_width=tile, tile_height=tile, bigtiff=True, **kwargs)
        return _write_tiff_pyramid(pyramid, target, name, quality=quality)


def convert_wsi(
    path: Path,
    target: Target,
    *,
    tile: int = DEFAULT_TILE,
    quality: int = DEFAULT_QUALITY,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    spacing_mm: float | None = None,
) -> list[OutputFile]:
    """Convert a slide or a big flat image into a VL Whole Slide Microscopy series.

    Parameters
    ----------
    tile, quality
        Tile size and JPEG quality where tiles must be encoded (roads 2 and 3).
    spacing_mm
        Pixel spacing of a flat image, if the curator knows it.

    Raises
    ------
    InvalidInput
        If the file is corrupt or too large.
    UnsupportedMediaType
        If no road can read it.
    """
    path = Path(path)
    name = path.name
    if is_tiled_pyramid(path):
        return _write_tiff_pyramid(path, target, name, quality=quality)
    import openslide

    vendor = openslide.OpenSlide.detect_format(str(path))
    if vendor is not None and vendor != "generic-tiff":
        return _write_openslide(path, target, name, tile=tile, quality=quality)
    return _write_flat(path, target, name, tile=tile, quality=quality, max_pixels=max_pixels,
                       spacing_mm=spacing_mm)
