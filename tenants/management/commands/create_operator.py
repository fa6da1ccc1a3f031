from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from accounts.services import user_invite
from tenants.db import tenant_connection
from tenants.selectors import site_url


class Command(BaseCommand):
    help = "Invite a platform operator (an account in the public schema, for the console)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", required=True)

    def handle(self, *args: object, **options: str) -> None:
        tenant_connection().set_schema_to_public()
        try:
            _, token = user_invite(
                email=options["email"], full_name=options["name"], role=User.Role.OPERATOR
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        url = site_url(settings.PLATFORM_DOMAIN, f"/invitation/{token}/")
        self.stdout.write(self.style.SUCCESS(f"Invited operator {options['email']}"))
        self.stdout.write(f"  invitation: {url}")
