"""Celery tasks of the meshing app: thin wrappers over services."""

import threading

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings

from . import services


@shared_task(acks_late=True)
def run_mesh_job(job_id: int) -> None:
    services.run_mesh_job(job_id)


@shared_task(ignore_result=True)
def fail_stale_jobs() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): mark failed the jobs whose worker died."""
    return services.fail_stale_jobs()


@worker_process_init.connect
def warm_up_kernels(**_signal) -> threading.Thread | None:
    """Each pool process loads the meshing kernels in the background as it starts, so
    that the first job does not wait for them (about a minute of compiling after an
    install, a second or two from the disk cache). Celery waits only a few seconds for
    a new pool process to report, hence a thread."""
    if not settings.VITRINE_MESH_WARM_UP:
        return None
    thread = threading.Thread(target=services.warm_up_kernels, name="mesh-kernels", daemon=True)
    thread.start()
    return thread
