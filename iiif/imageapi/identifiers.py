"""Image identifiers: a DICOM UID, optionally followed by ``~window``.

``1.2.840.1234.5`` names an image (an instance, or a WSI series); ``1.2.840.1234.5~bone``
names the same grayscale image through the ``bone`` window preset, and
``1.2.840.1234.5~-600_1500`` through an explicit ``center_width`` window.  What a UID
points at is for the Django layer to look up; this module only reads the syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iiif.errors import ImageNotFound
from iiif.imageapi.window import Window, parse_window

__all__ = ["WINDOW_SEPARATOR", "ImageIdentifier", "format_identifier", "parse_identifier"]

WINDOW_SEPARATOR = "~"
# PS3.5 9.1: digits and dots, components without leading zeros, at most 64 characters.
_UID_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")


@dataclass(frozen=True)
class ImageIdentifier:
    """A parsed identifier; ``window_text`` is the suffix as written, for URLs."""

    uid: str
    window: Window | None = None
    window_text: str | None = None


def parse_identifier(identifier: str) -> ImageIdentifier:
    """Parse a percent-decoded identifier.

    Raises
    ------
    ImageNotFound
        Not a DICOM UID: no image can have this name (404, as the IIIF validator's
        random-identifier test expects).
    InvalidIIIFRequest
        A valid UID with an unknown window suffix (400).
    """
    uid, separator, window_text = identifier.partition(WINDOW_SEPARATOR)
    if len(uid) > 64 or _UID_RE.fullmatch(uid) is None:
        raise ImageNotFound(f"identifier {identifier!r} is not a DICOM UID")
    if not separator:
        return ImageIdentifier(uid)
    return ImageIdentifier(uid, parse_window(window_text), window_text)


def format_identifier(uid: str, window_text: str | None = None) -> str:
    """The identifier for a UID and an optional window suffix (the inverse of parsing)."""
    return uid if window_text is None else f"{uid}{WINDOW_SEPARATOR}{window_text}"
