"""Vitrine's exceptions: each one states its HTTP status and its DIMSE status once.

Pure code raises these; the two edges (the DRF exception handler in
``archive.api`` and the DIMSE handler decorator in ``archive.dimse``) turn them into
responses. This module imports no Django.
"""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every error Vitrine reports to a client.

    ``code`` is a short machine-readable name, ``http_status`` the HTTP answer and
    ``dimse_status`` the DIMSE status (``None`` where the error has no DIMSE form).
    """

    code = "error"
    http_status = 500
    dimse_status: int | None = 0xC000
    # Set by the store when the failing instance is known, for per-instance reports.
    sop_uid = ""
    sop_class_uid = ""

    def __init__(self, detail: str, *, dimse_status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if dimse_status is not None:
            self.dimse_status = dimse_status

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}


class InvalidInput(ArchiveError):
    """A malformed file, parameter or URL (DIMSE 0xC000: cannot understand)."""

    code = "invalid"
    http_status = 400
    dimse_status = 0xC000


class WrongSOPClass(InvalidInput):
    """The data set does not match the SOP class it was sent under (PS3.4 Annex B)."""

    code = "wrong_sop_class"
    dimse_status = 0xA900


class Unauthorized(ArchiveError):
    """No credentials, or credentials that do not check out."""

    code = "unauthorized"
    http_status = 401
    dimse_status = 0x0124


class Forbidden(ArchiveError):
    code = "forbidden"
    http_status = 403
    dimse_status = 0x0124


class NotFound(ArchiveError):
    code = "not_found"
    http_status = 404
    dimse_status = None


class NotAcceptable(ArchiveError):
    """The Accept header names nothing Vitrine can produce (PS3.18 8.7.4)."""

    code = "not_acceptable"
    http_status = 406
    dimse_status = None


class Conflict(ArchiveError):
    """A SOP Instance UID already stored with different bytes."""

    code = "conflict"
    http_status = 409
    dimse_status = 0x0111


class PayloadTooLarge(ArchiveError):
    code = "too_large"
    http_status = 413
    dimse_status = 0xA700


class UnsupportedMediaType(ArchiveError):
    code = "unsupported_media_type"
    http_status = 415
    dimse_status = 0xC000


class OutOfResources(ArchiveError):
    """Storage full or a quota reached."""

    code = "out_of_resources"
    http_status = 507
    dimse_status = 0xA700
