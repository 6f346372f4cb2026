"""Errors of the IIIF layer, each with its HTTP status (see ``archive.errors``).

Every malformed Image API request is an :class:`InvalidIIIFRequest` (400) whose
detail names the parameter and the offending value, so a client can tell which
part of its URL was refused.  This module imports no Django.
"""

from __future__ import annotations

from archive.errors import InvalidInput, NotFound


class InvalidIIIFRequest(InvalidInput):
    """A region, size, rotation, quality or format the Image API cannot serve (400)."""

    code = "invalid_iiif_request"


class RegionOutsideImage(InvalidIIIFRequest):
    """The region lies entirely outside the image, or has no area (Image API 3.0 4.1)."""

    code = "region_outside_image"


class UpscalingNotAllowed(InvalidIIIFRequest):
    """A size larger than the region without the ``^`` prefix (Image API 3.0 4.2)."""

    code = "upscaling_not_allowed"


class SizeLimitExceeded(InvalidIIIFRequest):
    """A size beyond ``maxWidth``, ``maxHeight`` or ``maxArea`` (Image API 3.0 5.3)."""

    code = "size_limit_exceeded"


class UnsupportedFeature(InvalidIIIFRequest):
    """A valid request for a feature this server does not offer, such as 45° rotation."""

    code = "unsupported_feature"


class ImageNotFound(NotFound):
    """An identifier that cannot name any image served here (404)."""

    code = "image_not_found"
