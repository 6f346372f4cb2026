"""The Django admin for the index and the DIMSE peers."""

from __future__ import annotations

from django.contrib import admin

from .models import ApiToken, Instance, Modality, Patient, Series, Study


@admin.register(Modality)
class ModalityAdmin(admin.ModelAdmin):
    list_display = ("ae_title", "host", "port", "description")
    search_fields = ("ae_title", "host", "description")


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("patient_id", "issuer", "patient_name", "birth_date", "sex")
    search_fields = ("patient_id", "patient_name")


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = (
        "study_uid", "patient", "study_date", "accession_number", "study_description",
        "modalities", "num_series", "num_instances", "visibility", "owner",
    )
    list_filter = ("visibility", "study_date")
    search_fields = ("study_uid", "accession_number", "study_description", "patient__patient_id")
    list_select_related = ("patient", "owner")
    raw_id_fields = ("patient", "owner")


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ("series_uid", "study", "modality", "series_number", "series_description", "num_instances")
    list_filter = ("modality",)
    search_fields = ("series_uid", "series_description", "study__study_uid")
    list_select_related = ("study",)
    raw_id_fields = ("study",)


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = (
        "sop_uid", "series", "sop_class_uid", "instance_number", "transfer_syntax_uid",
        "size_bytes", "received", "received_from",
    )
    search_fields = ("sop_uid", "series__series_uid", "received_from")
    list_filter = ("sop_class_uid", "transfer_syntax_uid")
    list_select_related = ("series",)
    raw_id_fields = ("series",)
    readonly_fields = ("sha256", "path", "size_bytes", "received")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("user", "created")
    search_fields = ("user__username",)
    readonly_fields = ("key", "created")
