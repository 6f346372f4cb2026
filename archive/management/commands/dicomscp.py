"""``manage.py dicomscp``: run the DIMSE SCP in the foreground."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from archive.dimse.scp import serve


class Command(BaseCommand):
    help = "Run the DICOM SCP (C-ECHO, C-STORE, C-FIND, C-GET, C-MOVE) in the foreground."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.VITRINE_DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.VITRINE_DICOM_PORT)
        parser.add_argument("--ae-title", default=settings.VITRINE_AE_TITLE)

    def handle(self, *args, host: str, port: int, ae_title: str, **options) -> None:
        self.stdout.write(
            f"DICOM SCP {ae_title} on {host}:{port} "
            f"(store from {settings.VITRINE_STORE_FROM}, query from {settings.VITRINE_QUERY_FROM})"
        )
        self.stdout.flush()
        serve(host, port, ae_title)
