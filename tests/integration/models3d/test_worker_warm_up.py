"""The meshing kernels load as a Celery pool process starts (``models3d.tasks``)."""

from __future__ import annotations

import logging

import pytest
from celery.signals import worker_process_init
from django.test import override_settings

from models3d import tasks

pytestmark = pytest.mark.integration


def test_each_pool_process_loads_the_kernels_in_the_background(caplog, settings):
    assert tasks.warm_up_kernels in [ref() for _, ref in worker_process_init.receivers]
    with caplog.at_level(logging.INFO, logger="models3d.services"):
        thread = tasks.warm_up_kernels()
        thread.join(timeout=600)
    assert not thread.is_alive()
    assert "meshing kernels ready" in caplog.text
    assert (settings.VAR_DIR / "mesh-kernels.lock").exists()


def test_workers_that_never_mesh_can_leave_it_out():
    with override_settings(VITRINE_MESH_WARM_UP=False):
        assert tasks.warm_up_kernels() is None
