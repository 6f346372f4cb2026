"""The meshing page in headless Chromium: preview, start, progress, three.js viewer, downloads.

The job runs on a real Celery worker (solo pool, in the test process, on a queue
folder of the test's own) against the live server's database, as in production; the
browser only talks HTTP to the live server.
"""

from __future__ import annotations

import json

import pytest

from archive.models import Study, Visibility
from models3d.models import Mesh
from tests.integration.models3d.conftest import (
    CURATOR,
    RADIUS_MM,
    SPACING_MM,
    sphere_datasets,
    sphere_volume_mm3,
    store_series,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def three_installed():
    from frontend.meshing import three_installed

    if not three_installed():
        pytest.skip("three.js is not in frontend/static/vendor/three/: see docs/meshing-jobs.md (npm ci, then copy)")


@pytest.fixture
def sphere(db):
    """24 slices of 32x32 of a sphere, in a private study."""
    return store_series(sphere_datasets(patient_id="BROWSER-1", patient_name="Sphere^Browser"))


def sign_in(browser, live_server, next_path: str) -> None:
    from selenium.webdriver.common.by import By

    browser.open(f"{live_server.url}/accounts/login/?next={next_path}")
    browser.driver.find_element(By.ID, "id_username").send_keys(CURATOR[0])
    browser.driver.find_element(By.ID, "id_password").send_keys(CURATOR[1])
    browser.driver.find_element(By.ID, "sign-in").click()
    browser.wait_for(f"location.pathname === {json.dumps(next_path)}", what="the sign-in redirect")


def fetch_info(browser, url: str) -> dict:
    """Status, type and length of a same-origin GET made by the page itself."""
    return browser.driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: 'same-origin'}).then(async (r) => done({
            status: r.status, type: r.headers.get('Content-Type'), length: (await r.arrayBuffer()).byteLength}))
          .catch((e) => done({error: String(e)}));""",
        url,
    )


def test_mesh_a_sphere_from_the_page(live_server, chromium, curator, sphere, job_worker):
    series_uid = sphere[0].SeriesInstanceUID
    path = f"/series/{series_uid}/mesh"
    sign_in(chromium, live_server, path)

    # The preview: the middle slice of 24, with the bone preset's mask.
    chromium.wait_for("window.vitrineMeshing && window.vitrineMeshing.previewLoads >= 1", what="the preview")
    assert chromium.run("return document.getElementById('preview').naturalWidth;") == 32
    assert "index=12" in chromium.run("return document.getElementById('preview').src;")
    from selenium.webdriver.common.by import By

    # A typed level may lie beyond the slider's range (raw micro-CT units).
    loads = chromium.run("return window.vitrineMeshing.previewLoads;")
    typed = chromium.driver.find_element(By.ID, "threshold-number")
    assert typed.get_attribute("value") == "300"  # the bone preset's level
    typed.clear()
    typed.send_keys("5000")
    chromium.wait_for(f"window.vitrineMeshing.previewLoads > {loads} && "
                      "document.getElementById('preview').src.includes('threshold_hu=5000')", what="the typed level")
    # Dragging the slider to 0 HU re-renders the preview at that level.
    loads = chromium.run("return window.vitrineMeshing.previewLoads;")
    chromium.run("""const s = document.getElementById('threshold'); s.value = 0;
                    s.dispatchEvent(new Event('input', {bubbles: true}));""")
    chromium.wait_for(f"window.vitrineMeshing.previewLoads > {loads}", what="the preview at 0 HU")
    assert "threshold_hu=0" in chromium.run("return document.getElementById('preview').src;")
    assert chromium.run("return document.getElementById('preset').value;") == "custom"

    chromium.driver.find_element(By.ID, "target-triangles").send_keys("1500")
    chromium.driver.find_element(By.ID, "want-obj").click()
    chromium.driver.find_element(By.ID, "start").click()
    chromium.wait_for("['done', 'failed', 'cancelled'].includes(window.vitrineMeshing.state)",
                      timeout_s=240, what="the job to finish")
    assert chromium.run("return window.vitrineMeshing.error;") == ""
    assert chromium.run("return window.vitrineMeshing.state;") == "done"
    assert chromium.run("return document.getElementById('progress').value;") == 100

    # The viewer shows the stored mesh, with the measurements the archive recorded.
    chromium.wait_for("window.vitrineMeshing.rendered", what="the mesh in the viewer")
    mesh = Mesh.objects.get()
    assert mesh.obj_instance is not None and mesh.triangles <= 1500
    assert chromium.run("return window.vitrineMeshing.loadedTriangles;") == mesh.triangles
    assert chromium.run("return document.getElementById('stat-triangles').textContent;") == f"{mesh.triangles:,}"
    assert f"{mesh.volume_mm3:,.1f} mm³" in chromium.run("return document.getElementById('stat-volume').textContent;")
    assert mesh.volume_mm3 == pytest.approx(sphere_volume_mm3(), abs=4 * 3.1416 * RADIUS_MM**2 * 0.1 * max(SPACING_MM))
    share = chromium.run("return window.vitrineMeshing.meshPixelShare();")
    assert 0.02 < share < 0.9, f"the mesh covers {share:.1%} of the canvas"

    # Download buttons: the plain STL (model/stl, 50 bytes a triangle) and the DICOM instance.
    stl_href = chromium.run("return document.getElementById('download-stl').href;")
    stl = fetch_info(chromium, stl_href)
    assert (stl["status"], stl["type"], stl["length"]) == (200, "model/stl", 84 + 50 * mesh.triangles)
    dicom_href = chromium.run("return document.getElementById('download-dicom').href;")
    assert mesh.stl_instance.sop_uid in dicom_href and "/dicomweb/studies/" in dicom_href
    dicom = fetch_info(chromium, dicom_href)
    assert dicom["status"] == 200 and dicom["type"].startswith("multipart/related")
    obj = fetch_info(chromium, chromium.run("return document.getElementById('download-obj').href;"))
    assert (obj["status"], obj["type"]) == (200, "model/obj")
    # The finished job is listed under the earlier meshes.
    chromium.wait_for("document.querySelectorAll('#jobs li').length === 1", what="the job list")
    assert chromium.console_errors() == []


def test_visitors_see_a_public_series_but_cannot_start(live_server, chromium, sphere):
    Study.objects.filter(study_uid=sphere[0].StudyInstanceUID).update(visibility=Visibility.PUBLIC)
    chromium.open(f"{live_server.url}/series/{sphere[0].SeriesInstanceUID}/mesh")
    chromium.wait_for("window.vitrineMeshing && window.vitrineMeshing.previewLoads >= 1", what="the preview")
    assert chromium.run("return document.getElementById('start').disabled;") is True
    assert chromium.run("return document.getElementById('curators-only').hidden;") is False
    assert chromium.console_errors() == []
