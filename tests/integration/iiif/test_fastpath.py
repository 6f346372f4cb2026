"""The WSGI fast path for public images' tiles (iiif/fastpath.py) against Django's path.

Each test calls two WSGI applications with the same environ: Django's handler alone,
and :class:`ImageFastPath` in front of it (as archive/wsgi.py mounts it), and compares
what comes back.  ``answered`` tells whether the fast path answered or stepped aside.
"""

from __future__ import annotations

import io

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory, override_settings

from archive.models import Study, Visibility
from iiif.fastpath import KNOWN_MIDDLEWARE, ImageFastPath
from tests.factories.wsi import build_wsi_series

from .conftest import basic, store_path

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """As Django's test client does: the test's transaction must outlive each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call(app, path: str, method: str = "GET", **extra) -> tuple[int, dict[str, str], bytes]:
    environ = RequestFactory().generic(method, path, **extra).environ
    environ["wsgi.input"] = io.BytesIO(b"")
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = headers

    body = b"".join(app(environ, start_response))
    headers = dict(answer["headers"])
    assert len(headers) == len(answer["headers"]), "a header sent twice"
    return answer["status"], headers, body


@pytest.fixture
def apps():
    django_app = WSGIHandler()
    return ImageFastPath(django_app), django_app


@pytest.fixture
def private_wsi(db, tmp_path):
    slide = build_wsi_series(tmp_path / "private-wsi", size=(600, 400), tile=256, levels=2, patient_id="PRIV-FAST")
    for path in slide.paths:
        store_path(path)
    return slide


def tile_urls(wsi) -> list[str]:
    prefix = f"/iiif/3/{wsi.series_uid}"
    return [
        f"{prefix}/0,0,256,256/256,/0/default.jpg",  # whole stored tile: passed through
        f"{prefix}/256,256,256,256/256,256/0/default.jpg",
        f"{prefix}/0,0,512,512/256,/0/default.jpg",  # level 1's whole tile
        f"{prefix}/768,512,232,188/232,/0/default.jpg",  # padded edge tile: re-encoded
        f"{prefix}/full/200,/0/default.jpg",  # thumbnail: composited
        f"{prefix}/100,50,400,300/200,/0/default.jpg",  # region
    ]


def test_public_tiles_come_from_the_fast_path_with_django_s_bytes_and_headers(apps, wsi):
    fast, django_app = apps
    for url in tile_urls(wsi):
        for _ in range(2):  # planned and rendered, then from the caches
            before = fast.answered
            got = call(fast, url)
            assert fast.answered == before + 1, url
            assert got == call(django_app, url), url
            status, headers, body = got
            assert status == 200
            assert headers["Content-Type"] == "image/jpeg"
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert headers["Cache-Control"].startswith("public")
            assert headers["Link"].startswith(f"<http://testserver/iiif/3/{wsi.series_uid}/")
            assert headers["Content-Length"] == str(len(body))
    status, _, body = call(fast, tile_urls(wsi)[0])
    assert body == wsi.frames[0][0]  # the stored frame, byte for byte


def test_private_tiles_answer_401_through_the_fast_path(apps, private_wsi):
    fast, django_app = apps
    url = f"/iiif/3/{private_wsi.series_uid}/0,0,256,256/256,/0/default.jpg"
    status, headers, body = call(fast, url)
    assert status == 401
    assert fast.answered == 0  # stepped aside: the view checked who asks
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "WWW-Authenticate" in headers
    assert b"private" in body
    assert (status, headers, body) == call(django_app, url)
    # A bad size on a private image is still a 401, not a 400.
    assert call(fast, f"/iiif/3/{private_wsi.series_uid}/full/0,/0/default.jpg")[0] == 401


def test_private_tiles_are_served_to_readers_through_django(apps, private_wsi, reader_auth, stranger_auth):
    fast, _ = apps
    url = f"/iiif/3/{private_wsi.series_uid}/0,0,256,256/256,/0/default.jpg"
    status, headers, body = call(fast, url, **reader_auth)
    assert status == 200 and body == private_wsi.frames[0][0]
    assert headers["Cache-Control"].startswith("private")
    assert call(fast, url, **stranger_auth)[0] == 403
    assert call(fast, url, **basic("nobody", "wrong"))[0] == 401
    assert fast.answered == 0


def test_a_study_made_private_is_private_at_the_next_request(apps, wsi):
    fast, _ = apps
    url = tile_urls(wsi)[0]
    assert call(fast, url)[0] == call(fast, url)[0] == 200  # every cache warm
    Study.objects.filter(study_uid=wsi.study_uid).update(visibility=Visibility.PRIVATE)
    status, headers, _ = call(fast, url)
    assert status == 401 and "WWW-Authenticate" in headers
    assert call(fast, tile_urls(wsi)[4])[0] == 401  # a rendered-cache hit too


@pytest.mark.parametrize(
    "tail, status, detail",
    [
        ("0,0,256,256/0,/0/default.jpg", 400, "size"),
        ("0,0,256,256/-5,/0/default.jpg", 400, "size"),
        ("5000,0,256,256/256,/0/default.jpg", 400, "region"),
        ("full/99999,/0/default.jpg", 400, "size"),
    ],
)
def test_invalid_requests_get_the_view_s_400(apps, wsi, tail, status, detail):
    fast, django_app = apps
    url = f"/iiif/3/{wsi.series_uid}/{tail}"
    got = call(fast, url)
    assert got == call(django_app, url)
    assert got[0] == status and detail in got[2].decode()
    assert got[1]["Access-Control-Allow-Origin"] == "*"
    assert fast.answered == 0


def test_unknown_images_and_other_routes_go_to_django(apps, wsi):
    fast, django_app = apps
    for url in (
        "/iiif/3/1.2.3.4/full/max/0/default.jpg",
        "/iiif/3/not-a-uid/full/max/0/default.jpg",
        f"/iiif/3/{wsi.series_uid}/info.json",
        f"/iiif/3/{wsi.series_uid}/full/max/90/default.jpg",
        f"/iiif/3/{wsi.series_uid}/full/max/0/default.png",
        f"/iiif/3/{wsi.series_uid}/full/max/0/gray.jpg",
        f"/iiif/3/{wsi.series_uid}/full/max/0/default.jpg/extra",
    ):
        assert call(fast, url) == call(django_app, url), url
    assert call(fast, "/iiif/3/1.2.3.4/full/max/0/default.jpg")[0] == 404
    assert fast.answered == 0


def test_head_and_preflight_go_to_django(apps, wsi):
    fast, _ = apps
    url = tile_urls(wsi)[0]
    status, headers, body = call(fast, url, method="HEAD")
    assert (status, body, headers["Content-Type"]) == (200, b"", "image/jpeg")
    assert call(fast, url, method="OPTIONS")[0] == 204
    assert call(fast, url, method="POST")[0] == 405
    assert fast.answered == 0


def test_a_host_django_refuses_is_refused(apps, wsi):
    fast, django_app = apps
    url = tile_urls(wsi)[0]
    status = call(fast, url, HTTP_HOST="evil.example")[0]
    assert status == call(django_app, url, HTTP_HOST="evil.example")[0] == 400
    assert fast.answered == 0


def test_security_headers_follow_the_settings(wsi):
    with override_settings(
        SECURE_HSTS_SECONDS=3600, SECURE_HSTS_INCLUDE_SUBDOMAINS=True, SECURE_REFERRER_POLICY=["origin", "no-referrer"],
        X_FRAME_OPTIONS="sameorigin", SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    ):
        django_app = WSGIHandler()
        fast = ImageFastPath(django_app)
        for proto in ("http", "https"):
            got = call(fast, tile_urls(wsi)[0], HTTP_X_FORWARDED_PROTO=proto)
            assert got == call(django_app, tile_urls(wsi)[0], HTTP_X_FORWARDED_PROTO=proto)
            assert ("Strict-Transport-Security" in got[1]) == (proto == "https")
            assert got[1]["Link"].startswith(f"<{proto}://testserver")
        assert fast.answered == 2


def test_an_ssl_redirect_is_left_to_django(wsi):
    with override_settings(SECURE_SSL_REDIRECT=True):
        fast = ImageFastPath(WSGIHandler())
        status, headers, _ = call(fast, tile_urls(wsi)[0])
        assert status == 301 and headers["Location"].startswith("https://")
        assert fast.answered == 0


def test_the_fast_path_steps_aside_for_middleware_it_does_not_know(wsi):
    assert ImageFastPath(WSGIHandler()).enabled  # the project's own settings
    extra = [*KNOWN_MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    with override_settings(MIDDLEWARE=extra):
        fast = ImageFastPath(WSGIHandler())
        assert not fast.enabled
        assert call(fast, tile_urls(wsi)[0])[0] == 200
        assert fast.answered == 0


def test_the_deployed_application_has_the_fast_path():
    from archive import wsgi

    assert isinstance(wsgi.application, ImageFastPath)
    assert wsgi.application.enabled
