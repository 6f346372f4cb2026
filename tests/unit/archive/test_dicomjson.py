"""The raw-bytes DICOM JSON encoder agrees with pydicom's own, whether the data set comes
from pydicom's reader or from the store's own walk (``archive.part10.read_part10``)."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from archive.dicomjson import dataset_to_json
from archive.errors import InvalidInput
from archive.part10 import DEFLATED_LE, EXPLICIT_BE, Part10, read_part10
from tests.factories.datasets import ct_slice, to_bytes

THRESHOLD = 1024


def _bulk(tag: int) -> str:
    return f"bulk:{tag:08X}"


def _both(ds: Dataset) -> tuple[dict, dict]:
    data = to_bytes(ds)
    fast = dataset_to_json(pydicom.dcmread(io.BytesIO(data), defer_size=THRESHOLD), _bulk, THRESHOLD)
    oracle = pydicom.dcmread(io.BytesIO(data)).to_json_dict(
        bulk_data_threshold=THRESHOLD, bulk_data_element_handler=lambda e: _bulk(int(e.tag))
    )
    oracle["7FE00010"] = {"vr": oracle["7FE00010"]["vr"], "BulkDataURI": _bulk(0x7FE00010)}
    return fast, oracle


def _rich(**kwargs) -> Dataset:
    ds = ct_slice(**kwargs)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.WindowCenter = [40, 400]
    ds.WindowWidth = ["400", "1500.5"]
    ds.OtherPatientNames = ["Doe^John", "Roe^Richard=Ideo^Gram"]
    ds.FrameIncrementPointer = [0x00181063, 0x00181065]
    ds.LargestImagePixelValue = 1999
    ds.ReferencedFrameNumber = [1, 2, 3]
    ds.ImageComments = "a long text  "
    ds.RedPaletteColorLookupTableData = b"\x00\x01" * 8
    ds.ReferencedImageSequence = [Dataset(), Dataset()]
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    ds.ReferencedImageSequence[1].ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ProcedureCodeSequence = []
    ds.AccessionNumber = ""
    return ds


@pytest.mark.parametrize(
    "ds",
    [
        ct_slice(),
        _rich(),
        _rich(transfer_syntax=ImplicitVRLittleEndian),
        _rich(patient_name="Müller^Jürgen", SpecificCharacterSet="ISO_IR 100"),
        _rich(patient_name="Wang^XiaoDong=王^小東", SpecificCharacterSet=["ISO_IR 192"]),
    ],
    ids=["plain", "rich", "implicit", "latin1", "utf8"],
)
def test_fast_encoder_agrees_with_pydicom(ds):
    fast, oracle = _both(ds)
    assert fast == oracle


# --- the data set walked by archive.part10 (the store's path) gives the same JSON ---------

# Explicit VR UN: a sequence (PS3.5 6.2.2), or elements whose VR pydicom looks up.
_HANDED_TO_PYDICOM = {"UN_sequence.dcm", "rtdose_rle.dcm", "rtdose_rle_1frame.dcm"}
_PYDICOM_FILES = sorted((Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm"))


def _walked_and_read(path: Path) -> tuple[Part10 | None, dict | None, dict]:
    """The JSON through the walk (None where it leaves the file to pydicom), and through
    pydicom's reader."""
    with open(path, "rb") as fp:
        part = read_part10(fp, path.stat().st_size, keep=THRESHOLD)
        walked = dataset_to_json(part.dataset, _bulk, THRESHOLD) if part.dataset is not None else None
        fp.seek(0)
        read = dataset_to_json(pydicom.dcmread(fp, defer_size=THRESHOLD), _bulk, THRESHOLD)
    return part, walked, read


@pytest.mark.parametrize("path", _PYDICOM_FILES, ids=[p.name for p in _PYDICOM_FILES])
def test_walked_data_set_agrees_with_pydicoms_reader(path):
    """pydicom's own test files: implicit and explicit VR, nested and private sequences,
    encapsulated pixel data, character sets, VR UN. Files the walk refuses (truncated, no
    preamble) or pydicom cannot convert are left out; big endian, deflate and sequences
    encoded as UN are handed to pydicom."""
    try:
        part, walked, read = _walked_and_read(path)
    except (InvalidInput, ValueError):
        pytest.skip("not a whole Part 10 file, or a value pydicom cannot convert")
    if part.layout.transfer_syntax in (EXPLICIT_BE, DEFLATED_LE):
        assert walked is None
    elif walked is None:
        assert path.name in _HANDED_TO_PYDICOM
    else:
        assert walked == read


@pytest.mark.parametrize(
    "ds",
    [_rich(), _rich(transfer_syntax=ImplicitVRLittleEndian),
     _rich(patient_name="Wang^XiaoDong=王^小東", SpecificCharacterSet=["ISO_IR 192"])],
    ids=["rich", "implicit", "utf8"],
)
def test_walked_factory_data_sets_agree(ds, tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(to_bytes(ds))
    part, walked, read = _walked_and_read(path)
    assert walked is not None and walked == read
    assert walked["7FE00010"] == {"vr": "OW", "BulkDataURI": _bulk(0x7FE00010)}
    assert part.layout.pixel_length == len(ds.PixelData)


def test_walk_leaves_out_bulk_values():
    ds = _rich()
    ds.RedPaletteColorLookupTableData = b"\x01\x02" * 2048  # over the threshold: bulk
    part = read_part10(io.BytesIO(data := to_bytes(ds)), len(data), keep=THRESHOLD)
    assert part.dataset.get_item(0x00281201, keep_deferred=True).value is None
    assert part.dataset.get_item(0x7FE00010, keep_deferred=True).value is None
    assert part.dataset.get_item(0x00100010, keep_deferred=True).value.startswith(b"Doe")
