"""manage.py ingest PATH... --metadata meta.json [--collection NAME] [--recursive] [--public] [--json]

Converts one object's files (STL, OBJ+MTL+textures, PDF, photographs, slides, TIFF
stacks, NIfTI, DICOM, or zips of them) and stores them, all or nothing, with the same
service the web upload's jobs run, but here and now (no worker needed). A progress
bar goes to stderr; a summary table, or with ``--json`` the stored Study, Series and
SOP Instance UIDs, to stdout.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from archive.errors import ArchiveError
from archive.models import Visibility
from ingest import services
from ingest.models import IngestJob

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Convert and store one object's files (all or nothing), with curator metadata."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="files, zips, or folders with --recursive")
        parser.add_argument("--metadata", metavar="JSON", help="curator metadata sidecar (ingest/metadata.py fields)")
        parser.add_argument("--collection", metavar="NAME", help="the collection the object belongs to (created if new)")
        parser.add_argument("--recursive", action="store_true", help="accept folders and take every file under them")
        parser.add_argument("--public", action="store_true", help="make the stored studies public")
        parser.add_argument("--user", metavar="USERNAME", help="owner of the stored studies")
        parser.add_argument("--json", action="store_true", help="print the stored UIDs as JSON on stdout")

    def handle(self, *args, **options):
        paths = self._paths(options["paths"], options["recursive"])
        metadata = self._metadata(options["metadata"], paths)
        if options["collection"]:
            metadata["collection"] = options["collection"]
        owner = None
        if options["user"]:
            owner = get_user_model().objects.filter(username=options["user"]).first()
            if owner is None:
                raise CommandError(f"no user {options['user']!r}")
        visibility = Visibility.PUBLIC if options["public"] else Visibility.PRIVATE
        try:
            job = services.start_local_job(owner, paths, metadata=metadata, visibility=visibility)
        except ArchiveError as exc:
            raise CommandError(f"metadata: {exc.detail}") from None
        job = services.run_ingest_job(job.pk, on_progress=self._bar)
        self._bar(job.stage, job.percent, end=True)
        if job.state != IngestJob.State.DONE:
            raise CommandError(f"ingest failed, nothing was stored: {job.message}")
        if options["json"]:
            self.stdout.write(json.dumps(job.result, indent=2))
        else:
            self._table(job)

    def _paths(self, given: list[str], recursive: bool) -> list[Path]:
        paths = []
        for text in given:
            path = Path(text).expanduser()
            if not path.exists():
                raise CommandError(f"{text}: no such file or folder")
            if path.is_dir() and not recursive:
                raise CommandError(f"{text} is a folder: pass --recursive to ingest the files under it")
            paths.append(path.resolve())
        return paths

    def _metadata(self, option: str | None, paths: list[Path]) -> dict:
        candidates = [Path(option)] if option else [
            folder / name for p in paths for folder in ([p] if p.is_dir() else [p.parent])
            for name in services.SIDECAR_NAMES
        ]
        for path in candidates:
            if path.is_file():
                try:
                    return services.read_sidecar(path)
                except ArchiveError as exc:
                    raise CommandError(f"{path}: {exc.detail}") from None
            if option:
                raise CommandError(f"{option}: no such metadata file")
        raise CommandError("curator metadata is needed: pass --metadata meta.json (at least inventory_number)")

    def _bar(self, stage: str, percent: int, end: bool = False) -> None:
        filled = BAR_WIDTH * percent // 100
        line = f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}% {stage:<32}"
        self.stderr.write(line, ending="\n" if end else "")
        self.stderr.flush()

    def _table(self, job: IngestJob) -> None:
        rows = [("Study UID", "Series UID", "Modality", "Instances", "Description")]
        for study in job.result["studies"]:
            for series in study["series"]:
                rows.append((study["study_uid"], series["series_uid"], series["modality"],
                             str(len(series["instances"])), series["description"]))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for n, row in enumerate(rows):
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if n == 0:
                self.stdout.write("  ".join("-" * width for width in widths))
        self.stdout.write(f"{job.message}; object {job.result['object_id']}")
