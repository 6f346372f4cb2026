"""The raw-bytes DICOM JSON encoder agrees with pydicom's own."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from archive.dicomjson import dataset_to_json
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
