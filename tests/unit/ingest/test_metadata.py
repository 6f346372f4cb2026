from __future__ import annotations

import json
from datetime import datetime

import pytest

from archive.errors import InvalidInput
from ingest.metadata import (
    CuratorMetadata,
    build_metadata_attributes,
    parse_sidecar,
    read_private_metadata,
    to_patient_info,
    to_study_ref,
)

SIDECAR = {
    "inventory_number": "1887,0512.3",
    "title": "Red-figure amphora ^ with = signs",
    "holding_institution": "Musée d'Exemple",
    "collection": "Antiquities",
    "description": "Attic, found 1887.\nRestored 1962.",
    "object_date": "c. 450 BC",
    "scan_date": "2024-03-01T10:20:30",
    "rights": "All rights reserved",
    "licence": "https://creativecommons.org/licenses/by/4.0/",
    "attribution": "Photo: Musée d'Exemple",
    "voxel_size_mm": [0.05, 0.05, 0.1],
}


def test_museum_mapping():
    meta = parse_sidecar(json.dumps(SIDECAR))
    patient = to_patient_info(meta)
    assert patient.patient_id == "1887,0512.3"
    assert "^" not in patient.name and "=" not in patient.name
    assert patient.issuer == "Musée d'Exemple"
    study = to_study_ref(meta, study_uid="1.2.3")
    assert study.started == datetime(2024, 3, 1, 10, 20, 30)
    assert study.description.startswith("Red-figure amphora")
    extra = build_metadata_attributes(meta)
    assert extra.InstitutionName == "Musée d'Exemple"
    assert extra.PatientComments.startswith("Attic")
    private = read_private_metadata(extra)
    assert private["licence"] == SIDECAR["licence"]
    assert private["object_date"] == "c. 450 BC"
    assert private["title"] == SIDECAR["title"]
    assert meta.voxel_size_mm == (0.05, 0.05, 0.1)


def test_clinical_keeps_patient_fields():
    meta = parse_sidecar(json.dumps({"kind": "clinical", "inventory_number": "MRN123",
                                     "patient_name": "Doe^Jane", "patient_birth_date": "1970-01-02",
                                     "patient_sex": "F"}))
    patient = to_patient_info(meta)
    assert (patient.name, patient.sex, patient.birth_date.year) == ("Doe^Jane", "F", 1970)
    assert read_private_metadata(build_metadata_attributes(meta)) == {}


@pytest.mark.parametrize("raw, message", [
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"title": "x"}', "needs 'inventory_number'"),
    ('{"inventory_number": "1", "colour": "red"}', "unknown fields: colour"),
    ('{"inventory_number": "1", "scan_date": "yesterday"}', "'scan_date'"),
    ('{"inventory_number": "1", "voxel_size_mm": [1, 2]}', "'voxel_size_mm'"),
    ('{"inventory_number": "1", "voxel_size_mm": [1, 0, 2]}', "voxel_size_mm must be three positive"),
    ('{"inventory_number": "1", "title": 5}', "'title'"),
    ('{"inventory_number": "' + "x" * 65 + '"}', "inventory_number must be at most 64"),
    ('{"inventory_number": "a\\\\b"}', "backslashes"),
    ('{"inventory_number": "1", "kind": "zoo"}', "kind must be"),
])
def test_sidecar_validation(raw, message):
    with pytest.raises(InvalidInput, match=message):
        parse_sidecar(raw)


def test_metadata_survives_a_part10_roundtrip(tmp_path):
    import pydicom

    from archive.dicom.encapsulated import build_pdf_instance
    from archive.dicom.part10 import write_dataset_file
    from archive.dicom.refs import SeriesRef
    from tests.factories.files import pdf_bytes

    meta = CuratorMetadata(**{**{k: v for k, v in SIDECAR.items() if k not in ("scan_date", "voxel_size_mm")}})
    ds = build_pdf_instance(pdf_bytes(), patient=to_patient_info(meta), study=to_study_ref(meta, study_uid="1.2.3"),
                            series=SeriesRef("1.2.4"), instance_uid="1.2.5", created=datetime(2024, 1, 1))
    ds.update(build_metadata_attributes(meta))
    write_dataset_file(tmp_path / "x.dcm", ds)
    back = pydicom.dcmread(tmp_path / "x.dcm")
    assert read_private_metadata(back)["attribution"] == SIDECAR["attribution"]
    assert back.PatientID == SIDECAR["inventory_number"]
