"""Part 10 bytes in and out of DIMSE, without Django or a network."""

from __future__ import annotations

import hashlib
import io

import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pynetdicom.dsutils import create_file_meta

from archive.dimse.files import encode_file_meta, read_file_meta, write_part10
from archive.errors import InvalidInput
from tests.factories.datasets import ct_slice, to_bytes


def _meta(ds) -> bytes:
    return encode_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID)


@pytest.mark.parametrize(
    "sop_class, sop_instance, syntax",
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "1.2.840.10008.1.2.1"),  # even lengths
        ("1.2.840.10008.5.1.4.1.1.104.3", "1.2.3.45", "1.2.840.10008.1.2"),  # odd: padded
        ("1.2.840.10008.5.1.4.1.1.77.1.6", "2.25.1234567890123456789", "1.2.840.10008.1.2.4.50"),
    ],
)
def test_file_meta_bytes_equal_pydicoms(sop_class, sop_instance, syntax):
    expected = DicomBytesIO()
    write_file_meta_info(
        expected,
        create_file_meta(sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax),
        enforce_standard=True,
    )
    assert encode_file_meta(sop_class, sop_instance, syntax) == expected.getvalue()


def test_written_file_reads_back_with_the_received_bytes():
    ds = ct_slice()
    original = to_bytes(ds)
    offset = read_file_meta(original).dataset_offset
    received = original[offset:]
    buffer = io.BytesIO()
    digest = write_part10(buffer, _meta(ds), memoryview(received))
    written = buffer.getvalue()
    assert digest == hashlib.sha256(written).hexdigest()
    stored = read_file_meta(written)
    assert written[stored.dataset_offset :] == received
    assert (stored.sop_class_uid, stored.sop_instance_uid, stored.transfer_syntax) == (
        ds.SOPClassUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID,
    )
    assert dcmread(io.BytesIO(written)).PixelData == ds.PixelData


def test_meta_of_an_implicit_vr_file():
    ds = ct_slice(transfer_syntax="1.2.840.10008.1.2")
    stored = read_file_meta(to_bytes(ds))
    assert stored.transfer_syntax == "1.2.840.10008.1.2"


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b"\0" * 132, "DICM"),
        (lambda b: b[:128] + b"DICM" + b"\x02\x00\x01\x00" + b[136:], "group length"),
        (lambda b: b[:160], "cut short"),
    ],
)
def test_bad_meta_is_invalid_input(mangle, message):
    with pytest.raises(InvalidInput, match=message):
        read_file_meta(mangle(to_bytes(ct_slice())))
