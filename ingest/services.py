"""Ingest orchestration: queuing jobs over finished uploads, converting and storing.

Uploads are staged by ``ingest.uploads`` on the archive's own filesystem, so a
finished upload, its conversion outputs and the archive share one filesystem and
every move is a rename. A job converts one object's files with the pure converters
(``ingest.converters.convert``) and stores all outputs with ONE ``store_files`` call.
It is all or nothing per object: if a conversion or any store fails, whatever was
stored for the object is removed again, and the job reports why.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify
import pydicom
from pydicom.uid import generate_uid

from archive.errors import (
    ArchiveError,
    Conflict,
    InvalidInput,
    NotFound,
)
from archive.models import Instance, Series, Study, Visibility
from archive.services import StoreOutcome, delete_study, store_files
from archive.storage import get_storage
from ingest.converters.obj import read_model_zip
from ingest.metadata import CuratorMetadata, parse_sidecar

from . import uploads as staging
from .models import Collection, IngestJob, Object, Upload

log = logging.getLogger(__name__)

SIDECAR_NAMES = ("metadata.json", "vitrine.json")
MAX_SIDECAR_BYTES = 1024 * 1024
Progress = Callable[[str, int], None]  # (stage, percent 0..100)


# --- metadata --------------------------------------------------------------------------


def parse_metadata(values: dict) -> CuratorMetadata:
    """Validate curator metadata given as a dict (form or JSON body) via ingest.metadata."""
    if not isinstance(values, dict):
        raise InvalidInput(f"metadata must be an object, got {type(values).__name__}")
    return parse_sidecar(json.dumps(values))


def merge_metadata(sidecar: dict, form: dict) -> dict:
    """A sidecar's fields, overridden by the form's non-empty ones."""
    return {**sidecar, **{k: v for k, v in form.items() if v not in ("", None)}}


def read_sidecar(path: Path) -> dict:
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        raise InvalidInput(f"{path.name}: a metadata sidecar is at most {MAX_SIDECAR_BYTES} bytes")
    parse_sidecar(path.read_bytes())  # validated on its own first, so errors name the file
    return json.loads(path.read_bytes())


# --- jobs ------------------------------------------------------------------------------


def request_ingest(owner, *, upload_ids: Sequence[str], metadata: dict, visibility: str) -> IngestJob:
    """Check a web ingest request and queue its job (the Celery task starts on commit).

    Raises
    ------
    NotFound
        An upload id that is not the user's.
    Conflict
        An upload that is unfinished or claimed by another job.
    InvalidInput
        Bad metadata or visibility, or no uploads.
    """
    from . import tasks

    if not upload_ids:
        raise InvalidInput("an ingest request needs at least one upload")
    if visibility not in Visibility.values:
        raise InvalidInput(f"visibility must be 'public' or 'private', got {visibility!r}")
    with transaction.atomic():
        items = [staging.get_upload(owner, upload_id) for upload_id in dict.fromkeys(map(str, upload_ids))]
        names: set[str] = set()
        sidecar: dict = {}
        for upload in items:
            if upload.job_id is not None:
                raise Conflict(f"upload {upload.id} belongs to ingest job {upload.job_id} already")
            if not upload.is_complete:
                held = staging.upload_offset(upload)
                raise Conflict(f"upload {upload.id} ({upload.filename}) has {held} of {upload.length} bytes")
            if upload.filename.lower() in names:
                raise InvalidInput(f"two uploads are called {upload.filename!r}")
            names.add(upload.filename.lower())
            if upload.filename.lower() in SIDECAR_NAMES:
                sidecar = read_sidecar(staging.staging_path(upload))
        merged = merge_metadata(sidecar, metadata or {})
        parse_metadata(merged)
        job = IngestJob.objects.create(
            owner=owner, uploads=[str(u.id) for u in items], metadata=merged, visibility=visibility
        )
        claimed = Upload.objects.filter(pk__in=[u.pk for u in items], job__isnull=True).update(job=job)
        if claimed != len(items):  # another request claimed one a moment ago; roll back
            raise Conflict("an upload of this request was claimed by another ingest job")
        transaction.on_commit(lambda: tasks.run_ingest_job.delay(job.pk))
    return job


@dataclass
class IngestResult:
    """What one object's ingest stored."""

    object: Object
    studies: list[dict] = field(default_factory=list)  # [{study_uid, series: [{series_uid, modality, instances}]}]
    created: int = 0

    def as_dict(self) -> dict:
        return {"object_id": self.object.pk, "study_uid": self.studies[0]["study_uid"] if self.studies else "",
                "studies": self.studies, "instances_created": self.created}


def ingest_paths(
    paths: Sequence[Path], *, metadata: CuratorMetadata, owner=None, visibility: str = Visibility.PRIVATE,
    received_from: str = "ingest", on_progress: Progress = lambda stage, percent: None,
) -> IngestResult:
    """Convert one object's files and store every output, or nothing at all.

    Parameters
    ----------
    paths
        Files, folders or zips of ONE object (they are read, never changed).
    metadata
        The object's validated curator metadata (``collection`` names its Collection).

    Raises
    ------
    ArchiveError
        A conversion failed or an output could not be stored; nothing is left behind.
    """
    from ingest.converters import convert

    storage = get_storage()
    out_dir = Path(tempfile.mkdtemp(prefix="ingest-", dir=storage.incoming_dir()))
    outcomes: list[StoreOutcome | ArchiveError] = []
    try:
        def converting(stage: str, fraction: float) -> None:
            label = "converted" if stage == "done" else f"converting {stage}"[:32]
            on_progress(label, int(90 * fraction))

        converted = convert(
            list(paths), metadata=metadata, uids=lambda: generate_uid(), now=timezone.now().replace(tzinfo=None),
            out_dir=out_dir, on_progress=converting, work_dir=storage.incoming_dir(),
        )
        on_progress("storing", 90)
        sources = {f.path: f.source_name for f in converted.files}
        outcomes = store_files([(f.path, None) for f in converted.files], received_from=received_from,
                               owner=owner, visibility=visibility)
        for out, outcome in zip(converted.files, outcomes):
            if isinstance(outcome, ArchiveError):
                outcome.detail = f"{sources[out.path]}: {outcome.detail}"
                raise outcome
        with transaction.atomic():
            result = _record_object(metadata, outcomes, owner=owner, visibility=visibility)
    except BaseException:
        _undo(outcomes)
        raise
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    on_progress("done", 100)
    return result


def _record_object(meta: CuratorMetadata, outcomes: list, *, owner, visibility: str) -> IngestResult:
    collection = None
    if meta.collection:
        collection = Collection.objects.filter(name=meta.collection).first()
        if collection is None:
            collection = Collection.objects.create(
                name=meta.collection, slug=unique_slug(meta.collection),
                holding_institution=meta.holding_institution,
            )
    fields = dict(
        collection=collection, title=meta.title, description=meta.description, object_date=meta.object_date,
        scan_date=_aware(meta.scan_date),
        rights=meta.rights, licence=meta.licence, attribution=meta.attribution, visibility=visibility,
    )
    obj, created = Object.objects.get_or_create(
        holding_institution=meta.holding_institution, inventory_number=meta.inventory_number,
        defaults={**fields, "owner": owner},
    )
    if not created:
        for name, value in fields.items():
            if value not in ("", None):
                setattr(obj, name, value)
        obj.save()
    pks = [o.instance.pk for o in outcomes]
    instances = (Instance.objects.filter(pk__in=pks).select_related("series__study")
                 .order_by("series__series_number", "instance_number", "pk"))
    studies: dict[str, dict] = {}
    for instance in instances:
        study = instance.series.study
        entry = studies.setdefault(study.study_uid, {"study_uid": study.study_uid, "series": {}, "_pk": study.pk})
        series = entry["series"].setdefault(instance.series.series_uid, {
            "series_uid": instance.series.series_uid, "modality": instance.series.modality,
            "description": instance.series.series_description, "instances": [],
        })
        series["instances"].append(instance.sop_uid)
    obj.studies.add(*[entry.pop("_pk") for entry in studies.values()])
    listed = [{"study_uid": s["study_uid"], "series": list(s["series"].values())} for s in studies.values()]
    created_count = sum(1 for o in outcomes if o.created)
    return IngestResult(obj, listed, created_count)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and timezone.is_naive(moment):
        return timezone.make_aware(moment, UTC)
    return moment


def unique_slug(name: str) -> str:
    base = slugify(name)[:56] or "collection"
    slug, n = base, 1
    while Collection.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _undo(outcomes: list) -> None:
    """Remove the instances this ingest created (rows now, files once committed)."""
    created = [o.instance for o in outcomes if isinstance(o, StoreOutcome) and o.created]
    if not created:
        return
    pks = {i.pk for i in created}
    storage = get_storage()
    with transaction.atomic():
        for study in Study.objects.filter(series__instances__pk__in=pks).distinct():
            if not Instance.objects.filter(series__study=study).exclude(pk__in=pks).exists():
                delete_study(study)
                continue
            # The study held instances before this ingest: take out only ours.
            ours = Instance.objects.filter(series__study=study, pk__in=pks)
            names = list(ours.values_list("path", flat=True))
            for series_pk in set(ours.values_list("series_id", flat=True)):
                n = ours.filter(series_id=series_pk).count()
                Series.objects.filter(pk=series_pk).update(num_instances=F("num_instances") - n)
            Study.objects.filter(pk=study.pk).update(num_instances=F("num_instances") - len(names))
            ours.delete()
            emptied = Series.objects.filter(study=study, num_instances=0)
            Study.objects.filter(pk=study.pk).update(num_series=F("num_series") - emptied.count())
            emptied.delete()
            transaction.on_commit(lambda names=names: [storage.delete(n) for n in names])


def run_ingest_job(job_id: int, on_progress: Progress | None = None) -> IngestJob:
    """Run a queued ingest job (the Celery task's body; the CLI calls it directly).

    ``on_progress(stage, percent)`` is told what the job row is told (a progress bar).
    """
    report = on_progress
    job = IngestJob.objects.select_related("owner").get(pk=job_id)
    if job.state == IngestJob.State.RUNNING:
        # Redelivered after a worker died mid-job (acks_late): say so rather than hang.
        _finish(job, staging.staging_dir() / f"job-{job.pk}", state=IngestJob.State.FAILED, stage="failed",
                error_code="interrupted", message="the worker stopped during this job; upload the files again")
        return job
    if job.state != IngestJob.State.QUEUED:
        return job  # a redelivered task: the job ran already
    _update(job, state=IngestJob.State.RUNNING, stage="preparing", percent=0)
    last = {"percent": -1, "stage": ""}

    def on_progress(stage: str, percent: int) -> None:
        if (percent, stage) != (last["percent"], last["stage"]):
            last.update(percent=percent, stage=stage)
            _update(job, stage=stage, percent=min(percent, 99))
            if report is not None:
                report(stage, min(percent, 99))

    in_dir = None
    try:
        meta = parse_metadata(job.metadata)
        if job.source == "web":
            in_dir = staging.staging_dir() / f"job-{job.pk}"
            paths = _gather_uploads(job, in_dir)
        else:
            paths = [Path(p) for p in job.uploads]
        result = ingest_paths(paths, metadata=meta, owner=job.owner, visibility=job.visibility,
                              received_from=f"ingest-{job.source}", on_progress=on_progress)
        outcome = dict(state=IngestJob.State.DONE, stage="done", percent=100, object=result.object,
                       result=result.as_dict(), message=_summary(result))
    except ArchiveError as exc:
        outcome = dict(state=IngestJob.State.FAILED, stage="failed", message=exc.detail, error_code=exc.code)
    except Exception as exc:
        log.exception("ingest job %s failed", job_id)
        _finish(job, in_dir, state=IngestJob.State.FAILED, stage="failed",
                message=f"internal error: {exc}", error_code="error")
        raise
    _finish(job, in_dir, **outcome)
    return job


def _finish(job: IngestJob, in_dir: Path | None, **fields) -> None:
    """Consume the uploads first, then say the job is over: whoever sees the final state
    sees no staging file left."""
    if job.source == "web":
        _discard_uploads(job, in_dir)
    _update(job, finished=timezone.now(), **fields)


def _update(job: IngestJob, **fields) -> None:
    IngestJob.objects.filter(pk=job.pk).update(**fields)
    for name, value in fields.items():
        setattr(job, name, value)


def _summary(result: IngestResult) -> str:
    series = sum(len(s["series"]) for s in result.studies)
    instances = sum(len(x["instances"]) for s in result.studies for x in s["series"])
    return f"stored {instances} instance(s) in {series} series"


def _gather_uploads(job: IngestJob, in_dir: Path) -> list[Path]:
    """Move the job's finished staging files into one folder under their own names,
    so that an OBJ finds its MTL and textures, and slices of a stack sit together."""
    in_dir.mkdir(parents=True, exist_ok=False)
    paths = []
    for upload in Upload.objects.filter(job=job).order_by("created"):
        target = in_dir / upload.filename
        os.replace(staging.staging_path(upload), target)
        paths.append(target)
    if not paths:
        raise InvalidInput(f"ingest job {job.pk} has no uploads left")
    return paths


def _discard_uploads(job: IngestJob, in_dir: Path | None) -> None:
    """A job consumes its uploads, whatever its outcome."""
    claimed = list(Upload.objects.filter(job=job))
    for upload in claimed:
        staging.staging_path(upload).unlink(missing_ok=True)
    Upload.objects.filter(pk__in=[u.pk for u in claimed]).delete()
    if in_dir is not None:
        shutil.rmtree(in_dir, ignore_errors=True)


def start_local_job(owner, paths: Sequence[Path], *, metadata: dict, visibility: str) -> IngestJob:
    """A job over local paths (the CLI): checked like a web request, run by the caller."""
    parse_metadata(metadata)
    if visibility not in Visibility.values:
        raise InvalidInput(f"visibility must be 'public' or 'private', got {visibility!r}")
    return IngestJob.objects.create(
        owner=owner, source="cli", uploads=[str(Path(p).resolve()) for p in paths],
        metadata=metadata, visibility=visibility,
    )


def result_links(job: IngestJob, base_url: str = "") -> dict:
    """Where a finished job's studies can be seen: DICOMweb, IIIF manifest, viewer."""
    if not job.result or not job.result.get("study_uid"):
        return {}
    uid = job.result["study_uid"]
    manifest = f"{base_url}/iiif/presentation/studies/{uid}/manifest"
    return {
        "study_uid": uid,
        "dicomweb_study": f"{base_url}/dicomweb/studies/{uid}",
        "dicomweb_series": f"{base_url}/dicomweb/studies/{uid}/series",
        "dicomweb_metadata": f"{base_url}/dicomweb/studies/{uid}/metadata",
        "iiif_manifest": manifest,
        "viewer": f"{base_url}/viewer/?manifest={quote(manifest, safe='')}",
    }


OBJ_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.4"
MODEL_GROUP_UID = "00687004"


def read_model_group_zip(user, obj_sop_uid: str) -> bytes:
    """The zip of an OBJ's model group, if ``user`` may see its study (else NotFound)."""
    visible = Study.objects.visible_to(user)
    obj = Instance.objects.filter(sop_uid=obj_sop_uid, series__study__in=visible).select_related("series").first()
    if obj is None or obj.sop_class_uid != OBJ_SOP_CLASS:
        raise NotFound(f"no Encapsulated OBJ instance {obj_sop_uid}")
    group = obj.metadata.get(MODEL_GROUP_UID, {}).get("Value", [None])[0]  # Model Group UID
    storage = get_storage()
    members = Instance.objects.filter(series__study=obj.series.study_id)
    datasets = []
    for member in members.only("path", "metadata"):
        if member.pk == obj.pk or member.metadata.get(MODEL_GROUP_UID, {}).get("Value", [None])[0] == group:
            datasets.append(pydicom.dcmread(storage.path(member.path)))
    return read_model_zip(datasets)
