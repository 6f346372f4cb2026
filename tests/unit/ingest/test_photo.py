from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pydicom
import pytest
from PIL import Image

from archive.dicom.photo import read_photo_jpeg, read_photo_pixels
from archive.errors import InvalidInput, UnsupportedMediaType
from ingest.converters.photo import convert_photo
from tests.factories.files import jpeg_bytes, png_bytes, tiff_bytes
from tests.unit.dicom.iod import check_iod
from tests.unit.ingest.conftest import listing


def _convert(target, tmp_path, name, data, **kw):
    src = tmp_path / name
    src.write_bytes(data)
    [out] = convert_photo(src, target, **kw)
    return pydicom.dcmread(out.path)


@pytest.mark.parametrize("gray", [False, True])
def test_baseline_jpeg_is_kept_byte_for_byte(gray, target, tmp_path):
    data = jpeg_bytes(gray=gray, taken=datetime(2019, 7, 14, 15, 16, 17))
    ds = _convert(target, tmp_path, "p.jpg", data)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert read_photo_jpeg(ds) == data
    assert ds.PhotometricInterpretation == ("MONOCHROME2" if gray else "YBR_FULL_422")
    assert (ds.Rows, ds.Columns) == (48, 64)
    assert ds.LossyImageCompression == "01"
    assert ds.AcquisitionDateTime.startswith("20190714151617")
    assert ds.ContentDate == "20190714"
    check_iod(ds)
    decoded = read_photo_pixels(ds)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("L" if gray else "RGB"))
    # Two JPEG decoders differ by rounding and chroma upsampling only.
    assert np.abs(decoded.astype(int) - expected).mean() < 1.0


def test_odd_length_jpeg_survives_padding(target, tmp_path):
    data = next(d for d in (jpeg_bytes(seed=s) for s in range(50)) if len(d) % 2)
    ds = _convert(target, tmp_path, "odd.jpg", data)
    assert read_photo_jpeg(ds) == data


@pytest.mark.parametrize("orientation, shape", [(6, (64, 48)), (3, (48, 64)), (8, (64, 48))])
def test_exif_orientation_applied_losslessly(orientation, shape, target, tmp_path):
    data = jpeg_bytes(orientation=orientation)
    ds = _convert(target, tmp_path, "r.jpg", data)
    assert (ds.Rows, ds.Columns) == shape
    assert ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.4.50"
    from PIL import ImageOps

    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert np.array_equal(read_photo_pixels(ds), expected)
    assert "orientation" in ds.DerivationDescription
    assert ds.LossyImageCompression == "01"


def test_progressive_jpeg_is_decoded_not_passed(target, tmp_path):
    data = jpeg_bytes(progressive=True)
    ds = _convert(target, tmp_path, "prog.jpg", data)
    assert not ds.file_meta.TransferSyntaxUID.startswith("1.2.840.10008.1.2.4.5")
    assert np.array_equal(read_photo_pixels(ds), np.asarray(Image.open(io.BytesIO(data))))


@pytest.mark.parametrize("name, make", [
    ("a.png", lambda: png_bytes()),
    ("g.png", lambda: png_bytes(mode="L")),
    ("t.tif", lambda: tiff_bytes()),
])
def test_png_tiff_lossless(name, make, target, tmp_path):
    data = make()
    ds = _convert(target, tmp_path, name, data)
    assert np.array_equal(read_photo_pixels(ds), np.asarray(Image.open(io.BytesIO(data))))
    assert ds.LossyImageCompression == "00"
    check_iod(ds)


def test_png_orientation_and_alpha(target, tmp_path):
    ds = _convert(target, tmp_path, "o.png", png_bytes((40, 30), mode="RGBA", orientation=6))
    assert (ds.Rows, ds.Columns) == (30, 40)
    assert "alpha" in ds.DerivationDescription


def test_uncompressed_when_asked(target, tmp_path):
    from archive.dicom.photo import build_photo_from_pixels

    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    ds = build_photo_from_pixels(arr, patient=target.patient, study=target.study,
                                 series=target.new_series("x"), instance_uid="1.2.3.4",
                                 created=target.now, compress=False)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(read_photo_pixels(ds), arr)


@pytest.mark.parametrize("name, make", [("big.jpg", jpeg_bytes), ("big.png", png_bytes)])
def test_decompression_bomb_rejected_before_decoding(name, make, target, tmp_path):
    with pytest.raises(InvalidInput, match="exceeds the limit of 1000"):
        _convert(target, tmp_path, name, make(), max_pixels=1000)
    assert listing(target.out_dir) == []


def test_forged_huge_png_header_rejected(target, tmp_path):
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(InvalidInput, match="pixel"):
        _convert(target, tmp_path, "bomb.png", png)
    assert listing(target.out_dir) == []


def test_not_an_image(target, tmp_path):
    with pytest.raises(UnsupportedMediaType):
        _convert(target, tmp_path, "x.png", b"definitely not an image")
    assert listing(target.out_dir) == []


def test_truncated_png(target, tmp_path):
    with pytest.raises(InvalidInput):
        _convert(target, tmp_path, "cut.png", png_bytes((200, 200))[:300])
    assert listing(target.out_dir) == []


def test_cmyk_jpeg_is_decoded_to_rgb(target, tmp_path):
    buf = io.BytesIO()
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(buf, "JPEG")
    ds = _convert(target, tmp_path, "cmyk.jpg", buf.getvalue())
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert "CMYK converted to RGB" in ds.DerivationDescription
