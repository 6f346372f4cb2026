"""Meshing jobs: read a stored series, mesh it, store the DICOM models back.

A job runs task → ``run_mesh_job`` → pure code (``volumes``, ``pipeline``,
``formats``, ``archive.dicom.encapsulated``) → ``archive.services.store_files``.
Parameters are canonicalised once (``canonical_params``); the job key and every UID
of the result derive from the series UID and those parameters, so asking twice
gives the same job and, even if the job row is gone, the same instances.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from archive.dicom.encapsulated import DocumentKind, ModelInfo, build_document_header
from archive.dicom.part10 import write_document_file
from archive.dicom.refs import (
    Equipment,
    PatientInfo,
    SeriesRef,
    SourceSeriesRef,
    StudyRef,
    code_item,
)
from archive.dicom.refs import (
    MeshMeasurements as DicomMeasurements,
)
from archive.errors import ArchiveError, Conflict, InvalidInput, NotFound
from archive.indexing import sha256_file
from archive.models import Instance, Series, Study
from archive.services import StoreOutcome, store_files
from archive.storage import get_storage
from models3d import formats, masks, measure, pipeline, volumes
from models3d.kernels import Mesh as MeshArrays
from models3d.kernels.config import SMOOTH_ITERATIONS, SMOOTH_PASSBAND
from models3d.models import Mesh, MeshJob

log = logging.getLogger(__name__)

ALGORITHM_NAME = "Vitrine isosurface meshing"
#: Bump when the same parameters would give a different mesh: it enters every UID.
ALGORITHM_VERSION = "1.0"
EQUIPMENT = Equipment(manufacturer="Vitrine", model_name="Vitrine meshing",
                      device_serial_number="0", software_versions=ALGORITHM_VERSION)
# Private code (PS3.16 8.2: designators starting "99" are local); CID 7162 has no
# family for threshold isosurfaces.
ISOSURFACE_FAMILY = ("ISOSURFACE", "99VITRINE", "Threshold isosurface and surface filtering")

#: Presets: the pipeline's HU presets, and micro-CT, which takes Otsu's threshold.
PRESETS = (*pipeline.HU_PRESETS, "micro_ct")
OUTPUTS = ("stl", "obj")
THRESHOLD_KEYS = ("preset", "threshold_hu", "band_hu", "otsu", "mask")
DEFAULTS: dict[str, Any] = {
    "smooth_iterations": SMOOTH_ITERATIONS,
    "smooth_passband": SMOOTH_PASSBAND,
    "target_triangles": None,
    "outputs": ["stl"],
    "crop": None,
    "downsample": 1,
    "keep_largest": False,
}
MAX_SMOOTH_ITERATIONS = 500
MAX_DOWNSAMPLE = 16
#: Seconds between two looks at the cancel flag while a stage runs.
CANCEL_POLL_S = 0.5
#: Seconds between two heartbeats of a running job. A thread of the run writes them,
#: so kernel stages (which release the GIL) do not hold them up.
HEARTBEAT_S = 10.0
#: A running job with no heartbeat for this long has lost its worker (killed for
#: memory, restarted, host gone) and is marked failed when next looked at.
STALE_AFTER_S = 120.0

# Where each stage sits on the job's 0-100 % scale.
_READ, _MESH, _WRITE, _STORE = (0, 35), (35, 88), (88, 95), (95, 100)
_MESH_STAGES = {"isosurface": (0.0, 0.3), "components": (0.3, 0.35), "smooth": (0.35, 0.6),
                "decimate": (0.6, 0.95), "measure": (0.95, 1.0)}


class JobCancelled(Exception):
    """Raised inside a running job when its cancel flag is seen; never reaches a client."""


class JobLost(Exception):
    """Raised inside a run whose job is no longer running (declared dead meanwhile)."""


# --- parameters --------------------------------------------------------------------------


def canonical_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Check meshing parameters and return them in one canonical form.

    Exactly one of ``preset`` (bone, soft_tissue, skin, micro_ct), ``threshold_hu``,
    ``band_hu`` ``[low, high]``, ``otsu`` (true) or ``mask`` (``{"series_uid": ...,
    "labels": [...]}``) chooses what to mesh. The rest default as in :data:`DEFAULTS`.

    Raises
    ------
    InvalidInput
        Naming the field and the offending value.
    """
    unknown = set(raw) - set(THRESHOLD_KEYS) - set(DEFAULTS) - {"series_uid"}
    if unknown:
        raise InvalidInput(f"unknown meshing parameters: {sorted(unknown)}")
    chosen = [k for k in THRESHOLD_KEYS if not _absent(raw.get(k))]
    if len(chosen) != 1:
        raise InvalidInput(f"give exactly one of {', '.join(THRESHOLD_KEYS)}, got {chosen or 'none'}")
    key = chosen[0]
    out: dict[str, Any] = {}
    value = raw[key]
    if key == "preset":
        if value not in PRESETS:
            raise InvalidInput(f"preset must be one of {list(PRESETS)}, got {value!r}")
        out["preset"] = value
    elif key == "threshold_hu":
        out["threshold_hu"] = _finite("threshold_hu", value)
    elif key == "band_hu":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise InvalidInput(f"band_hu must be [low, high], got {value!r}")
        low, high = _finite("band_hu low", value[0]), _finite("band_hu high", value[1])
        if low > high:
            raise InvalidInput(f"band_hu must have low <= high, got {value!r}")
        out["band_hu"] = [low, high]
    elif key == "otsu":
        if value is not True:
            raise InvalidInput(f"otsu must be true when given, got {value!r}")
        out["otsu"] = True
    else:
        out["mask"] = _mask_param(value)
    merged = {**DEFAULTS, **{k: raw[k] for k in DEFAULTS if k in raw and raw[k] is not None}}
    iterations = merged["smooth_iterations"]
    if not isinstance(iterations, int) or isinstance(iterations, bool) or not 0 <= iterations <= MAX_SMOOTH_ITERATIONS:
        raise InvalidInput(f"smooth_iterations must be an integer in [0, {MAX_SMOOTH_ITERATIONS}], got {iterations!r}")
    passband = _finite("smooth_passband", merged["smooth_passband"])
    if not 0 < passband < 2:
        raise InvalidInput(f"smooth_passband must be in (0, 2), got {passband!r}")
    target = merged["target_triangles"]
    if target is not None and (not isinstance(target, int) or isinstance(target, bool) or target < 4):
        raise InvalidInput(f"target_triangles must be an integer >= 4, got {target!r}")
    outputs = merged["outputs"]
    if isinstance(outputs, str) or not isinstance(outputs, (list, tuple)) or not set(outputs) <= set(OUTPUTS):
        raise InvalidInput(f"outputs must be a list drawn from {list(OUTPUTS)}, got {outputs!r}")
    if "stl" not in outputs:
        raise InvalidInput(f"outputs must include 'stl' (the model the archive measures), got {outputs!r}")
    crop = merged["crop"]
    if crop is not None:
        if not isinstance(crop, (list, tuple)) or len(crop) != 6 or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in crop):
            raise InvalidInput(f"crop must be six voxel indices [z0, z1, y0, y1, x0, x1], got {crop!r}")
        if not (crop[0] < crop[1] and crop[2] < crop[3] and crop[4] < crop[5]):
            raise InvalidInput(f"crop must have z0 < z1, y0 < y1 and x0 < x1, got {list(crop)!r}")
        crop = [int(c) for c in crop]
    downsample = merged["downsample"]
    if not isinstance(downsample, int) or isinstance(downsample, bool) or not 1 <= downsample <= MAX_DOWNSAMPLE:
        raise InvalidInput(f"downsample must be an integer in [1, {MAX_DOWNSAMPLE}], got {downsample!r}")
    if not isinstance(merged["keep_largest"], bool):
        raise InvalidInput(f"keep_largest must be true or false, got {merged['keep_largest']!r}")
    out.update(
        smooth_iterations=iterations, smooth_passband=passband, target_triangles=target,
        outputs=[o for o in OUTPUTS if o in outputs], crop=crop, downsample=downsample,
        keep_largest=merged["keep_largest"],
    )
    return out


def _absent(value: Any) -> bool:
    """None, false, "" and [] leave a choice out (a threshold of 0 HU does not)."""
    return value is None or value is False or (isinstance(value, (str, list, tuple, dict)) and not value)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _mask_param(value: Any) -> dict[str, Any]:
    """``{"series_uid", "labels"}`` (a SEG or RTSTRUCT series of the study), or, from the
    CLI only, ``{"nifti_path", "nifti_sha256", "labels"}`` (a label map on disk)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"mask must be {{'series_uid': UID, 'labels': [...]}}, got {value!r}")
    source = {"series_uid"} if "series_uid" in value else {"nifti_path", "nifti_sha256"}
    unknown = set(value) - source - {"labels"}
    if unknown or not all(isinstance(value.get(k), str) and value.get(k) for k in source):
        raise InvalidInput(f"mask must be {{'series_uid': UID, 'labels': [...]}}, got {value!r}")
    labels = value.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in labels):
        raise InvalidInput(f"mask labels must be a list of numbers or names, got {labels!r}")
    return {**{k: value[k] for k in source}, "labels": sorted({str(x) for x in labels})}


def params_json(params: dict[str, Any]) -> str:
    """The canonical text of parameters: what the key, the UIDs and the DICOM record."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def job_key(series_uid: str, params: dict[str, Any]) -> str:
    text = f"{ALGORITHM_NAME}|{ALGORITHM_VERSION}|{series_uid}|{params_json(params)}"
    return hashlib.sha256(text.encode()).hexdigest()


def derived_uid(series_uid: str, params: dict[str, Any], role: str) -> str:
    """A UID fixed by the series, the parameters and what it names (``series``, ``group``, ``stl:<label>``)."""
    return generate_uid(entropy_srcs=[ALGORITHM_NAME, ALGORITHM_VERSION, series_uid, params_json(params), role])


def mesh_params(params: dict[str, Any]) -> pipeline.MeshParams:
    """The pipeline's parameters for a canonical parameter set (a mask job meshes 0/1 labels)."""
    common: dict[str, Any] = {
        "crop": tuple(params["crop"]) if params["crop"] else None, "downsample": params["downsample"],
        "keep_largest": params["keep_largest"], "smooth_iterations": params["smooth_iterations"],
        "smooth_passband": params["smooth_passband"],
    }
    if "preset" in params:
        if params["preset"] == "micro_ct":
            return pipeline.MeshParams(otsu=True, **common)
        return pipeline.MeshParams(preset=params["preset"], **common)
    if "threshold_hu" in params:
        return pipeline.MeshParams(iso=params["threshold_hu"], **common)
    if "band_hu" in params:
        return pipeline.MeshParams(band=tuple(params["band_hu"]), **common)
    if "otsu" in params:
        return pipeline.MeshParams(otsu=True, **common)
    return pipeline.MeshParams(iso=0.5, **common)


def describe_params(params: dict[str, Any]) -> str:
    """A short human description, e.g. ``bone (> 300 HU)``."""
    if "preset" in params:
        name = params["preset"]
        if name == "micro_ct":
            return "micro-CT (Otsu threshold)"
        levels = pipeline.HU_PRESETS[name]
        hu = f"> {levels[0]:g} HU" if len(levels) == 1 else f"{levels[0]:g} to {levels[1]:g} HU"
        return f"{name.replace('_', ' ')} ({hu})"
    if "threshold_hu" in params:
        return f"> {params['threshold_hu']:g} HU"
    if "band_hu" in params:
        return f"{params['band_hu'][0]:g} to {params['band_hu'][1]:g} HU"
    if "otsu" in params:
        return "Otsu threshold"
    mask = params["mask"]
    source = f"series {mask['series_uid']}" if "series_uid" in mask else f"label map {Path(mask['nifti_path']).name}"
    return f"mask {','.join(mask['labels']) or 'all labels'} of {source}"[:200]


# --- access ------------------------------------------------------------------------------


def visible_series(series_uid: str, user) -> Series:
    """The series if ``user`` may read it; NotFound otherwise (private looks absent)."""
    series = (Series.objects.select_related("study__patient")
              .filter(series_uid=series_uid, study__in=Study.objects.visible_to(user)).first())
    if series is None:
        raise NotFound(f"no series {series_uid}")
    return series


def visible_jobs(user):
    return MeshJob.objects.filter(series__study__in=Study.objects.visible_to(user))


def visible_meshes(user):
    return Mesh.objects.filter(job__series__study__in=Study.objects.visible_to(user))


# --- requesting and cancelling -----------------------------------------------------------


def request_job(series: Series, params: dict[str, Any], user=None) -> tuple[MeshJob, bool]:
    """Find or create the job for ``series`` and canonical ``params``.

    Returns ``(job, queued)``: ``queued`` is True when the job is new, or was failed
    or cancelled and is queued again; the caller then enqueues the task on commit.
    A job queued, running or done is returned as it is.
    """
    if "mask" in params and "series_uid" in params["mask"]:
        _check_mask_source(series, params["mask"]["series_uid"])
    key = job_key(series.series_uid, params)
    fail_stale_jobs()  # a job whose worker died counts as failed: asking again requeues it
    with transaction.atomic():
        job, created = MeshJob.objects.select_for_update().get_or_create(
            key=key, defaults={"series": series, "params": params, "requested_by": user},
        )
        if created:
            return job, True
        if job.state in (MeshJob.State.FAILED, MeshJob.State.CANCELLED):
            job.state, job.stage, job.percent, job.error = MeshJob.State.QUEUED, "", 0, ""
            job.cancel_requested, job.started, job.finished = False, None, None
            job.requested_by = user or job.requested_by
            job.save()
            return job, True
    return job, False


def _check_mask_source(series: Series, mask_series_uid: str) -> None:
    if not Series.objects.filter(series_uid=mask_series_uid, study_id=series.study_id).exists():
        raise InvalidInput(f"mask series {mask_series_uid} is not a series of study {series.study.study_uid}")


def cancel_job(job: MeshJob) -> MeshJob:
    """Cancel a queued job at once, or ask a running one to stop at its next check.

    Raises
    ------
    Conflict
        If the job has finished already.
    """
    now = timezone.now()
    if MeshJob.objects.filter(pk=job.pk, state=MeshJob.State.QUEUED).update(
            state=MeshJob.State.CANCELLED, cancel_requested=True, finished=now, stage=""):
        job.refresh_from_db()
        return job
    if not MeshJob.objects.filter(pk=job.pk, state=MeshJob.State.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise Conflict(f"mesh job {job.pk} is {job.state} already; only a queued or running job can be cancelled")
    job.refresh_from_db()
    return job


# --- dead workers --------------------------------------------------------------------------


def fail_stale_jobs(now: datetime | None = None) -> int:
    """Mark failed every running job whose heartbeat is older than :data:`STALE_AFTER_S`.

    A worker that is killed (out of memory, SIGKILL, a restart) cannot record its own
    failure; its job would stay ``running`` for ever. The API calls this before it
    shows jobs, and :func:`request_job` before it looks for one, so such a job reads
    as failed with a message saying why, and asking again queues it anew. Returns the
    number of jobs marked.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=STALE_AFTER_S)
    stale = MeshJob.objects.filter(state=MeshJob.State.RUNNING).filter(
        Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, started__lt=cutoff))
    marked = 0
    for pk, beat, started in stale.values_list("pk", "heartbeat", "started"):
        last = beat or started
        error = (f"the worker running this job stopped: no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC "
                 f"({(now - last).total_seconds():.0f} s ago; a live worker beats every {HEARTBEAT_S:g} s). "
                 "It was probably killed (out of memory, or restarted); request the job again to retry.")
        # Conditional on the beat read: a worker that beat in between keeps its job.
        marked += MeshJob.objects.filter(pk=pk, state=MeshJob.State.RUNNING, heartbeat=beat).update(
            state=MeshJob.State.FAILED, stage="", error=error, finished=now)
    return marked


class _Heartbeat:
    """Writes the job's heartbeat every :data:`HEARTBEAT_S` from a thread (and database
    connection) of its own while the run lasts.

    Inside an atomic block (a test's transaction, a caller's) other connections could
    not see the beats, and a second writer could wait on the block's locks, so no
    thread starts there; the run's own progress writes still beat.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mesh-job-{job_id}-heartbeat", daemon=True)

    def __enter__(self) -> Self:
        if not connection.in_atomic_block:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=HEARTBEAT_S)

    def beat(self) -> bool:
        """Write one heartbeat; False when the job is not running any more."""
        return bool(MeshJob.objects.filter(pk=self.job_id, state=MeshJob.State.RUNNING)
                    .update(heartbeat=timezone.now()))

    def _run(self) -> None:
        try:
            while not self._stop.wait(HEARTBEAT_S):
                try:
                    if not self.beat():
                        return
                except DatabaseError:  # a busy or restarting database: try again next beat
                    log.warning("mesh job %s: heartbeat not written", self.job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection


# --- running -----------------------------------------------------------------------------


class _Progress:
    """Maps stages onto the job's percent, writes it (and a heartbeat) at most once per
    percent, and raises JobCancelled when the job's cancel flag is set, JobLost when the
    job is not running any more (declared dead by :func:`fail_stale_jobs`)."""

    def __init__(self, job_id: int, echo: Callable[[str, int], None] | None) -> None:
        self.job_id, self.echo = job_id, echo
        self.stage, self.percent = "", -1
        self.last_poll = 0.0

    def set(self, stage: str, span: tuple[float, float], fraction: float, *, force_check: bool = False) -> None:
        percent = int(span[0] + (span[1] - span[0]) * min(max(fraction, 0.0), 1.0))
        if (stage, percent) != (self.stage, self.percent):
            self.stage, self.percent = stage, percent
            if not MeshJob.objects.filter(pk=self.job_id, state=MeshJob.State.RUNNING).update(
                    stage=stage, percent=percent, heartbeat=timezone.now()):
                raise JobLost()
            if self.echo is not None:
                self.echo(stage, percent)
        self.check(force=force_check)

    def check(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_poll < CANCEL_POLL_S:
            return
        self.last_poll = now
        if MeshJob.objects.filter(pk=self.job_id, cancel_requested=True).exists():
            raise JobCancelled()


@dataclass
class _Output:
    """One model on its way into the archive."""

    label: str
    mesh: MeshArrays  # patient coordinates
    measured: measure.MeshMeasurements
    bbox_min_mm: tuple[float, float, float]
    bbox_max_mm: tuple[float, float, float]
    files: dict[str, Path]  # format -> DICOM temp file
    sop_uids: dict[str, str]


def run_mesh_job(job_id: int, on_progress: Callable[[str, int], None] | None = None) -> MeshJob:
    """Run a queued job to the end: done, failed (with a readable message) or cancelled.

    Only one runner claims a job (a conditional update from queued to running), so a
    task delivered twice, or the CLI and a worker together, mesh it once.
    """
    now = timezone.now()
    claimed = MeshJob.objects.filter(pk=job_id, state=MeshJob.State.QUEUED, cancel_requested=False).update(
        state=MeshJob.State.RUNNING, started=now, heartbeat=now, stage="queued", percent=0, error="")
    job = MeshJob.objects.select_related("series__study__patient").get(pk=job_id)
    if not claimed:
        return job
    progress = _Progress(job_id, on_progress)
    outputs: list[_Output] = []

    def remove_temporaries() -> None:
        # Before the final state is written: whoever sees it sees no temporary left.
        for output in outputs:
            for path in output.files.values():
                path.unlink(missing_ok=True)

    try:
        with _Heartbeat(job_id):
            _mesh_and_write(job, progress, outputs)
            progress.set("store", _STORE, 0.0, force_check=True)
            meshes = _store(job, outputs)
    except JobCancelled:
        remove_temporaries()
        _finish(job_id, MeshJob.State.CANCELLED, "")
    except JobLost:
        remove_temporaries()
        log.warning("mesh job %s was declared dead while running; its run stops", job_id)
    except ArchiveError as exc:
        remove_temporaries()
        _finish(job_id, MeshJob.State.FAILED, exc.detail)
    except Exception as exc:
        log.exception("mesh job %s failed", job_id)
        remove_temporaries()
        _finish(job_id, MeshJob.State.FAILED, f"internal error: {type(exc).__name__}: {exc}")
        raise
    else:
        remove_temporaries()
        MeshJob.objects.filter(pk=job_id, state=MeshJob.State.RUNNING).update(
            state=MeshJob.State.DONE, stage="done", percent=100, finished=timezone.now())
        if on_progress is not None:
            on_progress("done", 100)
        log.info("mesh job %s stored %d model(s)", job_id, len(meshes))
    finally:
        remove_temporaries()
    job.refresh_from_db()
    return job


def _finish(job_id: int, state: str, error: str) -> None:
    """Record how a run ended, unless the job was declared dead meanwhile."""
    MeshJob.objects.filter(pk=job_id, state=MeshJob.State.RUNNING).update(
        state=state, error=error, finished=timezone.now())


def _mesh_and_write(job: MeshJob, progress: _Progress, outputs: list[_Output]) -> None:
    """Mesh every label and write its files; ``outputs`` fills as it goes, so the
    caller can remove what was written if a later step fails or is cancelled."""
    params = job.params
    progress.set("read", _READ, 0.0, force_check=True)
    geometry = volumes.plan_volume(series_slices(job.series))
    labels = _label_volumes(job, geometry, progress)
    base = mesh_params(params)
    meshed: list[_Output] = []
    for n, (label, data) in enumerate(labels):
        lo = _MESH[0] + (_MESH[1] - _MESH[0]) * n / max(labels.count, n + 1)
        hi = _MESH[0] + (_MESH[1] - _MESH[0]) * (n + 1) / max(labels.count, n + 1)

        def report(stage: str, fraction: float, lo=lo, hi=hi) -> None:
            a, b = _MESH_STAGES.get(stage, (0.0, 1.0))
            progress.set(stage, (lo, hi), a + (b - a) * fraction, force_check=fraction == 0.0)

        mesh, measured = _mesh_one(data, geometry.spacing_mm, base, params["target_triangles"], report)
        del data  # not needed any more: at most this mask and the next one are held
        if len(mesh.faces) == 0:
            what = f"label {label}" if label else describe_params(params)
            raise InvalidInput(f"nothing to mesh: no voxel of series {job.series.series_uid} is inside {what}; "
                               "choose another threshold")
        patient = MeshArrays(geometry.to_patient(mesh.vertices), mesh.faces)
        lo_mm, hi_mm = measure.bounding_box_mm(patient)
        meshed.append(_Output(label, patient, measured, tuple(map(float, lo_mm)), tuple(map(float, hi_mm)),
                              {}, {}))
    if not meshed:
        raise InvalidInput(f"nothing to mesh: the mask has no label with voxels on series {job.series.series_uid}")
    progress.set("write", _WRITE, 0.0, force_check=True)
    for n, output in enumerate(meshed):
        outputs.append(output)
        _write_output(job, geometry, output, instance_number=n + 1)
        progress.set("write", _WRITE, (n + 1) / len(meshed))


def series_slices(series: Series) -> list[volumes.SliceInfo]:
    """Every image of a series as a :class:`volumes.SliceInfo` (from the index, no file read)."""
    storage = get_storage()
    rows = Instance.objects.filter(series=series).values_list(
        "path", "sop_uid", "sop_class_uid", "metadata", "transfer_syntax_uid")
    return [volumes.slice_from_json(storage.path(path), sop, cls, meta, syntax) for path, sop, cls, meta, syntax in rows]


def _label_volumes(job: MeshJob, geometry: volumes.VolumeGeometry, progress: _Progress) -> masks.LabelMasks:
    """The volume(s) to mesh, each read as the job comes to it: the CT itself for a
    threshold, one 0/1 volume per mask label (a mask job reads no CT pixels)."""
    mask = job.params.get("mask")
    if mask is None:
        def ct() -> Iterator[tuple[str, np.ndarray]]:
            yield "", volumes.read_volume(
                geometry, on_slice=lambda done, total: progress.set("read", _READ, done / total))

        return masks.LabelMasks(1, ct())
    if "nifti_path" in mask:
        path = Path(mask["nifti_path"])
        if not path.is_file() or sha256_file(path) != mask["nifti_sha256"]:
            raise InvalidInput(f"the label map {path} is gone or has changed since the job was requested")
        return masks.read_nifti_label_volumes(path, geometry, labels=mask["labels"])
    source = Series.objects.filter(series_uid=mask["series_uid"], study_id=job.series.study_id).first()
    if source is None:
        raise InvalidInput(f"mask series {mask['series_uid']} is not in the study any more")
    storage = get_storage()
    paths = [storage.path(p) for p in Instance.objects.filter(series=source).values_list("path", flat=True)]
    return masks.read_label_volumes(paths, geometry, labels=mask["labels"])


def _mesh_one(data: np.ndarray, spacing_mm, params: pipeline.MeshParams, target: int | None,
              report: Callable[[str, float], None]) -> tuple[MeshArrays, measure.MeshMeasurements]:
    """The pipeline, decimating to at most ``target`` triangles before it measures."""
    with _KERNELS:
        return pipeline.mesh_volume(data, spacing_mm, replace(params, decimate_count=target), on_progress=report)


#: One pipeline run at a time in a process: a job's, or the warm-up's. Two at once
#: would split the cores, and Numba's fallback threading layer (workqueue) refuses
#: parallel kernels launched from two threads.
_KERNELS = threading.Lock()


def warm_up_kernels() -> None:
    """Load the meshing kernels in this process (``pipeline.warm_up``), one process of
    the machine at a time: after an install the first compiles them into Numba's disk
    cache, and the others then load them from it."""
    started = time.monotonic()
    try:
        with open(settings.VAR_DIR / "mesh-kernels.lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            with _KERNELS:
                pipeline.warm_up()
    except Exception:  # a worker that cannot warm up still meshes, only later
        log.exception("loading the meshing kernels failed")
        return
    log.info("meshing kernels ready in %.1f s", time.monotonic() - started)


# --- DICOM --------------------------------------------------------------------------------


def _patient_info(series: Series) -> PatientInfo:
    patient = series.study.patient
    birth = None
    try:
        if len(patient.birth_date) == 8:
            birth = date(int(patient.birth_date[:4]), int(patient.birth_date[4:6]), int(patient.birth_date[6:]))
    except ValueError:
        birth = None
    sex = patient.sex if patient.sex in ("M", "F", "O") else ""
    if not patient.patient_id:
        raise InvalidInput(f"study {series.study.study_uid} has no PatientID; a derived model needs one")
    return PatientInfo(patient_id=patient.patient_id, name=patient.patient_name, birth_date=birth,
                       sex=sex, issuer=patient.issuer)


def _study_ref(study: Study) -> StudyRef:
    started = None
    if len(study.study_date) == 8:
        try:
            clock = (study.study_time.split(".")[0] + "000000")[:6]
            started = datetime.strptime(study.study_date + clock, "%Y%m%d%H%M%S")
        except ValueError:
            started = None
    return StudyRef(study_uid=study.study_uid, study_id=study.study_id, started=started,
                    description=study.study_description.replace("\\", " "), accession=study.accession_number,
                    referring_physician=study.referring_physician_name)


def _dicom_measurements(output: _Output) -> DicomMeasurements:
    """Content Description must keep volume and area: drop the box if they would not fit."""
    m = output.measured
    full = DicomMeasurements(triangles=m.n_faces, volume_mm3=abs(m.volume_mm3), area_mm2=m.area_mm2,
                             bbox_min_mm=output.bbox_min_mm, bbox_max_mm=output.bbox_max_mm)
    if full.describe().endswith("mm3"):
        return full
    return DicomMeasurements(triangles=m.n_faces, volume_mm3=abs(m.volume_mm3), area_mm2=m.area_mm2)


def _add_derivation(ds: Dataset, job: MeshJob, geometry: volumes.VolumeGeometry, label: str) -> None:
    """References to the source images and how the model was made."""
    refs = []
    for s in geometry.slices:
        item = Dataset()
        item.ReferencedSOPClassUID = s.sop_class_uid
        item.ReferencedSOPInstanceUID = s.sop_uid
        refs.append(item)
    # PS3.3 C.12.2 Common Instance Reference: the series the model was derived from.
    series_item = Dataset()
    series_item.SeriesInstanceUID = job.series.series_uid
    series_item.ReferencedInstanceSequence = DicomSequence(refs)
    ds.ReferencedSeriesSequence = DicomSequence([series_item])
    # PS3.3 C.7.6.1.1.4 Source Image Sequence (SOP Instance Reference Macro, 10.3)
    ds.SourceImageSequence = DicomSequence([_copy_item(r) for r in refs])
    # PS3.3 10.23 Algorithm Identification Macro, in the Derivation Algorithm Sequence
    algorithm = Dataset()
    algorithm.AlgorithmFamilyCodeSequence = DicomSequence([code_item(*ISOSURFACE_FAMILY)])
    algorithm.AlgorithmName = ALGORITHM_NAME
    algorithm.AlgorithmVersion = ALGORITHM_VERSION
    algorithm.AlgorithmParameters = params_json(job.params)
    ds.DerivationAlgorithmSequence = DicomSequence([algorithm])
    what = f"label {label} ({describe_params(job.params)})" if label else describe_params(job.params)
    ds.DerivationDescription = (f"Isosurface of {what} of series {job.series.series_uid}; "
                                f"windowed-sinc smoothing {job.params['smooth_iterations']} iterations, "
                                f"pass band {job.params['smooth_passband']:g}"
                                + (f"; decimated to <= {job.params['target_triangles']} triangles"
                                   if job.params["target_triangles"] else ""))[:1024]


def _copy_item(item: Dataset) -> Dataset:
    copy = Dataset()
    copy.ReferencedSOPClassUID = item.ReferencedSOPClassUID
    copy.ReferencedSOPInstanceUID = item.ReferencedSOPInstanceUID
    return copy


def _write_output(job: MeshJob, geometry: volumes.VolumeGeometry, output: _Output, *, instance_number: int) -> None:
    """Write each wanted format, and its DICOM file around it, into the incoming folder."""
    series, params = job.series, job.params
    uid = job.series.series_uid
    result_series_uid = derived_uid(uid, params, "series")
    group_uid = derived_uid(uid, params, "group")
    frame = series.frame_of_reference_uid or derived_uid(uid, params, "frame")
    source = SourceSeriesRef(study_uid=series.study.study_uid, series_uid=uid, frame_of_reference_uid=frame,
                             sop_refs=tuple((s.sop_class_uid, s.sop_uid) for s in geometry.slices))
    model = ModelInfo(frame_of_reference_uid=frame, model_group_uid=group_uid,
                      measurements=_dicom_measurements(output))
    title = f"Mesh {output.label or describe_params(params)}"[:64]
    description = f"Mesh: {output.label or describe_params(params)}"[:64]
    storage = get_storage()
    created = timezone.now()
    for fmt in params["outputs"]:
        kind = DocumentKind.STL if fmt == "stl" else DocumentKind.OBJ
        sop_uid = derived_uid(uid, params, f"{fmt}:{output.label}")
        payload = storage.incoming_file(suffix=f".{fmt}")
        payload_path = Path(payload.name)
        try:
            with payload:
                formats.WRITERS[fmt](output.mesh, payload)
                length = payload.tell()
            ds = build_document_header(
                kind, length=length, patient=_patient_info(series), study=_study_ref(series.study),
                series=SeriesRef(series_uid=result_series_uid, number=(series.series_number or 0) + 1000,
                                 description=description),
                instance_uid=sop_uid, created=created, instance_number=instance_number, title=title,
                equipment=EQUIPMENT, model=model, source=source,
            )
            _add_derivation(ds, job, geometry, output.label)
            with storage.incoming_file(suffix=".dcm") as target:
                pass
            output.files[fmt] = Path(target.name)
            with open(payload_path, "rb") as fp:
                write_document_file(target.name, ds, payload=fp, length=length)
            output.sop_uids[fmt] = sop_uid
        finally:
            payload_path.unlink(missing_ok=True)


def _store(job: MeshJob, outputs: list[_Output]) -> list[Mesh]:
    """Hand every file to the archive in one batch; record the meshes."""
    order = [(output, fmt) for output in outputs for fmt in job.params["outputs"]]
    files = [(output.files.pop(fmt), None) for output, fmt in order]
    results = store_files(files, received_from="meshing", expect_study_uid=job.series.study.study_uid)
    stored: dict[tuple[str, str], Instance] = {}
    for (output, fmt), outcome in zip(order, results):
        stored[(output.label, fmt)] = _stored_instance(outcome, output.sop_uids[fmt])
    with transaction.atomic():
        Mesh.objects.filter(job=job).delete()
        meshes = []
        for output in outputs:
            m = output.measured
            meshes.append(Mesh.objects.create(
                job=job, label=output.label, stl_instance=stored[(output.label, "stl")],
                obj_instance=stored.get((output.label, "obj")), triangles=m.n_faces, vertices=m.n_vertices,
                components=m.n_components, volume_mm3=abs(m.volume_mm3), area_mm2=m.area_mm2,
                bbox_min_mm=list(output.bbox_min_mm), bbox_max_mm=list(output.bbox_max_mm),
                watertight=m.watertight,
            ))
        uid = job.series.series_uid
        MeshJob.objects.filter(pk=job.pk).update(result_series_uid=derived_uid(uid, job.params, "series"),
                                                 model_group_uid=derived_uid(uid, job.params, "group"))
    return meshes


def _stored_instance(outcome: StoreOutcome | ArchiveError, sop_uid: str) -> Instance:
    """The instance an outcome stands for. The same UIDs stored by an earlier run of the
    same parameters (bytes differ only in their timestamps) are that run's result."""
    if isinstance(outcome, StoreOutcome):
        return outcome.instance
    if isinstance(outcome, Conflict):
        earlier = Instance.objects.filter(sop_uid=sop_uid).first()
        if earlier is not None:
            return earlier
    raise outcome


# --- preview -------------------------------------------------------------------------------


def preview_mask(image_hu: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """(rows, columns) bool: the pixels of one slice the threshold puts inside.

    Otsu (and micro-CT) thresholds are computed on the slice alone, so the preview
    is an approximation of the whole-volume level. A mask job previews no tint.
    """
    if "mask" in params:
        return np.zeros(image_hu.shape, bool)
    if "band_hu" in params or params.get("preset") in pipeline.HU_PRESETS and len(
            pipeline.HU_PRESETS[params["preset"]]) == 2:
        low, high = params.get("band_hu") or pipeline.HU_PRESETS[params["preset"]]
        return (image_hu >= low) & (image_hu <= high)
    if "threshold_hu" in params:
        return image_hu > params["threshold_hu"]
    if "preset" in params and params["preset"] != "micro_ct":
        return image_hu > pipeline.HU_PRESETS[params["preset"]][0]
    if float(image_hu.min()) == float(image_hu.max()):
        return np.zeros(image_hu.shape, bool)
    return image_hu > pipeline.otsu_threshold(image_hu[None])


def render_preview(series: Series, index: int | None, params: dict[str, Any]) -> tuple[bytes, int, int]:
    """PNG of slice ``index`` (sorted along the normal; middle if None) with the mask.

    Returns ``(png, index, number_of_slices)``.
    """
    geometry = volumes.plan_volume(series_slices(series))
    n = len(geometry.slices)
    k = n // 2 if index is None else index
    if not 0 <= k < n:
        raise InvalidInput(f"index must be in [0, {n - 1}], got {index}")
    image = volumes.read_slice(geometry.slices[k])
    return volumes.render_overlay_png(image, preview_mask(image, params)), k, n
