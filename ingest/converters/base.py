"""What every converter shares: the target of a conversion, its outputs, and cleanup.

A converter takes input paths and a ``Target`` (who and where: patient, study, UIDs,
clock, output folder) and returns ``OutputFile`` records. It writes through an
``OutputSet``, which deletes everything it wrote if the conversion fails, so a failed
conversion leaves the output folder as it found it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydicom.dataset import Dataset

from archive.dicom.part10 import write_dataset_file, write_document_file
from archive.dicom.refs import VITRINE_EQUIPMENT, Equipment, PatientInfo, SeriesRef, StudyRef, check_uid

__all__ = [
    "BackgroundWriter",
    "ConversionResult",
    "OutputFile",
    "OutputSet",
    "ProgressCallback",
    "Target",
    "UidFactory",
    "make_uid_factory",
    "no_progress",
    "output_set",
]

UidFactory = Callable[[], str]
ProgressCallback = Callable[[str, float], None]


def make_uid_factory(root: str) -> UidFactory:
    """A deterministic UID source: ``root.1``, ``root.2``, ... (tests, re-runs).

    Production callers pass ``pydicom.uid.generate_uid`` wrapped in a lambda instead.
    """
    check_uid("uid root", root)
    if len(root) > 50:
        raise ValueError(f"uid root must leave room for a counter, got {len(root)} characters")
    counter = itertools.count(1)
    return lambda: f"{root}.{next(counter)}"


def no_progress(stage: str, fraction: float) -> None:
    """Default progress sink."""


@dataclass(frozen=True)
class Target:
    """Who the outputs belong to and where they go.

    ``series_number`` is the first series number this conversion may use;
    ``series_description`` defaults to the input's file name when empty.
    """

    out_dir: Path
    patient: PatientInfo
    study: StudyRef
    uids: UidFactory
    now: datetime
    equipment: Equipment = VITRINE_EQUIPMENT
    series_number: int = 1
    series_description: str = ""
    extra: Dataset | None = None
    on_progress: ProgressCallback = no_progress

    def new_series(self, description: str = "", offset: int = 0) -> SeriesRef:
        """A fresh SeriesRef numbered from ``series_number``."""
        text = (self.series_description or description)[:64]
        return SeriesRef(series_uid=self.uids(), number=self.series_number + offset, description=text)

    def with_series_number(self, number: int) -> Target:
        return replace(self, series_number=number)


@dataclass(frozen=True)
class OutputFile:
    """One Part 10 file written by a converter."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    source_name: str


@dataclass
class ConversionResult:
    """Everything ``convert`` wrote, in writing order."""

    files: list[OutputFile] = field(default_factory=list)
    study_uid: str = ""

    @property
    def series_uids(self) -> list[str]:
        return list(dict.fromkeys(f.series_uid for f in self.files))

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]


class OutputSet:
    """Collects the files a conversion writes; they are removed unless it succeeds."""

    def __init__(self, out_dir: Path, source_name: str) -> None:
        self.out_dir = Path(out_dir)
        self.source_name = source_name
        self.files: list[OutputFile] = []

    def path_for(self, ds: Dataset) -> Path:
        return self.out_dir / f"{ds.SOPInstanceUID}.dcm"

    def record(self, ds: Dataset, path: Path) -> OutputFile:
        out = OutputFile(path, ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID, self.source_name)
        self.files.append(out)
        return out

    def write(self, ds: Dataset, *, transfer_syntax_uid: str | None = None) -> OutputFile:
        """Write a complete data set (its pixel data already encoded)."""
        path = self.path_for(ds)
        meta = getattr(ds, "file_meta", None)
        syntax = transfer_syntax_uid or (meta.get("TransferSyntaxUID") if meta else None)
        kwargs = {"transfer_syntax_uid": syntax} if syntax else {}
        write_dataset_file(path, ds, **kwargs)
        return self.record(ds, path)

    def write_document(self, ds: Dataset, *, payload: BinaryIO, length: int) -> OutputFile:
        """Write a document header with its bytes streamed from ``payload``."""
        path = self.path_for(ds)
        write_document_file(path, ds, payload=payload, length=length)
        return self.record(ds, path)

    def discard(self) -> None:
        for out in self.files:
            out.path.unlink(missing_ok=True)
        self.files.clear()


class BackgroundWriter:
    """Runs file writes on worker threads so that disk time overlaps CPU time.

    At most ``depth`` writes are in flight (memory stays bounded). The first error
    raised by a write is raised again from ``submit`` or ``drain``; leaving the
    ``with`` block waits for every write, so cleanup never races a writer.
    """

    def __init__(self, depth: int = 8, workers: int = 4) -> None:
        from concurrent.futures import ThreadPoolExecutor

        # Several workers let the file system batch the journal commits of fsync.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vitrine-writer")
        self._depth = depth
        self._pending: list[Any] = []

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        while len(self._pending) >= self._depth:
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        while self._pending:
            self._pending.pop(0).result()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()


@contextmanager
def output_set(out_dir: str | os.PathLike[str], source_name: str) -> Iterator[OutputSet]:
    """An ``OutputSet`` that deletes its files if the block raises."""
    outputs = OutputSet(Path(out_dir), source_name)
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
