"""The curator upload page in headless Chromium: sign in, drop an STL, describe it,
watch it upload (tus) and convert (a real Celery worker), and follow the result link."""

from __future__ import annotations

import base64

import pytest

from archive.models import Instance, Study
from ingest.models import Object, Upload
from tests.factories.files import binary_stl
from tests.integration.ingest.conftest import (
    NOTHING,
    ingest_worker,  # noqa: F401  (a fixture)
    leftovers,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DROP_FILE = """
const [name, b64] = arguments;
const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, {type: "model/stl"}));
const zone = document.getElementById("drop");
zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true, cancelable: true}));
zone.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
"""


def sign_in(browser, live_server, username: str, password: str) -> None:
    browser.open(f"{live_server.url}/upload/")
    browser.wait_for("document.getElementById('sign-in')", what="the sign-in form")
    assert "/accounts/login/" in browser.driver.current_url
    browser.run("document.getElementById('id_username').value = arguments[0];"
                "document.getElementById('id_password').value = arguments[1];"
                "document.getElementById('sign-in').click();", username, password)
    browser.wait_for("location.pathname === '/upload/' && document.getElementById('drop')", what="the upload page")


def test_drop_an_stl_and_follow_it_to_the_archive(live_server, chromium, curator, ingest_worker):  # noqa: F811
    sign_in(chromium, live_server, "curator", "curator-pass-1")
    stl = binary_stl(200)
    chromium.run(DROP_FILE, "figurine.stl", base64.b64encode(stl).decode())
    chromium.wait_for("document.querySelectorAll('#file-rows tr').length === 1", what="the dropped file's row")
    chromium.run(
        "document.getElementById('inventory_number').value = 'INV-B-1';"
        "document.getElementById('title').value = 'Browser figurine';"
        "document.getElementById('collection').value = 'Bronzes';"
        "document.getElementById('licence').value = 'CC-BY-4.0';"
        "document.getElementById('public').checked = true;"
        "document.getElementById('start').click();"
    )
    chromium.wait_for("!document.getElementById('result').hidden", timeout_s=120, what="the stored result")
    bars = chromium.run(
        "return [...document.querySelectorAll('progress')].map(p => [p.className, p.value]);"
    )
    assert bars == [["upload-progress", 100], ["convert-progress", 100]]
    assert chromium.run("return document.querySelector('.file-status').textContent;") == "done"

    study = Study.objects.get()
    assert study.visibility == "public" and study.patient.patient_id == "INV-B-1"
    assert Instance.objects.get().size_bytes > len(stl)
    href = chromium.run("return document.getElementById('result-link').href;")
    assert href.startswith(f"{live_server.url}/viewer/?manifest=")
    assert study.study_uid in href
    manifest = chromium.run("return document.getElementById('manifest-link').href;")
    assert manifest == f"{live_server.url}/iiif/presentation/studies/{study.study_uid}/manifest"
    assert Object.objects.get().collection.name == "Bronzes"
    assert not Upload.objects.exists()
    assert not chromium.console_errors()


def test_a_failing_conversion_is_reported_and_leaves_nothing(live_server, chromium, curator, ingest_worker,  # noqa: F811
                                                             archive_storage):
    sign_in(chromium, live_server, "curator", "curator-pass-1")
    chromium.run(DROP_FILE, "broken.stl", base64.b64encode(binary_stl(30)[:-9]).decode())
    chromium.run("document.getElementById('inventory_number').value = 'INV-B-2';"
                 "document.getElementById('start').click();")
    chromium.wait_for("document.getElementById('status').textContent.startsWith('Failed')", timeout_s=120,
                      what="the failure message")
    status = chromium.run("return document.getElementById('status').textContent;")
    assert "broken.stl" in status and "truncated" in status
    assert chromium.run("return document.getElementById('result').hidden;")
    assert chromium.run("return document.querySelector('.file-status').textContent;") == "failed"
    assert leftovers(archive_storage) == NOTHING


def test_a_reader_is_turned_away(live_server, chromium, reader):
    sign_in_page = f"{live_server.url}/upload/"
    chromium.open(sign_in_page)
    chromium.wait_for("document.getElementById('sign-in')", what="the sign-in form")
    chromium.run("document.getElementById('id_username').value = 'someone';"
                 "document.getElementById('id_password').value = 'someone-pass-1';"
                 "document.getElementById('sign-in').click();")
    chromium.wait_for("document.body.innerText.includes('Curators only')", what="the refusal")
    assert not chromium.run("return document.getElementById('drop');")
