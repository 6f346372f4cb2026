"""Mirador 4, served by Vitrine, against the live IIIF routes in headless Chromium.

The server records every image it renders (``iiif.images.render_image``), so the test
can tell which pyramid level a tile came from; the browser's console must stay free
of errors throughout.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from iiif import images, services
from tests.factories.datasets import ct_series
from tests.factories.wsi import build_wsi_series
from tests.integration.dicomweb.conftest import store
from tests.integration.iiif.conftest import publish, store_path

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WSI_SIZE = (4096, 3072)
TILE = 256


@pytest.fixture(autouse=True)
def mirador_installed():
    from django.contrib.staticfiles import finders

    from frontend.viewer import MIRADOR_JS

    if finders.find(MIRADOR_JS) is None:
        pytest.skip("Mirador is not built: cd frontend && npm ci && sh build.sh")


@pytest.fixture
def rendered(monkeypatch):
    """Every image the server renders: (source width, region, output size)."""
    seen: list[tuple[int, tuple[int, int, int, int], tuple[int, int]]] = []
    original = images.render_image

    def spy(source, resolved):
        region = resolved.region
        seen.append((source.width, (region.x, region.y, region.width, region.height), (resolved.output_width, resolved.output_height)))
        return original(source, resolved)

    monkeypatch.setattr(images, "render_image", spy)
    services.clear_cache()
    return seen


@pytest.fixture
def archive(tmp_path):
    slide = build_wsi_series(tmp_path / "slide", size=WSI_SIZE, tile=TILE, levels=5, description="Browser slide")
    for path in slide.paths:
        store_path(path)
    publish(slide.study_uid)
    ct = ct_series(3, size=512, patient_id="CT-B", patient_name="Mummy^Cat")
    for ds in ct:
        store(ds)
    publish(ct[0].StudyInstanceUID)
    return slide, ct


def viewer_url(live_server, **params) -> str:
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"{live_server.url}/viewer/?{query}"


def wait_for_mirador(browser) -> None:
    browser.wait_for("window.vitrineViewer && window.vitrineViewer.store", what="Mirador to start")


def click_text(browser, text: str, timeout_s: float = 30.0) -> None:
    """Click the innermost element whose own text is ``text`` (waits for it to appear)."""
    from selenium.webdriver.common.by import By

    browser.wait_for(f"document.body.textContent.includes({text!r})", timeout_s=timeout_s, what=repr(text))
    browser.driver.find_element(By.XPATH, f"//*[normalize-space(text())={text!r}]").click()


def zoom_until(browser, window_id: str, centre: tuple[float, float], condition) -> bool:
    """Zoom in step by step about ``centre`` until ``condition()`` holds."""
    for zoom in (0.5, 1, 2, 4, 8, 16):
        browser.run(
            "window.vitrineViewer.store.dispatch(Mirador.updateViewport(arguments[0], "
            "{x: arguments[1], y: arguments[2], zoom: arguments[3]}));",
            window_id, centre[0], centre[1], zoom,
        )
        if _wait_until(condition, timeout_s=10):
            return True
    return False


def test_collection_then_wsi_and_ct_manifests(live_server, chromium, archive, rendered):
    slide, ct = archive
    root = live_server.url

    # 1. The top collection, then the slides' collection, then the slide's study.
    chromium.open(viewer_url(live_server, collection=f"{root}/iiif/presentation/collections/top"))
    wait_for_mirador(chromium)
    click_button(chromium, "show collection")
    click_text(chromium, "Whole-slide images")
    click_text(chromium, "Browser slide")
    chromium.wait_for(
        f"performance.getEntriesByType('resource').some(e => e.name.includes('/iiif/3/{slide.series_uid}/')"
        " && e.name.endsWith('default.jpg'))",
        what="the first slide tiles",
    )
    assert chromium.resource_urls("/iiif/presentation/collections/sm")
    assert chromium.resource_urls(f"/iiif/presentation/studies/{slide.study_uid}/manifest")
    assert not chromium.console_errors()

    # 2. The slide's own manifest: the overview needs no full-resolution tile; zooming
    # in brings level-0 tiles (256 px regions at 256 px).
    chromium.open(viewer_url(live_server, manifest=f"{root}/iiif/presentation/series/{slide.series_uid}/manifest"))
    wait_for_mirador(chromium)
    chromium.wait_for(
        f"performance.getEntriesByType('resource').some(e => e.name.includes('/iiif/3/{slide.series_uid}/')"
        " && e.name.endsWith('default.jpg'))",
        what="the first slide tiles",
    )
    level0 = lambda: [r for r in rendered if r[0] == WSI_SIZE[0] and r[1][2] == TILE and r[2][0] == TILE]
    assert not level0(), "the whole-slide overview should not need full-resolution tiles"
    window_id = chromium.run("return Object.keys(window.vitrineViewer.store.getState().windows)[0];")
    assert zoom_until(chromium, window_id, (WSI_SIZE[0] / 2, WSI_SIZE[1] / 2), lambda: len(level0()) >= 4), (
        f"no level-0 tiles were requested; the last renders: {rendered[-10:]}"
    )
    tiles = [u for u in chromium.resource_urls(f"/iiif/3/{slide.series_uid}/") if u.endswith("default.jpg")]
    assert len(tiles) >= len(level0())
    assert not chromium.console_errors()

    # 3. A CT study: one canvas per slice; a 512 px slice is one level-0 tile.
    chromium.open(viewer_url(live_server, manifest=f"{root}/iiif/presentation/studies/{ct[0].StudyInstanceUID}/manifest"))
    wait_for_mirador(chromium)
    ct_full = lambda: [r for r in rendered if r[0] == 512 and r[1][2] == 512 and r[2][0] == 512]
    window_id = chromium.run("return Object.keys(window.vitrineViewer.store.getState().windows)[0];")
    assert zoom_until(chromium, window_id, (256, 256), lambda: bool(ct_full())), (
        f"the CT slice was not served at full resolution; the last renders: {rendered[-10:]}"
    )
    first = ct[0].SOPInstanceUID
    assert [u for u in chromium.resource_urls(f"/iiif/3/{first}/") if u.endswith("default.jpg")]
    assert not chromium.console_errors()


def click_button(browser, label: str) -> None:
    """Click the button whose text contains ``label`` (case-insensitive)."""
    browser.wait_for(
        f"[...document.querySelectorAll('button')].some(b => b.textContent.toLowerCase().includes({label!r}))",
        what=f"the {label!r} button",
    )
    browser.run(
        f"[...document.querySelectorAll('button')].find(b => b.textContent.toLowerCase().includes({label!r})).click();"
    )


def _wait_until(condition, timeout_s: float = 15.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return bool(condition())
