from __future__ import annotations

import struct

import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.encaps import get_frame

from archive.dicom.jpeg import merge_jpeg_tables, read_jpeg_info
from archive.dicom.wsi import read_wsi_frame
from archive.errors import InvalidInput
from ingest.converters.wsi import _write_openslide, convert_wsi, find_tiff_levels
from tests.factories.files import jpeg_bytes, pyramidal_jpeg_tiff
from tests.unit.dicom.iod import check_iod
from tests.unit.ingest.conftest import listing

SIZE = (2048, 1536)


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("slide") / "slide.tif"
    level0 = pyramidal_jpeg_tiff(path, size=SIZE, tile=256, levels=3)
    return path, level0


def _levels(outputs):
    return sorted((pydicom.dcmread(o.path) for o in outputs), key=lambda d: d.InstanceNumber)


def test_one_tiled_full_instance_per_level(slide, target):
    path, _ = slide
    levels = _levels(convert_wsi(path, target))
    assert [(d.TotalPixelMatrixColumns, d.TotalPixelMatrixRows) for d in levels] == [
        (2048, 1536), (1024, 768), (512, 384)]
    assert [int(d.NumberOfFrames) for d in levels] == [48, 12, 4]
    assert list(levels[0].ImageType) == ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    assert list(levels[1].ImageType) == ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    for ds in levels:
        assert ds.DimensionOrganizationType == "TILED_FULL"
        assert "PerFrameFunctionalGroupsSequence" not in ds
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
        assert ds.OpticalPathSequence[0].ICCProfile
        check_iod(ds, conditional=("frame-of-reference", "multi-resolution-pyramid"))
    assert len({d.PyramidUID for d in levels}) == 1
    assert len({d.SeriesInstanceUID for d in levels}) == 1
    spacing = levels[0].SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.00025, 0.00025])
    assert levels[0].ImagedVolumeWidth == pytest.approx(2048 * 0.00025)
    assert levels[1].SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0] == pytest.approx(0.0005)


def test_frames_are_the_source_tiles_untouched(slide, target):
    path, _ = slide
    outputs = _levels(convert_wsi(path, target))
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[1]
        raw = []
        with open(path, "rb") as fp:
            for off, count in zip(page.dataoffsets, page.databytecounts):
                fp.seek(off)
                raw.append(merge_jpeg_tables(fp.read(count), page.jpegtables))
    level1 = outputs[1]
    n = int(level1.NumberOfFrames)
    for index in (0, 5, n - 1):
        # get_frame follows the Basic Offset Table we patched in.
        frame = get_frame(level1.PixelData, index, number_of_frames=n)
        assert frame.rstrip(b"\x00") == raw[index].rstrip(b"\x00")
    # The abbreviated tile plus tables decodes on its own.
    assert read_jpeg_info(raw[0]).process == "baseline"


def test_wsidicom_reads_regions_equal_to_the_source(slide, target):
    wsidicom = pytest.importorskip("wsidicom")
    path, level0 = slide
    convert_wsi(path, target)
    with wsidicom.WsiDicom.open(target.out_dir) as wsi:
        assert wsi.size.width == SIZE[0] and wsi.size.height == SIZE[1]
        assert len(wsi.levels) == 3
        region = np.asarray(wsi.read_region((300, 200), 0, (900, 700)).convert("RGB"))
        # Tiles pass through, so both sides decode the same JPEG bytes.
        assert np.array_equal(region, level0[200:900, 300:1200])
        assert wsi.mpp.width == pytest.approx(0.25)


def test_highdicom_assembles_the_total_pixel_matrix(slide, target):
    import highdicom as hd

    path, level0 = slide
    outputs = _levels(convert_wsi(path, target))
    image = hd.imread(str(target.out_dir / f"{outputs[0].SOPInstanceUID}.dcm"))
    matrix = image.get_total_pixel_matrix()
    assert matrix.shape == (SIZE[1], SIZE[0], 3)
    # highdicom places frames by TILED_FULL rules; decoders differ only by rounding.
    assert np.abs(matrix.astype(int) - level0).mean() < 1.0


def test_sparse_tiles_become_blank_frames(tmp_path, target):
    path = tmp_path / "sparse.tif"
    pyramidal_jpeg_tiff(path, size=(512, 512), tile=256, levels=1)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages[0]
        counts_tag = page.tags["TileByteCounts"]
        counts = list(counts_tag.value)
        counts[1] = 0
        counts_tag.overwrite(counts)
    [out] = convert_wsi(path, target)
    frame = read_wsi_frame(out.path, 1)
    info = read_jpeg_info(frame)
    assert (info.rows, info.columns) == (256, 256)


def test_flat_image_gets_a_pyramid(tmp_path, target):
    src = tmp_path / "flat.jpg"
    src.write_bytes(jpeg_bytes((700, 1000)))
    levels = _levels(convert_wsi(src, target, spacing_mm=0.001))
    assert (levels[0].TotalPixelMatrixColumns, levels[0].TotalPixelMatrixRows) == (1000, 700)
    assert len(levels) >= 2
    assert levels[0].SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0] == pytest.approx(0.001)
    assert [p.name for p in target.out_dir.iterdir() if p.name.startswith(".")] == []


def test_openslide_road_reencodes(slide, target):
    path, level0 = slide
    levels = _levels(_write_openslide(path, target, "slide.tif", tile=256, quality=95))
    assert (levels[0].TotalPixelMatrixColumns, levels[0].TotalPixelMatrixRows) == SIZE
    from pydicom.pixels import iter_pixels

    first = next(iter_pixels(levels[0], as_rgb=True))
    assert np.abs(first.astype(int) - level0[:256, :256]).mean() < 3


def test_truncated_slide_leaves_nothing(slide, tmp_path, target):
    path, _ = slide
    cut = tmp_path / "cut.tif"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput):
        convert_wsi(cut, target)
    assert listing(target.out_dir) == []


def test_garbage_is_not_a_slide(tmp_path, target):
    from archive.errors import UnsupportedMediaType

    src = tmp_path / "junk.svs"
    src.write_bytes(b"II*\x00" + struct.pack("<I", 8) + b"\x00" * 50)
    with pytest.raises((InvalidInput, UnsupportedMediaType)):
        convert_wsi(src, target)
    assert listing(target.out_dir) == []


def test_levels_ignore_stripped_pages(tmp_path):
    path = tmp_path / "mixed.tif"
    pyramidal_jpeg_tiff(path, size=(512, 512), levels=2)
    with tifffile.TiffWriter(path, append=True) as tw:
        tw.write(np.zeros((100, 300, 3), np.uint8))  # a stripped "label"
    assert [(lv.width, lv.height) for lv in find_tiff_levels(path)] == [(512, 512), (256, 256)]


def test_aperio_style_rgb_tiles_keep_their_colours(tmp_path, target):
    wsidicom = pytest.importorskip("wsidicom")
    path = tmp_path / "rgb.tif"
    level0 = pyramidal_jpeg_tiff(path, size=(600, 500), levels=2, rgb=True)
    levels = _levels(convert_wsi(path, target))
    assert levels[0].PhotometricInterpretation == "RGB"
    with wsidicom.WsiDicom.open(target.out_dir) as wsi:
        region = np.asarray(wsi.read_region((0, 0), 0, (600, 500)).convert("RGB"))
    # Without the Adobe marker a decoder would take the samples for YCbCr.
    assert np.abs(region.astype(int) - level0).mean() < 1.0
