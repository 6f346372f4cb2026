"""Private studies on every IIIF route: 401 for anonymous callers, 403 without rights."""

from __future__ import annotations

import pytest

from archive.models import Study
from tests.factories.wsi import build_wsi_series

from .conftest import basic, store_path

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def private_routes(study_uid: str, series_uid: str, sop_uid: str) -> list[str]:
    return [
        f"/iiif/3/{sop_uid}",
        f"/iiif/3/{sop_uid}/info.json",
        f"/iiif/3/{sop_uid}~bone/info.json",
        f"/iiif/3/{sop_uid}/full/max/0/default.jpg",
        f"/iiif/3/{sop_uid}/full/0,/0/default.jpg",  # bad size: still 401, not 400
        f"/iiif/presentation/studies/{study_uid}/manifest",
        f"/iiif/presentation/series/{series_uid}/manifest",
    ]


@pytest.fixture
def private_wsi(db, tmp_path):
    slide = build_wsi_series(tmp_path / "private-wsi", size=(600, 400), tile=256, levels=2, patient_id="PRIV-SLIDE")
    for path in slide.paths:
        store_path(path)
    return slide


def _all_private(private_ct, private_wsi) -> list[str]:
    ct = private_ct[0]
    routes = private_routes(ct.StudyInstanceUID, ct.SeriesInstanceUID, ct.SOPInstanceUID)
    routes += [
        f"/iiif/3/{private_wsi.series_uid}/info.json",
        f"/iiif/3/{private_wsi.series_uid}/0,0,256,256/256,/0/default.jpg",
        f"/iiif/presentation/studies/{private_wsi.study_uid}/manifest",
    ]
    return routes


def test_anonymous_callers_get_401_everywhere(client, private_ct, private_wsi):
    for route in _all_private(private_ct, private_wsi):
        response = client.get(route)
        assert response.status_code == 401, route
        assert response["Access-Control-Allow-Origin"] == "*"
        assert "private" in response.json()["detail"]
        assert "WWW-Authenticate" in response


def test_signed_in_callers_without_rights_get_403(client, private_ct, private_wsi, stranger_auth):
    for route in _all_private(private_ct, private_wsi):
        response = client.get(route, **stranger_auth)
        assert response.status_code == 403, route
        assert response["Access-Control-Allow-Origin"] == "*"


def test_wrong_credentials_get_401_with_cors(client, private_ct):
    response = client.get(f"/iiif/3/{private_ct[0].SOPInstanceUID}/info.json", **basic("nobody", "wrong"))
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == "*"


def test_readers_see_private_images_with_the_auth_hook(client, private_ct, private_wsi, reader_auth):
    for route in _all_private(private_ct, private_wsi):
        if "0,/0" in route:
            assert client.get(route, **reader_auth).status_code == 400
            continue
        response = client.get(route, **reader_auth)
        assert response.status_code in (200, 303), route
        if response.status_code == 200:
            assert response["Cache-Control"].startswith("private")
    info = client.get(f"/iiif/3/{private_ct[0].SOPInstanceUID}/info.json", **reader_auth).json()
    probe = info["service"][0]
    assert probe["type"] == "AuthProbeService2"
    assert probe["service"][0]["type"] == "AuthAccessService2"
    manifest = client.get(f"/iiif/presentation/studies/{private_ct[0].StudyInstanceUID}/manifest", **reader_auth).json()
    body = manifest["items"][0]["items"][0]["items"][0]["body"]
    assert body["service"][0]["service"][0]["type"] == "AuthProbeService2"


def test_owners_see_their_own_private_studies(client, private_ct, django_user_model):
    owner = django_user_model.objects.create_user("owner", password="owner-pass-1")
    Study.objects.filter(study_uid=private_ct[0].StudyInstanceUID).update(owner=owner)
    response = client.get(f"/iiif/3/{private_ct[0].SOPInstanceUID}/info.json", **basic("owner", "owner-pass-1"))
    assert response.status_code == 200


def test_collections_never_list_what_the_caller_may_not_see(client, private_ct, private_wsi, ct, reader_auth):
    def listed(auth) -> set[str]:
        ids = set()
        for member in client.get("/iiif/presentation/collections/all", **auth).json()["items"]:
            ids.add(member["id"].rsplit("/studies/", 1)[1].split("/")[0])
        return ids

    private = {private_ct[0].StudyInstanceUID, private_wsi.study_uid}
    public = ct[0].StudyInstanceUID
    assert listed({}) == {public}
    assert listed(reader_auth) == private | {public}
    top = client.get("/iiif/presentation/collections/top").json()
    slugs = {m["id"].rsplit("/", 1)[1] for m in top["items"]}
    assert slugs == {"all", "ct"}  # the private slide's "sm" is not even named
    assert client.get("/iiif/presentation/collections/sm").status_code == 404
    assert client.get("/iiif/presentation/collections/sm", **reader_auth).status_code == 200
