"""The HTTP edge for errors: an ArchiveError becomes ``{"code", "detail"}`` with its status.

One middleware covers plain Django views (DICOMweb, IIIF, uploads); one exception
handler covers DRF views. Anything else is left to Django, which logs it and answers 500.
"""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework.views import exception_handler

from .errors import ArchiveError, Unauthorized


def error_response(exc: ArchiveError) -> JsonResponse:
    response = JsonResponse(exc.as_dict(), status=exc.http_status)
    if isinstance(exc, Unauthorized):
        response["WWW-Authenticate"] = 'Basic realm="vitrine", Bearer realm="vitrine"'
    response["Access-Control-Allow-Origin"] = "*"
    return response


class ArchiveErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if isinstance(exc, ArchiveError):
            return error_response(exc)
        return None


def drf_exception_handler(exc, context):
    if isinstance(exc, ArchiveError):
        return error_response(exc)
    response = exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        code = getattr(exc, "default_code", "error")
        response.data = {"code": code, "detail": str(response.data["detail"])}
    return response
