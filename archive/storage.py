"""Where instance files live, behind Django's Storage API.

The default is a directory (``VITRINE_STORAGE``, ``./var/dicom``). Files arrive in
``<location>/.incoming`` and enter the archive by fsync and an atomic rename, so a file
is either whole at its final name or not there at all.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage
from django.utils.module_loading import import_string

from .errors import OutOfResources

INCOMING = ".incoming"


def instance_name(study_uid: str, series_uid: str, sop_uid: str, sha256: str) -> str:
    """The storage name of one instance: its UIDs, and a digest prefix so that a
    replacement never overwrites the file it replaces."""
    return f"{study_uid}/{series_uid}/{sop_uid}.{sha256[:12]}.dcm"


class ArchiveFileStorage(FileSystemStorage):
    """A FileSystemStorage that admits files by fsync and atomic rename."""

    def incoming_dir(self) -> Path:
        path = Path(self.location) / INCOMING
        path.mkdir(parents=True, exist_ok=True)
        return path

    def incoming_file(self, suffix: str = ".part"):
        """A new temporary file on the archive's own filesystem (opened ``w+b``)."""
        return tempfile.NamedTemporaryFile(dir=self.incoming_dir(), suffix=suffix, delete=False)

    # Admission in three steps, so that a receiver can do its other work while the disk
    # syncs: sync the temporary files, rename them into place, sync their folders. A file
    # is durable at its name once its folder is synced; only then may its row commit.

    def sync_files(self, paths: list[str | Path]) -> None:
        """fsync finished temporary files."""
        with _storage_errors():
            for path in paths:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def place(self, moves: list[tuple[str, str | Path]]) -> set[Path]:
        """Rename synced temporary files to their names; return the folders to sync."""
        folders = set()
        with _storage_errors():
            for name, temp_path in moves:
                final = Path(self.path(name))
                if final.parent not in folders:
                    final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp_path, final)
                folders.add(final.parent)
        return folders

    def sync_folders(self, folders: set[Path]) -> None:
        """fsync folders, making the renames into them durable."""
        with _storage_errors():
            for folder in folders:
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def walk_names(self):
        """Every stored file name, the incoming folder left out."""
        root = Path(self.location)
        if not root.exists():
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != INCOMING]
            for filename in filenames:
                yield str(Path(dirpath, filename).relative_to(root))


@contextmanager
def _storage_errors():
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutOfResources("the archive storage is full") from None
        raise


@lru_cache(maxsize=1)
def get_storage() -> ArchiveFileStorage:
    """The configured archive storage.

    ``VITRINE_STORAGE`` is a folder, or ``dotted.StorageClass:location`` for another
    backend that offers the same ``incoming_file``, ``sync_files``/``place``/``sync_folders``
    and ``walk_names`` methods.
    """
    spec = settings.VITRINE_STORAGE
    if ":" in spec and not os.path.isabs(spec.split(":", 1)[0]) and "." in spec.split(":", 1)[0]:
        dotted, location = spec.split(":", 1)
        storage: Storage = import_string(dotted)(location=location)
    else:
        storage = ArchiveFileStorage(location=spec)
    return storage  # type: ignore[return-value]
