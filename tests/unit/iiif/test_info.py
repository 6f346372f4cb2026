"""info.json (Image API 3.0 §5) and the image response Link header."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iiif.imageapi.info import (
    IMAGE_CONTEXT,
    INFO_MEDIA_TYPE,
    PROFILE_URI,
    build_image_link_header,
    build_info,
    build_scale_factors,
)
from iiif.imageapi.parse import parse_image_request
from iiif.imageapi.resolve import resolve
from iiif.imageapi.sources import ArraySource, GrayscaleSource, Level
from iiif.imageapi.tiled import TiledPyramidSource
from tests.factories.images import build_ct_slice, build_noise_image

ID = "https://vitrine.example/iiif/3/1.2.3"


def test_info_fields_for_a_color_photograph() -> None:
    info = build_info(
        ID, ArraySource(build_noise_image(1500, 1000), tile_size=256), max_area=4_000_000
    )
    json.dumps(info)
    assert info["@context"] == IMAGE_CONTEXT
    assert (info["id"], info["type"], info["protocol"], info["profile"]) == (
        ID,
        "ImageService3",
        "http://iiif.io/api/image",
        "level2",
    )
    assert (info["width"], info["height"]) == (1500, 1000)
    assert info["tiles"] == [{"width": 256, "scaleFactors": [1, 2, 4, 8]}]
    assert info["sizes"] == [
        {"width": w, "height": h} for w, h in ((188, 125), (375, 250), (750, 500), (1500, 1000))
    ]
    assert info["extraQualities"] == ["color", "gray", "bitonal"]
    assert info["extraFormats"] == ["webp"]
    for feature in (
        "mirroring",
        "regionByPct",
        "regionSquare",
        "sizeByPct",
        "sizeByConfinedWh",
        "sizeByWh",
        "sizeUpscaling",
        "rotationBy90s",
        "canonicalLinkHeader",
    ):
        assert feature in info["extraFeatures"]
    assert "rotationArbitrary" not in info["extraFeatures"]
    assert info["maxArea"] == 4_000_000 and "maxWidth" not in info and "service" not in info


def test_info_for_grayscale_has_no_color() -> None:
    info = build_info(ID, GrayscaleSource(build_ct_slice(64, 64)))
    assert info["extraQualities"] == ["gray", "bitonal"]


def test_sizes_respect_limits() -> None:
    info = build_info(ID, ArraySource(build_noise_image(1500, 1000), tile_size=256), max_width=800)
    assert max(size["width"] for size in info["sizes"]) == 750
    assert info["maxWidth"] == 800 and "maxHeight" not in info


def test_tiled_pyramid_info() -> None:
    levels = [
        Level(40_000, 30_000, 512, 512),
        Level(10_000, 7_500, 512, 512),
        Level(2_500, 1_875, 512, 512),
    ]
    source = TiledPyramidSource(levels, lambda level, index: b"")
    info = build_info(ID, source)
    assert info["tiles"] == [{"width": 512, "scaleFactors": [1, 2, 4, 8, 16, 32, 64, 128]}]
    assert [s["width"] for s in info["sizes"]] == [2_500, 10_000, 40_000]
    assert build_scale_factors(512, 512, 512, 512) == [1]
    assert build_scale_factors(513, 100, 512, 512) == [1, 2]


def test_auth_services_and_rights() -> None:
    probe = {
        "id": f"{ID}/probe",
        "type": "AuthProbeService2",
        "service": [
            {
                "id": "https://vitrine.example/login",
                "type": "AuthAccessService2",
                "profile": "active",
            }
        ],
    }
    info = build_info(
        ID,
        ArraySource(np.zeros((4, 4), np.uint8)),
        auth_services=[probe],
        rights="http://creativecommons.org/licenses/by/4.0/",
    )
    assert info["service"] == [probe]
    assert info["rights"] == "http://creativecommons.org/licenses/by/4.0/"
    with pytest.raises(ValueError, match="id and a type"):
        build_info(ID, ArraySource(np.zeros((4, 4), np.uint8)), auth_services=[{"id": "x"}])


@pytest.mark.parametrize("bad", ["vitrine/1.2.3", f"{ID}/", f"{ID}/info.json"])
def test_id_must_be_a_base_uri(bad: str) -> None:
    with pytest.raises(ValueError, match="id_url"):
        build_info(bad, ArraySource(np.zeros((4, 4), np.uint8)))


def test_link_header_and_media_type() -> None:
    resolved = resolve(parse_image_request("pct:0,0,50,50", "100,", "!0", "gray.png"), 400, 200)
    header = build_image_link_header(ID, resolved)
    assert (
        header
        == f'<{ID}/0,0,200,100/100,50/!0/gray.png>;rel="canonical", <{PROFILE_URI}>;rel="profile"'
    )
    assert (
        INFO_MEDIA_TYPE == 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
    )
