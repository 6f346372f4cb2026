"""Ingest jobs end to end: tus uploads, an ingest request, a real Celery worker, the archive.

All or nothing per object: a failing conversion or a failing store leaves no rows
and no files, in the archive storage or in the upload staging folder.
"""

from __future__ import annotations

import pydicom
import pytest

from archive.models import Instance, Study
from archive.storage import get_storage
from ingest.metadata import read_private_metadata
from ingest.models import Collection, IngestJob, Object, Upload
from tests.conftest import stored_files
from tests.factories.datasets import ct_series, to_bytes
from tests.factories.files import binary_stl, obj_group, pdf_bytes, tiff_stack, zip_bytes
from tests.integration.dicomweb.conftest import basic, store
from tests.integration.ingest.conftest import (
    META,
    NOTHING,
    create_upload,
    leftovers,
    upload_bytes,
    wait_for_job,
)

pytestmark = pytest.mark.integration

CURATOR = basic("curator", "curator-pass-1")
STL_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"
PDF_CLASS = "1.2.840.10008.5.1.4.1.1.104.1"
CT_CLASSES = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}


def request_ingest(client, ids, metadata=META, **options):
    return client.post("/api/ingest/jobs", {"uploads": ids, "metadata": metadata, **options},
                       content_type="application/json", **CURATOR)


def stack_files(tmp_path) -> dict[str, bytes]:
    folder = tiff_stack(tmp_path / "stack", slices=4, shape=(16, 12))
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


CASES = {
    "stl": (lambda tmp: {"figurine.stl": binary_stl(20)}, {STL_CLASS}, 1),
    "pdf": (lambda tmp: {"condition-report.pdf": pdf_bytes(2)}, {PDF_CLASS}, 1),
    "tiff-stack": (stack_files, CT_CLASSES, 4),
}


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.django_db(transaction=True)
def test_ingest_job_on_a_real_worker(kind, client, curator, ingest_worker, archive_storage, tmp_path):
    make, classes, count = CASES[kind]
    ids = [upload_bytes(client, CURATOR, data, name) for name, data in make(tmp_path).items()]
    metadata = {**META, "collection": "Bronzes", "voxel_size_mm": [0.1, 0.1, 0.2]}
    response = request_ingest(client, ids, metadata, visibility="public")
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "queued"
    job = wait_for_job(response.json()["id"])
    assert job.state == "done", job.message

    body = client.get(f"/api/ingest/jobs/{job.pk}", **CURATOR).json()
    assert (body["state"], body["stage"], body["percent"]) == ("done", "done", 100)
    uid = body["result"]["study_uid"]
    assert body["links"]["iiif_manifest"] == f"http://testserver/iiif/presentation/studies/{uid}/manifest"
    assert body["links"]["dicomweb_study"] == f"http://testserver/dicomweb/studies/{uid}"

    study = Study.objects.get(study_uid=uid)
    assert study.visibility == "public" and study.owner == curator
    assert study.patient.patient_id == META["inventory_number"]
    instances = list(Instance.objects.filter(series__study=study))
    assert len(instances) == count and {i.sop_class_uid for i in instances} <= classes
    listed = [sop for series in body["result"]["studies"][0]["series"] for sop in series["instances"]]
    assert sorted(listed) == sorted(i.sop_uid for i in instances)
    ds = pydicom.dcmread(get_storage().path(instances[0].path))
    assert read_private_metadata(ds)["licence"] == "CC-BY-4.0"
    assert ds.InstitutionName == META["holding_institution"]

    obj = Object.objects.get()
    assert (obj.inventory_number, obj.title, obj.collection.name) == ("INV-2024-7", META["title"], "Bronzes")
    assert list(obj.studies.all()) == [study]
    assert Collection.objects.get().slug == "bronzes"
    series = client.get(body["links"]["dicomweb_series"])  # public: no credentials needed
    assert series.status_code == 200 and len(series.json()) == len(body["result"]["studies"][0]["series"])
    # The uploads were consumed: only the archive's files remain.
    assert not Upload.objects.exists()
    assert stored_files(archive_storage) == sorted(i.path for i in instances)


def obj_without_mtl(tmp_path) -> bytes:
    obj = obj_group(tmp_path / "model", with_mtl=False)
    return zip_bytes({"model/model.obj": obj.read_bytes(), "model/skin.jpg": (obj.parent / "skin.jpg").read_bytes()})


FAILURES = {
    "obj-missing-mtl": (lambda tmp: {"model.zip": obj_without_mtl(tmp)}, "material library"),
    "truncated-stl": (lambda tmp: {"broken.stl": binary_stl(10)[:-7]}, "truncated"),
    "zip-slip": (lambda tmp: {"evil.zip": zip_bytes({"../evil.stl": binary_stl()})}, "'..'"),
    "unsupported": (lambda tmp: {"notes.bin": b"\x00\x01\x02 not a format anyone knows " * 20}, "unsupported"),
    "one-bad-of-two": (lambda tmp: {"good.stl": binary_stl(), "bad.stl": binary_stl(5)[:-1]}, "bad.stl"),
}


@pytest.mark.parametrize("case", FAILURES)
@pytest.mark.django_db(transaction=True)
def test_failing_conversion_leaves_nothing(case, client, curator, ingest_worker, archive_storage, tmp_path):
    make, reason = FAILURES[case]
    ids = [upload_bytes(client, CURATOR, data, name) for name, data in make(tmp_path).items()]
    response = request_ingest(client, ids)
    assert response.status_code == 201, response.content
    job = wait_for_job(response.json()["id"])
    assert job.state == "failed"
    assert reason in job.message
    body = client.get(f"/api/ingest/jobs/{job.pk}", **CURATOR).json()
    assert body["state"] == "failed" and body["error_code"] in ("invalid", "unsupported_media_type")
    assert body["links"] == {} and body["result"] is None
    assert leftovers(archive_storage) == NOTHING


@pytest.mark.django_db(transaction=True)
def test_a_failing_store_removes_what_the_object_stored(client, curator, ingest_worker, archive_storage):
    """The STL stores, the DICOM file conflicts with one already archived: both go."""
    original = ct_series(1)[0]
    kept = store(original)
    clash = ct_series(1)[0]
    clash.SOPInstanceUID = original.SOPInstanceUID
    clash.StudyInstanceUID, clash.SeriesInstanceUID = original.StudyInstanceUID, original.SeriesInstanceUID
    clash.PatientID = original.PatientID
    clash.PatientName = "Changed^Name"
    ids = [upload_bytes(client, CURATOR, binary_stl(), "figurine.stl"),
           upload_bytes(client, CURATOR, to_bytes(clash), "clash.dcm")]
    response = request_ingest(client, ids)
    assert response.status_code == 201
    job = wait_for_job(response.json()["id"])
    assert job.state == "failed" and job.error_code == "conflict", job.message
    assert "clash.dcm" in job.message
    assert list(Instance.objects.values_list("sop_uid", flat=True)) == [kept.sop_uid]
    assert list(Study.objects.values_list("study_uid", flat=True)) == [original.StudyInstanceUID]
    assert not Object.objects.exists() and not Upload.objects.exists()
    assert stored_files(archive_storage) == [kept.path]


@pytest.mark.django_db
def test_refused_requests_queue_nothing(client, curator, django_user_model, archive_storage):
    done = upload_bytes(client, CURATOR, binary_stl(), "a.stl")
    unfinished = create_upload(client, CURATOR, 100, "b.stl")["Location"].rsplit("/", 1)[-1]
    bad_meta = request_ingest(client, [done], {"title": "no inventory number"})
    assert bad_meta.status_code == 400 and "inventory_number" in bad_meta.json()["detail"]
    unknown_field = request_ingest(client, [done], {**META, "colour": "red"})
    assert unknown_field.status_code == 400 and "colour" in unknown_field.json()["detail"]
    assert request_ingest(client, [done, unfinished]).status_code == 409
    assert request_ingest(client, []).status_code == 400
    assert request_ingest(client, [done], visibility="secret").status_code == 400
    from django.contrib.auth.models import Group

    other = django_user_model.objects.create_user("other", password="other-pass-1")
    other.groups.add(Group.objects.get(name="curator"))
    stolen = client.post("/api/ingest/jobs", {"uploads": [done], "metadata": META}, content_type="application/json",
                         **basic("other", "other-pass-1"))
    assert stolen.status_code == 404
    assert client.post("/api/ingest/jobs", {"uploads": [done]}, content_type="application/json").status_code == 401
    assert not IngestJob.objects.exists()
    assert Upload.objects.filter(job__isnull=True).count() == 2  # still there, to retry


@pytest.mark.django_db
def test_a_sidecar_upload_supplies_the_metadata(client, curator, archive_storage):
    import json

    ids = [upload_bytes(client, CURATOR, binary_stl(), "a.stl"),
           upload_bytes(client, CURATOR, json.dumps({**META, "title": "From the sidecar"}).encode(), "metadata.json")]
    response = request_ingest(client, ids, {"title": "From the form"})
    assert response.status_code == 201, response.content
    job = IngestJob.objects.get()
    assert job.metadata["inventory_number"] == META["inventory_number"] and job.metadata["title"] == "From the form"


@pytest.mark.django_db
def test_jobs_are_private_to_their_owner(client, curator, django_user_model):
    job = IngestJob.objects.create(owner=curator, metadata=META)
    from django.contrib.auth.models import Group

    other = django_user_model.objects.create_user("other", password="other-pass-1")
    other.groups.add(Group.objects.get(name="curator"))
    assert client.get(f"/api/ingest/jobs/{job.pk}", **basic("other", "other-pass-1")).status_code == 404
    assert client.get(f"/api/ingest/jobs/{job.pk}", **CURATOR).json()["state"] == "queued"
    assert client.get("/api/ingest/jobs", **basic("other", "other-pass-1")).json() == []


@pytest.mark.django_db
def test_a_job_redelivered_after_a_worker_died_fails_cleanly(client, curator, archive_storage):
    from ingest import services

    done = upload_bytes(client, CURATOR, binary_stl(), "a.stl")
    job_id = request_ingest(client, [done]).json()["id"]
    IngestJob.objects.filter(pk=job_id).update(state="running", stage="converting stl", percent=40)
    job = services.run_ingest_job(job_id)
    assert (job.state, job.error_code) == ("failed", "interrupted")
    assert leftovers(archive_storage) == NOTHING
    assert services.run_ingest_job(job_id).state == "failed"  # and stays so
