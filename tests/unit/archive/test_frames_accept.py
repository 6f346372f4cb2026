"""Which frames an Accept header admits (WADO-RS /frames)."""

from __future__ import annotations

import pytest

from archive.errors import NotAcceptable
from archive.frames import NATIVE, STORED, negotiate_frames

OCTETS = 'multipart/related; type="application/octet-stream"'
EXPLICIT, IMPLICIT, JPEG = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50"


@pytest.mark.parametrize(("accept", "media_type", "syntax", "answer"), [
    ("", "application/octet-stream", EXPLICIT, STORED),
    (OCTETS, "application/octet-stream", IMPLICIT, STORED),
    (f"{OCTETS}; transfer-syntax={EXPLICIT}", "application/octet-stream", IMPLICIT, STORED),  # the same bytes
    ('multipart/related; type="image/jpeg"', "image/jpeg", JPEG, STORED),
    ('multipart/related; type="image/*"', "image/jpeg", JPEG, STORED),
    (f'multipart/related; type="image/jpeg"; transfer-syntax={JPEG}', "image/jpeg", JPEG, STORED),
    (OCTETS, "image/jpeg", JPEG, NATIVE),
    (f"{OCTETS}; transfer-syntax={EXPLICIT}", "image/jpeg", JPEG, NATIVE),
    (f'multipart/related; type="image/jp2", {OCTETS}', "image/jpeg", JPEG, NATIVE),
    (f'multipart/related; type="image/jpeg", {OCTETS}', "image/jpeg", JPEG, STORED),  # the first that fits
])
def test_frames_accepted(accept, media_type, syntax, answer):
    assert negotiate_frames(accept or "*/*", media_type, syntax) == answer


@pytest.mark.parametrize(("accept", "media_type", "syntax"), [
    ('multipart/related; type="image/jp2"', "image/jpeg", JPEG),
    (f"{OCTETS}; transfer-syntax={IMPLICIT}", "image/jpeg", JPEG),
    ('multipart/related; type="image/jpeg"', "application/octet-stream", EXPLICIT),
    ("application/json", "image/jpeg", JPEG),
    (f"{OCTETS}; transfer-syntax=1.2.840.10008.1.2.2", "application/octet-stream", EXPLICIT),
])
def test_frames_refused_with_the_reason(accept, media_type, syntax):
    with pytest.raises(NotAcceptable, match="decoded as application/octet-stream"):
        negotiate_frames(accept, media_type, syntax)
