"""The meshing API: jobs (DRF), downloads of the plain model, and the threshold preview."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from archive.auth import request_user
from archive.dicom.encapsulated import DocumentKind, encapsulated_document_span
from archive.errors import InvalidInput, NotFound
from archive.multipart import file_chunks
from archive.storage import get_storage

from . import services, tasks
from .serializers import MeshJobRequestSerializer, MeshJobSerializer, MeshSerializer

_MIME = {"stl": DocumentKind.STL.mime_type, "obj": DocumentKind.OBJ.mime_type}


class MeshJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """``/api/meshing-jobs``: curators start and cancel; whoever may read the series looks."""

    serializer_class = MeshJobSerializer

    def get_queryset(self):
        services.fail_stale_jobs()  # a job whose worker died is shown as failed, not running
        jobs = services.visible_jobs(self.request.user).select_related("series__study").prefetch_related(
            "meshes__stl_instance__series", "meshes__obj_instance__series", "meshes__job__series__study")
        if series_uid := self.request.query_params.get("series"):
            jobs = jobs.filter(series__series_uid=series_uid)
        return jobs

    def get_object(self):
        job = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if job is None:
            raise NotFound(f"no meshing job {self.kwargs['pk']}")
        return job

    def create(self, request):
        given = MeshJobRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        series = services.visible_series(given.validated_data["series_uid"], request.user)
        job, queued = services.request_job(series, given.params(), request.user)
        if queued:
            transaction.on_commit(lambda: tasks.run_mesh_job.delay(job.pk))
        return Response(self._shown(job.pk), status=status.HTTP_201_CREATED if queued else status.HTTP_200_OK)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = services.cancel_job(self.get_object())
        return Response(self._shown(job.pk))

    def _shown(self, pk: int) -> dict:
        """The job as GET shows it (fetched again: the service may have changed it)."""
        return self.get_serializer(self.get_queryset().get(pk=pk)).data


class MeshViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = MeshSerializer

    def get_object(self):
        mesh = (services.visible_meshes(self.request.user)
                .select_related("job__series__study", "stl_instance__series", "obj_instance__series")
                .filter(pk=self.kwargs["pk"]).first())
        if mesh is None:
            raise NotFound(f"no mesh {self.kwargs['pk']}")
        return mesh


@require_GET
def mesh_file(request, pk: int, fmt: str):
    """The plain model held in a stored Encapsulated STL/OBJ, byte for byte, streamed
    from the stored file (a 400 MB STL is never held in memory)."""
    mesh = services.visible_meshes(request_user(request)).select_related("stl_instance", "obj_instance") \
        .filter(pk=pk).first()
    instance = None if mesh is None else {"stl": mesh.stl_instance, "obj": mesh.obj_instance}.get(fmt)
    if instance is None:
        raise NotFound(f"no {fmt} file for mesh {pk}")
    path = get_storage().path(instance.path)
    offset, length = encapsulated_document_span(path)
    response = StreamingHttpResponse(file_chunks(path, offset, length), content_type=_MIME[fmt])
    response["Content-Length"] = str(length)
    label = "".join(c for c in mesh.label if c.isalnum() or c in "-_")[:32]
    name = f"mesh-{pk}{'-' + label if label else ''}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class PreviewQuery(serializers.Serializer):
    index = serializers.IntegerField(min_value=0, required=False)
    preset = serializers.ChoiceField(choices=services.PRESETS, required=False)
    threshold_hu = serializers.FloatField(required=False)
    band_hu = serializers.RegexField(r"^-?[0-9.]+,-?[0-9.]+$", required=False)
    otsu = serializers.BooleanField(required=False)


@require_GET
def preview(request, series_uid: str):
    """PNG of one slice with the threshold's mask tinted; X-Slice-Index/-Count headers."""
    series = services.visible_series(series_uid, request_user(request))
    query = PreviewQuery(data=request.GET)
    if not query.is_valid():
        field, errors = next(iter(query.errors.items()))
        raise InvalidInput(f"{field}: {' '.join(str(e) for e in errors)}")
    data = dict(query.validated_data)
    index = data.pop("index", None)
    if "band_hu" in data:
        data["band_hu"] = [float(v) for v in data["band_hu"].split(",")]
    if not data.get("otsu"):
        data.pop("otsu", None)
    png, index, count = services.render_preview(series, index, services.canonical_params(data))
    response = HttpResponse(png, content_type="image/png")
    response["X-Slice-Index"], response["X-Slice-Count"] = str(index), str(count)
    response["Cache-Control"] = "private, max-age=300"
    return response
