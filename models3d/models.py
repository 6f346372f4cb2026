"""Meshing jobs and the meshes they store back into the archive.

A ``MeshJob`` is one request to mesh a CT series with given parameters; its ``key``
is a hash of the series UID and the canonical parameters, so asking again with the
same parameters finds the same job (and the same DICOM UIDs). Each ``Mesh`` mirrors
what one stored model measures, so the API can show it without opening a file.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from archive.models import Instance, Series


class MeshJob(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (State.DONE, State.FAILED, State.CANCELLED)

    key = models.CharField(max_length=64, unique=True, help_text="sha256 of series UID + parameters")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="mesh_jobs")
    params = models.JSONField(help_text="canonical parameters (models3d.services.canonical_params)")
    state = models.CharField(max_length=9, choices=State.choices, default=State.QUEUED)
    stage = models.CharField(max_length=16, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    result_series_uid = models.CharField(max_length=64, blank=True)
    model_group_uid = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(
        null=True, blank=True, help_text="last sign of life of the worker running the job")

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"mesh job {self.pk} ({self.state}) of {self.series_id}"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the time taken so far; None when unknown."""
        if self.state != self.State.RUNNING or not self.started or not 0 < self.percent < 100:
            return None
        elapsed = (timezone.now() - self.started).total_seconds()
        return round(elapsed * (100 - self.percent) / self.percent, 1)


class Mesh(models.Model):
    """One model a job stored (one per mask label; a threshold job has one)."""

    job = models.ForeignKey(MeshJob, on_delete=models.CASCADE, related_name="meshes")
    label = models.CharField(max_length=64, blank=True, help_text="mask label or ROI name; empty for a threshold")
    stl_instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="+")
    obj_instance = models.ForeignKey(Instance, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    triangles = models.PositiveBigIntegerField()
    vertices = models.PositiveBigIntegerField()
    components = models.PositiveIntegerField()
    volume_mm3 = models.FloatField()
    area_mm2 = models.FloatField()
    bbox_min_mm = models.JSONField(help_text="[x, y, z] in patient coordinates")
    bbox_max_mm = models.JSONField(help_text="[x, y, z] in patient coordinates")
    watertight = models.BooleanField()

    class Meta:
        ordering = ["job", "label"]
        constraints = [models.UniqueConstraint(fields=["job", "label"], name="one_mesh_per_job_label")]

    def __str__(self) -> str:
        return f"mesh {self.label or 'threshold'} of job {self.job_id}"
