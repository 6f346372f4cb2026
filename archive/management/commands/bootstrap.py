"""manage.py bootstrap: the roles, and a first admin account on a new archive."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from archive.models import CURATOR_GROUP, READER_GROUP


class Command(BaseCommand):
    help = "Create the curator and reader roles and, if there is no superuser yet, an admin account."

    def handle(self, *args, **options):
        for name in (CURATOR_GROUP, READER_GROUP):
            Group.objects.get_or_create(name=name)
        password_file = settings.VAR_DIR / "admin-password.txt"
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            where = f" (its first password is in {password_file})" if password_file.exists() else ""
            self.stdout.write(f"Admin account: exists{where}")
            return
        password = secrets.token_urlsafe(12)
        admin = users.create_superuser("admin", email="", password=password)
        admin.groups.add(Group.objects.get(name=CURATOR_GROUP))
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.stdout.write(f"Admin account created: user 'admin', password '{password}' (also in {password_file})")
