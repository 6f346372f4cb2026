"""Fixtures for the IIIF routes: a public WSI series, a public CT series, a private study."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from archive.dicom.photo import build_photo_from_pixels
from archive.dicom.refs import PatientInfo, SeriesRef, StudyRef
from archive.models import Study, Visibility
from archive.services import store_file
from archive.storage import get_storage
from iiif import services
from tests.factories.datasets import ct_series, uid
from tests.factories.images import build_validator_test_image
from tests.factories.wsi import build_wsi_series
from tests.integration.dicomweb.conftest import basic, store


@pytest.fixture(autouse=True)
def fresh_source_cache():
    """Each test starts with an empty per-process source cache (paths differ per test)."""
    services.clear_cache()
    yield
    services.clear_cache()


def publish(study_uid: str) -> None:
    Study.objects.filter(study_uid=study_uid).update(visibility=Visibility.PUBLIC)


def store_path(path) -> None:
    storage = get_storage()
    with storage.incoming_file() as fp:
        fp.write(path.read_bytes())
    store_file(fp.name)


@pytest.fixture
def wsi(db, tmp_path):
    slide = build_wsi_series(tmp_path / "wsi", size=(1000, 700), tile=256, levels=3)
    for path in slide.paths:
        store_path(path)
    publish(slide.study_uid)
    return slide


@pytest.fixture
def ct(db):
    datasets = ct_series(3, size=64, patient_id="CT-1", patient_name="Mummy^Cat")
    for ds in datasets:
        store(ds)
    publish(datasets[0].StudyInstanceUID)
    return datasets


def build_photo(pixels: np.ndarray, *, study_uid: str | None = None, patient_id: str = "PHOTO-1"):
    return build_photo_from_pixels(
        pixels, patient=PatientInfo(patient_id=patient_id, name="Vase"),
        study=StudyRef(study_uid=study_uid or uid(), description="Photographs"),
        series=SeriesRef(series_uid=uid(), description="Views"), instance_uid=uid(),
        created=datetime(2024, 1, 2, 3, 4, 5), compress=False,
    )


@pytest.fixture
def validator_image(db):
    ds = build_photo(build_validator_test_image())
    store(ds)
    publish(ds.StudyInstanceUID)
    return ds


@pytest.fixture
def private_ct(db):
    datasets = ct_series(2, size=32, patient_id="PRIV-1", patient_name="Private^Patient")
    for ds in datasets:
        store(ds)
    return datasets


@pytest.fixture
def reader_auth(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("reader1", password="reader-pass-1")
    user.groups.add(Group.objects.get_or_create(name="reader")[0])
    return basic("reader1", "reader-pass-1")


@pytest.fixture
def stranger_auth(django_user_model):
    django_user_model.objects.create_user("stranger", password="stranger-pass-1")
    return basic("stranger", "stranger-pass-1")
