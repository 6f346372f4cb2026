"""The meshing kernels load as a Celery pool process starts (``models3d.tasks``).

What ``pipeline.warm_up`` loads is tested in ``tests/unit/models3d/test_warm_up.py``;
here it is replaced by a recorder, so that this test compiles nothing.
"""

from __future__ import annotations

import logging
import threading

import pytest
from celery.signals import worker_process_init
from django.test import override_settings

from models3d import pipeline, tasks

pytestmark = pytest.mark.integration


def test_each_pool_process_loads_the_kernels_in_the_background(caplog, settings, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "warm_up", lambda: calls.append(threading.current_thread().name))
    assert tasks.warm_up_kernels in [ref() for _, ref in worker_process_init.receivers]
    with caplog.at_level(logging.INFO, logger="models3d.services"):
        thread = tasks.warm_up_kernels()
        thread.join(timeout=60)
    assert calls == ["mesh-kernels"]  # once, in a thread of its own
    assert "meshing kernels ready" in caplog.text
    assert (settings.VAR_DIR / "mesh-kernels.lock").exists()


def test_a_failed_warm_up_leaves_the_worker_running(caplog, monkeypatch):
    def broken() -> None:
        raise RuntimeError("no compiler")

    monkeypatch.setattr(pipeline, "warm_up", broken)
    with caplog.at_level(logging.ERROR, logger="models3d.services"):
        tasks.warm_up_kernels().join(timeout=60)
    assert "loading the meshing kernels failed" in caplog.text and "no compiler" in caplog.text


def test_workers_that_never_mesh_can_leave_it_out():
    with override_settings(VITRINE_MESH_WARM_UP=False):
        assert tasks.warm_up_kernels() is None
