"""Ingest fixtures: tus helpers, a real Celery worker, and the no-leftovers check."""

from __future__ import annotations

import time

import pytest

from archive.models import Instance, Patient, Series, Study
from ingest import tus
from ingest.models import Collection, IngestJob, Object, Upload
from tests.conftest import stored_files

TUS = {"HTTP_TUS_RESUMABLE": tus.VERSION}
META = {"inventory_number": "INV-2024-7", "title": "Bronze figurine", "holding_institution": "Vitrine Museum",
        "licence": "CC-BY-4.0", "attribution": "Vitrine Museum", "object_date": "c. 600 BCE"}


def create_upload(client, auth: dict, length: int, filename: str, **extra):
    return client.post(
        "/api/ingest/uploads", HTTP_UPLOAD_LENGTH=str(length),
        HTTP_UPLOAD_METADATA=tus.encode_metadata({"filename": filename}), **TUS, **auth, **extra,
    )


def patch(client, url: str, auth: dict, data: bytes, offset: int, **extra):
    return client.generic(
        "PATCH", url, data, content_type=tus.OFFSET_MEDIA_TYPE, HTTP_UPLOAD_OFFSET=str(offset),
        **TUS, **auth, **extra,
    )


def upload_bytes(client, auth: dict, data: bytes, filename: str) -> str:
    """A whole tus upload in two PATCH requests; returns the upload id."""
    created = create_upload(client, auth, len(data), filename)
    assert created.status_code == 201, created.content
    url = created["Location"]
    half = len(data) // 2
    for offset, part in ((0, data[:half]), (half, data[half:])):
        response = patch(client, url, auth, part, offset)
        assert response.status_code == 204, response.content
    assert response["Upload-Offset"] == str(len(data))
    return url.rstrip("/").rsplit("/", 1)[-1]


def wait_for_job(job_id: int, timeout_s: float = 120.0) -> IngestJob:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = IngestJob.objects.get(pk=job_id)
        if job.state in ("done", "failed"):
            return job
        time.sleep(0.2)
    pytest.fail(f"ingest job {job_id} did not finish: {IngestJob.objects.get(pk=job_id).__dict__}")


def leftovers(location) -> dict:
    """Rows and files that a failed or refused ingest must not leave behind."""
    return {
        "files": stored_files(location) if location.exists() else [],
        "rows": {m.__name__: m.objects.count() for m in (Patient, Study, Series, Instance, Object, Collection, Upload)
                 if m.objects.exists()},
    }


NOTHING = {"files": [], "rows": {}}


@pytest.fixture
def ingest_worker(job_worker):
    return job_worker
