"""The viewer page: Mirador's configuration goes to the page as JSON, never as markup."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def page_config(response) -> dict:
    match = re.search(rb'<script id="mirador-config" type="application/json">(.*?)</script>', response.content, re.DOTALL)
    assert match, response.content[:500]
    return json.loads(match.group(1))


@pytest.fixture
def mirador_built(monkeypatch):
    from django.contrib.staticfiles import finders

    original = finders.find
    monkeypatch.setattr(finders, "find", lambda path, *a, **k: "/built" if path.startswith("vendor/mirador/") else original(path, *a, **k))


def test_manifest_and_collection_open_in_windows(client, mirador_built):
    manifest = "http://testserver/iiif/presentation/studies/1.2.3/manifest"
    response = client.get("/viewer/", {"manifest": manifest, "collection": "/iiif/presentation/collections/top"})
    assert response.status_code == 200
    config = page_config(response)
    assert [w["manifestId"] for w in config["windows"]] == [manifest, "http://testserver/iiif/presentation/collections/top"]
    assert b"/static/vendor/mirador/mirador.min.js" in response.content
    assert b"cdn" not in response.content.lower()


def test_markup_in_a_url_stays_data(client, mirador_built):
    evil = 'http://example.org/m?x="></script><script>alert(1)</script>'
    response = client.get("/viewer/", {"manifest": evil})
    assert response.status_code == 200
    assert b"<script>alert(1)</script>" not in response.content
    assert page_config(response)["windows"][0]["manifestId"] == evil


@pytest.mark.parametrize("value", ["javascript:alert(1)", "ftp://example.org/m", "not a url", "http:///nohost"])
def test_other_schemes_are_refused(client, mirador_built, value):
    response = client.get("/viewer/", {"manifest": value})
    assert response.status_code == 400
    assert "http" in response.json()["detail"]


def test_without_the_build_the_page_says_what_to_run(client, monkeypatch):
    from django.contrib.staticfiles import finders

    monkeypatch.setattr(finders, "find", lambda path, *a, **k: None)
    response = client.get("/viewer/")
    assert response.status_code == 503
    assert b"npm ci" in response.content
