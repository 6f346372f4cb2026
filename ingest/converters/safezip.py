"""Zip archives opened with suspicion: no path escapes, no links, no bombs.

Names are checked from the central directory before a byte is extracted: absolute
paths, drive letters, ``..`` components, NUL bytes, duplicates and symbolic links are
refused. Sizes are checked twice: the declared sizes against the limits first, then
the bytes actually inflated while extracting (a forged header cannot lie its way past
the limit). A failed extraction removes everything it wrote.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from archive.errors import InvalidInput

__all__ = ["ZipLimits", "check_zip", "extract_zip", "is_zip"]

_IGNORED = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$)")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ZipLimits:
    """Upper bounds for one archive. Ratios only count entries above ``ratio_floor``."""

    max_total_bytes: int = 64 * 1024**3
    max_entry_bytes: int = 16 * 1024**3
    max_entries: int = 100_000
    max_ratio: float = 200.0
    ratio_floor: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_total_bytes", "max_entry_bytes", "max_entries", "max_ratio"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def is_zip(path: Path) -> bool:
    with open(path, "rb") as fp:
        return fp.read(4) in (b"PK\x03\x04", b"PK\x05\x06")


def _safe_name(name: str) -> str:
    if "\x00" in name:
        raise InvalidInput(f"zip entry name contains a NUL byte: {name!r}")
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise InvalidInput(f"zip entry {name!r} has an absolute path")
    parts = clean.split("/")
    if ".." in parts:
        raise InvalidInput(f"zip entry {name!r} escapes the archive with '..'")
    norm = posixpath.normpath(clean)
    if norm in (".", "") or norm.startswith("../"):
        raise InvalidInput(f"zip entry {name!r} has no usable path")
    return norm


def check_zip(path: Path, limits: ZipLimits = ZipLimits()) -> list[tuple[zipfile.ZipInfo, str]]:
    """Validate an archive's directory; return (entry, safe relative name) for files.

    Raises
    ------
    InvalidInput
        For unsafe names, links, duplicate names, too many entries, declared sizes
        or compression ratios over ``limits``, or an unreadable archive.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{Path(path).name}: not a readable zip archive ({exc})") from exc
    if len(infos) > limits.max_entries:
        raise InvalidInput(f"zip holds {len(infos)} entries, more than max_entries={limits.max_entries}")
    out, seen, total, total_packed = [], set(), 0, 0
    for info in infos:
        name = _safe_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidInput(f"zip entry {info.filename!r} is a symbolic link")
        if info.is_dir() or _IGNORED.search(name):
            continue
        if info.flag_bits & 0x1:
            raise InvalidInput(f"zip entry {info.filename!r} is encrypted")
        key = name.lower()
        if key in seen:
            raise InvalidInput(f"zip holds {info.filename!r} twice")
        seen.add(key)
        if info.file_size > limits.max_entry_bytes:
            raise InvalidInput(
                f"zip entry {info.filename!r} inflates to {info.file_size} bytes, over "
                f"max_entry_bytes={limits.max_entry_bytes}"
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor and ratio > limits.max_ratio:
            raise InvalidInput(
                f"zip entry {info.filename!r} has compression ratio {ratio:.0f}, over "
                f"max_ratio={limits.max_ratio:g} (zip bomb?)"
            )
        total += info.file_size
        total_packed += info.compress_size
        out.append((info, name))
    if total > limits.max_total_bytes:
        raise InvalidInput(
            f"zip inflates to {total} bytes in all, over max_total_bytes={limits.max_total_bytes}"
        )
    if total > limits.ratio_floor and total / max(total_packed, 1) > limits.max_ratio:
        raise InvalidInput(
            f"zip has overall compression ratio {total / max(total_packed, 1):.0f}, over "
            f"max_ratio={limits.max_ratio:g} (zip bomb?)"
        )
    return out


def extract_zip(path: Path, dest: Path, limits: ZipLimits = ZipLimits()) -> list[Path]:
    """Extract a checked archive into the empty or new folder ``dest``.

    Inflated bytes are counted as they come; an entry that inflates beyond its
    declared size or the limits stops the extraction, and ``dest`` is removed.

    Returns
    -------
    list of Path
        The extracted files, in archive order.
    """
    entries = check_zip(path, limits)
    dest = Path(dest)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ok = False
    try:
        total = 0
        with zipfile.ZipFile(path) as zf:
            for info, name in entries:
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                size = 0
                with zf.open(info) as src, open(target, "wb") as out:
                    written.append(target)
                    while chunk := src.read(_CHUNK):
                        size += len(chunk)
                        total += len(chunk)
                        if size > info.file_size or total > limits.max_total_bytes:
                            raise InvalidInput(
                                f"zip entry {info.filename!r} inflates past its declared size "
                                f"{info.file_size} or the archive limit (zip bomb?)"
                            )
                        out.write(chunk)
        ok = True
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InvalidInput(f"{Path(path).name}: corrupt zip archive ({exc})") from exc
    finally:
        if not ok:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                for item in written:
                    item.unlink(missing_ok=True)
    return written
