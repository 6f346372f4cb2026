"""``manage.py modality add|list|remove``: the remote AEs Vitrine trusts and moves to."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from archive.models import Modality


class Command(BaseCommand):
    help = "Register, list and remove remote DICOM application entities."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="register an AE (or update it)")
        add.add_argument("ae_title")
        add.add_argument("host")
        add.add_argument("port", type=int)
        add.add_argument("--description", default="")
        sub.add_parser("list", help="list registered AEs")
        remove = sub.add_parser("remove", help="remove an AE")
        remove.add_argument("ae_title")

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"handle_{action}")(**options)

    def handle_add(self, *, ae_title: str, host: str, port: int, description: str, **_) -> None:
        if not 0 < len(ae_title.strip()) <= 16 or "\\" in ae_title:
            raise CommandError(f"an AE title has 1 to 16 characters and no backslash, got {ae_title!r}")
        if not 0 < port < 65536:
            raise CommandError(f"port must be between 1 and 65535, got {port}")
        modality, created = Modality.objects.update_or_create(
            ae_title=ae_title.strip(), defaults={"host": host, "port": port, "description": description}
        )
        self.stdout.write(f"{'added' if created else 'updated'} {modality}")

    def handle_list(self, **_) -> None:
        for modality in Modality.objects.all():
            line = f"{modality.ae_title:<16} {modality.host}:{modality.port}"
            self.stdout.write(f"{line}  {modality.description}".rstrip())

    def handle_remove(self, *, ae_title: str, **_) -> None:
        deleted, _ = Modality.objects.filter(ae_title=ae_title.strip()).delete()
        if not deleted:
            raise CommandError(f"no AE titled {ae_title!r} is registered")
        self.stdout.write(f"removed {ae_title}")
