"""Photographs (JPEG, PNG, TIFF) to VL Photographic Image instances.

A baseline or extended JPEG whose EXIF orientation is 1 (or absent) is kept byte for
byte. A JPEG that needs rotating is decoded once, rotated, and stored losslessly:
we prefer pixels that display the right way up in every viewer to keeping the
original bytes, and DICOM has no display-rotation attribute for VL images. The
original JPEG is never re-encoded. PNG and TIFF are decoded, oriented and stored
losslessly. The pixel count is checked from the header before anything is decoded.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from archive.dicom.jpeg import read_jpeg_info, transfer_syntax_for
from archive.dicom.photo import PhotoInfo, build_photo_from_jpeg, build_photo_from_pixels
from archive.dicom.refs import PatientInfo, SeriesRef, StudyRef
from archive.errors import InvalidInput, UnsupportedMediaType
from ingest.converters.base import OutputFile, Target, output_set

__all__ = ["DEFAULT_MAX_PIXELS", "build_photo_dataset", "convert_photo", "read_exif"]

# 25 000 x 20 000: far above any camera, well below what fits in memory decoded.
DEFAULT_MAX_PIXELS = 500_000_000
_EXIF_IFD = 0x8769
_ORIENTATION = 0x0112
_DATETIME = 0x0132
_DATETIME_ORIGINAL = 0x9003


@dataclass(frozen=True)
class Exif:
    orientation: int = 1
    taken: datetime | None = None


def _parse_exif_datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def read_exif(image: object) -> Exif:
    """Orientation and capture time from a Pillow image's EXIF (absent: 1, None)."""
    exif = image.getexif()  # type: ignore[attr-defined]
    orientation = exif.get(_ORIENTATION, 1)
    if orientation not in range(1, 9):
        orientation = 1
    sub = exif.get_ifd(_EXIF_IFD)
    taken = _parse_exif_datetime(sub.get(_DATETIME_ORIGINAL)) or _parse_exif_datetime(
        exif.get(_DATETIME)
    )
    return Exif(orientation=int(orientation), taken=taken)


def _check_pixels(name: str, rows: int, columns: int, max_pixels: int) -> None:
    if rows * columns > max_pixels:
        raise InvalidInput(
            f"{name}: {columns} x {rows} = {rows * columns} pixels exceeds the limit of "
            f"{max_pixels} (max_pixels); refusing to decode"
        )


def _open_image(data: bytes, name: str, max_pixels: int):  # type: ignore[no-untyped-def]
    """Open lazily with Pillow, checking the pixel count before any decoding."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(f"{name}: image exceeds the pixel limit ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType(f"{name}: not an image Pillow can read") from exc
    except (OSError, struct.error, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput(f"{name}: image header is corrupt or truncated ({exc})") from exc
    _check_pixels(name, image.height, image.width, max_pixels)
    return image


def _to_uint8(image, derivation: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Decoded pixels as (rows, cols) or (rows, cols, 3) uint8, noting any change."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return np.asarray(image)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image).astype(np.uint32)
        derivation.append(f"{mode} samples scaled to 8 bits (VL images are 8-bit)")
        return (arr >> 8).clip(0, 255).astype(np.uint8)
    if mode in ("RGBA", "LA"):
        derivation.append(f"alpha channel of {mode} image dropped")
        return np.asarray(image.convert(mode[:-1]))
    if mode in ("1", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        target = "L" if mode == "1" else "RGB"
        if mode not in ("1", "P"):
            derivation.append(f"{mode} converted to {target}")
        return np.asarray(image.convert(target))
    if mode.startswith("I;16") or mode == "F":
        raise InvalidInput(f"image mode {mode!r} is not supported for photographs")
    derivation.append(f"{mode} converted to RGB")
    return np.asarray(image.convert("RGB"))


def build_photo_dataset(
    data: bytes,
    name: str,
    *,
    patient: PatientInfo,
    study: StudyRef,
    series: SeriesRef,
    instance_uid: str,
    created: datetime,
    instance_number: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    apply_orientation: bool = True,
) -> Dataset:
    """A VL Photographic Image data set from the bytes of a JPEG, PNG or TIFF file.

    ``apply_orientation=False`` ignores EXIF orientation (3D textures: UVs address
    the stored pixel grid).

    Raises
    ------
    InvalidInput
        If the image is over ``max_pixels`` or malformed.
    UnsupportedMediaType
        If the bytes are no image format Pillow reads.
    """
    from PIL import ImageOps

    is_jpeg = data[:3] == b"\xff\xd8\xff"
    if is_jpeg:
        jinfo = read_jpeg_info(data)
        _check_pixels(name, jinfo.rows, jinfo.columns, max_pixels)
    image = _open_image(data, name, max_pixels)
    try:
        exif = read_exif(image)
    except (OSError, struct.error, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput(f"{name}: image data is corrupt or truncated ({exc})") from exc
    orientation = exif.orientation if apply_orientation else 1
    common = dict(
        patient=patient, study=study, series=series, instance_uid=instance_uid,
        created=created, instance_number=instance_number,
    )
    short = name[-64:]
    keepable = is_jpeg and transfer_syntax_for(jinfo) is not None and jinfo.precision == 8 \
        and jinfo.components in (1, 3)
    if keepable and orientation == 1:
        info = PhotoInfo(acquired=exif.taken, source_name=short)
        return build_photo_from_jpeg(data, info=info, **common)  # type: ignore[arg-type]
    derivation: list[str] = []
    if is_jpeg:
        derivation.append(f"JPEG ({jinfo.process}) decoded")
    if orientation != 1:
        derivation.append(f"EXIF orientation {orientation} applied to pixels")
    try:
        image.seek(0)
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        pixels = _to_uint8(image, derivation)
    except (OSError, struct.error, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput(f"{name}: image data is corrupt or truncated ({exc})") from exc
    lossy = is_jpeg and (jinfo.process != "lossless")
    info = PhotoInfo(
        acquired=exif.taken, source_name=short, derivation="; ".join(derivation)[:1024],
        lossy_source=lossy,
    )
    return build_photo_from_pixels(pixels, info=info, **common)  # type: ignore[arg-type]


def convert_photo(path: Path, target: Target, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[OutputFile]:
    """Convert one photograph file into one VL Photographic instance in ``target.out_dir``."""
    data = Path(path).read_bytes()
    series = target.new_series(Path(path).name)
    target.on_progress("photo", 0.0)
    ds = build_photo_dataset(
        data, Path(path).name, patient=target.patient, study=target.study, series=series,
        instance_uid=target.uids(), created=target.now, max_pixels=max_pixels,
    )
    if target.extra is not None:
        ds.update(target.extra)
    with output_set(target.out_dir, Path(path).name) as outputs:
        outputs.write(ds)
    target.on_progress("photo", 1.0)
    return outputs.files
