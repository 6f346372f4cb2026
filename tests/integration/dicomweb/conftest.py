from __future__ import annotations

import base64

import pytest

from archive.models import Study, Visibility
from archive.services import store_file
from archive.storage import get_storage
from tests.factories.datasets import ct_series, to_bytes


def store(ds, **kwargs):
    with get_storage().incoming_file() as fp:
        fp.write(to_bytes(ds))
    return store_file(fp.name, **kwargs).instance


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def public_series(db):
    datasets = ct_series(3, patient_id="PUB-1", patient_name="Public^Object")
    for ds in datasets:
        store(ds)
    Study.objects.filter(study_uid=datasets[0].StudyInstanceUID).update(visibility=Visibility.PUBLIC)
    return datasets


@pytest.fixture
def private_series(db):
    datasets = ct_series(2, patient_id="PRIV-1", patient_name="Private^Patient", study_date="20230301")
    for ds in datasets:
        store(ds)
    return datasets


@pytest.fixture
def curator_auth(curator):
    return basic("curator", "curator-pass-1")
