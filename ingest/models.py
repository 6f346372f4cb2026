"""Curator metadata (collections and objects), resumable uploads, and ingest jobs.

A ``Collection`` groups ``Object`` rows, the museum's own records of the things it
scanned; each object links to the studies its files produced, so that IIIF collections
can list them. An ``Upload`` is one tus upload being staged; an ``IngestJob`` turns
finished uploads (or local paths, from the CLI) into stored DICOM.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from archive.models import Study, Visibility, VisibleQuerySet


class Collection(models.Model):
    name = models.CharField(max_length=64, unique=True)
    slug = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    holding_institution = models.CharField(max_length=64, blank=True)
    public = models.BooleanField(default=False, help_text="listed for everyone in the IIIF collections")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Object(models.Model):
    """One museum object (or clinical subject) as the curator describes it."""

    collection = models.ForeignKey(
        Collection, null=True, blank=True, on_delete=models.PROTECT, related_name="members"
    )
    inventory_number = models.CharField(max_length=64)
    title = models.CharField(max_length=1024, blank=True)
    holding_institution = models.CharField(max_length=64, blank=True)
    description = models.TextField(blank=True)
    object_date = models.CharField(max_length=64, blank=True, help_text="free text, e.g. 'c. 1350 BCE'")
    scan_date = models.DateTimeField(null=True, blank=True)
    rights = models.TextField(blank=True)
    licence = models.CharField(max_length=1024, blank=True)
    attribution = models.CharField(max_length=1024, blank=True)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    studies = models.ManyToManyField(Study, blank=True, related_name="museum_objects")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = VisibleQuerySet.as_manager()

    class Meta:
        ordering = ["inventory_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["holding_institution", "inventory_number"], name="unique_inventory_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.inventory_number} {self.title}".strip()


class Upload(models.Model):
    """One tus upload: its staging file is ``<staging dir>/<id>.part``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    filename = models.CharField(max_length=255)
    length = models.BigIntegerField()
    offset = models.BigIntegerField(default=0, help_text="last offset recorded; the staging file is the truth")
    metadata = models.JSONField(default=dict, help_text="tus Upload-Metadata, decoded")
    created = models.DateTimeField(auto_now_add=True)
    completed = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(db_index=True, help_text="removed after this unless an ingest job claimed it")
    job = models.ForeignKey(
        "IngestJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="upload_rows",
        help_text="the ingest job that claimed this finished upload",
    )

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.offset}/{self.length})"

    @property
    def is_complete(self) -> bool:
        return self.completed is not None


class IngestJob(models.Model):
    """Finished uploads (or the CLI's paths) turned into stored DICOM for one object."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    stage = models.CharField(max_length=32, default="queued")
    percent = models.PositiveSmallIntegerField(default=0)
    message = models.TextField(blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    uploads = models.JSONField(default=list, help_text="upload ids (web) or absolute paths (CLI)")
    source = models.CharField(max_length=8, default="web", choices=[("web", "web"), ("cli", "cli")])
    metadata = models.JSONField(default=dict, help_text="curator metadata as validated")
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    object = models.ForeignKey(Object, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    result = models.JSONField(null=True, blank=True, help_text="study, series and SOP Instance UIDs")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"ingest {self.pk} ({self.state})"
