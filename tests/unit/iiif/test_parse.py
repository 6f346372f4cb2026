"""Syntax of the four Image API 3.0 request segments (§4.1-4.5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive.errors import InvalidInput
from iiif.errors import InvalidIIIFRequest, UnsupportedFeature
from iiif.imageapi.parse import (
    ImageFormat,
    Quality,
    Region,
    RegionKind,
    Rotation,
    Size,
    SizeKind,
    parse_image_request,
    parse_quality_format,
    parse_region,
    parse_rotation,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("full", Region(RegionKind.FULL)),
        ("square", Region(RegionKind.SQUARE)),
        ("0,0,10,20", Region(RegionKind.PIXELS, 0, 0, 10, 20)),
        ("125,15,120,140", Region(RegionKind.PIXELS, 125, 15, 120, 140)),
        ("pct:41.6,7.5,40,70", Region(RegionKind.PERCENT, 41.6, 7.5, 40, 70)),
        ("pct:0,0,100,100", Region(RegionKind.PERCENT, 0, 0, 100, 100)),
        ("pct:.5,1.,150,200", Region(RegionKind.PERCENT, 0.5, 1, 150, 200)),
    ],
)
def test_parse_region_accepts(text: str, expected: Region) -> None:
    assert parse_region(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Full",
        "0,0,10",
        "0,0,10,20,30",
        "-1,0,10,10",
        "0,-1,10,10",
        "0,0,-10,10",
        "0,0,0,10",
        "0,0,10,0",
        "1.5,0,10,10",
        "0,0,1e3,10",
        "a,b,c,d",
        "pct:",
        "pct:0,0,0,10",
        "pct:0,0,10,0",
        "pct:100,0,10,10",
        "pct:0,100,10,10",
        "pct:-1,0,10,10",
        "pct:nan,0,1,1",
        "pct:inf,0,1,1",
        " 0,0,1,1",
        "0,0,1,1 ",
        "0, 0,1,1",
        "square!",
        "max",
    ],
)
def test_parse_region_refuses(text: str) -> None:
    with pytest.raises(InvalidIIIFRequest) as caught:
        parse_region(text)
    assert caught.value.http_status == 400
    assert "region" in caught.value.detail and repr(text) in caught.value.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max", Size(SizeKind.MAX)),
        ("^max", Size(SizeKind.MAX, upscale=True)),
        ("150,", Size(SizeKind.WIDTH, width=150)),
        ("^150,", Size(SizeKind.WIDTH, True, width=150)),
        (",150", Size(SizeKind.HEIGHT, height=150)),
        ("^,150", Size(SizeKind.HEIGHT, True, height=150)),
        ("pct:50", Size(SizeKind.PERCENT, percent=50)),
        ("pct:100", Size(SizeKind.PERCENT, percent=100)),
        ("pct:12.5", Size(SizeKind.PERCENT, percent=12.5)),
        ("^pct:250", Size(SizeKind.PERCENT, True, percent=250)),
        ("225,100", Size(SizeKind.EXACT, width=225, height=100)),
        ("^360,360", Size(SizeKind.EXACT, True, 360, 360)),
        ("!225,100", Size(SizeKind.CONFINED, width=225, height=100)),
        ("^!225,100", Size(SizeKind.CONFINED, True, 225, 100)),
    ],
)
def test_parse_size_accepts(text: str, expected: Size) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "full",
        "^full",
        "MAX",
        "max^",
        "^^max",
        ",",
        "^,",
        "0,",
        ",0",
        "0,0",
        "0,10",
        "10,0",
        "!0,10",
        "!10,0",
        "-10,",
        ",-10",
        "-10,-10",
        "!-1,10",
        "10.5,",
        ",10.5",
        "pct:0",
        "pct:-5",
        "pct:101",
        "pct:100.01",
        "pct:",
        "pct:abc",
        "pct:1e2",
        "!10,",
        "!,10",
        "10",
        "a,b",
        "10,10,10",
        "^!,",
        " 10,",
        "!!10,10",
        "!^10,10",
    ],
)
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(InvalidIIIFRequest) as caught:
        parse_size(text)
    assert caught.value.http_status == 400
    assert caught.value.detail.startswith("size ") and repr(text) in caught.value.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", Rotation(0, False)),
        ("90", Rotation(90, False)),
        ("180", Rotation(180, False)),
        ("270", Rotation(270, False)),
        ("360", Rotation(0, False)),
        ("!0", Rotation(0, True)),
        ("!90", Rotation(90, True)),
        ("!180", Rotation(180, True)),
        ("90.0", Rotation(90, False)),
        ("0.", Rotation(0, False)),
    ],
)
def test_parse_rotation_accepts(text: str, expected: Rotation) -> None:
    assert parse_rotation(text) == expected


@pytest.mark.parametrize(
    "text", ["", "!", "-90", "+90", "450", "360.5", "a", "9O", "!!90", "90!", "1e2"]
)
def test_parse_rotation_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidIIIFRequest) as caught:
        parse_rotation(text)
    assert "rotation" in caught.value.detail


@pytest.mark.parametrize("text", ["22.5", "45", "!45", "89.9", "359"])
def test_parse_rotation_refuses_arbitrary_angles_as_400(text: str) -> None:
    with pytest.raises(UnsupportedFeature) as caught:
        parse_rotation(text)
    assert caught.value.http_status == 400 and repr(text) in caught.value.detail


@pytest.mark.parametrize(
    ("text", "quality", "image_format"),
    [
        ("default.jpg", Quality.DEFAULT, ImageFormat.JPG),
        ("color.png", Quality.COLOR, ImageFormat.PNG),
        ("gray.webp", Quality.GRAY, ImageFormat.WEBP),
        ("bitonal.jpg", Quality.BITONAL, ImageFormat.JPG),
    ],
)
def test_parse_quality_format_accepts(
    text: str, quality: Quality, image_format: ImageFormat
) -> None:
    assert parse_quality_format(text) == (quality, image_format)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("default", "quality.format"),
        ("grey.jpg", "quality"),
        ("native.jpg", "quality"),
        ("Default.jpg", "quality"),
        (".jpg", "quality"),
        ("default.", "format"),
        ("default.gif", "format"),
        ("default.jpeg", "format"),
        ("default.tif", "format"),
        ("default.JPG", "format"),
        ("default.jpg.png", "quality"),
    ],
)
def test_parse_quality_format_refuses(text: str, named: str) -> None:
    with pytest.raises(InvalidIIIFRequest) as caught:
        parse_quality_format(text)
    assert caught.value.detail.startswith(named + " ")


def test_parse_image_request_combines_segments() -> None:
    request = parse_image_request("pct:10,10,50,50", "^!512,512", "!90", "gray.png")
    assert request.region == Region(RegionKind.PERCENT, 10, 10, 50, 50)
    assert request.size == Size(SizeKind.CONFINED, True, 512, 512)
    assert request.rotation == Rotation(90, True)
    assert (request.quality, request.format) == (Quality.GRAY, ImageFormat.PNG)


def test_errors_are_archive_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse_image_request("full", "0,", "0", "default.jpg")


@settings(deadline=None)  # correctness only; speed is measured in bench/
@given(st.text(max_size=12))
def test_parse_never_crashes_on_arbitrary_text(text: str) -> None:
    for parse in (parse_region, parse_size, parse_rotation, parse_quality_format):
        try:
            parse(text)
        except InvalidIIIFRequest:
            pass
