"""Celery tasks of the archive: thin wrappers over services."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def run_fixity_check(check_id: int) -> None:
    services.run_fixity_check(check_id)
