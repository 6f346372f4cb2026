"""Part 10 files written atomically, with big values streamed from disk.

pydicom writes the header; the one big value (an encapsulated document, or the
frames of an encapsulated Pixel Data) is copied in chunks straight after it, so peak
memory does not grow with the payload. Every writer works on a temporary file in the
destination folder and renames it into place only after ``fsync``: a failure leaves
nothing behind.

# PS3.10 7.1 (File Meta Information), PS3.5 7.1.2 (Explicit VR Little Endian),
# PS3.5 A.4 (encapsulated Pixel Data: Basic Offset Table, items, delimiter),
# PS3.3 C.7.6.3.1.8 (Extended Offset Table)
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

from archive.errors import InvalidInput, PayloadTooLarge
from archive.part10 import item_header

__all__ = [
    "CHUNK_SIZE",
    "FrameWriter",
    "atomic_output",
    "encode_header",
    "file_meta_for",
    "open_frame_writer",
    "write_dataset_file",
    "write_document_file",
    "write_native_pixel_file",
]

CHUNK_SIZE = 8 * 1024 * 1024
ENCAPSULATED_DOCUMENT = Tag(0x0042, 0x0011)
PIXEL_DATA = Tag(0x7FE0, 0x0010)
_SEQ_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
IMPLEMENTATION_VERSION = "VITRINE_010"


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a temporary file next to ``path``; fsync and rename it there on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w+b") as fp:
            yield fp
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp_name, target)
        tmp_name = ""
    finally:
        if tmp_name:
            Path(tmp_name).unlink(missing_ok=True)


def file_meta_for(ds: Dataset, transfer_syntax_uid: str = ExplicitVRLittleEndian) -> FileMetaDataset:
    """File Meta Information for ``ds`` (PS3.10 7.1)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax_uid
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    return meta


def _split(ds: Dataset, tag: int) -> tuple[Dataset, Dataset]:
    """The elements of ``ds`` before and after ``tag`` (which must be absent)."""
    if tag in ds:
        raise ValueError(f"the streamed element {Tag(tag)} must not be in the dataset")
    before, after = Dataset(), Dataset()
    for elem in ds:
        (before if elem.tag < tag else after).add(elem)
    return before, after


def _open_part10(fp: BinaryIO, ds: Dataset, transfer_syntax_uid: str) -> DicomFileLike:
    """Write preamble and File Meta Information; return the encoding-aware writer."""
    fp.write(b"\x00" * 128 + b"DICM")
    out = DicomFileLike(fp)
    write_file_meta_info(out, file_meta_for(ds, transfer_syntax_uid), enforce_standard=True)
    out.is_little_endian = True
    out.is_implicit_VR = False
    return out


def write_dataset_file(
    path: str | os.PathLike[str], ds: Dataset, *, transfer_syntax_uid: str = ExplicitVRLittleEndian
) -> Path:
    """Write ``ds`` as a Part 10 file at ``path`` atomically; return the path."""
    with atomic_output(path) as fp:
        out = _open_part10(fp, ds, transfer_syntax_uid)
        write_dataset(out, ds)
    return Path(path)


def write_document_file(
    path: str | os.PathLike[str],
    ds: Dataset,
    *,
    payload: BinaryIO,
    length: int,
    chunk_size: int = CHUNK_SIZE,
    on_chunk: Callable[[bytes], None] | None = None,
) -> Path:
    """Write ``ds`` with its Encapsulated Document streamed from ``payload``.

    ``ds`` must not hold (0042,0011); ``length`` bytes are copied from the current
    position of ``payload`` and padded with one NUL to even length (PS3.5 7.1.1). The
    true length belongs in EncapsulatedDocumentLength, which the builder sets.

    File-to-file copies run in the kernel (copy_file_range). ``on_chunk``, when given,
    sees every chunk as it is copied through Python instead (to hash in the same pass).

    Raises
    ------
    InvalidInput
        If ``payload`` ends before ``length`` bytes.
    PayloadTooLarge
        If ``length`` does not fit a 32-bit value length.
    """
    padded = length + (length & 1)
    if padded >= 0xFFFFFFFF:
        raise PayloadTooLarge(f"encapsulated document length must be < 4 GiB, got {length}")
    before, after = _split(ds, ENCAPSULATED_DOCUMENT)
    with atomic_output(path) as fp:
        out = _open_part10(fp, ds, ExplicitVRLittleEndian)
        write_dataset(out, before)
        # Explicit VR OB header: tag, VR, 2 reserved bytes, 4-byte length (PS3.5 7.1.2).
        fp.write(struct.pack("<HH2sHI", 0x0042, 0x0011, b"OB", 0, padded))
        if on_chunk is None and _copy_in_kernel(payload, fp, length):
            pass
        else:
            _copy_in_python(payload, fp, length, chunk_size, on_chunk)
        if length & 1:
            fp.write(b"\x00")
        write_dataset(out, after)
    return Path(path)


def _copy_in_kernel(src: BinaryIO, dst: BinaryIO, length: int) -> bool:
    """Copy ``length`` bytes file-to-file without passing them through Python.

    Uses copy_file_range (or sendfile) from the source's current position. Returns
    False, having copied nothing, when either side is not a plain file.
    """
    try:
        src_fd, dst_fd = src.fileno(), dst.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
    if not (stat.S_ISREG(os.fstat(src_fd).st_mode) and stat.S_ISREG(os.fstat(dst_fd).st_mode)):
        return False
    dst.flush()
    src_pos, dst_pos = src.tell(), dst.tell()
    done = 0
    while done < length:
        try:
            n = os.copy_file_range(src_fd, dst_fd, length - done, src_pos + done, dst_pos + done)
        except OSError:
            if done:
                raise
            return False
        if n == 0:
            raise InvalidInput(f"payload ended {length - done} bytes before its declared length {length}")
        done += n
    src.seek(src_pos + length)
    dst.seek(dst_pos + length)
    return True


def _copy_in_python(
    src: BinaryIO, dst: BinaryIO, length: int, chunk_size: int,
    on_chunk: Callable[[bytes], None] | None,
) -> None:
    """Chunked copy through Python, showing each chunk to ``on_chunk``."""
    remaining = length
    while remaining:
        chunk = src.read(min(chunk_size, remaining))
        if not chunk:
            raise InvalidInput(f"payload ended {remaining} bytes before its declared length {length}")
        dst.write(chunk)
        if on_chunk is not None:
            on_chunk(chunk)
        remaining -= len(chunk)


def encode_header(ds: Dataset, *, transfer_syntax_uid: str = ExplicitVRLittleEndian) -> bytes:
    """Preamble, File Meta Information and every element of ``ds`` before Pixel Data.

    For writers that append the Pixel Data themselves (``write_native_pixel_file``);
    ``ds`` must not hold (7FE0,0010) or anything after it.
    """
    if any(elem.tag >= PIXEL_DATA for elem in ds):
        raise ValueError("encode_header: the dataset must end before (7FE0,0010)")
    buf = io.BytesIO()
    out = _open_part10(buf, ds, transfer_syntax_uid)  # type: ignore[arg-type]
    write_dataset(out, ds)
    return buf.getvalue()


def write_native_pixel_file(path: str | os.PathLike[str], header: bytes, pixels: np.ndarray) -> Path:
    """Write ``header`` then native (uncompressed) Pixel Data straight from ``pixels``.

    ``pixels`` must be C-contiguous little-endian 8 or 16-bit samples; their buffer is
    written without an intermediate copy (PS3.5 8.1.1, OB for 8-bit, OW for 16-bit).
    """
    if not pixels.flags.c_contiguous or pixels.dtype.byteorder == ">" or pixels.dtype.itemsize not in (1, 2):
        raise ValueError(f"pixels must be C-contiguous little-endian 8/16-bit, got {pixels.dtype}")
    vr = b"OW" if pixels.dtype.itemsize == 2 else b"OB"
    nbytes = pixels.nbytes
    pad = nbytes & 1
    if nbytes + pad >= 0xFFFFFFFF:
        raise PayloadTooLarge(f"native pixel data must be < 4 GiB, got {nbytes} bytes")
    with atomic_output(path) as fp:
        fp.write(header)
        fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr, 0, nbytes + pad))
        fp.write(memoryview(pixels).cast("B"))
        if pad:
            fp.write(b"\x00")
    return Path(path)


class FrameWriter:
    """Appends encapsulated frames to an open Part 10 file, one item per frame.

    Offsets go to a Basic Offset Table written as a placeholder first and patched at
    the end, or, with ``extended=True``, to an Extended Offset Table and its lengths
    (then the Basic Offset Table stays empty, PS3.5 A.4).
    """

    def __init__(self, fp: BinaryIO, number_of_frames: int, *, extended: bool) -> None:
        self._fp = fp
        self._expected = number_of_frames
        self._extended = extended
        self._offsets: list[int] = []
        self._lengths: list[int] = []
        self._next_offset = 0
        self._table_pos = 0
        self._eot_pos = 0

    def _start(self, out: DicomFileLike, before: Dataset) -> None:
        n = self._expected
        if self._extended:
            # Placeholders written by pydicom itself; patched in finish().
            before.ExtendedOffsetTable = b"\x00" * (8 * n)
            before.ExtendedOffsetTableLengths = b"\x00" * (8 * n)
        write_dataset(out, before)
        if self._extended:
            self._eot_pos = self._fp.tell() - (8 * n + 12) * 2 + 12
        self._fp.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        table = 0 if self._extended else 4 * n
        self._fp.write(item_header(table))
        self._table_pos = self._fp.tell()
        self._fp.write(b"\x00" * table)

    def add_frame(self, data: bytes) -> None:
        """Write one frame as one item, padded to even length."""
        if len(self._offsets) >= self._expected:
            raise ValueError(f"more frames than the {self._expected} declared")
        pad = len(data) & 1
        self._offsets.append(self._next_offset)
        self._lengths.append(len(data))
        self._fp.write(item_header(len(data) + pad))
        self._fp.write(data)
        if pad:
            self._fp.write(b"\x00")
        self._next_offset += 8 + len(data) + pad

    @property
    def frames_written(self) -> int:
        return len(self._offsets)

    def _finish(self) -> None:
        if len(self._offsets) != self._expected:
            raise ValueError(f"{len(self._offsets)} frames written, {self._expected} declared")
        self._fp.write(_SEQ_DELIMITER)
        end = self._fp.tell()
        if self._extended:
            self._fp.seek(self._eot_pos)
            self._fp.write(struct.pack(f"<{self._expected}Q", *self._offsets))
            self._fp.seek(12, os.SEEK_CUR)
            self._fp.write(struct.pack(f"<{self._expected}Q", *self._lengths))
        else:
            if self._offsets[-1] > 0xFFFFFFFF:
                raise PayloadTooLarge(
                    f"frame offsets reach {self._offsets[-1]} bytes, beyond the 4 GiB of a "
                    "Basic Offset Table; write with extended=True"
                )
            self._fp.seek(self._table_pos)
            self._fp.write(struct.pack(f"<{self._expected}I", *self._offsets))
        self._fp.seek(end)


@contextmanager
def open_frame_writer(
    path: str | os.PathLike[str],
    ds: Dataset,
    *,
    transfer_syntax_uid: str,
    number_of_frames: int,
    extended: bool = False,
) -> Iterator[FrameWriter]:
    """Stream ``number_of_frames`` encapsulated frames after the header of ``ds``.

    ``ds`` must not hold Pixel Data; everything after (7FE0,0010) is dropped. The file
    appears at ``path`` only if every declared frame was written.
    """
    if number_of_frames < 1:
        raise ValueError(f"number_of_frames must be >= 1, got {number_of_frames}")
    before, _after = _split(ds, PIXEL_DATA)
    with atomic_output(path) as fp:
        out = _open_part10(fp, ds, transfer_syntax_uid)
        writer = FrameWriter(fp, number_of_frames, extended=extended)
        writer._start(out, before)
        yield writer
        writer._finish()
