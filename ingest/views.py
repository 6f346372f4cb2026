"""Ingest's HTTP edge: the tus endpoints (plain Django, so bodies stream) and the JSON API.

tus (https://tus.io/protocols/resumable-upload):

* ``OPTIONS /api/ingest/uploads``: what the server speaks (no login needed).
* ``POST /api/ingest/uploads``: create; ``Upload-Length``, ``Upload-Metadata``.
* ``HEAD|PATCH|DELETE /api/ingest/uploads/<id>``: offset, append, terminate.

Curators only: Basic or Bearer credentials, or a session with a CSRF token. Another
user's upload answers 404, as if it did not exist.
"""

from __future__ import annotations

from functools import wraps

from django.db import transaction
from django.http import HttpResponse, HttpResponseNotAllowed
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from archive.api.views import IsCurator
from archive.auth import request_user, require_curator
from archive.errors import ArchiveError, Forbidden, InvalidInput
from archive.http import error_response

from . import services, tus
from . import uploads as staging
from .models import Collection, IngestJob, Object
from .serializers import (
    CollectionSerializer,
    IngestJobSerializer,
    IngestRequestSerializer,
    ObjectSerializer,
)

_SAFE = ("GET", "HEAD", "OPTIONS")


def tus_endpoint(view):
    """Every tus answer but OPTIONS must carry Tus-Resumable; errors get it too."""

    @csrf_exempt
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except ArchiveError as exc:
            response = error_response(exc)
        response["Tus-Resumable"] = tus.VERSION
        response["Cache-Control"] = "no-store"
        return response

    return wrapped


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


def _curator(request):
    """The curator behind the request; sessions must also pass Django's CSRF check."""
    user = request_user(request)
    require_curator(user)
    from_session = user is getattr(request, "user", None)
    if from_session and _method(request) not in _SAFE:
        check = _CsrfCheck(lambda req: None)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise Forbidden(f"CSRF check failed: {reason}")
    return user


def _method(request) -> str:
    # tus lets clients behind restrictive proxies tunnel PATCH and DELETE through POST.
    override = request.META.get("HTTP_X_HTTP_METHOD_OVERRIDE", "")
    return override.upper() if request.method == "POST" and override else request.method


def _options() -> HttpResponse:
    response = HttpResponse(status=204)
    response["Tus-Version"] = tus.VERSION
    response["Tus-Extension"] = ",".join(tus.EXTENSIONS)
    response["Tus-Max-Size"] = str(staging.max_upload_bytes())
    response["Tus-Checksum-Algorithm"] = ",".join(tus.CHECKSUM_ALGORITHMS)
    return response


@tus_endpoint
def uploads(request):
    """The creation endpoint."""
    method = _method(request)
    if method == "OPTIONS":
        return _options()
    if method != "POST":
        return HttpResponseNotAllowed(["OPTIONS", "POST"])
    tus.check_resumable(request.headers.get("Tus-Resumable"))
    user = _curator(request)
    if "Upload-Defer-Length" in request.headers:
        raise InvalidInput("Upload-Defer-Length is not supported: send Upload-Length")
    length = tus.parse_length(request.headers.get("Upload-Length"), "Upload-Length")
    metadata = tus.parse_metadata(request.headers.get("Upload-Metadata"))
    upload = staging.create_upload(user, length=length, metadata=metadata)
    response = HttpResponse(status=201)
    response["Location"] = request.build_absolute_uri(reverse("ingest-upload", args=[upload.id]))
    response["Upload-Offset"] = "0"
    response["Upload-Expires"] = http_date(upload.expires.timestamp())
    return response


@tus_endpoint
def upload(request, upload_id: str):
    """One upload: HEAD for its offset, PATCH to append, DELETE to terminate."""
    method = _method(request)
    if method == "OPTIONS":
        return _options()
    if method not in ("HEAD", "PATCH", "DELETE"):
        return HttpResponseNotAllowed(["OPTIONS", "HEAD", "PATCH", "DELETE"])
    tus.check_resumable(request.headers.get("Tus-Resumable"))
    user = _curator(request)
    item = staging.get_upload(user, upload_id)
    if method == "DELETE":
        staging.delete_upload(item)
        return HttpResponse(status=204)
    if method == "HEAD":
        response = HttpResponse(status=200)
        response["Upload-Offset"] = str(staging.upload_offset(item))
        response["Upload-Length"] = str(item.length)
        response["Upload-Expires"] = http_date(item.expires.timestamp())
        if item.metadata:
            response["Upload-Metadata"] = tus.encode_metadata(item.metadata)
        return response
    tus.check_offset_media_type(request.META.get("CONTENT_TYPE"))
    offset = tus.parse_length(request.headers.get("Upload-Offset"), "Upload-Offset")
    checksum = tus.parse_checksum(request.headers.get("Upload-Checksum"))
    length_header = request.META.get("CONTENT_LENGTH")
    content_length = int(length_header) if length_header and length_header.isdigit() else None
    new_offset = staging.append_to_upload(
        item, offset=offset, stream=request, content_length=content_length, checksum=checksum
    )
    response = HttpResponse(status=204)
    response["Upload-Offset"] = str(new_offset)
    response["Upload-Expires"] = http_date(item.expires.timestamp())
    return response


# --- JSON API (DRF) --------------------------------------------------------------------


class IngestJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """POST an ingest request; GET a job's state, stage, percent and result links."""

    serializer_class = IngestJobSerializer
    permission_classes = [IsCurator]

    def get_queryset(self):
        return IngestJob.objects.filter(owner=self.request.user).order_by("-created")

    def create(self, request):
        checked = IngestRequestSerializer(data=request.data)
        checked.is_valid(raise_exception=True)
        with transaction.atomic():
            job = services.request_ingest(request.user, **checked.validated_data)
        body = IngestJobSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class CollectionViewSet(viewsets.ModelViewSet):
    queryset = Collection.objects.all()
    serializer_class = CollectionSerializer
    permission_classes = [IsCurator]
    lookup_field = "slug"


class ObjectViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Object.objects.select_related("collection").prefetch_related("studies")
    serializer_class = ObjectSerializer
    permission_classes = [IsCurator]

    def get_queryset(self):
        queryset = super().get_queryset()
        if slug := self.request.query_params.get("collection"):
            queryset = queryset.filter(collection__slug=slug)
        return queryset



def model_zip(request, sop_uid: str):
    """An OBJ group back as one zip (OBJ, MTL, textures under their original names), which
    a normal 3D viewer opens. ``sop_uid`` names the Encapsulated OBJ instance."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    data = services.read_model_group_zip(request_user(request), sop_uid)
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{sop_uid}.zip"'
    return response
