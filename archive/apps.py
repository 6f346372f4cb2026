from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    name = "archive"
    verbose_name = "Archive"

    def ready(self) -> None:
        # Load the Celery app so that shared tasks bind to it in every Django process.
        from . import celery  # noqa: F401
