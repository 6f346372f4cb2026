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


@pytest.fixture
def job_worker(tmp_path):
    """A real Celery worker over the configured broker (the filesystem transport, or
    Redis in the scaled run), with this test's own queue folders. Use it with
    ``django_db(transaction=True)`` so that the worker's thread sees the rows."""
    from celery.contrib.testing.worker import start_worker

    from archive.celery import app

    saved = app.conf.broker_transport_options
    own_folders = app.conf.broker_url.startswith("filesystem")
    if own_folders:
        queue = tmp_path / "queue"
        queue.mkdir()
        app.conf.broker_transport_options = {
            "data_folder_in": str(queue), "data_folder_out": str(queue),
            "control_folder": str(tmp_path / "control"),
        }
        _forget_connections(app)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60) as worker:
            yield worker
    finally:
        if own_folders:
            app.conf.broker_transport_options = saved
            _forget_connections(app)


def _forget_connections(app) -> None:
    """Producers keep their connection, and its queue folder, across tests: drop them."""
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
