"""tus 1.0 uploads: creation, resume after an interrupted PATCH, termination, and refusals."""

from __future__ import annotations

import base64
import hashlib
import socket
from collections import namedtuple
from urllib.parse import urlsplit

import pytest
from django.test import Client, override_settings

from ingest import uploads as services
from ingest.models import Upload
from tests.factories.files import binary_stl
from tests.integration.dicomweb.conftest import basic
from tests.integration.ingest.conftest import NOTHING, TUS, create_upload, leftovers, patch

pytestmark = pytest.mark.integration

CURATOR = basic("curator", "curator-pass-1")


def staged(upload_id: str) -> bytes:
    return services.staging_path(Upload.objects.get(pk=upload_id)).read_bytes()


def upload_id(response) -> str:
    return response["Location"].rsplit("/", 1)[-1]


@pytest.mark.django_db
def test_options_tells_what_the_server_speaks(client):
    response = client.options("/api/ingest/uploads")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0" and response["Tus-Resumable"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) == {"creation", "termination", "checksum", "expiration"}
    assert int(response["Tus-Max-Size"]) == services.max_upload_bytes() >= 50 * 1024**3


@pytest.mark.django_db
def test_create_head_patch_and_complete(client, curator):
    data = binary_stl(40)
    created = create_upload(client, CURATOR, len(data), "figurine.stl")
    assert created.status_code == 201, created.content
    assert created["Location"].startswith("http://testserver/api/ingest/uploads/")
    assert created["Tus-Resumable"] == "1.0.0"
    url = created["Location"]
    head = client.head(url, **TUS, **CURATOR)
    assert head.status_code == 200
    assert (head["Upload-Offset"], head["Upload-Length"], head["Cache-Control"]) == ("0", str(len(data)), "no-store")
    first = patch(client, url, CURATOR, data[:1000], 0)
    assert first.status_code == 204 and first["Upload-Offset"] == "1000"
    assert client.head(url, **TUS, **CURATOR)["Upload-Offset"] == "1000"
    rest = patch(client, url, CURATOR, data[1000:], 1000)
    assert rest.status_code == 204 and rest["Upload-Offset"] == str(len(data))
    upload = Upload.objects.get(pk=upload_id(created))
    assert upload.is_complete and upload.filename == "figurine.stl" and upload.owner == curator
    assert staged(upload.pk) == data
    # The staging file lives on the archive's filesystem, outside the archive's names.
    assert services.staging_dir().is_relative_to(services.get_storage().incoming_dir())


@pytest.mark.django_db(transaction=True)
def test_resume_after_an_interrupted_patch(live_server, curator):
    """A PATCH whose connection drops keeps what arrived; HEAD says where to resume."""
    data = binary_stl(3000)  # 150 kB
    client = Client()
    url = create_upload(client, CURATOR, len(data), "big.stl")["Location"]
    path = urlsplit(url).path
    host, port = urlsplit(live_server.url).hostname, urlsplit(live_server.url).port
    sent = 100_000
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {CURATOR['HTTP_AUTHORIZATION']}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head + data[:sent])
        sock.shutdown(socket.SHUT_WR)  # the client goes away mid-body
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert b"Upload-Offset: 100000" in reply, reply[:500]
    live = Client()
    offset = int(live.head(path, **TUS, **CURATOR)["Upload-Offset"])
    assert offset == sent
    # Resuming from a wrong offset is refused; from the right one it completes.
    assert patch(live, path, CURATOR, data[sent - 10:], sent - 10).status_code == 409
    done = patch(live, path, CURATOR, data[offset:], offset)
    assert done.status_code == 204 and done["Upload-Offset"] == str(len(data))
    assert staged(path.rsplit("/", 1)[-1]) == data


@pytest.mark.django_db
def test_wrong_offset_is_a_409_and_changes_nothing(client, curator):
    url = create_upload(client, CURATOR, 100, "a.stl")["Location"]
    assert patch(client, url, CURATOR, b"x" * 10, 0).status_code == 204
    for offset in (0, 5, 20):
        response = patch(client, url, CURATOR, b"y" * 10, offset)
        assert response.status_code == 409 and response.json()["code"] == "offset_mismatch"
    assert staged(upload_id_from(url)) == b"x" * 10


def upload_id_from(url: str) -> str:
    return url.rsplit("/", 1)[-1]


@pytest.mark.django_db
def test_size_limit_is_a_413_with_no_rows_and_no_files(client, curator, archive_storage):
    with override_settings(VITRINE_MAX_INGEST_BYTES=1000):
        assert client.options("/api/ingest/uploads")["Tus-Max-Size"] == "1000"
        response = create_upload(client, CURATOR, 1001, "huge.stl")
        assert response.status_code == 413 and "1000" in response.json()["detail"]
        assert create_upload(client, CURATOR, 1000, "fits.stl").status_code == 201
    Upload.objects.all().delete()
    for path in services.staging_dir().iterdir():
        path.unlink()
    assert leftovers(archive_storage) == NOTHING


@pytest.mark.django_db
def test_too_little_disk_is_a_507(client, curator, archive_storage, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(services.shutil, "disk_usage", lambda path: usage(100, 90, 10))
    response = create_upload(client, CURATOR, 11, "a.stl")
    assert response.status_code == 507 and response.json()["code"] == "out_of_resources"
    assert leftovers(archive_storage) == NOTHING


@pytest.mark.django_db
def test_a_body_past_upload_length_is_refused(client, curator):
    url = create_upload(client, CURATOR, 10, "a.stl")["Location"]
    response = patch(client, url, CURATOR, b"z" * 11, 0)
    assert response.status_code == 400 and "Upload-Length" in response.json()["detail"]
    assert staged(upload_id_from(url)) == b""


@pytest.mark.django_db
def test_authentication_and_roles(client, curator, reader, django_user_model):
    assert create_upload(client, {}, 10, "a.stl").status_code == 401
    assert create_upload(client, basic("someone", "someone-pass-1"), 10, "a.stl").status_code == 403
    url = create_upload(client, CURATOR, 10, "a.stl")["Location"]
    assert client.head(url, **TUS).status_code == 401
    assert patch(client, url, basic("someone", "someone-pass-1"), b"x", 0).status_code == 403
    # Another curator cannot see, write or delete it.
    from django.contrib.auth.models import Group

    other = django_user_model.objects.create_user("other", password="other-pass-1")
    other.groups.add(Group.objects.get(name="curator"))
    auth = basic("other", "other-pass-1")
    assert client.head(url, **TUS, **auth).status_code == 404
    assert patch(client, url, auth, b"x", 0).status_code == 404
    assert client.delete(url, **TUS, **auth).status_code == 404
    assert client.head("/api/ingest/uploads/not-a-uuid", **TUS, **CURATOR).status_code == 404
    assert Upload.objects.count() == 1 and staged(upload_id_from(url)) == b""


@pytest.mark.django_db
def test_tus_resumable_header_is_checked(client, curator):
    response = client.post("/api/ingest/uploads", HTTP_UPLOAD_LENGTH="10", **CURATOR)
    assert response.status_code == 412 and response["Tus-Resumable"] == "1.0.0"
    response = client.post("/api/ingest/uploads", HTTP_UPLOAD_LENGTH="10", HTTP_TUS_RESUMABLE="0.2.2", **CURATOR)
    assert response.status_code == 412 and "0.2.2" in response.json()["detail"]
    url = create_upload(client, CURATOR, 10, "a.stl")["Location"]
    assert client.head(url, HTTP_TUS_RESUMABLE="2.0.0", **CURATOR).status_code == 412
    assert Upload.objects.count() == 1


@pytest.mark.django_db
def test_bad_creation_headers(client, curator, archive_storage):
    for headers in ({}, {"HTTP_UPLOAD_LENGTH": "-1"}, {"HTTP_UPLOAD_LENGTH": "ten"},
                    {"HTTP_UPLOAD_LENGTH": "5", "HTTP_UPLOAD_METADATA": "filename not-base64!"},
                    {"HTTP_UPLOAD_DEFER_LENGTH": "1"}):
        response = client.post("/api/ingest/uploads", **headers, **TUS, **CURATOR)
        assert response.status_code == 400, headers
    assert leftovers(archive_storage) == NOTHING


@pytest.mark.django_db
def test_patch_needs_the_offset_media_type(client, curator):
    url = create_upload(client, CURATOR, 10, "a.stl")["Location"]
    response = client.generic("PATCH", url, b"x", content_type="application/octet-stream",
                              HTTP_UPLOAD_OFFSET="0", **TUS, **CURATOR)
    assert response.status_code == 415


@pytest.mark.django_db
def test_checksum_extension(client, curator):
    url = create_upload(client, CURATOR, 8, "a.stl")["Location"]
    good = "sha1 " + base64.b64encode(hashlib.sha1(b"abcd").digest()).decode()
    bad = "sha1 " + base64.b64encode(hashlib.sha1(b"nope").digest()).decode()
    assert patch(client, url, CURATOR, b"abcd", 0, HTTP_UPLOAD_CHECKSUM=good).status_code == 204
    response = patch(client, url, CURATOR, b"efgh", 4, HTTP_UPLOAD_CHECKSUM=bad)
    assert response.status_code == 460
    assert staged(upload_id_from(url)) == b"abcd"
    assert patch(client, url, CURATOR, b"efgh", 4, HTTP_UPLOAD_CHECKSUM="crc32 AAAA").status_code == 400


@pytest.mark.django_db
def test_termination_removes_row_and_file(client, curator, archive_storage):
    url = create_upload(client, CURATOR, 10, "a.stl")["Location"]
    patch(client, url, CURATOR, b"12345", 0)
    response = client.delete(url, **TUS, **CURATOR)
    assert response.status_code == 204
    assert client.head(url, **TUS, **CURATOR).status_code == 404
    assert leftovers(archive_storage) == NOTHING


@pytest.mark.django_db
def test_session_uploads_need_the_csrf_token(curator):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(curator)
    refused = create_upload(browser, {}, 10, "a.stl")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/upload/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    assert create_upload(browser, {}, 10, "a.stl", HTTP_X_CSRFTOKEN=token).status_code == 201


class SpyStream:
    """A request body that records how much each read asks for."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.asked = data, 0, []

    def read(self, size: int = -1) -> bytes:
        assert size > 0, "the body must be read in bounded chunks, never whole"
        self.asked.append(size)
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk


@pytest.mark.django_db
def test_bodies_are_streamed_in_bounded_chunks(curator, monkeypatch):
    monkeypatch.setattr(services, "CHUNK_BYTES", 4096)
    data = binary_stl(1000)  # 50 kB
    upload = services.create_upload(curator, length=len(data), metadata={"filename": "a.stl"})
    body = SpyStream(data)
    assert services.append_to_upload(upload, offset=0, stream=body, content_length=len(data)) == len(data)
    assert max(body.asked) == 4096 and len(body.asked) >= len(data) // 4096
    assert staged(upload.pk) == data and Upload.objects.get(pk=upload.pk).is_complete


@pytest.mark.django_db
def test_a_second_writer_on_the_same_upload_is_a_409(client, curator):
    import fcntl
    import os

    url = create_upload(client, CURATOR, 10, "a.stl")["Location"]
    path = services.staging_path(Upload.objects.get(pk=upload_id_from(url)))
    fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a PATCH in flight holds this lock
        busy = patch(client, url, CURATOR, b"x", 0)
        assert busy.status_code == 409 and "another request" in busy.json()["detail"]
    finally:
        os.close(fd)
    assert patch(client, url, CURATOR, b"x", 0).status_code == 204


@pytest.mark.django_db
def test_unclaimed_uploads_expire(client, curator, archive_storage):
    from datetime import timedelta

    from django.utils import timezone
    from django.utils.http import parse_http_date

    created = create_upload(client, CURATOR, 10, "old.stl")
    expires = parse_http_date(created["Upload-Expires"])
    assert expires > timezone.now().timestamp() + 6 * 24 * 3600
    url = created["Location"]
    patch(client, url, CURATOR, b"12345", 0)
    Upload.objects.update(expires=timezone.now() - timedelta(seconds=1))
    assert client.head(url, **TUS, **CURATOR).status_code == 404
    assert leftovers(archive_storage) == NOTHING
    # Creating an upload also sweeps the expired ones of every user.
    stale = create_upload(client, CURATOR, 10, "stale.stl")["Location"]
    Upload.objects.update(expires=timezone.now() - timedelta(seconds=1))
    fresh = create_upload(client, CURATOR, 10, "fresh.stl")["Location"]
    assert list(Upload.objects.values_list("filename", flat=True)) == ["fresh.stl"]
    assert [p.name for p in services.staging_dir().iterdir()] == [upload_id_from(fresh) + ".part"]
    assert stale != fresh
