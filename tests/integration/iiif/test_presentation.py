"""Presentation 3 routes: manifests and collections, validated with iiif-prezi3's models."""

from __future__ import annotations

import pytest

from archive.models import Study
from ingest.models import Collection, Object
from tests.factories.datasets import ct_series

from .conftest import publish, store

pytestmark = [pytest.mark.django_db, pytest.mark.integration]
prezi3 = pytest.importorskip("iiif_prezi3")


def painted_services(manifest: dict) -> list[str]:
    return [
        canvas["items"][0]["items"][0]["body"]["service"][0]["id"]
        for canvas in manifest["items"]
    ]


def test_wsi_series_manifest_has_one_tiled_canvas(client, wsi):
    response = client.get(f"/iiif/presentation/series/{wsi.series_uid}/manifest")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/ld+json")
    assert response["Access-Control-Allow-Origin"] == "*"
    manifest = response.json()
    prezi3.Manifest.model_validate(manifest)
    assert manifest["id"] == f"http://testserver/iiif/presentation/series/{wsi.series_uid}/manifest"
    assert painted_services(manifest) == [f"http://testserver/iiif/3/{wsi.series_uid}"]
    canvas = manifest["items"][0]
    assert (canvas["width"], canvas["height"]) == wsi.sizes[0]
    # The canvas thumbnail is served by the Image API (from a small level).
    thumbnail = canvas["thumbnail"][0]["id"].removeprefix("http://testserver")
    assert client.get(thumbnail).status_code == 200


def test_ct_study_manifest_orders_slices_by_position(client, db):
    datasets = ct_series(4, size=32)
    # Store out of order, with instance numbers that disagree with the positions.
    for ds, z in zip(datasets, (3.0, 1.0, 0.0, 2.0)):
        ds.ImagePositionPatient = [0.0, 0.0, z]
    for ds in reversed(datasets):
        store(ds)
    publish(datasets[0].StudyInstanceUID)
    manifest = client.get(f"/iiif/presentation/studies/{datasets[0].StudyInstanceUID}/manifest").json()
    prezi3.Manifest.model_validate(manifest)
    by_z = sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert painted_services(manifest) == [f"http://testserver/iiif/3/{ds.SOPInstanceUID}" for ds in by_z]
    for service in painted_services(manifest):
        info = client.get(service.removeprefix("http://testserver") + "/info.json")
        assert info.status_code == 200
    labels = {entry["label"]["en"][0]: entry["value"] for entry in manifest["metadata"]}
    assert labels["Modalities"] == {"none": ["CT"]}
    assert manifest["seeAlso"][0]["format"] == "application/dicom+json"


def test_study_manifest_with_several_series_has_ranges(client, wsi, db):
    more = ct_series(2, size=16, study_uid=wsi.study_uid, patient_id="SLIDE-1", patient_name="Slide^Synthetic")
    for ds in more:
        store(ds)
    manifest = client.get(f"/iiif/presentation/studies/{wsi.study_uid}/manifest").json()
    prezi3.Manifest.model_validate(manifest)
    assert len(manifest["items"]) == 3
    assert [len(r["items"]) for r in manifest["structures"]] == [1, 2]


def test_a_study_without_images_is_404(client, ct):
    from archive.models import Instance

    # Strip the pixels from the index rows: an SR- or PDF-only study looks like this.
    Instance.objects.filter(series__study__study_uid=ct[0].StudyInstanceUID).update(metadata={}, rows=None)
    response = client.get(f"/iiif/presentation/studies/{ct[0].StudyInstanceUID}/manifest")
    assert response.status_code == 404
    assert "no image" in response.json()["detail"]


def test_collections_validate_and_lead_to_manifests(client, wsi, ct, validator_image):
    top = client.get("/iiif/presentation/collections/top")
    assert top.status_code == 200
    assert top["Access-Control-Allow-Origin"] == "*"
    prezi3.Collection.model_validate(top.json())
    slugs = [m["id"].rsplit("/", 1)[1] for m in top.json()["items"]]
    assert slugs == ["all", "ct", "sm", "xc"]
    for member in top.json()["items"]:
        collection = client.get(member["id"].removeprefix("http://testserver")).json()
        prezi3.Collection.model_validate(collection)
        for item in collection["items"]:
            assert item["type"] == "Manifest"
            manifest = client.get(item["id"].removeprefix("http://testserver"))
            assert manifest.status_code == 200
            prezi3.Manifest.model_validate(manifest.json())
    all_ = client.get("/iiif/presentation/collections/all").json()
    assert len(all_["items"]) == 3


def test_large_collections_are_paged_by_nesting(client, db, monkeypatch):
    from iiif import views

    monkeypatch.setattr(views, "COLLECTION_PAGE_SIZE", 2)
    for n in range(5):
        ds = ct_series(1, size=8, patient_id=f"P{n}")[0]
        store(ds)
        publish(ds.StudyInstanceUID)
    document = client.get("/iiif/presentation/collections/all").json()
    prezi3.Collection.model_validate(document)
    assert [p["id"].rsplit("/", 1)[1] for p in document["items"]] == ["1", "2", "3"]
    page = client.get("/iiif/presentation/collections/all/page/3").json()
    prezi3.Collection.model_validate(page)
    assert len(page["items"]) == 1
    assert page["partOf"][0]["id"] == "http://testserver/iiif/presentation/collections/all"
    assert client.get("/iiif/presentation/collections/all/page/4").status_code == 404


def test_public_root_setting_names_the_documents(client, wsi, settings):
    settings.VITRINE_PUBLIC_URL = "https://museum.example/"
    manifest = client.get(f"/iiif/presentation/series/{wsi.series_uid}/manifest").json()
    assert manifest["id"].startswith("https://museum.example/iiif/presentation/")
    assert painted_services(manifest) == [f"https://museum.example/iiif/3/{wsi.series_uid}"]
    assert Study.objects.count() == 1


def test_curated_collections_list_their_objects_first(client, ct, wsi, validator_image):
    fossils = Collection.objects.create(name="Fossils", slug="fossils", description="Micro-CT of fossils", public=True)
    Collection.objects.create(name="Unpublished", slug="unpublished")  # not public
    cat = Object.objects.create(collection=fossils, inventory_number="F-2", title="Cat mummy",
                                visibility="public")
    cat.studies.add(Study.objects.get(study_uid=ct[0].StudyInstanceUID))
    slide = Object.objects.create(collection=fossils, inventory_number="F-1", title="Thin section",
                                  visibility="public")
    slide.studies.add(Study.objects.get(study_uid=wsi.study_uid),
                      Study.objects.get(study_uid=validator_image.StudyInstanceUID))
    hidden = Object.objects.create(collection=fossils, inventory_number="F-3", title="Unpublished object")
    hidden.studies.add(Study.objects.get(study_uid=validator_image.StudyInstanceUID))

    top = client.get("/iiif/presentation/collections/top").json()
    prezi3.Collection.model_validate(top)
    assert [m["id"].rsplit("/", 1)[1] for m in top["items"]] == ["fossils", "all", "ct", "sm", "xc"]
    assert top["items"][0]["label"] == {"en": ["Fossils"]}

    document = client.get("/iiif/presentation/collections/fossils").json()
    prezi3.Collection.model_validate(document)
    assert document["summary"] == {"en": ["Micro-CT of fossils"]}
    listed = [(m["id"].rsplit("/studies/", 1)[1].split("/")[0], m["label"]) for m in document["items"]]
    # Inventory-number order; an object with two studies names each; the private object is left out.
    assert [uid for uid, _ in listed] == [
        *sorted([wsi.study_uid, validator_image.StudyInstanceUID],
                key=lambda u: (Study.objects.get(study_uid=u).study_date, u)),
        ct[0].StudyInstanceUID,
    ]
    labels = [next(iter(label.values()))[0] for _, label in listed]
    assert labels[0].startswith("Thin section: ") and labels[1].startswith("Thin section: ")
    assert labels[2] == "Cat mummy"
    for item in document["items"]:
        assert client.get(item["id"].removeprefix("http://testserver")).status_code == 200
    assert client.get("/iiif/presentation/collections/unpublished").status_code == 404


def test_curated_collection_shows_private_objects_only_to_readers(client, private_ct, ct, reader_auth):
    museum = Collection.objects.create(name="Museum", slug="museum", public=True)
    open_object = Object.objects.create(collection=museum, inventory_number="A", title="Open", visibility="public")
    open_object.studies.add(Study.objects.get(study_uid=ct[0].StudyInstanceUID))
    # A public object whose study is private: the study stays hidden.
    leaky = Object.objects.create(collection=museum, inventory_number="B", title="Secret", visibility="public")
    leaky.studies.add(Study.objects.get(study_uid=private_ct[0].StudyInstanceUID))
    Collection.objects.create(name="Back office", slug="back-office")

    anonymous = client.get("/iiif/presentation/collections/museum").json()
    assert [m["label"] for m in anonymous["items"]] == [{"none": ["Open"]}]
    assert "Secret" not in str(anonymous)
    reader = client.get("/iiif/presentation/collections/museum", **reader_auth).json()
    assert len(reader["items"]) == 2
    assert client.get("/iiif/presentation/collections/back-office").status_code == 404
    assert client.get("/iiif/presentation/collections/back-office", **reader_auth).status_code == 200
    top = client.get("/iiif/presentation/collections/top", **reader_auth).json()
    assert [m["id"].rsplit("/", 1)[1] for m in top["items"]][:2] == ["back-office", "museum"]
