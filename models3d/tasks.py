"""Celery tasks of the meshing app: thin wrappers over services."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def run_mesh_job(job_id: int) -> None:
    services.run_mesh_job(job_id)


@shared_task(ignore_result=True)
def fail_stale_jobs() -> int:
    """Periodic (``CELERY_BEAT_SCHEDULE``): mark failed the jobs whose worker died."""
    return services.fail_stale_jobs()
