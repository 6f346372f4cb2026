from __future__ import annotations

import io

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archive.dicom.encapsulated import (
    DocumentKind,
    ModelInfo,
    RelatedFile,
    build_document_header,
    build_mtl_instance,
    build_obj_instance,
    build_pdf_instance,
    build_stl_instance,
    copy_encapsulated_document,
    encapsulated_document_span,
    read_encapsulated_document,
    read_encapsulated_obj,
    read_encapsulated_pdf,
    read_encapsulated_stl,
)
from archive.dicom.part10 import write_document_file
from archive.dicom.refs import MeshMeasurements
from archive.errors import InvalidInput, WrongSOPClass
from tests.factories.files import ascii_stl, binary_stl, pdf_bytes
from tests.unit.dicom.iod import check_iod, roundtrip

ROOT = "1.2.826.0.1.3680043.10.543"
MODEL = ModelInfo(frame_of_reference_uid=f"{ROOT}.50", model_group_uid=f"{ROOT}.51",
                  measurements=MeshMeasurements(triangles=4, area_mm2=236.6, volume_mm3=166.7,
                                                bbox_min_mm=(0, 0, 0), bbox_max_mm=(10, 10, 10)))


@pytest.mark.parametrize("payload", [binary_stl(), ascii_stl(), binary_stl(7, seed=2)])
def test_stl_roundtrip_is_byte_identical(payload, refs, tmp_path):
    ds = build_stl_instance(payload, model=MODEL, **refs)
    back = roundtrip(ds, tmp_path)
    assert read_encapsulated_stl(back) == payload
    assert back.EncapsulatedDocumentLength == len(payload)
    assert len(back.EncapsulatedDocument) % 2 == 0
    check_iod(back)


def test_stl_attributes(refs, tmp_path):
    back = roundtrip(build_stl_instance(binary_stl(), model=MODEL, **refs), tmp_path)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.3"
    assert back.Modality == "M3D"
    assert back.MIMETypeOfEncapsulatedDocument == "model/stl"
    unit = back.MeasurementUnitsCodeSequence[0]
    assert (unit.CodeValue, unit.CodingSchemeDesignator) == ("mm", "UCUM")
    assert back.ModelGroupUID == MODEL.model_group_uid
    assert back.FrameOfReferenceUID == MODEL.frame_of_reference_uid
    assert back.Manufacturer and back.ManufacturerModelName
    assert back.ContentDescription.startswith("4 tri")
    assert len(back.ContentDescription) <= 64


def test_builder_is_deterministic(refs):
    from tests.unit.dicom.iod import to_bytes

    a = to_bytes(build_stl_instance(binary_stl(), model=MODEL, **refs))
    b = to_bytes(build_stl_instance(binary_stl(), model=MODEL, **refs))
    assert a == b


@settings(max_examples=25, deadline=None)
@given(payload=st.binary(min_size=1, max_size=300))
def test_any_bytes_come_back_identical(payload):
    from datetime import datetime

    from archive.dicom.refs import PatientInfo, SeriesRef, StudyRef

    ds = build_obj_instance(
        payload, model=MODEL, patient=PatientInfo("P"), study=StudyRef(f"{ROOT}.1"),
        series=SeriesRef(f"{ROOT}.2"), instance_uid=f"{ROOT}.3", created=datetime(2020, 1, 1),
    )
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    buf.seek(0)
    assert read_encapsulated_obj(pydicom.dcmread(buf, force=True)) == payload


def test_obj_and_mtl_reference_each_other(refs, tmp_path):
    mtl_uid = f"{ROOT}.60"
    model = ModelInfo(frame_of_reference_uid=f"{ROOT}.50", model_group_uid=f"{ROOT}.51",
                      related=(RelatedFile("a.mtl", DocumentKind.MTL.sop_class_uid, mtl_uid, "model/mtl"),))
    obj = roundtrip(build_obj_instance(b"v 0 0 0\n", model=model, **refs), tmp_path)
    assert obj.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.4"
    ref = obj.ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == mtl_uid
    assert ref.RelativeURIReferenceWithinEncapsulatedDocument == "a.mtl"
    assert obj.ListOfMIMETypes == "model/mtl"
    check_iod(obj)
    mtl = build_mtl_instance(b"newmtl a\n", model=MODEL, **{**refs, "instance_uid": mtl_uid})
    mtl = roundtrip(mtl, tmp_path)
    assert mtl.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.5"
    assert "FrameOfReferenceUID" not in mtl
    check_iod(mtl)


def test_pdf_roundtrip_and_rejects_non_pdf(refs, tmp_path):
    pdf = pdf_bytes(2)
    back = roundtrip(build_pdf_instance(pdf, **refs), tmp_path)
    assert read_encapsulated_pdf(back) == pdf
    assert back.Modality == "DOC"
    check_iod(back)
    with pytest.raises(InvalidInput, match="%PDF-"):
        build_pdf_instance(b"GIF89a....", **refs)


def test_reader_checks_sop_class(refs):
    ds = build_pdf_instance(pdf_bytes(), **refs)
    with pytest.raises(WrongSOPClass):
        read_encapsulated_stl(ds)


def test_reader_rejects_length_disagreement(refs):
    ds = build_stl_instance(binary_stl(), model=MODEL, **refs)
    ds.EncapsulatedDocumentLength = len(ds.EncapsulatedDocument) + 10
    with pytest.raises(InvalidInput, match="EncapsulatedDocumentLength"):
        read_encapsulated_document(ds)


def test_empty_payload_is_rejected(refs):
    with pytest.raises(InvalidInput, match="must not be empty"):
        build_stl_instance(b"", model=MODEL, **refs)


def test_model_kinds_need_model_info(refs):
    with pytest.raises(TypeError):
        build_document_header(DocumentKind.STL, length=1, **refs)


def test_bad_uid_is_named(refs):
    with pytest.raises(InvalidInput, match="instance_uid.*'1.2.abc'"):
        build_stl_instance(binary_stl(), model=MODEL, **{**refs, "instance_uid": "1.2.abc"})


@pytest.mark.parametrize("payload", [binary_stl(3, seed=1), ascii_stl()])
def test_streamed_document_equals_in_memory_one(payload, refs, tmp_path):
    header = build_document_header(DocumentKind.STL, length=len(payload), model=MODEL, **refs)
    streamed = tmp_path / "streamed.dcm"
    write_document_file(streamed, header, payload=io.BytesIO(payload), length=len(payload), chunk_size=7)
    whole = build_stl_instance(payload, model=MODEL, **refs)
    reference = tmp_path / "reference.dcm"
    from archive.dicom.part10 import write_dataset_file

    write_dataset_file(reference, whole)
    assert streamed.read_bytes() == reference.read_bytes()
    out = io.BytesIO()
    assert copy_encapsulated_document(streamed, out, chunk_size=5) == len(payload)
    assert out.getvalue() == payload
    offset, length = encapsulated_document_span(streamed)
    assert streamed.read_bytes()[offset : offset + length] == payload


def test_streamed_document_short_payload_leaves_nothing(refs, tmp_path):
    header = build_document_header(DocumentKind.STL, length=100, model=MODEL, **refs)
    with pytest.raises(InvalidInput, match="before its declared length 100"):
        write_document_file(tmp_path / "x.dcm", header, payload=io.BytesIO(b"abc"), length=100)
    assert list(tmp_path.iterdir()) == []


def test_mesh_from_a_ct_shares_its_frame_and_cites_its_slices(refs, tmp_path):
    from archive.dicom.refs import SourceSeriesRef

    source = SourceSeriesRef(study_uid=f"{ROOT}.1", series_uid=f"{ROOT}.70", frame_of_reference_uid=f"{ROOT}.71",
                             sop_refs=(("1.2.840.10008.5.1.4.1.1.2", f"{ROOT}.72"),))
    back = roundtrip(build_stl_instance(binary_stl(), model=MODEL, source=source, **refs), tmp_path)
    assert back.FrameOfReferenceUID == f"{ROOT}.71"
    assert back.SourceInstanceSequence[0].ReferencedSOPInstanceUID == f"{ROOT}.72"
    check_iod(back)
