"""The Django admin for meshing jobs and their meshes."""

from __future__ import annotations

from django.contrib import admin

from .models import Mesh, MeshJob


class MeshInline(admin.TabularInline):
    model = Mesh
    extra = 0
    raw_id_fields = ("stl_instance", "obj_instance")
    readonly_fields = ("label", "triangles", "vertices", "components", "volume_mm3", "area_mm2",
                       "bbox_min_mm", "bbox_max_mm", "watertight")


@admin.register(MeshJob)
class MeshJobAdmin(admin.ModelAdmin):
    list_display = ("id", "series", "state", "stage", "percent", "requested_by", "created", "finished")
    list_filter = ("state",)
    search_fields = ("series__series_uid", "result_series_uid", "key")
    raw_id_fields = ("series", "requested_by")
    readonly_fields = ("key", "params", "result_series_uid", "model_group_uid", "error")
    inlines = [MeshInline]
