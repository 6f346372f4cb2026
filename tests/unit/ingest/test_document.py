from __future__ import annotations

import pydicom
import pytest

from archive.dicom.encapsulated import read_encapsulated_pdf
from archive.errors import InvalidInput
from ingest.converters.document import convert_dicom, convert_pdf, iter_dicom_files
from tests.factories.files import pdf_bytes
from tests.unit.dicom.iod import check_iod
from tests.unit.ingest.conftest import listing


def test_pdf_byte_identical(target, tmp_path):
    src = tmp_path / "report.pdf"
    src.write_bytes(pdf_bytes(3))
    [out] = convert_pdf(src, target)
    ds = pydicom.dcmread(out.path)
    assert read_encapsulated_pdf(ds) == src.read_bytes()
    assert ds.DocumentTitle == "report.pdf"
    check_iod(ds)


def test_non_pdf_rejected(target, tmp_path):
    src = tmp_path / "fake.pdf"
    src.write_bytes(b"<html>not a pdf</html>")
    with pytest.raises(InvalidInput, match="%PDF-"):
        convert_pdf(src, target)
    assert listing(target.out_dir) == []


def test_dicom_passthrough_copies_bytes(target, tmp_path):
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(pdf_bytes())
    [made] = convert_pdf(pdf, target)
    (src_dir / "sub").mkdir()
    copy = src_dir / "sub" / "IM0001"
    copy.write_bytes(made.path.read_bytes())
    (src_dir / "notes.txt").write_text("not dicom")
    made.path.unlink()
    assert list(iter_dicom_files([src_dir])) == [copy]
    [out] = convert_dicom(src_dir, target)
    assert out.path.read_bytes() == copy.read_bytes()
    assert out.sop_instance_uid == made.sop_instance_uid


def test_dicom_without_uids_rejected(target, tmp_path):
    ds = pydicom.Dataset()
    ds.PatientID = "x"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3"
    path = tmp_path / "bad.dcm"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InvalidInput, match="no StudyInstanceUID"):
        convert_dicom(path, target)
    assert listing(target.out_dir) == []
