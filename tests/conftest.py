"""Shared fixtures. Every test gets its own archive storage folder."""

from __future__ import annotations

import pytest

try:
    import pydicom

    pydicom.config.settings.writing_validation_mode = pydicom.config.RAISE
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(autouse=True)
def archive_storage(request, tmp_path):
    """A fresh archive storage folder per test (a no-op for pure tests without Django)."""
    try:
        from django.conf import settings

        if not settings.configured:
            raise ImportError
        from django.test import override_settings
    except ImportError:
        yield None
        return
    from archive.storage import get_storage

    location = tmp_path / "dicom"
    with override_settings(VITRINE_STORAGE=str(location)):
        get_storage.cache_clear()
        yield location
    get_storage.cache_clear()


def stored_files(location) -> list[str]:
    """Files under an archive storage folder, the incoming folder included."""
    return sorted(str(p.relative_to(location)) for p in location.rglob("*") if p.is_file())


@pytest.fixture
def curator(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("curator", password="curator-pass-1")
    user.groups.add(Group.objects.get_or_create(name="curator")[0])
    return user


@pytest.fixture
def reader(django_user_model):
    return django_user_model.objects.create_user("someone", password="someone-pass-1")
