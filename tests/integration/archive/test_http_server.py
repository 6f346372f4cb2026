"""The HTTP server that ``manage.py serve`` starts (granian, ``archive/httpserver.py``).

The rest of the suite talks to Django through its test client or pytest-django's
live server; this module runs the production server on its own archive (SQLite under
a temporary ``VITRINE_VAR``), for what the server itself decides: reading a request
body that stops short, streaming a large response, the tile fast path behind it,
access to private images, and stopping on SIGTERM.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pytest

from archive.httpserver import http_command
from tests.factories.datasets import ct_slice, write_files
from tests.services import free_port, wait_for_port

pytestmark = [
    pytest.mark.integration,
    # Its archive is its own embedded one in either run: the scaled run would repeat it.
    pytest.mark.skipif(os.environ.get("VITRINE_SCALED") == "1", reason="runs on its own SQLite archive"),
]

ROOT = Path(__file__).resolve().parents[3]
CURATOR = ("curator", "curator-pass-1")
AUTH = {"Authorization": "Basic " + base64.b64encode(":".join(CURATOR).encode()).decode()}
META = {"inventory_number": "INV-HTTP-1", "title": "Served object"}
MAKE_CURATOR = (
    "from django.contrib.auth.models import Group, User; "
    f"u = User.objects.create_user({CURATOR[0]!r}, password={CURATOR[1]!r}); "
    "u.groups.add(Group.objects.get_or_create(name='curator')[0])"
)


class Served:
    """A running server and the archive behind it."""

    def __init__(self, var: Path) -> None:
        # Its own SQLite archive, whatever the suite runs against (the scaled run's
        # PostgreSQL database belongs to pytest-django).
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "VITRINE_STORAGE")}
        self.env["VITRINE_VAR"] = str(var)
        self.var = var
        self.manage("migrate", "-v", "0")
        self.manage("shell", "-c", MAKE_CURATOR)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=False, env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def ingest(self, path: Path, *, public: bool) -> dict:
        meta = self.var / f"{path.stem}.json"
        meta.write_text(json.dumps({**META, "inventory_number": f"INV-{path.stem[-8:]}"}))
        flags = ["--public"] if public else []
        return json.loads(self.manage("ingest", str(path), "--metadata", str(meta), "--json", *flags))

    def start(self) -> None:
        command = http_command(Path(sys.executable).parent, "127.0.0.1", self.port, 2, 1, access_log=False)
        self.process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stdout.read()
            try:
                if self.request("GET", "/iiif/3/1.2.3/info.json")[0] == 404:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("the HTTP server did not answer within 60 s")

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    var = tmp_path_factory.mktemp("served")
    server = Served(var)
    files = write_files([ct_slice(size=16, seed=1), ct_slice(size=16, seed=2, patient_id="P-PRIVATE"),
                         ct_slice(size=1024, seed=3, patient_id="P-LARGE")], var / "incoming")
    server.public, server.private, server.large = (
        server.ingest(path, public=public) for path, public in zip(files, (True, False, True), strict=True))
    server.files = files
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


def test_public_tile_is_served_and_private_one_asks_who_is_asking(served):
    public = served.files[0].stem
    private = served.files[1].stem
    status, headers, body = served.request("GET", f"/iiif/3/{public}/full/max/0/default.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    assert headers["Access-Control-Allow-Origin"] == "*" and 'rel="canonical"' in headers["Link"]
    assert served.request("GET", f"/iiif/3/{private}/full/max/0/default.jpg")[0] == 401
    status, _, body = served.request("GET", f"/iiif/3/{private}/full/max/0/default.jpg", **AUTH)
    assert status == 200 and body[:2] == b"\xff\xd8"
    status, _, body = served.request("GET", f"/iiif/3/{public}/full/0,0/0/default.jpg")
    assert status == 400 and b"size" in body  # the reason, from Django behind the fast path
    # Bytes that are not UTF-8 in the path reach Django as WSGI's latin-1 text: a 4xx.
    assert 400 <= served.request("GET", "/iiif/3/%ff%E2%82/info.json")[0] < 500


def test_large_instance_streams_whole(served):
    path = served.files[2]
    status, headers, body = served.request("GET", f"/dicomweb/studies/{served.large['study_uid']}", **AUTH,
                                           Accept='multipart/related; type="application/dicom"')
    assert status == 200, body[:300]
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
    [part] = list(message.iter_parts())
    assert part.get_content() == path.read_bytes()  # 2 MB, sent in the order stored


def test_upload_body_cut_short_keeps_what_arrived(served):
    data = os.urandom(300_000)
    status, headers, _ = served.request(
        "POST", "/api/ingest/uploads", **AUTH, **{"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))})
    assert status == 201
    path = "/api/ingest/uploads/" + headers["Location"].rsplit("/", 1)[-1]
    sent = 120_000
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(head + data[:sent])
        time.sleep(0.5)  # let the server read what came before the client goes away
    offset = 0
    for _ in range(50):  # the server notices the closed connection on its own time
        status, headers, _ = served.request("HEAD", path, **AUTH, **{"Tus-Resumable": "1.0.0"})
        offset = int(headers["Upload-Offset"])
        if offset:
            break
        time.sleep(0.1)
    assert offset == sent
    status, headers, _ = served.request(
        "PATCH", path, data[offset:], **AUTH,
        **{"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    assert status == 204 and headers["Upload-Offset"] == str(len(data))


def test_sigterm_stops_every_worker(served):
    children = Path(f"/proc/{served.process.pid}/task/{served.process.pid}/children").read_text().split()
    assert len(children) == 2  # the two workers asked for
    assert served.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


def test_serve_stops_on_ctrl_c(served):
    """``make run`` in a terminal: Ctrl-C sends SIGINT to the whole foreground group."""
    env = {**served.env, "VITRINE_HTTP_PORT": str(free_port()), "VITRINE_DICOM_PORT": str(free_port()),
           "VITRINE_HTTP_WORKERS": "2"}
    serve = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "serve", "--no-worker"], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for_port(int(env["VITRINE_HTTP_PORT"]), timeout=60)
        time.sleep(2)  # the workers up, not only the listening socket
        started = time.monotonic()
        os.killpg(serve.pid, signal.SIGINT)
        output = serve.communicate(timeout=30)[0]
        assert time.monotonic() - started < 8, output
        assert serve.returncode == 0 and "Killing" not in output, output
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
