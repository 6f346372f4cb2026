"""The portal's front page shows each visitor what they may see, and nothing more."""

from __future__ import annotations

import pytest

from archive.models import Study, Visibility
from tests.factories.datasets import ct_series
from tests.integration.dicomweb.conftest import store

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_front_page_lists_visible_studies_only(client, curator):
    public = ct_series(1, patient_id="SHOWN", patient_name="Public^Bust")[0]
    private = ct_series(1, patient_id="HIDDEN", patient_name="Private^Patient")[0]
    store(public)
    store(private)
    Study.objects.filter(study_uid=public.StudyInstanceUID).update(visibility=Visibility.PUBLIC)
    page = client.get("/").content.decode()
    assert "Public^Bust" in page and "Private^Patient" not in page and "HIDDEN" not in page
    assert f"/iiif/presentation/studies/{public.StudyInstanceUID}/manifest" in page
    client.force_login(curator)
    page = client.get("/").content.decode()
    assert "Private^Patient" in page and "Upload" in page
    assert f"/series/{private.SeriesInstanceUID}/mesh" in page
