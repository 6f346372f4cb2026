"""The tus 1.0 resumable upload protocol: headers in, checked values out. No Django here.

https://tus.io/protocols/resumable-upload: the core protocol (HEAD, PATCH, OPTIONS)
and the creation, termination, checksum and expiration extensions. The views in ``ingest.views``
read headers with these functions and answer with ``response_headers``; the bytes are
written by ``ingest.services``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata

from archive.errors import ArchiveError, Conflict, InvalidInput, UnsupportedMediaType

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "EXTENSIONS",
    "OFFSET_MEDIA_TYPE",
    "VERSION",
    "ChecksumMismatch",
    "OffsetMismatch",
    "VersionMismatch",
    "check_offset_media_type",
    "check_resumable",
    "encode_metadata",
    "parse_checksum",
    "parse_length",
    "parse_metadata",
    "safe_filename",
]

VERSION = "1.0.0"
EXTENSIONS = ("creation", "termination", "checksum", "expiration")
OFFSET_MEDIA_TYPE = "application/offset+octet-stream"
# Upload-Checksum algorithms (checksum extension): name → hashlib constructor name.
CHECKSUM_ALGORITHMS = {"sha1": "sha1", "sha256": "sha256", "md5": "md5"}
_KEY = re.compile(r"^[!-+\--~]+$")  # printable ASCII without space and comma


class VersionMismatch(ArchiveError):
    """Tus-Resumable names a protocol version this server does not speak (412)."""

    code = "tus_version"
    http_status = 412
    dimse_status = None


class OffsetMismatch(Conflict):
    """Upload-Offset differs from the bytes the server holds (tus PATCH: 409)."""

    code = "offset_mismatch"


class ChecksumMismatch(ArchiveError):
    """The PATCH body does not match Upload-Checksum (checksum extension: 460)."""

    code = "checksum_mismatch"
    http_status = 460
    dimse_status = None


def check_resumable(value: str | None) -> None:
    """Every request but OPTIONS must carry ``Tus-Resumable: 1.0.0``."""
    if value is None or value.strip() == "":
        raise VersionMismatch(f"Tus-Resumable header is missing; this server speaks tus {VERSION}")
    if value.strip() != VERSION:
        raise VersionMismatch(f"Tus-Resumable {value.strip()!r} is not supported; this server speaks tus {VERSION}")


def parse_length(value: str | None, name: str) -> int:
    """A non-negative integer header such as Upload-Length or Upload-Offset."""
    if value is None or value.strip() == "":
        raise InvalidInput(f"{name} header is required")
    text = value.strip()
    if not text.isdigit() or len(text) > 19:
        raise InvalidInput(f"{name} must be a non-negative integer, got {text[:40]!r}")
    return int(text)


def parse_metadata(value: str | None) -> dict[str, str]:
    """Decode Upload-Metadata: comma-separated ``key base64(value)`` pairs (creation).

    Values are decoded as UTF-8; a key may come without a value (it maps to "").
    """
    if value is None or not value.strip():
        return {}
    out: dict[str, str] = {}
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not parts[0]:
            raise InvalidInput(f"Upload-Metadata pair {pair.strip()[:60]!r} is not 'key base64value'")
        key = parts[0]
        if not _KEY.match(key):
            raise InvalidInput(f"Upload-Metadata key {key[:60]!r} has characters outside printable ASCII")
        if key in out:
            raise InvalidInput(f"Upload-Metadata key {key!r} appears twice")
        try:
            out[key] = base64.b64decode(parts[1], validate=True).decode("utf-8") if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidInput(f"Upload-Metadata value of {key!r} is not base64 of UTF-8 text") from None
    return out


def encode_metadata(values: dict[str, str]) -> str:
    """The Upload-Metadata header for ``values`` (what a client sends)."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in values.items())


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum as (hashlib name, expected digest), or None when absent."""
    if value is None or not value.strip():
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        # tus checksum extension: an unsupported algorithm is a 400.
        raise InvalidInput(
            f"Upload-Checksum algorithm {algorithm[:20]!r} is not supported; use one of "
            f"{', '.join(CHECKSUM_ALGORITHMS)}"
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise InvalidInput("Upload-Checksum digest is not base64") from None
    if len(digest) != hashlib.new(CHECKSUM_ALGORITHMS[algorithm]).digest_size:
        raise InvalidInput(f"Upload-Checksum digest has the wrong length for {algorithm}")
    return CHECKSUM_ALGORITHMS[algorithm], digest


def check_offset_media_type(value: str | None) -> None:
    """PATCH bodies must be sent as ``application/offset+octet-stream`` (else 415)."""
    media = (value or "").split(";")[0].strip().lower()
    if media != OFFSET_MEDIA_TYPE:
        raise UnsupportedMediaType(f"PATCH needs Content-Type {OFFSET_MEDIA_TYPE}, got {media or 'none'!r}")


def safe_filename(name: str) -> str:
    """A client's file name reduced to one safe path component.

    Folders are dropped (``a/b/../c.stl`` → ``c.stl``), control characters removed, and
    the result is at most 200 characters (the extension kept).
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C")
    base = base.strip().lstrip(".")
    if not base:
        raise InvalidInput(f"file name {name[:80]!r} has no usable characters")
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 199 - len(ext)] + dot + ext) if dot and len(ext) < 20 else base[:200]
    return base
