from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from patchwork_demo.seeding import demo_code
from tenants.selectors import council_by_code


class Command(BaseCommand):
    help = "Print the current 6-digit sign-in code of a demo account (development only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--council", help="ONS code; the operator console if left out")

    def handle(self, *args: object, **options: str) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_code is for the demo: it never runs in production")
        schema = "public"
        if options.get("council"):
            council = council_by_code(options["council"])
            if council is None:
                raise CommandError(f"No council with the code {options['council']} is here")
            schema = council.schema_name
        with schema_context(schema):
            try:
                self.stdout.write(demo_code(email=options["email"]))
            except LookupError as exc:
                raise CommandError(str(exc)) from exc
