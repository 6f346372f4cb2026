"""Meshing jobs end to end: API → real Celery worker → DICOM STL in the archive."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image

from archive.dicom.encapsulated import read_encapsulated_obj, read_encapsulated_stl
from archive.models import Instance, Series
from archive.storage import get_storage
from models3d import formats, measure, services
from models3d.kernels import Mesh as MeshArrays
from models3d.models import Mesh, MeshJob
from tests.conftest import stored_files
from tests.integration.dicomweb.conftest import basic
from tests.unit.dicom.iod import check_iod

from .conftest import (
    CENTRE_MM,
    CURATOR,
    RADIUS_MM,
    SPACING_MM,
    sphere_datasets,
    sphere_volume_mm3,
    store_series,
    wait_for_job,
)

pytestmark = pytest.mark.integration

#: The surface may sit a tenth of the coarsest voxel side away from the true sphere.
SURFACE_TOLERANCE_MM = 0.1 * max(SPACING_MM)
VOLUME_TOLERANCE_MM3 = 4 * np.pi * RADIUS_MM**2 * SURFACE_TOLERANCE_MM


def post_job(client, body, auth=None):
    return client.post("/api/meshing-jobs", json.dumps(body), content_type="application/json",
                       **(auth if auth is not None else basic(*CURATOR)))


def incoming_leftovers() -> list[str]:
    """Temporary files a job left in the archive's incoming folder."""
    return [f for f in stored_files(Path(get_storage().location)) if f.startswith(".incoming")]


def stored_dataset(sop_uid: str) -> pydicom.Dataset:
    instance = Instance.objects.get(sop_uid=sop_uid)
    return pydicom.dcmread(get_storage().path(instance.path))


def stl_volume_mm3(stl: bytes) -> tuple[float, MeshArrays]:
    vertices, faces = formats.read_stl(stl)
    mesh = MeshArrays(vertices, faces.astype(np.int32))
    return measure.volume_mm3(mesh), mesh


@pytest.mark.django_db(transaction=True)
def test_job_on_a_real_worker_stores_a_dicom_stl_and_obj(client, curator, sphere_series, job_worker):
    source = sphere_series[0]
    body = {"series_uid": source.SeriesInstanceUID, "threshold_hu": 0, "outputs": ["stl", "obj"],
            "smoothing": {"iterations": 20, "passband": 0.1}, "target_triangles": 2000}
    created = post_job(client, body)
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    job = wait_for_job(job_id)
    assert job.state == "done", job.error

    shown = client.get(f"/api/meshing-jobs/{job_id}", **basic(*CURATOR)).json()
    assert (shown["state"], shown["percent"], shown["stage"]) == ("done", 100, "done")
    (mesh,) = shown["meshes"]
    assert 0 < mesh["triangles"] <= 2000 and mesh["watertight"]
    assert mesh["volume_mm3"] == pytest.approx(sphere_volume_mm3(), abs=VOLUME_TOLERANCE_MM3)

    stl_ds = stored_dataset(mesh["stl"]["sop_instance_uid"])
    obj_ds = stored_dataset(mesh["obj"]["sop_instance_uid"])
    # The bytes inside are a closed STL of the sphere, in patient coordinates.
    stl = read_encapsulated_stl(stl_ds)
    volume, arrays = stl_volume_mm3(stl)
    assert volume == pytest.approx(sphere_volume_mm3(), abs=VOLUME_TOLERANCE_MM3)
    assert volume == pytest.approx(mesh["volume_mm3"], rel=1e-4)
    lo, hi = measure.bounding_box_mm(arrays)
    np.testing.assert_allclose((lo + hi) / 2, CENTRE_MM, atol=0.25)
    np.testing.assert_allclose(hi - lo, 2 * RADIUS_MM, atol=0.5)
    assert read_encapsulated_obj(obj_ds).startswith(b"# Vitrine OBJ")

    for ds in (stl_ds, obj_ds):
        check_iod(ds)
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.SeriesInstanceUID == shown["result_series_uid"] != source.SeriesInstanceUID
        assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert ds.ModelGroupUID == shown["model_group_uid"]
        (referenced,) = ds.ReferencedSeriesSequence
        assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
        source_uids = {d.SOPInstanceUID for d in sphere_series}
        assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == source_uids
        assert {i.ReferencedSOPInstanceUID for i in ds.SourceImageSequence} == source_uids
        (algorithm,) = ds.DerivationAlgorithmSequence
        assert algorithm.AlgorithmName == services.ALGORITHM_NAME
        assert algorithm.AlgorithmVersion == services.ALGORITHM_VERSION
        assert json.loads(algorithm.AlgorithmParameters) == shown["params"]
        unit = ds.MeasurementUnitsCodeSequence[0]
        assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("mm", "UCUM")
        assert "mm3" in ds.ContentDescription and "mm2" in ds.ContentDescription
    assert stl_ds.MIMETypeOfEncapsulatedDocument == "model/stl"
    assert obj_ds.MIMETypeOfEncapsulatedDocument == "model/obj"

    # The plain STL and the DICOM instance, as the viewer's download buttons fetch them.
    download = client.get(f"/api/meshes/{mesh['id']}/stl", **basic(*CURATOR))
    assert download.status_code == 200 and download["Content-Type"] == "model/stl"
    # Streamed from the stored file, with its length announced.
    assert download.streaming and int(download["Content-Length"]) == len(stl)
    assert b"".join(download.streaming_content) == stl
    wado = client.get(mesh["stl"]["dicom"].replace("http://testserver", ""), **basic(*CURATOR))
    assert wado.status_code == 200 and wado["Content-Type"].startswith("multipart/related")
    # The result series is indexed in the same study; nothing is left in the incoming folder.
    assert Series.objects.get(series_uid=shown["result_series_uid"]).modality == "M3D"
    assert not incoming_leftovers()


@pytest.mark.django_db(transaction=True)
def test_same_parameters_return_the_same_job(client, curator, sphere_series, job_worker):
    uid = sphere_series[0].SeriesInstanceUID
    first = post_job(client, {"series_uid": uid, "preset": "bone"})
    assert first.status_code == 201
    job = wait_for_job(first.json()["id"])
    assert job.state == "done", job.error
    # Defaults spelt out, or smoothing given nested: the same parameters, the same job.
    again = post_job(client, {"series_uid": uid, "preset": "bone", "smooth_iterations": 20,
                              "outputs": ["stl"], "downsample": 1})
    assert again.status_code == 200 and again.json()["id"] == job.pk
    assert again.json()["state"] == "done"
    other = post_job(client, {"series_uid": uid, "preset": "bone", "smooth_iterations": 5})
    assert other.status_code == 201 and other.json()["id"] != job.pk
    assert wait_for_job(other.json()["id"]).state == "done"
    assert MeshJob.objects.count() == 2 and Mesh.objects.count() == 2


@pytest.mark.django_db
def test_rerun_after_the_job_row_is_gone_finds_the_stored_instances(sphere_series):
    uid = sphere_series[0].SeriesInstanceUID
    call_command("mesh", uid, "--threshold", "0", stdout=StringIO(), stderr=StringIO())
    first = Mesh.objects.get()
    sop_uid, instances = first.stl_instance.sop_uid, Instance.objects.count()
    MeshJob.objects.all().delete()
    out = StringIO()
    call_command("mesh", uid, "--threshold", "0", "--json", stdout=out, stderr=StringIO())
    assert json.loads(out.getvalue())["meshes"][0]["stl_sop_instance_uid"] == sop_uid
    assert Instance.objects.count() == instances


@pytest.mark.django_db(transaction=True)
def test_non_uniform_spacing_fails_with_a_readable_message(client, curator, job_worker):
    gaps = [float(z) for z in range(12)] + [12.0 + 2.5 + z for z in range(12)]
    datasets = store_series(sphere_datasets(positions_z=gaps, patient_id="GAP-1"))
    instances = Instance.objects.count()
    created = post_job(client, {"series_uid": datasets[0].SeriesInstanceUID, "threshold_hu": 0})
    assert created.status_code == 201
    job = wait_for_job(created.json()["id"])
    assert job.state == "failed"
    shown = client.get(f"/api/meshing-jobs/{job.pk}", **basic(*CURATOR)).json()
    assert "not uniformly spaced" in shown["error"] and "3.5 mm" in shown["error"]
    assert shown["meshes"] == [] and Instance.objects.count() == instances
    assert not incoming_leftovers()


@pytest.mark.django_db(transaction=True)
def test_threshold_above_everything_fails_cleanly(client, curator, sphere_series, job_worker):
    created = post_job(client, {"series_uid": sphere_series[0].SeriesInstanceUID, "threshold_hu": 5000})
    job = wait_for_job(created.json()["id"])
    assert job.state == "failed" and "nothing to mesh" in job.error and "5000" in job.error
    # Asking again re-queues the failed job (same row) rather than answering with the failure.
    again = post_job(client, {"series_uid": sphere_series[0].SeriesInstanceUID, "threshold_hu": 5000})
    assert again.status_code == 201 and again.json()["id"] == job.pk
    assert wait_for_job(job.pk).state == "failed"


@pytest.mark.django_db
def test_cancel_a_queued_job(client, curator, sphere_series, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # no worker: the job stays queued
        created = post_job(client, {"series_uid": sphere_series[0].SeriesInstanceUID, "preset": "skin"})
    job_id = created.json()["id"]
    cancelled = client.post(f"/api/meshing-jobs/{job_id}/cancel", **basic(*CURATOR))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    # A worker that picks the task up later finds nothing to do.
    assert services.run_mesh_job(job_id).state == "cancelled"
    assert not Mesh.objects.exists()
    again = client.post(f"/api/meshing-jobs/{job_id}/cancel", **basic(*CURATOR))
    assert again.status_code == 409 and again.json()["code"] == "conflict"


@pytest.mark.django_db(transaction=True)
def test_cancel_a_running_job(client, curator, sphere_series, job_worker, monkeypatch):
    started, release = threading.Event(), threading.Event()
    original = services._mesh_one

    def held(*args, **kwargs):
        started.set()
        assert release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "_mesh_one", held)
    created = post_job(client, {"series_uid": sphere_series[0].SeriesInstanceUID, "threshold_hu": 0})
    job_id = created.json()["id"]
    assert started.wait(120), "the worker never started the job"
    assert client.get(f"/api/meshing-jobs/{job_id}", **basic(*CURATOR)).json()["state"] == "running"
    asked = client.post(f"/api/meshing-jobs/{job_id}/cancel", **basic(*CURATOR))
    assert asked.status_code == 200 and asked.json()["cancel_requested"] is True
    release.set()
    job = wait_for_job(job_id)
    assert job.state == "cancelled" and not job.meshes.exists()
    assert not Instance.objects.filter(series__modality="M3D").exists()
    assert not incoming_leftovers()


@pytest.mark.django_db
def test_a_job_whose_worker_died_reads_as_failed(client, curator, sphere_series,
                                                  django_capture_on_commit_callbacks):
    """A worker killed mid-job never records the end; its heartbeat stops instead."""
    uid = sphere_series[0].SeriesInstanceUID
    with django_capture_on_commit_callbacks(execute=False):  # no worker runs these
        dead_id = post_job(client, {"series_uid": uid, "threshold_hu": 0}).json()["id"]
        alive_id = post_job(client, {"series_uid": uid, "preset": "skin"}).json()["id"]
    now = timezone.now()
    long_ago = now - timedelta(seconds=2 * services.STALE_AFTER_S)
    MeshJob.objects.filter(pk=dead_id).update(state="running", stage="smooth", started=long_ago,
                                              heartbeat=long_ago)
    MeshJob.objects.filter(pk=alive_id).update(state="running", stage="smooth", started=long_ago, heartbeat=now)
    shown = client.get(f"/api/meshing-jobs/{dead_id}", **basic(*CURATOR)).json()
    assert shown["state"] == "failed" and shown["finished"] is not None
    assert "worker running this job stopped" in shown["error"] and "request the job again" in shown["error"]
    listed = {j["id"]: j["state"] for j in client.get(f"/api/meshing-jobs?series={uid}", **basic(*CURATOR)).json()}
    assert listed == {dead_id: "failed", alive_id: "running"}
    # Asking again queues the dead job anew, on the same row.
    with django_capture_on_commit_callbacks(execute=False):
        again = post_job(client, {"series_uid": uid, "threshold_hu": 0})
    assert again.status_code == 201 and again.json()["id"] == dead_id and again.json()["state"] == "queued"


@pytest.mark.django_db(transaction=True)
def test_a_running_job_beats_and_a_run_declared_dead_stops(client, curator, sphere_series, job_worker,
                                                           monkeypatch):
    started, release, ended = threading.Event(), threading.Event(), threading.Event()
    frozen, beating = threading.Event(), threading.Lock()
    original_mesh, original_exit = services._mesh_one, services._Heartbeat.__exit__
    original_beat = services._Heartbeat.beat

    def held(*args, **kwargs):
        started.set()
        assert release.wait(120)
        return original_mesh(*args, **kwargs)

    def beat(self):
        with beating:
            return True if frozen.is_set() else original_beat(self)

    def exit_and_tell(self, *exc_info):
        original_exit(self, *exc_info)
        ended.set()

    monkeypatch.setattr(services, "_mesh_one", held)
    monkeypatch.setattr(services._Heartbeat, "beat", beat)
    monkeypatch.setattr(services._Heartbeat, "__exit__", exit_and_tell)
    monkeypatch.setattr(services, "HEARTBEAT_S", 0.01)
    created = post_job(client, {"series_uid": sphere_series[0].SeriesInstanceUID, "threshold_hu": 0})
    job_id = created.json()["id"]
    assert started.wait(120), "the worker never started the job"
    # While a stage holds the run, the heartbeat thread keeps the row fresh.
    long_ago = timezone.now() - timedelta(seconds=2 * services.STALE_AFTER_S)
    MeshJob.objects.filter(pk=job_id).update(heartbeat=long_ago)
    deadline = time.monotonic() + 60
    while MeshJob.objects.get(pk=job_id).heartbeat <= long_ago and time.monotonic() < deadline:
        time.sleep(0.01)
    assert MeshJob.objects.get(pk=job_id).heartbeat > long_ago, "no heartbeat while the stage ran"
    # The heartbeat stops (as if the worker had died); the next look declares the job dead.
    with beating:  # no beat is under way once this is held
        frozen.set()
    MeshJob.objects.filter(pk=job_id).update(heartbeat=long_ago)
    assert services.fail_stale_jobs() == 1
    assert client.get(f"/api/meshing-jobs/{job_id}", **basic(*CURATOR)).json()["state"] == "failed"
    # The run, if it was alive after all, stops at its next step and leaves nothing behind.
    release.set()
    assert ended.wait(120), "the run never ended"
    job = MeshJob.objects.get(pk=job_id)
    assert job.state == "failed" and "stopped" in job.error and not job.meshes.exists()
    assert not Instance.objects.filter(series__modality="M3D").exists()
    assert not incoming_leftovers()


@pytest.mark.django_db
def test_private_series_and_their_jobs_are_invisible(client, curator, reader, sphere_series):
    uid = sphere_series[0].SeriesInstanceUID
    call_command("mesh", uid, "--threshold", "0", stdout=StringIO(), stderr=StringIO())
    job, mesh = MeshJob.objects.get(), Mesh.objects.get()
    for auth in ({}, basic("someone", "someone-pass-1")):
        assert client.get(f"/api/meshing-jobs/{job.pk}", **auth).status_code == 404
        assert client.get("/api/meshing-jobs", **auth).json() == []
        assert client.get(f"/api/meshes/{mesh.pk}", **auth).status_code == 404
        assert client.get(f"/api/meshes/{mesh.pk}/stl", **auth).status_code == 404
        assert client.get(f"/api/meshing-preview/{uid}?threshold_hu=0", **auth).status_code == 404
        assert client.get(f"/series/{uid}/mesh", **auth).status_code == 404
    assert client.get(f"/api/meshing-jobs/{job.pk}", **basic(*CURATOR)).status_code == 200
    # A curator asking to mesh a series that does not exist gets the same 404.
    missing = post_job(client, {"series_uid": "1.2.3.4", "threshold_hu": 0})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


@pytest.mark.django_db
def test_only_curators_start_or_cancel_jobs(client, curator, reader, sphere_series):
    store_series(sphere_datasets(patient_id="PUB-2"), public=True)
    public_uid = Series.objects.exclude(series_uid=sphere_series[0].SeriesInstanceUID).get().series_uid
    body = {"series_uid": public_uid, "threshold_hu": 0}
    assert post_job(client, body, auth={}).status_code == 401
    denied = post_job(client, body, auth=basic("someone", "someone-pass-1"))
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    assert not MeshJob.objects.exists()
    call_command("mesh", public_uid, "--threshold", "0", stdout=StringIO(), stderr=StringIO())
    job = MeshJob.objects.get()
    # Anyone may look at a job on a public series, and download its model; only curators cancel.
    assert client.get(f"/api/meshing-jobs/{job.pk}").json()["state"] == "done"
    assert client.get(f"/api/meshes/{job.meshes.get().pk}/stl").status_code == 200
    assert client.post(f"/api/meshing-jobs/{job.pk}/cancel", **basic("someone", "someone-pass-1")).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("body, field", [
    ({"threshold_hu": 0, "preset": "bone"}, "exactly one"),
    ({}, "exactly one"),
    ({"preset": "teeth"}, "preset"),
    ({"threshold_hu": 0, "smooth_passband": 3}, "smooth_passband"),
    ({"threshold_hu": 0, "outputs": ["obj"]}, "outputs"),
    ({"threshold_hu": 0, "crop": [0, 0, 0, 4, 0, 4]}, "crop"),
    ({"band_hu": [200, -300]}, "band_hu"),
    ({"threshold_hu": 0, "target_triangles": 2}, "target_triangles"),
])
def test_bad_parameters_are_400_naming_the_field(client, curator, sphere_series, body, field):
    response = post_job(client, {"series_uid": sphere_series[0].SeriesInstanceUID, **body})
    assert response.status_code == 400
    assert field in json.dumps(response.json())
    assert not MeshJob.objects.exists()


@pytest.mark.django_db
def test_preview_tints_the_threshold_mask(client, curator, sphere_series):
    uid = sphere_series[0].SeriesInstanceUID
    response = client.get(f"/api/meshing-preview/{uid}?threshold_hu=0", **basic(*CURATOR))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert (response["X-Slice-Index"], response["X-Slice-Count"]) == ("12", "24")
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    tinted = (image[:, :, 0] - image[:, :, 2]) > 40
    # The middle slice cuts the sphere near its equator: a disc of about pi * r^2 pixels.
    radius_px = RADIUS_MM / SPACING_MM[1]
    assert tinted.sum() == pytest.approx(np.pi * radius_px**2, rel=0.25)
    above = client.get(f"/api/meshing-preview/{uid}?threshold_hu=5000&index=3", **basic(*CURATOR))
    image = np.asarray(Image.open(io.BytesIO(above.content)).convert("RGB")).astype(int)
    assert not ((image[:, :, 0] - image[:, :, 2]) > 40).any()
    bad = client.get(f"/api/meshing-preview/{uid}?threshold_hu=0&index=99", **basic(*CURATOR))
    assert bad.status_code == 400 and "index" in bad.json()["detail"]


@pytest.mark.django_db
def test_cli_meshes_with_a_preset_and_a_triangle_budget(sphere_series):
    uid = sphere_series[0].SeriesInstanceUID
    out, err = StringIO(), StringIO()
    call_command("mesh", uid, "--preset", "bone", "--target-triangles", "500", stdout=out, stderr=err)
    mesh = Mesh.objects.get()
    assert mesh.triangles <= 500 and mesh.watertight
    assert "100% done" in err.getvalue() and mesh.stl_instance.sop_uid in out.getvalue()
    # 300 HU sits 0.15 ramp widths inside the 0 HU radius.
    assert mesh.volume_mm3 == pytest.approx(sphere_volume_mm3(RADIUS_MM - 0.15 * 2.0), rel=0.08)
    with pytest.raises(CommandError, match="no series"):
        call_command("mesh", "1.2.3", "--preset", "bone", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="nothing to mesh"):
        call_command("mesh", uid, "--threshold", "4000", stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
@pytest.mark.parametrize("what", [["--band", "0", "2000"], ["--threshold", "0", "--keep-largest"], ["--otsu"]])
def test_triangle_budget_holds_on_every_path(sphere_series, what):
    """Levels, bands and component filters all decimate inside the pipeline, to the
    budget, before the one measuring pass; each ends within it, closed."""
    call_command("mesh", sphere_series[0].SeriesInstanceUID, *what, "--target-triangles", "300",
                 stdout=StringIO(), stderr=StringIO())
    mesh = Mesh.objects.get()
    assert 200 <= mesh.triangles <= 300 and mesh.watertight
    assert mesh.volume_mm3 == pytest.approx(sphere_volume_mm3(), rel=0.1)


def test_beat_schedule_sweeps_jobs_whose_worker_died(sphere_series, settings):
    from archive.celery import app

    series = Series.objects.get(series_uid=sphere_series[0].SeriesInstanceUID)
    long_ago = timezone.now() - timedelta(seconds=2 * services.STALE_AFTER_S)
    dead = MeshJob.objects.create(key="dead", series=series, params={}, state=MeshJob.State.RUNNING,
                                  started=long_ago, heartbeat=long_ago)
    alive = MeshJob.objects.create(key="alive", series=series, params={}, state=MeshJob.State.RUNNING,
                                   started=long_ago, heartbeat=timezone.now())
    # What beat sends every minute, found and run as a worker would (autodiscovery).
    app.loader.import_default_modules()
    (entry,) = settings.CELERY_BEAT_SCHEDULE.values()
    assert entry["schedule"] <= 60
    assert app.tasks[entry["task"]].apply().get() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert dead.state == "failed" and "no heartbeat" in dead.error
    assert alive.state == "running"
