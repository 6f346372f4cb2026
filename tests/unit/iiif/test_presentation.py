"""Presentation 3 manifests and collections: structure, language maps, validity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iiif.presentation import (
    PRESENTATION_CONTEXT,
    CollectionInfo,
    ImageRef,
    Link,
    ManifestInfo,
    MemberRef,
    MetadataEntry,
    Provider,
    SeriesKind,
    SeriesRef,
    build_collection,
    build_language_map,
    build_manifest,
    count_pages,
    is_valid_rights,
)

BASE = "https://vitrine.example/iiif"
LANGUAGE_KEYS = ("label", "summary")


def _service(uid: str) -> str:
    return f"{BASE}/image/{uid}"


def _info(**overrides: Any) -> ManifestInfo:
    values: dict[str, Any] = {
        "id": f"{BASE}/manifest/1.2.3",
        "label": {"en": "Mummy portrait", "fr": "Portrait de momie"},
        "summary": "CT and photographs",
        "metadata": (
            MetadataEntry({"en": "Modality"}, "CT"),
            MetadataEntry("Accession", {"none": "A-12"}),
            MetadataEntry("Empty", "  "),
        ),
        "attribution": "Courtesy of the Museum",
        "rights": "http://creativecommons.org/licenses/by/4.0/",
        "provider": Provider(
            "https://museum.example/",
            {"en": "The Museum"},
            homepage="https://museum.example/",
            logo_url="https://museum.example/logo.png",
        ),
        "homepage": Link("https://vitrine.example/objects/12", "Text", "Portal page", "text/html"),
        "see_also": (
            Link(
                "https://vitrine.example/dicomweb/studies/1.2.3/metadata",
                "Dataset",
                "DICOM JSON",
                "application/dicom+json",
            ),
        ),
        "renderings": (
            Link(
                "https://vitrine.example/download/1.2.3.zip",
                "Dataset",
                "Original DICOM",
                "application/zip",
            ),
            Link(
                "https://vitrine.example/models/9.stl",
                "Model",
                "STL",
                "model/stl",
                thumbnail_url=f"{_service('9.9')}/full/200,200/0/default.jpg",
            ),
            Link("https://vitrine.example/reports/5.pdf", "Text", "Report", "application/pdf"),
        ),
        "auth_services": ({"id": f"{BASE}/auth/probe", "type": "AuthProbeService2"},),
    }
    values.update(overrides)
    return ManifestInfo(**values)


def _series() -> list[SeriesRef]:
    slices = tuple(
        ImageRef(_service(f"1.2.3.1.{n}"), 512, 512, position_mm=position, instance_number=n)
        for n, position in ((1, 30.0), (2, -10.0), (3, 10.0))
    )
    return [
        SeriesRef("1.2.3.1", SeriesKind.VOLUME, slices, label="CT head"),
        SeriesRef(
            "1.2.3.2",
            SeriesKind.WSI,
            (ImageRef(_service("1.2.3.2"), 90_000, 60_000),),
            label="Slide",
        ),
        SeriesRef(
            "1.2.3.3",
            SeriesKind.PHOTOGRAPH,
            (
                ImageRef(_service("1.2.3.3.1"), 150, 100, label="Front"),
                ImageRef(_service("1.2.3.3.2"), 4000, 3000, label="Back"),
            ),
            label="Photographs",
        ),
    ]


def _assert_language_maps(node: Any) -> None:
    """Every label, summary and metadata pair is a map of language to non-empty strings."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in LANGUAGE_KEYS or (key == "value" and isinstance(value, dict)):
                assert isinstance(value, dict) and value, (key, value)
                for texts in value.values():
                    assert (
                        isinstance(texts, list)
                        and texts
                        and all(isinstance(t, str) and t for t in texts)
                    )
            _assert_language_maps(value)
    elif isinstance(node, list):
        for item in node:
            _assert_language_maps(item)


def _assert_ids_are_http(node: Any) -> None:
    if isinstance(node, dict):
        if "id" in node:
            assert node["id"].startswith(("http://", "https://")), node["id"]
            assert "type" in node, node
        for value in node.values():
            _assert_ids_are_http(value)
    elif isinstance(node, list):
        for item in node:
            _assert_ids_are_http(item)


def test_manifest_structure() -> None:
    manifest = build_manifest(_info(), _series())
    json.dumps(manifest)
    assert manifest["@context"] == PRESENTATION_CONTEXT and manifest["type"] == "Manifest"
    _assert_language_maps(manifest)
    _assert_ids_are_http(manifest)
    canvases = manifest["items"]
    assert len(canvases) == 3 + 1 + 2
    # CT slices in position order: -10 (n=2), 10 (n=3), 30 (n=1)
    assert [c["id"].rsplit("/", 1)[1] for c in canvases[:3]] == [
        "1.2.3.1.2",
        "1.2.3.1.3",
        "1.2.3.1.1",
    ]
    assert [c["label"] for c in canvases[:3]] == [{"en": [f"Slice {n}"]} for n in (1, 2, 3)]
    slide = canvases[3]
    assert (slide["width"], slide["height"]) == (90_000, 60_000)
    for canvas in canvases:
        annotation = canvas["items"][0]["items"][0]
        assert annotation["motivation"] == "painting" and annotation["target"] == canvas["id"]
        service = annotation["body"]["service"][0]
        assert service["type"] == "ImageService3" and service["profile"] == "level2"
        assert service["service"][0]["type"] == "AuthProbeService2"
        assert canvas["thumbnail"][0]["id"].startswith(service["id"] + "/full/")
    assert canvases[3]["thumbnail"][0]["id"].endswith("/full/200,133/0/default.jpg")
    assert canvases[4]["thumbnail"][0]["id"].endswith("/full/max/0/default.jpg")  # never upscaled
    assert manifest["thumbnail"] == canvases[0]["thumbnail"]
    assert [r["label"] for r in manifest["structures"]] == [
        {"none": [t]} for t in ("CT head", "Slide", "Photographs")
    ]


def test_manifest_descriptive_properties() -> None:
    manifest = build_manifest(_info(), _series())
    assert manifest["label"] == {"en": ["Mummy portrait"], "fr": ["Portrait de momie"]}
    assert manifest["summary"] == {"none": ["CT and photographs"]}
    assert manifest["metadata"] == [
        {"label": {"en": ["Modality"]}, "value": {"none": ["CT"]}},
        {"label": {"en": ["Accession"]}, "value": {"none": ["A-12"]}},
    ]
    assert manifest["requiredStatement"]["value"] == {"none": ["Courtesy of the Museum"]}
    assert manifest["rights"] == "http://creativecommons.org/licenses/by/4.0/"
    assert manifest["provider"][0]["type"] == "Agent"
    assert manifest["provider"][0]["logo"][0]["type"] == "Image"
    assert manifest["homepage"][0]["format"] == "text/html"
    assert manifest["seeAlso"][0]["format"] == "application/dicom+json"
    assert [r["type"] for r in manifest["rendering"]] == ["Dataset", "Model", "Text"]
    assert manifest["rendering"][1]["thumbnail"][0]["type"] == "Image"


@pytest.mark.parametrize(
    ("rights", "kept"),
    [
        ("http://creativecommons.org/licenses/by-nc/4.0/", True),
        ("https://creativecommons.org/publicdomain/zero/1.0/", True),
        ("http://rightsstatements.org/vocab/InC/1.0/", True),
        ("CC BY 4.0", False),
        ("https://example.org/our-licence", False),
        (None, False),
    ],
)
def test_rights_must_be_a_recognised_uri(rights: str | None, kept: bool) -> None:
    assert is_valid_rights(rights) is kept
    manifest = build_manifest(_info(rights=rights), _series()[:1])
    assert ("rights" in manifest) is kept


def test_single_series_manifest_has_no_structures() -> None:
    manifest = build_manifest(_info(), _series()[1:2])
    assert len(manifest["items"]) == 1 and "structures" not in manifest


def test_wsi_series_needs_one_image_service() -> None:
    images = (ImageRef(_service("1"), 10, 10), ImageRef(_service("2"), 10, 10))
    with pytest.raises(ValueError, match="WSI series"):
        build_manifest(_info(), [SeriesRef("9", SeriesKind.WSI, images)])
    with pytest.raises(ValueError, match="no images"):
        build_manifest(_info(), [SeriesRef("9", SeriesKind.PHOTOGRAPH, ())])


def test_language_maps() -> None:
    assert build_language_map("x") == {"none": ["x"]}
    assert build_language_map(["a", " ", "b"]) == {"none": ["a", "b"]}
    assert build_language_map({"en": "a", "de": ["b", ""]}) == {"en": ["a"], "de": ["b"]}
    with pytest.raises(ValueError, match="non-blank"):
        build_language_map({"en": "  "})


def _members(n: int) -> list[MemberRef]:
    return [
        MemberRef(
            f"{BASE}/manifest/{i}",
            "Manifest",
            f"Object {i}",
            thumbnail_url=f"{_service(str(i))}/full/max/0/default.jpg",
            thumbnail_service_id=_service(str(i)),
        )
        for i in range(n)
    ]


def test_small_collection_lists_members() -> None:
    info = CollectionInfo(
        f"{BASE}/collection/top", {"en": "Egyptian collection"}, summary="All objects"
    )
    collection = build_collection(info, _members(3))
    _assert_language_maps(collection)
    _assert_ids_are_http(collection)
    assert collection["type"] == "Collection" and len(collection["items"]) == 3
    assert collection["items"][0]["thumbnail"][0]["service"][0]["type"] == "ImageService3"


def test_large_collection_is_paged_by_nesting() -> None:
    info = CollectionInfo(f"{BASE}/collection/big", "Big")
    members = _members(45)
    top = build_collection(info, members, page_size=20)
    assert [item["type"] for item in top["items"]] == ["Collection"] * 3
    assert [item["label"]["none"][0] for item in top["items"]] == [
        "Big (1–20)",
        "Big (21–40)",
        "Big (41–45)",
    ]
    seen = []
    for n, item in enumerate(top["items"], start=1):
        page = build_collection(info, members, page_size=20, page=n)
        assert page["id"] == item["id"] and page["partOf"][0]["id"] == info.id
        seen.extend(member["id"] for member in page["items"])
    assert seen == [m.id for m in members]
    assert count_pages(45, 20) == 3 and count_pages(0, 20) == 1
    with pytest.raises(ValueError, match="page"):
        build_collection(info, members, page_size=20, page=4)
    with pytest.raises(ValueError, match="Manifest or Collection"):
        MemberRef(f"{BASE}/x", "Canvas", "x")


def test_top_collection_lists_collections() -> None:
    info = CollectionInfo(f"{BASE}/collection", "Vitrine")
    children = [MemberRef(f"{BASE}/collection/{n}", "Collection", n) for n in ("egypt", "rome")]
    top = build_collection(info, children)
    assert [c["type"] for c in top["items"]] == ["Collection", "Collection"]


def test_outputs_validate_against_iiif_prezi3() -> None:
    prezi3 = pytest.importorskip("iiif_prezi3")
    prezi3.Manifest.model_validate(build_manifest(_info(), _series()))
    info = CollectionInfo(
        f"{BASE}/collection/big", "Big", rights="http://rightsstatements.org/vocab/InC/1.0/"
    )
    prezi3.Collection.model_validate(build_collection(info, _members(5)))
    prezi3.Collection.model_validate(build_collection(info, _members(5), page_size=2))
    prezi3.Collection.model_validate(build_collection(info, _members(5), page_size=2, page=3))
    broken = build_manifest(_info(), _series())
    broken["items"][0]["width"] = "wide"
    with pytest.raises(Exception, match="width"):
        prezi3.Manifest.model_validate(broken)
