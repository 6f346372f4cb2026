"""manage.py token USERNAME: print the user's API token, creating it if needed."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from archive.models import ApiToken


class Command(BaseCommand):
    help = "Print USERNAME's API token (for Authorization: Bearer), creating it if needed."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        self.stdout.write(ApiToken.for_user(user).key)
