"""Part 10 bytes in and out of DIMSE, without Django or a network."""

from __future__ import annotations

import hashlib
import io

import pytest
from pydicom import dcmread
from pydicom.dataset import FileMetaDataset

from archive.dimse.files import encode_file_meta, read_file_meta, write_part10
from archive.errors import InvalidInput
from tests.factories.datasets import ct_slice, to_bytes


def _meta(ds) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ds.file_meta.TransferSyntaxUID
    meta.ImplementationClassUID = ds.file_meta.ImplementationClassUID
    return meta


def test_written_file_reads_back_with_the_received_bytes():
    ds = ct_slice()
    original = to_bytes(ds)
    offset = read_file_meta(original).dataset_offset
    received = original[offset:]
    buffer = io.BytesIO()
    digest = write_part10(buffer, encode_file_meta(_meta(ds)), memoryview(received))
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
