"""PDF files to Encapsulated PDF, and DICOM files passed straight through.

A PDF is kept byte for byte (read back with ``archive.dicom.encapsulated.
read_encapsulated_pdf``). A DICOM upload is not converted at all: we check that it is
a Part 10 file with the identifiers an archive needs and copy its bytes unchanged.
"""

from __future__ import annotations


import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from archive.dicom.encapsulated import build_pdf_instance
from archive.dicom.part10 import atomic_output
from archive.errors import InvalidInput
from ingest.converters.base import OutputFile, Target, output_set

__all__ = ["convert_dicom", "convert_pdf", "is_part10", "iter_dicom_files"]

# PDFs are read whole; a PDF this large is almost certainly not a document.
MAX_PDF_BYTES = 2 * 1024**3


def convert_pdf(path: Path, target: Target) -> list[OutputFile]:
    """Encapsulate one PDF in ``target.out_dir``.

    Raises
    ------
    InvalidInput
        If the file does not start with ``%PDF-`` or is over 2 GiB.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_PDF_BYTES:
        raise InvalidInput(f"{path.name}: PDF of {size} bytes is over the {MAX_PDF_BYTES} limit")
    target.on_progress("pdf", 0.0)
    ds = build_pdf_instance(
        path.read_bytes(), patient=target.patient, study=target.study,
        series=target.new_series(path.name), instance_uid=target.uids(), created=target.now,
        title=path.name[:64], equipment=target.equipment,
    )
    if target.extra is not None:
        ds.update(target.extra)
    with output_set(target.out_dir, path.name) as outputs:
        outputs.write(ds)
    target.on_progress("pdf", 1.0)
    return outputs.files


def is_part10(path: Path) -> bool:
    """True if the file has the 128-byte preamble followed by ``DICM`` (PS3.10 7.1)."""
    with open(path, "rb") as fp:
        head = fp.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def iter_dicom_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Yield the Part 10 files among ``paths`` (folders walked), checked as they come.

    Raises
    ------
    InvalidInput
        If a file with the DICM prefix lacks SOP Class, SOP Instance, Study or Series
        UID, or cannot be parsed.
    """
    for root in paths:
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if not is_part10(path):
                continue
            try:
                head = dcmread(path, stop_before_pixels=True, specific_tags=[
                    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                ])
            except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
                raise InvalidInput(f"{path.name}: unreadable DICOM file ({exc})") from exc
            for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
                if not head.get(keyword):
                    raise InvalidInput(f"{path.name}: DICOM file has no {keyword}")
            yield path


def convert_dicom(path: Path, target: Target) -> list[OutputFile]:
    """Copy a checked Part 10 file (or every one in a folder) into ``target.out_dir`` unchanged."""
    with output_set(target.out_dir, Path(path).name) as outputs:
        for src in iter_dicom_files([Path(path)]):
            head = dcmread(src, stop_before_pixels=True)
            dest = Path(target.out_dir) / f"{head.SOPInstanceUID}.dcm"
            with atomic_output(dest) as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out, 8 * 1024 * 1024)
            outputs.files.append(OutputFile(dest, head.SOPClassUID, head.SOPInstanceUID,
                                            head.SeriesInstanceUID, src.name))
    return outputs.files



