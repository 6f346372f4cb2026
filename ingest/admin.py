"""The Django admin for collections, objects, uploads and ingest jobs."""

from __future__ import annotations

from django.contrib import admin

from .models import Collection, IngestJob, Object, Upload


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "holding_institution", "public")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "description")


@admin.register(Object)
class ObjectAdmin(admin.ModelAdmin):
    list_display = ("inventory_number", "title", "collection", "holding_institution", "visibility")
    list_filter = ("collection", "visibility")
    search_fields = ("inventory_number", "title", "description")
    raw_id_fields = ("studies", "owner")


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ("id", "filename", "owner", "offset", "length", "created", "completed", "job")
    raw_id_fields = ("owner", "job")


@admin.register(IngestJob)
class IngestJobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "source", "state", "stage", "percent", "object", "created", "finished")
    list_filter = ("state", "source")
    raw_id_fields = ("owner", "object")
