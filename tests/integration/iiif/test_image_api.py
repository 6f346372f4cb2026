"""The Image API 3.0 routes through the Django test client: sources, passthrough, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from iiif import services
from iiif.frameindex import FrameIndex
from iiif.imageapi import INFO_MEDIA_TYPE
from iiif.imageapi.window import Window, apply_modality_lut, apply_window
from tests.factories.datasets import ct_slice, instance

from .conftest import publish, store

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def decode(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_info_json_negotiates_json_ld_and_allows_any_origin(client, wsi):
    url = f"/iiif/3/{wsi.series_uid}/info.json"
    plain = client.get(url)
    assert plain.status_code == 200
    assert plain["Content-Type"] == "application/json"
    assert plain["Access-Control-Allow-Origin"] == "*"
    linked = client.get(url, HTTP_ACCEPT="application/ld+json")
    assert linked["Content-Type"] == INFO_MEDIA_TYPE
    info = linked.json()
    assert info["id"] == f"http://testserver/iiif/3/{wsi.series_uid}"
    assert (info["width"], info["height"]) == wsi.sizes[0]
    assert info["tiles"] == [{"width": 256, "scaleFactors": [1, 2, 4]}]
    assert [(s["width"], s["height"]) for s in info["sizes"]] == sorted(wsi.sizes)
    assert "service" not in info  # public: no auth hook


def test_base_uri_redirects_to_info_json(client, wsi):
    response = client.get(f"/iiif/3/{wsi.series_uid}")
    assert response.status_code == 303
    assert response["Location"] == f"http://testserver/iiif/3/{wsi.series_uid}/info.json"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_every_whole_stored_tile_is_passed_through_byte_for_byte(client, wsi):
    tile = wsi.tile
    checked = 0
    for level, (width, height) in enumerate(wsi.sizes):
        sf = 2**level
        columns = -(-width // tile)
        for index, stored in enumerate(wsi.frames[level]):
            row, col = divmod(index, columns)
            if (col + 1) * tile > width or (row + 1) * tile > height:
                continue  # padded edge frame: cropped, see below
            region = f"{col * tile * sf},{row * tile * sf},{tile * sf},{tile * sf}"
            response = client.get(f"/iiif/3/{wsi.series_uid}/{region}/{tile},/0/default.jpg")
            assert response.status_code == 200, response.content
            assert response.content == stored, (level, col, row)
            assert response["Content-Type"] == "image/jpeg"
            canonical_size = "max" if level == 0 else f"{tile},{tile}"
            assert response["Link"].startswith(
                f"<http://testserver/iiif/3/{wsi.series_uid}/{region}/{canonical_size}/0/default.jpg>"
            )
            checked += 1
    assert checked == 6 + 1  # level 0: 3x2 whole tiles, level 1: 1x1, level 2: none


def test_padded_edge_tiles_come_back_at_their_true_size(client, wsi):
    # Level 0 is 1000x700: the last column is 1000 - 768 = 232 wide, the last row 188 high.
    response = client.get(f"/iiif/3/{wsi.series_uid}/768,512,232,188/232,/0/default.jpg")
    assert response.status_code == 200
    pixels = decode(response)
    assert pixels.shape == (188, 232, 3)
    expected = wsi.pixels[512:700, 768:1000].astype(float)
    assert np.abs(pixels.astype(float) - expected).mean() < 6


def test_thumbnails_never_read_level_zero(client, wsi, monkeypatch):
    read: list[str] = []
    original = FrameIndex.read

    def spy(self, index):
        read.append(self.path)
        return original(self, index)

    monkeypatch.setattr(FrameIndex, "read", spy)
    response = client.get(f"/iiif/3/{wsi.series_uid}/full/200,/0/default.jpg")
    assert response.status_code == 200
    assert decode(response).shape == (140, 200, 3)
    assert read and all(p.endswith(wsi_level_name(wsi, 2)) for p in read)


def wsi_level_name(wsi, level: int) -> str:
    from archive.models import Instance

    sop = Instance.objects.filter(series__series_uid=wsi.series_uid, instance_number=level + 1).get()
    return sop.path


def test_a_composited_region_matches_the_slide(client, wsi):
    response = client.get(f"/iiif/3/{wsi.series_uid}/100,50,400,300/200,/0/default.png")
    assert response.status_code == 200
    pixels = decode(response).astype(float)
    expected = np.asarray(Image.fromarray(wsi.pixels[50:350, 100:500]).resize((200, 150), Image.Resampling.BOX))
    assert pixels.shape == (150, 200, 3)
    assert np.abs(pixels - expected).mean() < 8


def test_ct_windows_use_the_full_16_bit_range(client, db):
    ds = ct_slice(size=32)
    stored = np.linspace(0, 4000, 32 * 32).astype(np.int16).reshape(32, 32)
    ds.PixelData = stored.tobytes()
    store(ds)
    publish(ds.StudyInstanceUID)
    hu = apply_modality_lut(stored, 1.0, -1024.0)
    for suffix, window in (("~bone", Window(400.0, 1800.0)), ("~2500_1000", Window(2500.0, 1000.0)), ("", Window(40.0, 400.0))):
        response = client.get(f"/iiif/3/{ds.SOPInstanceUID}{suffix}/full/max/0/default.png")
        assert response.status_code == 200, response.content
        assert np.array_equal(decode(response), apply_window(hu, window)), suffix
    # A window high above 8 bits still shows a gradient (nothing wrapped or clipped at 255).
    high = decode(client.get(f"/iiif/3/{ds.SOPInstanceUID}~2500_1000/full/max/0/default.png"))
    assert high.min() == 0 and high.max() > 240 and len(np.unique(high)) > 100


def test_grayscale_refuses_color_and_colour_refuses_windows(client, ct, wsi, validator_image):
    response = client.get(f"/iiif/3/{ct[0].SOPInstanceUID}/full/max/0/color.jpg")
    assert response.status_code == 400
    assert "color" in response.json()["detail"]
    for identifier in (f"{wsi.series_uid}~bone", f"{validator_image.SOPInstanceUID}~bone"):
        response = client.get(f"/iiif/3/{identifier}/info.json")
        assert response.status_code == 400, identifier
        assert "window" in response.json()["detail"]


def multiframe(frames_: int = 3, size: int = 16) -> Dataset:
    pixels = np.stack([np.full((size, size), 40 * (n + 1), np.uint8) for n in range(frames_)])
    return instance(
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        PatientID="MF-1", PatientName="Multi^Frame", StudyDate="20240101", Modality="OT",
        ConversionType="WSD", SamplesPerPixel=1, PhotometricInterpretation="MONOCHROME2",
        Rows=size, Columns=size, BitsAllocated=8, BitsStored=8, HighBit=7, PixelRepresentation=0,
        NumberOfFrames=frames_, PixelData=pixels.tobytes(),
    )


def test_frames_of_a_multiframe_instance_are_named_uid_colon_n(client, db):
    ds = multiframe()
    store(ds)
    publish(ds.StudyInstanceUID)
    for n in (1, 2, 3):
        response = client.get(f"/iiif/3/{ds.SOPInstanceUID}:{n}/full/max/0/default.png")
        assert response.status_code == 200
        # Range-spanning window: 40 → 0, 120 → 255.
        assert len(np.unique(decode(response))) == 1
    levels = [decode(client.get(f"/iiif/3/{ds.SOPInstanceUID}:{n}~80_81/full/max/0/default.png"))[0, 0] for n in (1, 2, 3)]
    assert levels[0] < levels[1] < levels[2]
    for bad in (":0", ":4", ":01", ""):
        response = client.get(f"/iiif/3/{ds.SOPInstanceUID}{bad}/info.json")
        assert response.status_code == 404, bad
        assert response.json()["detail"]


def test_photograph_serves_the_stored_colours(client, validator_image):
    response = client.get(f"/iiif/3/{validator_image.SOPInstanceUID}/50,50,100,100/max/0/default.png")
    assert response.status_code == 200
    pixels = decode(response)
    assert pixels.shape == (100, 100, 3)
    assert np.array_equal(pixels[0, 0], validator_image.pixel_array[50, 50])


@pytest.mark.parametrize(
    "tail, fragment",
    [
        ("full/0,/0/default.jpg", "0,"),
        ("full/-5,/0/default.jpg", "-5"),
        ("full/,0/0/default.jpg", ",0"),
        ("full/0,0/0/default.jpg", "0,0"),
        ("full/max/45/default.jpg", "45"),
        ("full/max/0/default.tif", "tif"),
        ("full/max/0/sepia.jpg", "sepia"),
        ("5000,0,10,10/max/0/default.jpg", "5000"),
        ("full/2000,/0/default.jpg", "2000"),
        ("nonsense/max/0/default.jpg", "nonsense"),
    ],
)
def test_invalid_requests_are_400_with_a_reason_and_cors(client, wsi, tail, fragment):
    response = client.get(f"/iiif/3/{wsi.series_uid}/{tail}")
    assert response.status_code == 400, response.content
    assert response["Access-Control-Allow-Origin"] == "*"
    assert fragment in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/iiif/3/1.2.3.4.5/info.json",
        "/iiif/3/not-a-uid/info.json",
        "/iiif/3/1.2.3.4.5/full/max/0/default.jpg",
        "/iiif/3/1.2.3/full/max/0/default.jpg/extra",
        "/iiif/nothing-here",
        "/iiif/presentation/studies/1.2.3/manifest",
        "/iiif/presentation/series/1.2.3/manifest",
        "/iiif/presentation/collections/nosuch",
    ],
)
def test_unknown_things_are_404_json_with_cors(client, db, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response.json()["detail"]


def test_methods_and_preflight(client, wsi):
    url = f"/iiif/3/{wsi.series_uid}/info.json"
    response = client.post(url)
    assert response.status_code == 405
    assert response["Access-Control-Allow-Origin"] == "*"
    response = client.options(url)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response["Access-Control-Allow-Methods"]
    response = client.head(f"/iiif/3/{wsi.series_uid}/0,0,256,256/256,/0/default.jpg")
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Type"] == "image/jpeg"


def test_open_sources_are_cached_per_process(client, wsi, ct):
    services.clear_cache()
    for identifier in (wsi.series_uid, ct[0].SOPInstanceUID):
        before = services._cache.misses
        for _ in range(3):
            assert client.get(f"/iiif/3/{identifier}/full/64,/0/default.jpg").status_code == 200
        assert services._cache.misses == before + 1
    # Another window is another source.
    before = services._cache.misses
    client.get(f"/iiif/3/{ct[0].SOPInstanceUID}~lung/full/64,/0/default.jpg")
    assert services._cache.misses == before + 1


def test_the_cache_evicts_least_recently_used_beyond_its_budget():
    cache = services.SourceCache(max_bytes=100)
    built = []

    def build(name):
        built.append(name)
        return name, 40

    for name in ("a", "b", "a", "c", "d"):
        cache.get_or_build((name,), lambda name=name: build(name))
    # a, b fit; c pushes out b (a was used last); d pushes out a.
    assert built == ["a", "b", "c", "d"]
    cache.get_or_build(("c",), lambda: build("c"))
    cache.get_or_build(("b",), lambda: build("b"))
    assert built == ["a", "b", "c", "d", "b"]


def test_upscaling_max_fills_the_published_max_area(client, validator_image):
    from iiif import views

    info = client.get(f"/iiif/3/{validator_image.SOPInstanceUID}/info.json").json()
    assert info["maxArea"] == views.MAX_AREA
    response = client.get(f"/iiif/3/{validator_image.SOPInstanceUID}/full/^max/0/default.jpg")
    assert response.status_code == 200
    height, width = decode(response).shape[:2]
    assert width == height and width * height <= views.MAX_AREA < (width + 1) * (height + 1)
    assert client.get(f"/iiif/3/{validator_image.SOPInstanceUID}/full/max/0/default.jpg").status_code == 200
    too_big = client.get(f"/iiif/3/{validator_image.SOPInstanceUID}/full/^5000,5000/0/default.jpg")
    assert too_big.status_code == 400


def test_rendered_images_are_kept_but_stored_tiles_are_not(client, wsi, monkeypatch):
    from iiif import images

    calls = []
    original = images.render_image
    monkeypatch.setattr(images, "render_image", lambda s, r: calls.append(r.canonical_path) or original(s, r))
    thumbnail = f"/iiif/3/{wsi.series_uid}/full/200,/0/default.jpg"
    first = client.get(thumbnail)
    second = client.get(thumbnail)
    assert first.content == second.content and len(calls) == 1
    edge = f"/iiif/3/{wsi.series_uid}/768,512,232,188/232,/0/default.jpg"
    assert client.get(edge).content == client.get(edge).content and len(calls) == 2
    reads = []
    original_read = FrameIndex.read
    monkeypatch.setattr(FrameIndex, "read", lambda self, index: reads.append(index) or original_read(self, index))
    whole = f"/iiif/3/{wsi.series_uid}/0,0,256,256/256,/0/default.jpg"
    assert client.get(whole).content == client.get(whole).content == wsi.frames[0][0]
    # Planned once, then read from storage each time: only where the tile lies is kept.
    assert len(calls) == 3 and reads == [0, 0]
    assert not any(body == wsi.frames[0][0] for (body, _), _size in services.rendered_cache._items.values())


def test_each_window_has_its_own_cached_rendering(client, ct):
    uid = ct[0].SOPInstanceUID
    answers = [client.get(f"/iiif/3/{uid}{w}/full/max/0/default.png").content for w in ("~lung", "~bone", "~lung")]
    assert answers[0] != answers[1] and answers[0] == answers[2]


def test_a_frame_that_cannot_be_decoded_is_406_not_500(client, wsi, monkeypatch):
    monkeypatch.setattr(FrameIndex, "read", lambda self, index: b"\xff\xd8 not really a JPEG")
    response = client.get(f"/iiif/3/{wsi.series_uid}/full/100,/0/default.jpg")
    assert response.status_code == 406
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "decoded" in response.json()["detail"]


def test_concurrent_misses_build_a_source_once():
    import threading
    import time

    cache = services.SourceCache(max_bytes=1000)
    built = []

    def build():
        built.append(1)
        time.sleep(0.05)  # long enough for every thread to miss while it builds
        return "source", 10

    threads = [threading.Thread(target=cache.get_or_build, args=(("k",), build)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert built == [1]
    assert cache.get(("k",)) == "source"
