"""Modality LUT and VOI windowing (PS3.3 C.11.1, C.11.2.1.2) and identifiers."""

from __future__ import annotations

import numpy as np
import pytest

from iiif.errors import ImageNotFound, InvalidIIIFRequest
from iiif.imageapi.identifiers import format_identifier, parse_identifier
from iiif.imageapi.sources import GrayscaleSource
from iiif.imageapi.window import (
    WINDOW_PRESETS,
    VoiFunction,
    Window,
    apply_modality_lut,
    apply_window,
    parse_window,
)
from tests.factories.images import build_ct_slice


def test_16_bit_values_are_not_truncated() -> None:
    # 4000 and 40000 share their low byte pattern only if truncated; a wide window
    # must tell them apart.
    stored = np.array([[4000, 40000]], np.uint16)
    out = apply_window(apply_modality_lut(stored), Window(32768, 65536))
    assert out[0, 0] < out[0, 1]
    assert out[0, 0] == round((4000 - 32767.5) / 65535 * 255 + 127.5)


def test_rescale_applies_before_window() -> None:
    stored = np.array([[0, 1024, 2048]], np.uint16)
    hu = apply_modality_lut(stored, slope=1.0, intercept=-1024.0)
    assert hu.tolist() == [[-1024.0, 0.0, 1024.0]]
    out = apply_window(hu, Window(0, 2049))
    assert out.tolist() == [[0, 128, 255]]


def test_linear_window_follows_the_standard_formula() -> None:
    window = Window(40, 80)
    values = np.array([-100.0, -0.5, 0.0, 39.5, 79.0, 79.5, 200.0])
    expected = []
    for x in values:
        if x <= 40 - 0.5 - 79 / 2:
            expected.append(0)
        elif x > 40 - 0.5 + 79 / 2:
            expected.append(255)
        else:
            expected.append(round(((x - 39.5) / 79 + 0.5) * 255))
    assert apply_window(values, window).tolist() == expected


def test_linear_exact_and_sigmoid() -> None:
    values = np.array([-1000.0, 0.0, 50.0, 100.0, 1000.0])
    exact = apply_window(values, Window(50, 100, VoiFunction.LINEAR_EXACT)).tolist()
    assert exact == [0, 0, 128, 255, 255]
    sigmoid = apply_window(values, Window(50, 100, VoiFunction.SIGMOID)).tolist()
    assert sigmoid[0] == 0 and sigmoid[-1] == 255 and sigmoid[2] == 128
    assert sigmoid == sorted(sigmoid)


def test_window_width_rules() -> None:
    with pytest.raises(ValueError, match="LINEAR window width"):
        Window(0, 0.5)
    with pytest.raises(ValueError, match="> 0"):
        Window(0, 0, VoiFunction.SIGMOID)
    assert apply_window(np.array([-1.0, 0.0, 1.0]), Window(0.5, 1)).tolist() == [0, 0, 255]


def test_presets_and_explicit_windows() -> None:
    assert parse_window("bone") == WINDOW_PRESETS["bone"]
    assert parse_window("lung") == Window(-600, 1500)
    assert parse_window("-600_1500") == Window(-600, 1500)
    assert parse_window("40.5_400") == Window(40.5, 400)
    for bad in ("Bone", "", "40_0", "40,400", "x_1"):
        with pytest.raises(InvalidIIIFRequest, match="window"):
            parse_window(bad)


def test_identifiers() -> None:
    assert parse_identifier("1.2.840.10008.1").uid == "1.2.840.10008.1"
    parsed = parse_identifier("1.2.3~brain")
    assert (parsed.uid, parsed.window, parsed.window_text) == (
        "1.2.3",
        WINDOW_PRESETS["brain"],
        "brain",
    )
    assert format_identifier(parsed.uid, parsed.window_text) == "1.2.3~brain"
    for not_a_uid in (
        "abc",
        "1.02.3",
        "1..2",
        "",
        "1.2.",
        "[frob]",
        "a/b",
        "1" * 65,
        "67352ccc-d1b0-11e1-89ae-279075081939",
    ):
        with pytest.raises(ImageNotFound) as caught:
            parse_identifier(not_a_uid)
        assert caught.value.http_status == 404
    with pytest.raises(InvalidIIIFRequest):
        parse_identifier("1.2.3~nosuchpreset")


def test_grayscale_source_windows_and_inverts() -> None:
    stored = build_ct_slice(32, 4)
    plain = GrayscaleSource(stored, window=Window(32768, 65536))
    inverted = GrayscaleSource(stored, window=Window(32768, 65536), invert=True)
    row = plain.read_region(0, 0, 0, 32, 4)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row.astype(int)) >= 0)
    assert len(set(row.tolist())) > 20  # the 16-bit ramp keeps its steps
    assert np.array_equal(inverted.read_region(0, 0, 0, 32, 4)[0, :, 0], 255 - row)


def test_grayscale_source_default_window_spans_the_data() -> None:
    stored = np.array([[1000, 2000], [3000, 4000]], np.uint16)
    source = GrayscaleSource(stored, slope=2.0, intercept=-100.0)
    assert source.window.center == 4900.0
    pixels = source.read_region(0, 0, 0, 2, 2)[..., 0]
    assert pixels[0, 0] == 0 and pixels[1, 1] == 255
