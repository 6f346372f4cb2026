"""Strict pydicom validation is on for every test (tests/conftest.py)."""

from __future__ import annotations

from datetime import datetime

import pytest

from archive.dicom.refs import PatientInfo, SeriesRef, StudyRef

UID_ROOT = "1.2.826.0.1.3680043.10.543"


@pytest.fixture
def refs():
    return dict(
        patient=PatientInfo(patient_id="INV-2024.17", name="Amphora^Attic"),
        study=StudyRef(study_uid=f"{UID_ROOT}.1", study_id="S1", started=datetime(2024, 5, 6, 7, 8, 9)),
        series=SeriesRef(series_uid=f"{UID_ROOT}.2", number=3, description="scan"),
        instance_uid=f"{UID_ROOT}.3",
        created=datetime(2024, 5, 6, 7, 8, 9),
    )
