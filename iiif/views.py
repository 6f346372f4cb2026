"""IIIF over HTTP: Image API 3.0 under /iiif/3/, Presentation 3.0 under /iiif/presentation/.

Thin: each view parses, asks :mod:`iiif.services` or :mod:`iiif.documents` for the
source or the parts of a document, calls the pure builders and writes the response.
Every answer, errors included, carries ``Access-Control-Allow-Origin: *`` (Image API
3.0 §7.1, Presentation 3.0 §6.1): :func:`iiif_endpoint` turns an ``ArchiveError`` into
its JSON answer here rather than leaving it to the middleware, so that even a request
with wrong credentials or an unknown method gets CORS headers and a reason.
"""

from __future__ import annotations

import functools
import json

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse

from archive.auth import request_user
from archive.errors import ArchiveError
from archive.http import error_response
from archive.models import Visibility
from iiif import documents, services
from iiif.errors import ImageNotFound
from iiif.imageapi import INFO_MEDIA_TYPE, build_info
from iiif.imageapi.info import build_link_header
from iiif.images import (
    MAX_AREA,
    MAX_HEIGHT,
    MAX_WIDTH,
    PRIVATE_CACHE,
    PUBLIC_CACHE,
    answer_image,
    image_id_url,
)
from iiif.presentation import PRESENTATION_MEDIA_TYPE, build_collection, build_manifest

_ALLOWED = "GET, HEAD, OPTIONS"
COLLECTION_PAGE_SIZE = int(getattr(settings, "VITRINE_IIIF_PAGE_SIZE", 200))


def _cors(response: HttpResponse) -> HttpResponse:
    response["Access-Control-Allow-Origin"] = "*"
    return response


def iiif_endpoint(view):
    """CORS on every answer, preflight for OPTIONS, 405 for writes, ArchiveErrors as JSON."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = _ALLOWED
            response["Access-Control-Allow-Headers"] = "Authorization, Accept, Range"
            response["Access-Control-Max-Age"] = "86400"
            return _cors(response)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse(
                {"code": "method_not_allowed", "detail": f"IIIF routes answer GET and HEAD, not {request.method}"},
                status=405,
            )
            response["Allow"] = _ALLOWED
            return _cors(response)
        try:
            response = view(request, *args, **kwargs)
        except ArchiveError as exc:
            response = error_response(exc)
        if request.method == "HEAD":
            response.content = b""
        return _cors(response)

    wrapper.csrf_exempt = True
    return wrapper


def _wants_json_ld(request) -> bool:
    return "application/ld+json" in request.META.get("HTTP_ACCEPT", "")


def _cache_headers(response: HttpResponse, visibility: str) -> HttpResponse:
    response["Cache-Control"] = PUBLIC_CACHE if visibility == Visibility.PUBLIC else PRIVATE_CACHE
    if visibility != Visibility.PUBLIC:
        response["Vary"] = "Authorization, Cookie"
    return response


# --- Image API ----------------------------------------------------------------------------


@iiif_endpoint
def image_base(request, identifier: str):
    """§2.2: the base URI redirects (303) to the image information document."""
    services.open_image(request, identifier)  # 404, 401 and 403 as for info.json
    return HttpResponseRedirect(f"{image_id_url(request, identifier)}/info.json", status=303)


@iiif_endpoint
def image_info(request, identifier: str):
    opened = services.open_image(request, identifier)
    info = build_info(
        image_id_url(request, identifier), opened.source,
        max_width=MAX_WIDTH, max_height=MAX_HEIGHT, max_area=MAX_AREA,
        auth_services=services.auth_services(request, opened.visibility),
    )
    media_type = INFO_MEDIA_TYPE if _wants_json_ld(request) else "application/json"
    response = HttpResponse(json.dumps(info), content_type=media_type)
    return _cache_headers(response, opened.visibility)


@iiif_endpoint
def image(request, identifier: str, region: str, size: str, rotation: str, quality_format: str):
    # Access first: a private image answers 401 whatever the rest of the URL says.
    opened = services.open_image(request, identifier)
    answer = answer_image(opened, region, size, rotation, quality_format)
    response = HttpResponse(answer.body, content_type=answer.media_type)
    response["Link"] = build_link_header(image_id_url(request, identifier), answer.canonical_path)
    return _cache_headers(response, opened.visibility)


# --- Presentation API ---------------------------------------------------------------------


def _document(payload: dict, visibility: str = Visibility.PUBLIC) -> HttpResponse:
    response = HttpResponse(json.dumps(payload, ensure_ascii=False), content_type=PRESENTATION_MEDIA_TYPE)
    return _cache_headers(response, visibility)


def _urls(request) -> documents.Urls:
    return documents.Urls(services.public_root(request))


@iiif_endpoint
def study_manifest(request, study_uid: str):
    study = services.find_study(request, study_uid)
    auth = services.auth_services(request, study.visibility)
    info, refs = documents.study_manifest_parts(study, _urls(request), auth)
    return _document(build_manifest(info, refs), study.visibility)


@iiif_endpoint
def series_manifest(request, series_uid: str):
    series = services.find_series(request, series_uid)
    auth = services.auth_services(request, series.study.visibility)
    info, refs = documents.series_manifest_parts(series, _urls(request), auth)
    return _document(build_manifest(info, refs), series.study.visibility)


@iiif_endpoint
def top_collection(request):
    info, members = documents.top_collection_parts(request_user(request), _urls(request))
    response = _document(build_collection(info, members, page_size=COLLECTION_PAGE_SIZE))
    # What a collection lists depends on who asks.
    response["Cache-Control"] = "private, max-age=60"
    response["Vary"] = "Authorization, Cookie"
    return response


@iiif_endpoint
def collection(request, slug: str, page: int | None = None):
    urls = _urls(request)
    info, members = documents.collection_parts(slug, request_user(request), urls)
    try:
        payload = build_collection(info, members, page_size=COLLECTION_PAGE_SIZE, page=page)
    except ValueError as exc:
        raise ImageNotFound(f"collection {slug!r}: {exc}") from None
    response = _document(payload)
    response["Cache-Control"] = "private, max-age=60"
    response["Vary"] = "Authorization, Cookie"
    return response


@iiif_endpoint
def not_found(request, rest: str = ""):
    raise ImageNotFound(f"no IIIF resource at {request.path}")
