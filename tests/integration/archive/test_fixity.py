"""Fixity: manage.py verify, and the fixity-check job through a real Celery worker."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from archive.models import FixityCheck, Instance
from archive.storage import get_storage
from tests.factories.datasets import ct_series
from tests.integration.dicomweb.conftest import basic, store

pytestmark = pytest.mark.integration


@pytest.mark.django_db
def test_verify_reports_mismatch_missing_and_orphans(archive_storage):
    first, second, third = [store(ds) for ds in ct_series(3)]
    out = StringIO()
    call_command("verify", stdout=out)
    assert "checked 3 files" in out.getvalue()
    storage = get_storage()
    with open(storage.path(first.path), "r+b") as fp:
        fp.seek(-1, 2)
        fp.write(b"\x7f")
    storage.delete(second.path)
    (archive_storage / third.path).with_name("left-by-a-crash.dcm").write_bytes(b"x")
    with pytest.raises(CommandError, match="1 missing, 1 mismatched, 1 orphan"):
        call_command("verify", stdout=(out := StringIO()))
    text = out.getvalue()
    assert f"MISMATCH {first.path}" in text and f"MISSING {second.path}" in text and "ORPHAN " in text
    call_command("verify", "--study", "1.2.3", stdout=StringIO())  # another study: nothing to check


@pytest.mark.django_db(transaction=True)
def test_fixity_check_runs_on_a_real_worker(client, curator, job_worker):
    """Queued through the API, run by a Celery worker over the configured broker
    (the filesystem transport by default, Redis in the scaled run)."""
    for ds in ct_series(2):
        store(ds)
    response = client.post("/api/fixity-checks", {}, content_type="application/json", **basic("curator", "curator-pass-1"))
    assert response.status_code == 201, response.content
    check_id = response.json()["id"]
    deadline = time.monotonic() + 60
    while FixityCheck.objects.get(pk=check_id).state not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
    check = FixityCheck.objects.get(pk=check_id)
    assert check.state == "done", check.error
    assert check.report["ok"] and check.report["checked"] == Instance.objects.count() == 2
    body = client.get(f"/api/fixity-checks/{check_id}", **basic("curator", "curator-pass-1")).json()
    assert body["percent"] == 100


@pytest.mark.django_db
def test_api_is_for_curators(client, reader, curator):
    assert client.get("/api/modalities").status_code == 401
    assert client.get("/api/modalities", **basic("someone", "someone-pass-1")).status_code == 403
    auth = basic("curator", "curator-pass-1")
    created = client.post("/api/modalities", {"ae_title": "PACS", "host": "127.0.0.1", "port": 104}, content_type="application/json", **auth)
    assert created.status_code == 201
    bad = client.post("/api/modalities", {"ae_title": "A" * 17, "host": "h", "port": 0}, content_type="application/json", **auth)
    assert bad.status_code == 400 and "ae_title" in bad.json() and "port" in bad.json()


@pytest.mark.django_db
def test_study_visibility_through_the_api(client, reader, curator):
    ds = ct_series(1)[0]
    store(ds)
    url = f"/api/studies/{ds.StudyInstanceUID}"
    assert client.get(url).status_code == 404
    assert client.get("/api/studies").json() == []
    auth = basic("curator", "curator-pass-1")
    assert client.patch(url, {"visibility": "public"}, content_type="application/json", **auth).status_code == 200
    assert client.get(url).json()["visibility"] == "public"
    denied = client.patch(url, {"visibility": "private"}, content_type="application/json", **basic("someone", "someone-pass-1"))
    assert denied.status_code == 403
