"""Strict pydicom validation is on for every test (tests/conftest.py)."""

from __future__ import annotations

from datetime import datetime

import pytest

from archive.dicom.refs import PatientInfo, StudyRef
from ingest.converters.base import Target, make_uid_factory

UID_ROOT = "1.2.826.0.1.3680043.10.543"


@pytest.fixture
def out_dir(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def target(out_dir):
    return Target(
        out_dir=out_dir,
        patient=PatientInfo(patient_id="INV-1", name="Vase"),
        study=StudyRef(study_uid=f"{UID_ROOT}.1000"),
        uids=make_uid_factory(f"{UID_ROOT}.9"),
        now=datetime(2024, 1, 2, 3, 4, 5),
    )


def listing(folder):
    """Every file under ``folder``, hidden temporaries included."""
    return sorted(p.name for p in folder.rglob("*"))
