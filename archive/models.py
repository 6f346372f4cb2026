"""The DICOM index: patient (or museum object) → study → series → instance.

Rows keep the attributes that QIDO-RS and C-FIND match on, so that queries never open a
file. Each instance also keeps its DICOM JSON metadata with bulk data left out.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private"
    PUBLIC = "public", "Public"


CURATOR_GROUP = "curator"
READER_GROUP = "reader"


def is_curator(user) -> bool:
    """May write: upload, edit metadata, start jobs."""
    if not user or not user.is_authenticated:
        return False
    return user.is_superuser or _in_group(user, CURATOR_GROUP)


def can_read_private(user) -> bool:
    """May read private studies: curators, readers and superusers."""
    if not user or not user.is_authenticated:
        return False
    return user.is_superuser or _in_group(user, CURATOR_GROUP) or _in_group(user, READER_GROUP)


def _in_group(user, name: str) -> bool:
    cache = getattr(user, "_vitrine_groups", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._vitrine_groups = cache
    return name in cache


class VisibleQuerySet(models.QuerySet):
    """Rows with a ``visibility`` and an ``owner`` (studies, museum objects)."""

    def visible_to(self, user) -> "VisibleQuerySet":
        """What ``user`` may read: everything for readers and curators, public rows
        and their own for other signed-in users, public rows for anyone else."""
        if can_read_private(user):
            return self
        if user is not None and user.is_authenticated:
            return self.filter(Q(visibility=Visibility.PUBLIC) | Q(owner=user))
        return self.filter(visibility=Visibility.PUBLIC)


class Patient(models.Model):
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    issuer = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(max_length=324, blank=True, db_index=True)
    birth_date = models.CharField(max_length=8, blank=True)
    sex = models.CharField(max_length=16, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient_id", "issuer"], name="unique_patient_id")
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.patient_name}".strip()


class Study(models.Model):
    study_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_date = models.CharField(max_length=8, blank=True, db_index=True)
    study_time = models.CharField(max_length=16, blank=True)
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)
    study_id = models.CharField(max_length=16, blank=True)
    study_description = models.CharField(max_length=64, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    modalities = models.CharField(max_length=128, blank=True, help_text="ModalitiesInStudy, backslash-separated")
    num_series = models.PositiveIntegerField(default=0)
    num_instances = models.PositiveIntegerField(default=0)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = VisibleQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.study_uid

    @property
    def is_public(self) -> bool:
        return self.visibility == Visibility.PUBLIC


class Series(models.Model):
    series_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)
    num_instances = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return self.series_uid


class Instance(models.Model):
    sop_uid = models.CharField(max_length=64, unique=True)
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_class_uid = models.CharField(max_length=64, db_index=True)
    instance_number = models.IntegerField(null=True, blank=True)
    number_of_frames = models.IntegerField(null=True, blank=True)
    rows = models.IntegerField(null=True, blank=True)
    columns = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    path = models.CharField(max_length=255, unique=True, help_text="Name in the archive storage")
    metadata = models.JSONField(help_text="DICOM JSON, bulk data left out")
    received = models.DateTimeField(auto_now_add=True)
    received_from = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["series", "instance_number"])]

    def __str__(self) -> str:
        return self.sop_uid


class Modality(models.Model):
    """A remote DICOM application entity: a C-MOVE destination and a trusted querier."""

    ae_title = models.CharField(max_length=16, unique=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name_plural = "modalities"
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class ApiToken(models.Model):
    """The bearer token of one user (``manage.py token USERNAME``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    key = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    @classmethod
    def for_user(cls, user) -> "ApiToken":
        token, _ = cls.objects.get_or_create(user=user, defaults={"key": secrets.token_hex(32)})
        return token


class FixityCheck(models.Model):
    """One run of the fixity audit (the job behind ``manage.py verify``)."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    study_uid = models.CharField(max_length=64, blank=True, help_text="empty: the whole archive")
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    percent = models.PositiveSmallIntegerField(default=0)
    report = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
