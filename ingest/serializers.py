"""The HTTP boundary of ingest's JSON API: ingest requests, jobs, collections, objects."""

from __future__ import annotations

from rest_framework import serializers

from archive.models import Visibility

from . import services
from .models import Collection, IngestJob, Object


class IngestRequestSerializer(serializers.Serializer):
    """``{"uploads": [ids], "metadata": {...}, "visibility": "private"}`` (or ``"public": true``)."""

    uploads = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, max_length=10000)
    metadata = serializers.DictField(required=False, default=dict)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    public = serializers.BooleanField(required=False)

    def validate(self, data: dict) -> dict:
        visibility = data.get("visibility")
        if "public" in data:
            wanted = Visibility.PUBLIC if data["public"] else Visibility.PRIVATE
            if visibility and visibility != wanted:
                raise serializers.ValidationError("public and visibility disagree")
            visibility = wanted
        return {"upload_ids": data["uploads"], "metadata": data["metadata"],
                "visibility": visibility or Visibility.PRIVATE}


class IngestJobSerializer(serializers.ModelSerializer):
    links = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = IngestJob
        fields = ["id", "url", "state", "stage", "percent", "message", "error_code", "source", "visibility",
                  "object", "result", "links", "created", "finished"]
        read_only_fields = fields

    def _base(self) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri("/").rstrip("/") if request else ""

    def get_url(self, job: IngestJob) -> str:
        return f"{self._base()}/api/ingest/jobs/{job.pk}"

    def get_links(self, job: IngestJob) -> dict:
        return services.result_links(job, self._base())


class CollectionSerializer(serializers.ModelSerializer):
    slug = serializers.SlugField(max_length=64, required=False)

    class Meta:
        model = Collection
        fields = ["id", "name", "slug", "description", "holding_institution", "public", "created"]
        read_only_fields = ["created"]

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value or "\\" in value or "\n" in value:
            raise serializers.ValidationError(f"a collection name is one line without backslashes, got {value!r}")
        return value

    def create(self, validated: dict) -> Collection:
        validated.setdefault("slug", services.unique_slug(validated["name"]))
        return super().create(validated)


class ObjectSerializer(serializers.ModelSerializer):
    collection = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    studies = serializers.SlugRelatedField(slug_field="study_uid", many=True, read_only=True)

    class Meta:
        model = Object
        fields = ["id", "collection", "inventory_number", "title", "holding_institution", "description",
                  "object_date", "scan_date", "rights", "licence", "attribution", "visibility", "studies",
                  "created", "updated"]
        read_only_fields = fields
