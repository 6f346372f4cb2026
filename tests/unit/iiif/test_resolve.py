"""Region and size arithmetic, limits and canonical form (Image API 3.0 §4.1, §4.2, §4.7, §5.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iiif.errors import (
    InvalidIIIFRequest,
    RegionOutsideImage,
    SizeLimitExceeded,
    UpscalingNotAllowed,
)
from iiif.imageapi.parse import parse_image_request
from iiif.imageapi.resolve import PixelRegion, resolve


def _resolve(
    region: str,
    size: str = "max",
    rotation: str = "0",
    qf: str = "default.jpg",
    width: int = 1000,
    height: int = 800,
    **limits: int,
):
    return resolve(parse_image_request(region, size, rotation, qf), width, height, **limits)


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("full", PixelRegion(0, 0, 1000, 800)),
        ("square", PixelRegion(100, 0, 800, 800)),
        ("10,20,30,40", PixelRegion(10, 20, 30, 40)),
        ("900,700,500,500", PixelRegion(900, 700, 100, 100)),  # clipped at the edges
        ("999,799,1,1", PixelRegion(999, 799, 1, 1)),
        ("pct:10,10,50,50", PixelRegion(100, 80, 500, 400)),
        ("pct:0,0,100,100", PixelRegion(0, 0, 1000, 800)),
        ("pct:50,50,150,150", PixelRegion(500, 400, 500, 400)),  # beyond 100% is clipped
        ("pct:99.99,99.99,0.001,0.001", PixelRegion(999, 799, 1, 1)),  # at least one pixel
    ],
)
def test_region_in_pixels(region: str, expected: PixelRegion) -> None:
    assert _resolve(region).region == expected


def test_square_of_portrait_image_is_centred() -> None:
    assert _resolve("square", width=300, height=500).region == PixelRegion(0, 100, 300, 300)


@pytest.mark.parametrize("region", ["1000,0,10,10", "0,800,10,10", "5000,5000,1,1"])
def test_region_outside_image_is_400(region: str) -> None:
    with pytest.raises(RegionOutsideImage) as caught:
        _resolve(region)
    assert caught.value.http_status == 400 and "region" in caught.value.detail


@pytest.mark.parametrize(
    ("region", "size", "expected"),
    [
        ("full", "max", (1000, 800)),
        ("full", "500,", (500, 400)),
        ("full", ",400", (500, 400)),
        ("full", "pct:50", (500, 400)),
        ("full", "pct:100", (1000, 800)),
        ("full", "300,300", (300, 300)),  # distorts, as asked
        ("full", "!500,500", (500, 400)),
        ("full", "!1000,400", (500, 400)),
        ("full", "!1000,800", (1000, 800)),
        ("full", "^max", (1000, 800)),  # no limits: the region's own size
        ("full", "^1500,", (1500, 1200)),
        ("full", "^,1600", (2000, 1600)),
        ("full", "^pct:200", (2000, 1600)),
        ("full", "^2000,100", (2000, 100)),
        ("full", "^!2000,3000", (2000, 1600)),
        ("full", "^!2000,400", (500, 400)),  # ^ allows, does not force, upscaling
        ("10,10,3,3", "1,", (1, 1)),
        ("0,0,1000,1", "1000,", (1000, 1)),
        ("0,0,3,1", "pct:50", (2, 1)),  # half-up rounding
    ],
)
def test_output_size(region: str, size: str, expected: tuple[int, int]) -> None:
    resolved = _resolve(region, size)
    assert (resolved.output_width, resolved.output_height) == expected


@pytest.mark.parametrize(
    "size", ["1001,", ",801", "1001,800", "1000,801", "!2000,3000", "!1001,801"]
)
def test_upscaling_without_caret_is_400(size: str) -> None:
    with pytest.raises(UpscalingNotAllowed) as caught:
        _resolve("full", size)
    assert caught.value.http_status == 400 and repr(size) in caught.value.detail


@pytest.mark.parametrize(
    ("region", "size"), [("0,0,1000,1", "10,"), ("0,0,1,1000", ",10"), ("0,0,10,10", "pct:1")]
)
def test_size_rounding_to_zero_is_400(region: str, size: str) -> None:
    with pytest.raises(InvalidIIIFRequest) as caught:
        _resolve(region, size)
    assert "0" in caught.value.detail and repr(size) in caught.value.detail


def test_max_respects_limits_keeping_aspect_ratio() -> None:
    resolved = _resolve("full", "max", max_width=500)
    assert (resolved.output_width, resolved.output_height) == (500, 400)
    resolved = _resolve("full", "max", max_area=20_000)
    assert resolved.output_width * resolved.output_height <= 20_000
    assert abs(resolved.output_width / resolved.output_height - 1.25) < 0.02


def test_max_height_defaults_to_max_width() -> None:
    resolved = _resolve("full", "max", width=400, height=1000, max_width=500)
    assert (resolved.output_width, resolved.output_height) == (200, 500)


def test_caret_max_fills_the_limits() -> None:
    resolved = _resolve("0,0,100,80", "^max", max_width=500, max_height=500)
    assert (resolved.output_width, resolved.output_height) == (500, 400)
    assert resolved.canonical_path == "0,0,100,80/^500,400/0/default.jpg"


@pytest.mark.parametrize(
    ("size", "limits"),
    [
        ("600,", {"max_width": 500}),
        (",600", {"max_width": 1000, "max_height": 500}),
        ("pct:90", {"max_area": 100_000}),
        ("^2000,", {"max_width": 1500}),
    ],
)
def test_sizes_beyond_limits_are_400(size: str, limits: dict[str, int]) -> None:
    with pytest.raises(SizeLimitExceeded) as caught:
        _resolve("full", size, **limits)
    assert caught.value.http_status == 400 and "max" in caught.value.detail


@pytest.mark.parametrize(
    ("segments", "canonical"),
    [
        (("full", "max", "0", "default.jpg"), "full/max/0/default.jpg"),
        (("pct:0,0,100,100", "1000,", "360", "default.jpg"), "full/max/0/default.jpg"),
        (("0,0,1000,800", "1000,800", "0", "color.png"), "full/max/0/color.png"),
        (("square", "max", "0", "default.jpg"), "100,0,800,800/max/0/default.jpg"),
        (("full", "500,", "!90", "gray.jpg"), "full/500,400/!90/gray.jpg"),
        (
            ("pct:10,10,50,50", "!100,100", "180.0", "bitonal.webp"),
            "100,80,500,400/100,80/180/bitonal.webp",
        ),
        (("900,700,500,500", "max", "0", "default.jpg"), "900,700,100,100/max/0/default.jpg"),
        (("full", "^pct:200", "0", "default.jpg"), "full/^2000,1600/0/default.jpg"),
    ],
)
def test_canonical_path(segments: tuple[str, str, str, str], canonical: str) -> None:
    assert resolve(parse_image_request(*segments), 1000, 800).canonical_path == canonical


def test_final_size_swaps_for_quarter_turns() -> None:
    assert _resolve("full", "500,", "90").final_size == (400, 500)
    assert _resolve("full", "500,", "!180").final_size == (500, 400)


def test_bad_image_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="image size"):
        _resolve("full", width=0)


@settings(deadline=None)  # correctness only; speed is measured in bench/
@given(
    width=st.integers(1, 5000),
    height=st.integers(1, 5000),
    x=st.integers(0, 6000),
    y=st.integers(0, 6000),
    w=st.integers(1, 6000),
    h=st.integers(1, 6000),
    out=st.integers(1, 6000),
    caret=st.booleans(),
)
def test_resolved_region_is_inside_image_and_size_positive(
    width: int, height: int, x: int, y: int, w: int, h: int, out: int, caret: bool
) -> None:
    size = f"{'^' if caret else ''}{out},"
    try:
        resolved = resolve(
            parse_image_request(f"{x},{y},{w},{h}", size, "0", "default.jpg"), width, height
        )
    except InvalidIIIFRequest:
        return
    r = resolved.region
    assert 0 <= r.x < width and 0 <= r.y < height
    assert 1 <= r.width <= width - r.x and 1 <= r.height <= height - r.y
    assert resolved.output_width == out and resolved.output_height >= 1
    assert caret or resolved.output_height <= r.height
