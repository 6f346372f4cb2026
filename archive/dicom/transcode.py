"""Compressed pixel data decoded for a peer that cannot take the stored transfer syntax.

The archive keeps and sends the bytes it received. Only when a receiver accepts none of
the stored syntax (a C-MOVE destination or C-GET requestor that takes uncompressed data
only, a WADO-RS client that asks for Explicit VR Little Endian) does it get a decoded
copy: the same instance, with the same SOP Instance UID, its pixel data native and in
Explicit VR Little Endian. JPEG baseline's YBR colour comes out as RGB. Pure: imports no
Django.
"""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian

# A decoded copy is built in memory; a whole-slide level would take gigabytes.
MAX_DECODED_BYTES = 1 << 30


class TranscodeError(ValueError):
    """The stored instance cannot be decoded for this receiver; the text says why."""


def decoded_size(ds: Dataset) -> int:
    """The bytes the native pixel data of ``ds`` takes (0 with no pixel data)."""
    if "PixelData" not in ds:
        return 0
    samples, frames = int(ds.get("SamplesPerPixel") or 1), int(ds.get("NumberOfFrames") or 1)
    return (int(ds.Rows) * int(ds.Columns) * samples * frames * int(ds.BitsAllocated) + 7) // 8


def check_size(size: int, syntax: str, max_bytes: int | None = None) -> None:
    """TranscodeError if a decoded copy of ``size`` bytes is over the limit."""
    max_bytes = MAX_DECODED_BYTES if max_bytes is None else max_bytes
    if size > max_bytes:
        raise TranscodeError(
            f"decoded, the pixel data would take {size} bytes, over the {max_bytes}-byte limit for "
            f"a converted copy; ask for the stored transfer syntax {syntax} ({UID(syntax).name})"
        )


def decompressed(data: bytes, max_bytes: int | None = None) -> Dataset:
    """The instance in the Part 10 bytes ``data``, with native pixel data, its File Meta
    group saying Explicit VR Little Endian (the encoding ``part10_bytes`` writes).

    Raises TranscodeError when the pixel data would exceed ``max_bytes`` (default
    ``MAX_DECODED_BYTES``) decoded, or no installed decoder reads it.
    """
    ds = dcmread(BytesIO(data))
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax.is_compressed and "PixelData" in ds:
        try:
            size = decoded_size(ds)
        except (AttributeError, TypeError, ValueError):
            raise TranscodeError("the instance lacks the image attributes needed to decode its pixel data") from None
        check_size(size, syntax, max_bytes)
        try:
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # noqa: BLE001 - each decoder plugin raises its own types
            raise TranscodeError(f"the pixel data in {syntax.name} cannot be decoded here: {exc}") from None
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def decoded_frames(path: str, numbers: list[int]) -> list[bytes]:
    """Frames (numbered from 1) of a stored file, decoded to native little-endian bytes,
    colour as RGB; each frame is decoded on its own."""
    frames = []
    for number in numbers:
        try:
            pixels = pixel_array(path, index=number - 1)
        except Exception as exc:  # noqa: BLE001 - each decoder plugin raises its own types
            raise TranscodeError(f"frame {number} cannot be decoded here: {exc}") from None
        frames.append(pixels.astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes())
    return frames


def part10_bytes(ds: Dataset) -> bytes:
    """``ds`` written as a Part 10 file in Explicit VR Little Endian."""
    out = BytesIO()
    try:
        ds.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    except (ValueError, TypeError, OverflowError) as exc:
        raise TranscodeError(f"the instance cannot be written in Explicit VR Little Endian: {exc}") from None
    return out.getvalue()
