"""Planning (passthrough, level choice) and rendering (crop, scale, rotate, quality)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from iiif.errors import SizeLimitExceeded, UnsupportedFeature
from iiif.imageapi.parse import parse_image_request
from iiif.imageapi.plan import Composite, Passthrough, plan_request
from iiif.imageapi.render import render_image
from iiif.imageapi.resolve import resolve
from iiif.imageapi.sources import ArraySource, GrayscaleSource
from iiif.imageapi.tiled import TiledPyramidSource, decode_tile, read_jpeg_size
from iiif.imageapi.window import Window
from tests.factories.images import (
    build_ct_slice,
    build_jpeg_pyramid,
    build_noise_image,
    build_quadrant_image,
    encode_jpeg,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _render(source, region="full", size="max", rotation="0", qf="default.png"):
    resolved = resolve(parse_image_request(region, size, rotation, qf), source.width, source.height)
    body, media_type = render_image(source, resolved)
    return Image.open(io.BytesIO(body)), media_type


def _corner_colours(image: Image.Image) -> list[tuple[int, ...]]:
    rgb = np.asarray(image.convert("RGB"))
    h, w = rgb.shape[:2]
    return [
        tuple(int(v) for v in rgb[y, x])
        for y, x in ((2, 2), (2, w - 3), (h - 3, 2), (h - 3, w - 3))
    ]


def _tiled(pixels, **kwargs):
    levels, frames = build_jpeg_pyramid(pixels, **kwargs)
    reads: list[tuple[int, int]] = []

    def read_frame(level: int, index: int) -> bytes:
        reads.append((level, index))
        return frames[(level, index)]

    return TiledPyramidSource(levels, read_frame), frames, reads


@pytest.mark.parametrize(
    ("rotation", "corners"),
    [
        ("0", [RED, GREEN, BLUE, WHITE]),
        ("90", [BLUE, RED, WHITE, GREEN]),
        ("180", [WHITE, BLUE, GREEN, RED]),
        ("270", [GREEN, WHITE, RED, BLUE]),
        ("!0", [GREEN, RED, WHITE, BLUE]),
        ("!90", [WHITE, GREEN, BLUE, RED]),
        ("!180", [BLUE, WHITE, RED, GREEN]),
        ("!270", [RED, BLUE, GREEN, WHITE]),
    ],
)
def test_rotation_and_mirroring(rotation: str, corners: list[tuple[int, int, int]]) -> None:
    image, media_type = _render(ArraySource(build_quadrant_image(64, 48)), rotation=rotation)
    assert media_type == "image/png"
    assert image.size == ((48, 64) if rotation.strip("!") in ("90", "270") else (64, 48))
    assert _corner_colours(image) == corners


def test_region_and_size() -> None:
    image, _ = _render(ArraySource(build_quadrant_image(64, 48)), region="32,0,32,24", size="8,6")
    assert image.size == (8, 6)
    assert set(map(tuple, np.asarray(image).reshape(-1, 3).tolist())) == {GREEN}


def test_upscaling_with_caret() -> None:
    image, _ = _render(ArraySource(build_quadrant_image(8, 8)), size="^32,32")
    assert image.size == (32, 32) and _corner_colours(image) == [RED, GREEN, BLUE, WHITE]


def test_gray_and_bitonal() -> None:
    source = ArraySource(build_quadrant_image(64, 48))
    gray, _ = _render(source, qf="gray.png")
    assert gray.mode == "L"
    values = np.asarray(gray)
    assert values[2, 2] == 76 and values[-3, -3] == 255  # ITU-R 601 luma of red, white
    bitonal, _ = _render(source, qf="bitonal.png")
    assert set(np.unique(np.asarray(bitonal)).tolist()) == {0, 255}
    assert np.asarray(bitonal)[2, 2] == 0 and np.asarray(bitonal)[2, -3] == 255
    bitonal_jpeg, media_type = _render(source, qf="bitonal.jpg")
    assert media_type == "image/jpeg" and bitonal_jpeg.mode == "L"


def test_formats() -> None:
    source = ArraySource(build_quadrant_image(16, 16))
    for qf, pil_format, media_type in (
        ("default.jpg", "JPEG", "image/jpeg"),
        ("default.png", "PNG", "image/png"),
        ("default.webp", "WEBP", "image/webp"),
    ):
        image, got = _render(source, qf=qf)
        assert (image.format, got) == (pil_format, media_type)


def test_grayscale_source_refuses_color_and_renders_gray() -> None:
    source = GrayscaleSource(build_ct_slice(32, 32), window=Window(32768, 65536))
    with pytest.raises(UnsupportedFeature) as caught:
        _render(source, qf="color.jpg")
    assert caught.value.http_status == 400
    image, _ = _render(source, qf="default.png")
    assert image.mode == "L" and image.size == (32, 32)


def test_passthrough_for_every_aligned_tile_at_every_level() -> None:
    pixels = build_noise_image(300, 200, seed=1)  # not multiples of 64: edge tiles are small
    source, frames, _ = _tiled(pixels, tile_size=64, levels=3)
    full_w, full_h = source.width, source.height
    checked = 0
    for index, level in enumerate(source.levels):
        sf = 2**index
        for row in range(level.rows):
            for col in range(level.columns):
                x, y = col * 64 * sf, row * 64 * sf
                w, h = min(64 * sf, full_w - x), min(64 * sf, full_h - y)
                out_w = min(64, level.width - col * 64)
                out_h = min(64, level.height - row * 64)
                resolved = resolve(
                    parse_image_request(f"{x},{y},{w},{h}", f"{out_w},{out_h}", "0", "default.jpg"),
                    full_w,
                    full_h,
                )
                assert plan_request(source, resolved) == Passthrough(index, col, row)
                body, media_type = render_image(source, resolved)
                assert body == frames[(index, row * level.columns + col)]
                assert media_type == "image/jpeg"
                checked += 1
    assert checked == 5 * 4 + 3 * 2 + 2 * 1


def test_passthrough_accepts_width_only_size_and_color_quality() -> None:
    source, frames, _ = _tiled(build_noise_image(256, 256), tile_size=64, levels=2)
    resolved = resolve(parse_image_request("128,0,128,128", "64,", "0", "color.jpg"), 256, 256)
    assert render_image(source, resolved)[0] == frames[(1, 1)]


@pytest.mark.parametrize(
    "segments",
    [
        ("0,0,64,64", "64,64", "90", "default.jpg"),
        ("0,0,64,64", "64,64", "!0", "default.jpg"),
        ("0,0,64,64", "64,64", "0", "gray.jpg"),
        ("0,0,64,64", "64,64", "0", "default.png"),
        ("0,0,64,64", "32,32", "0", "default.jpg"),
        ("1,0,64,64", "64,64", "0", "default.jpg"),
        ("0,0,63,64", "63,64", "0", "default.jpg"),
    ],
)
def test_no_passthrough_when_anything_differs(segments) -> None:
    source, frames, _ = _tiled(build_noise_image(256, 256), tile_size=64, levels=2)
    resolved = resolve(parse_image_request(*segments), 256, 256)
    assert isinstance(plan_request(source, resolved), Composite)
    assert render_image(source, resolved)[0] not in frames.values()


def test_padded_edge_frames_are_cropped_not_passed_through() -> None:
    pixels = build_noise_image(100, 100, seed=2)
    source, frames, _ = _tiled(pixels, tile_size=64, levels=1, pad_edges=True)
    resolved = resolve(parse_image_request("64,64,36,36", "36,36", "0", "default.jpg"), 100, 100)
    assert plan_request(source, resolved) == Passthrough(0, 1, 1)
    body, _ = render_image(source, resolved)
    assert body != frames[(0, 3)]
    image = Image.open(io.BytesIO(body))
    assert image.size == (36, 36)
    assert np.abs(np.asarray(image).astype(int) - pixels[64:, 64:].astype(int)).mean() < 6


def test_thumbnail_reads_the_smallest_sufficient_level_not_level_0() -> None:
    source, _, reads = _tiled(build_noise_image(512, 512), tile_size=64, levels=4)
    resolved = resolve(parse_image_request("full", "60,", "0", "default.jpg"), 512, 512)
    plan = plan_request(source, resolved)
    assert isinstance(plan, Composite) and plan.level == 3
    render_image(source, resolved)
    assert reads and {level for level, _ in reads} == {3}
    resolved = resolve(parse_image_request("full", "200,", "0", "default.jpg"), 512, 512)
    plan = plan_request(source, resolved)
    assert isinstance(plan, Composite) and plan.level == 1 and plan.reduce == 1


def test_tiled_composite_matches_array_source() -> None:
    pixels = build_noise_image(300, 200, seed=3)
    tiled, _, _ = _tiled(pixels, tile_size=64, levels=3)
    array = ArraySource(pixels, tile_size=64)
    for segments in (
        ("37,21,150,101", "75,", "0", "default.png"),
        ("full", "37,", "0", "default.png"),
        ("pct:20,20,60,60", "max", "0", "default.png"),
        ("10,10,200,150", "^400,", "0", "default.png"),
    ):
        resolved = resolve(parse_image_request(*segments), 300, 200)
        a = np.asarray(Image.open(io.BytesIO(render_image(tiled, resolved)[0]))).astype(int)
        b = np.asarray(Image.open(io.BytesIO(render_image(array, resolved)[0]))).astype(int)
        assert a.shape == b.shape
        assert np.abs(a - b).mean() < 8, segments


def test_draft_decode_shrinks_jpeg_tiles() -> None:
    data = encode_jpeg(build_noise_image(64, 64))
    assert decode_tile(data, grayscale=False, reduce=4).shape == (16, 16, 3)
    assert decode_tile(data, grayscale=True, reduce=1).shape == (64, 64, 1)
    png = io.BytesIO()
    Image.fromarray(build_noise_image(60, 60)).save(png, "PNG")
    assert decode_tile(png.getvalue(), grayscale=False, reduce=4).shape == (15, 15, 3)


def test_read_jpeg_size() -> None:
    assert read_jpeg_size(encode_jpeg(build_noise_image(37, 21))) == (37, 21)
    assert read_jpeg_size(b"\x89PNG\r\n") is None
    assert read_jpeg_size(b"\xff\xd8\xff") is None


def test_tiled_source_rejects_bad_tiles_and_regions() -> None:
    source, _, _ = _tiled(build_noise_image(128, 128), tile_size=64, levels=1)
    with pytest.raises(ValueError, match="outside"):
        source.read_tile(0, 2, 0)
    with pytest.raises(ValueError, match="inside"):
        source.read_region(0, 100, 100, 50, 50)
    with pytest.raises(ValueError, match="reduce"):
        source.read_region(0, 1, 0, 8, 8, reduce=2)
    with pytest.raises(TypeError):
        ArraySource(build_noise_image(8, 8)).read_tile(0, 0, 0)


def test_huge_upscale_without_limits_is_refused_before_allocating() -> None:
    source = ArraySource(build_quadrant_image(8, 8))
    resolved = resolve(parse_image_request("full", "^20000,20000", "0", "default.jpg"), 8, 8)
    with pytest.raises(SizeLimitExceeded) as caught:
        render_image(source, resolved)
    assert caught.value.http_status == 400


def test_a_region_between_level_pixels_at_scale_1_is_cropped_not_resampled() -> None:
    pixels = build_noise_image(320, 256, seed=5)
    source = ArraySource(pixels, tile_size=64)
    level1 = np.asarray(Image.fromarray(pixels).reduce(2))
    # 3,5 is 1.5,2.5 in level 1, whose 64 x 48 pixels are exactly the output.
    resolved = resolve(parse_image_request("3,5,128,96", "64,", "0", "default.png"), 320, 256)
    plan = plan_request(source, resolved)
    assert isinstance(plan, Composite) and (plan.level, plan.reduce) == (1, 1)
    assert plan.read_box == (2, 3, 64, 48)  # rounded to the nearest level pixel
    assert plan.crop_box == (0, 0, 64, 48)
    image, _ = _render(source, "3,5,128,96", "64,")
    assert np.array_equal(np.asarray(image), level1[3:51, 2:66])


def test_snapping_stays_inside_the_level_and_leaves_true_scaling_alone() -> None:
    source = ArraySource(build_noise_image(320, 256, seed=5), tile_size=64)
    # At the right edge: 191,1 in level 1 would end past its 160 pixels.
    resolved = resolve(parse_image_request("190,2,130,96", "65,", "0", "default.png"), 320, 256)
    plan = plan_request(source, resolved)
    assert plan.read_box[0] + plan.read_box[2] <= 160
    # Not at scale 1: the sub-pixel box is kept for the resize.
    resolved = resolve(parse_image_request("3,5,128,96", "50,", "0", "default.png"), 320, 256)
    plan = plan_request(source, resolved)
    assert plan.crop_box[0] != int(plan.crop_box[0]) or plan.crop_box[1] != int(plan.crop_box[1])


def test_tiled_regions_are_pasted_from_each_decoded_tile() -> None:
    pixels = build_noise_image(300, 200, seed=4)
    source, frames, reads = _tiled(pixels, tile_size=64, levels=2)
    # 3 x 3 tiles of level 0, decoded in parallel; and one tile alone, in this thread.
    for x, y, w, h in ((40, 30, 150, 120), (70, 70, 20, 20)):
        reads.clear()
        got = np.asarray(source.read_region_image(0, x, y, w, h))
        expected = np.zeros((192, 256, 3), np.uint8)
        for row in range(3):
            for col in range(4):
                tile = decode_tile(frames[(0, row * 5 + col)], grayscale=False)
                expected[row * 64 : row * 64 + tile.shape[0], col * 64 : col * 64 + tile.shape[1]] = tile
        assert np.array_equal(got, expected[y : y + h, x : x + w])
        assert sorted(reads) == sorted(
            (0, row * 5 + col) for row in range(y // 64, (y + h - 1) // 64 + 1)
            for col in range(x // 64, (x + w - 1) // 64 + 1)
        )


class _DictCache:
    def __init__(self) -> None:
        self.items: dict = {}

    def get(self, key):
        return self.items.get(key)

    def put(self, key, value, size) -> None:
        self.items[key] = value


def test_decoded_tiles_are_kept_for_the_next_region() -> None:
    pixels = build_noise_image(300, 200, seed=6)
    levels, frames = build_jpeg_pyramid(pixels, tile_size=64, levels=2)
    reads: list = []
    cache = _DictCache()

    def read_frame(level, index):
        reads.append((level, index))
        return frames[(level, index)]

    source = TiledPyramidSource(levels, read_frame, decoded_cache=cache, cache_key="slide")
    resolved = resolve(parse_image_request("10,10,200,150", "100,", "0", "default.png"), 300, 200)
    first = render_image(source, resolved)[0]
    assert reads and all(key[0] == "slide" for key in cache.items)
    count = len(reads)
    assert render_image(source, resolved)[0] == first
    assert len(reads) == count  # nothing read or decoded again
    # Another source sharing the cache has its own keys.
    other = TiledPyramidSource(levels, read_frame, decoded_cache=cache, cache_key="other")
    render_image(other, resolved)
    assert len(reads) == 2 * count
