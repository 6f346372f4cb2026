"""manage.py verify [--study UID] [--json]: recompute every SHA-256 and report."""

import json

from django.core.management.base import BaseCommand, CommandError

from archive.services import verify


class Command(BaseCommand):
    help = "Recompute the SHA-256 of every stored file (or one study's); report missing, mismatched and orphan files."

    def add_arguments(self, parser):
        parser.add_argument("--study", help="check only this StudyInstanceUID")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, study=None, **options):
        report = verify(study)
        if options["json"]:
            self.stdout.write(_dumps(report.as_dict()))
        else:
            self.stdout.write(f"checked {report.checked} files")
            for label, names in (("MISSING", report.missing), ("MISMATCH", report.mismatched), ("ORPHAN", report.orphans)):
                for name in names:
                    self.stdout.write(f"{label} {name}")
        if not report.ok:
            raise CommandError(
                f"fixity check failed: {len(report.missing)} missing, {len(report.mismatched)} "
                f"mismatched, {len(report.orphans)} orphan files"
            )
        self.stdout.write(self.style.SUCCESS("all files match their SHA-256"))


def _dumps(value) -> str:
    return json.dumps(value, indent=2)
