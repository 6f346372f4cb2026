"""manage.py serve: HTTP, the DICOM SCP and a Celery worker, together, until Ctrl-C.

Each runs as a child process; if one of them dies the others are stopped too, so a
half-running archive never looks healthy.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from archive.httpserver import http_command


class Command(BaseCommand):
    help = "Start the HTTP server (granian), the DICOM SCP and a Celery worker."

    def add_arguments(self, parser):
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")

    def handle(self, *args, **options):
        bin_dir = Path(sys.executable).parent
        http = f"{settings.VITRINE_HTTP_HOST}:{settings.VITRINE_HTTP_PORT}"
        commands = {
            "http": http_command(
                bin_dir, settings.VITRINE_HTTP_HOST, settings.VITRINE_HTTP_PORT,
                settings.VITRINE_HTTP_WORKERS, settings.VITRINE_HTTP_THREADS,
            ),
            "dicom": [sys.executable, "manage.py", "dicomscp"],
        }
        if not options["no_worker"]:
            for key in ("data_folder_in", "processed_folder", "control_folder"):
                folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
                if folder:
                    Path(folder).mkdir(parents=True, exist_ok=True)
            commands["worker"] = [
                str(bin_dir / "celery"), "-A", "archive.celery", "worker", "--loglevel", "INFO",
                "--concurrency", str(settings.CELERY_WORKER_CONCURRENCY),
                # Beat in the same process sends the periodic tasks (CELERY_BEAT_SCHEDULE).
                "--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule"),
            ]
        # The HTTP server in a session of its own: Ctrl-C signals the terminal's whole
        # process group, and granian's workers, signalled directly, stop answering their
        # parent and are killed after 10 s. Its parent alone gets SIGTERM, from here.
        children = {
            name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=name == "http")
            for name, cmd in commands.items()
        }
        base = settings.VITRINE_PUBLIC_URL or f"http://{http}"
        self.stdout.write(
            f"\nVitrine is running:\n"
            f"  portal     {base}/\n"
            f"  admin      {base}/admin/\n"
            f"  DICOMweb   {base}/dicomweb\n"
            f"  IIIF       {base}/iiif/3/\n"
            f"  DICOM SCP  AE title {settings.VITRINE_AE_TITLE}, port {settings.VITRINE_DICOM_PORT}\n"
            f"  storage    {settings.VITRINE_STORAGE}\n"
            f"Press Ctrl-C to stop.\n"
        )
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with status {child.returncode}; stopping")
                    exit_code, stopping = 1, True
            time.sleep(0.5)
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        sys.exit(exit_code)
