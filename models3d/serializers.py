"""The HTTP boundary of the meshing API."""

from __future__ import annotations

from urllib.parse import quote

from rest_framework import serializers

from archive.dicomweb.views import base_url

from . import services
from .models import Mesh, MeshJob


class SmoothingSerializer(serializers.Serializer):
    iterations = serializers.IntegerField(min_value=0, max_value=services.MAX_SMOOTH_ITERATIONS, required=False)
    passband = serializers.FloatField(required=False)


class MaskSerializer(serializers.Serializer):
    series_uid = serializers.RegexField(r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    labels = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)


class MeshJobRequestSerializer(serializers.Serializer):
    """What ``POST /api/meshing-jobs`` takes; ``params()`` gives the canonical set."""

    series_uid = serializers.RegexField(r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    preset = serializers.ChoiceField(choices=services.PRESETS, required=False)
    threshold_hu = serializers.FloatField(required=False)
    band_hu = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, required=False)
    otsu = serializers.BooleanField(required=False)
    mask = MaskSerializer(required=False)
    smoothing = SmoothingSerializer(required=False)
    smooth_iterations = serializers.IntegerField(min_value=0, max_value=services.MAX_SMOOTH_ITERATIONS, required=False)
    smooth_passband = serializers.FloatField(required=False)
    target_triangles = serializers.IntegerField(min_value=4, required=False, allow_null=True)
    outputs = serializers.ListField(child=serializers.ChoiceField(choices=services.OUTPUTS), required=False)
    crop = serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=6, max_length=6,
                                 required=False, allow_null=True)
    downsample = serializers.IntegerField(min_value=1, max_value=services.MAX_DOWNSAMPLE, required=False)
    keep_largest = serializers.BooleanField(required=False)

    def params(self) -> dict:
        data = dict(self.validated_data)
        data.pop("series_uid")
        smoothing = data.pop("smoothing", None) or {}
        if "iterations" in smoothing:
            data.setdefault("smooth_iterations", smoothing["iterations"])
        if "passband" in smoothing:
            data.setdefault("smooth_passband", smoothing["passband"])
        if "mask" in data:
            data["mask"] = dict(data["mask"])
        return services.canonical_params(data)


def _wado_url(request, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{base_url(request)}/studies/{quote(study_uid)}/series/{quote(series_uid)}/instances/{quote(sop_uid)}"


class MeshSerializer(serializers.ModelSerializer):
    stl = serializers.SerializerMethodField()
    obj = serializers.SerializerMethodField()

    class Meta:
        model = Mesh
        fields = ["id", "label", "triangles", "vertices", "components", "volume_mm3", "area_mm2",
                  "bbox_min_mm", "bbox_max_mm", "watertight", "stl", "obj"]

    def _file(self, mesh: Mesh, instance, fmt: str) -> dict | None:
        if instance is None:
            return None
        request = self.context["request"]
        study_uid = mesh.job.series.study.study_uid
        return {
            "sop_instance_uid": instance.sop_uid,
            "series_instance_uid": instance.series.series_uid,
            "dicom": _wado_url(request, study_uid, instance.series.series_uid, instance.sop_uid),
            "download": request.build_absolute_uri(f"/api/meshes/{mesh.pk}/{fmt}"),
        }

    def get_stl(self, mesh: Mesh) -> dict | None:
        return self._file(mesh, mesh.stl_instance, "stl")

    def get_obj(self, mesh: Mesh) -> dict | None:
        return self._file(mesh, mesh.obj_instance, "obj")


class MeshJobSerializer(serializers.ModelSerializer):
    series_uid = serializers.CharField(source="series.series_uid", read_only=True)
    study_uid = serializers.CharField(source="series.study.study_uid", read_only=True)
    description = serializers.SerializerMethodField()
    eta_s = serializers.FloatField(read_only=True)
    meshes = MeshSerializer(many=True, read_only=True)

    class Meta:
        model = MeshJob
        fields = ["id", "series_uid", "study_uid", "state", "stage", "percent", "eta_s", "error",
                  "cancel_requested", "params", "description", "result_series_uid", "model_group_uid",
                  "created", "started", "finished", "heartbeat", "meshes"]
        read_only_fields = fields

    def get_description(self, job: MeshJob) -> str:
        return services.describe_params(job.params)
