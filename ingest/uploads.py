"""Staging tus uploads: each upload is one file, ``<storage>/.incoming/uploads/<id>.part``.

The staging folder sits on the archive's own filesystem, inside its incoming folder
(which ``manage.py verify`` does not count as archive files), so that a finished
upload reaches the converters and the archive by rename. The staging file's size is
the upload's offset; bodies are streamed to it in chunks and never held in memory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archive.errors import Conflict, InvalidInput, NotFound, OutOfResources, PayloadTooLarge
from archive.storage import get_storage

from . import tus
from .models import Upload

CHUNK_BYTES = 1024 * 1024


def max_upload_bytes() -> int:
    """The largest single upload (``VITRINE_MAX_INGEST_BYTES``, default 64 GiB)."""
    return int(getattr(settings, "VITRINE_MAX_INGEST_BYTES", 64 * 1024**3))


def expiry() -> timedelta:
    """How long an upload lives after its last PATCH (``VITRINE_UPLOAD_EXPIRY_S``, 7 days)."""
    return timedelta(seconds=int(getattr(settings, "VITRINE_UPLOAD_EXPIRY_S", 7 * 24 * 3600)))


def purge_expired() -> int:
    """Remove uploads past their expiry that no job claimed (tus expiration extension)."""
    stale = list(Upload.objects.filter(expires__lt=timezone.now(), job__isnull=True))
    for upload in stale:
        delete_upload(upload)
    return len(stale)


def staging_dir() -> Path:
    """Where tus uploads are staged: on the archive's filesystem, outside its names."""
    path = get_storage().incoming_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def staging_path(upload: Upload) -> Path:
    return staging_dir() / f"{upload.id}.part"


def create_upload(owner, *, length: int, metadata: dict[str, str]) -> Upload:
    """Register an upload of ``length`` bytes and create its empty staging file.

    Raises
    ------
    PayloadTooLarge
        ``length`` is over ``max_upload_bytes()``.
    OutOfResources
        The staging filesystem has less free space than ``length``.
    """
    limit = max_upload_bytes()
    if length > limit:
        raise PayloadTooLarge(f"Upload-Length {length} is over this server's limit of {limit} bytes")
    folder = staging_dir()
    free = shutil.disk_usage(folder).free
    if length > free:
        raise OutOfResources(f"Upload-Length {length} is more than the {free} bytes free for staging")
    filename = tus.safe_filename(metadata.get("filename") or metadata.get("name") or "upload")
    purge_expired()
    with transaction.atomic():
        upload = Upload.objects.create(owner=owner, filename=filename, length=length, metadata=metadata,
                                       expires=timezone.now() + expiry())
        # O_EXCL: a staging file is never shared.
        os.close(os.open(staging_path(upload), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        if length == 0:
            upload.completed = timezone.now()
            upload.save(update_fields=["completed"])
    return upload


def get_upload(user, upload_id) -> Upload:
    """The user's upload; another user's upload does not exist as far as they can tell."""
    upload = Upload.objects.filter(pk=upload_id, owner=user).first() if _is_uuid(upload_id) else None
    if upload is not None and upload.job_id is None and upload.expires < timezone.now():
        delete_upload(upload)
        upload = None
    if upload is None:
        raise NotFound(f"no upload {upload_id}")
    return upload


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def upload_offset(upload: Upload) -> int:
    """How many bytes the server holds: the staging file's size is the truth."""
    try:
        return staging_path(upload).stat().st_size
    except FileNotFoundError:
        raise NotFound(f"upload {upload.id} has no staging file") from None


def append_to_upload(
    upload: Upload, *, offset: int, stream: BinaryIO, content_length: int | None,
    checksum: tuple[str, bytes] | None = None,
) -> int:
    """Write a PATCH body at ``offset``, streaming it in chunks; return the new offset.

    An interrupted body keeps the bytes that arrived (the client resumes from HEAD),
    except under Upload-Checksum, where an unverifiable or wrong chunk is dropped.

    Raises
    ------
    OffsetMismatch
        ``offset`` differs from the bytes held, or another PATCH is writing.
    InvalidInput
        The body would run past Upload-Length.
    ChecksumMismatch
        The body's digest differs from Upload-Checksum.
    """
    if upload.job_id is not None:
        raise Conflict(f"upload {upload.id} belongs to ingest job {upload.job_id} already")
    path = staging_path(upload)
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise NotFound(f"upload {upload.id} has no staging file") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise tus.OffsetMismatch(f"upload {upload.id} is being written by another request") from None
        held = os.fstat(fd).st_size
        if offset != held:
            raise tus.OffsetMismatch(f"Upload-Offset {offset} does not match the {held} bytes the server holds")
        room = upload.length - held
        if content_length is not None and content_length > room:
            raise InvalidInput(f"the body of {content_length} bytes would run past Upload-Length {upload.length}")
        digest = hashlib.new(checksum[0]) if checksum else None
        os.lseek(fd, held, os.SEEK_SET)
        written, interrupted = 0, False
        try:
            while written < room:
                chunk = stream.read(min(CHUNK_BYTES, room - written))
                if not chunk:
                    break
                os.write(fd, chunk)
                written += len(chunk)
                if digest is not None:
                    digest.update(chunk)
            else:
                if stream.read(1):
                    os.ftruncate(fd, held)
                    raise InvalidInput(f"the body runs past Upload-Length {upload.length}")
        except OSError:
            # The client went away mid-body: some servers raise (an OSError), others,
            # granian among them, end the body early, which the length check below sees.
            interrupted = True
        if content_length is not None and written < content_length:
            interrupted = True  # the WSGI server saw the connection close early
        if digest is not None and (interrupted or digest.digest() != checksum[1]):
            os.ftruncate(fd, held)
            if not interrupted:
                raise tus.ChecksumMismatch(f"the {written}-byte body does not match Upload-Checksum")
            written = 0
        os.fsync(fd)
    finally:
        os.close(fd)
    new_offset = held + written
    fields = {"offset": new_offset, "expires": timezone.now() + expiry()}
    if new_offset == upload.length:
        fields["completed"] = timezone.now()
    Upload.objects.filter(pk=upload.pk).update(**fields)
    for name, value in fields.items():
        setattr(upload, name, value)
    return new_offset


def delete_upload(upload: Upload) -> None:
    """Terminate an upload: its row and its staging file."""
    if upload.job_id is not None:
        raise Conflict(f"upload {upload.id} belongs to ingest job {upload.job_id} already")
    path = staging_path(upload)
    upload.delete()
    path.unlink(missing_ok=True)
