import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import council_onboard


class Command(BaseCommand):
    help = "Onboard a council: schema, domain, signing key and a first administrator's invitation."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help='e.g. "Brighton and Hove"')
        parser.add_argument("--code", required=True, help="ONS code, e.g. E06000043")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-name", default="")
        parser.add_argument("--slug", default="", help="web address name; made from the name")

    def handle(self, *args: object, **options: str) -> None:
        started = time.perf_counter()
        try:
            done = council_onboard(
                name=options["name"],
                code=options["code"],
                admin_email=options["admin_email"],
                admin_name=options["admin_name"],
                slug=options["slug"],
            )
        except ValidationError as exc:
            lines = [f"  {field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
            raise CommandError("Nothing was created:\n" + "\n".join(lines)) from exc
        elapsed = time.perf_counter() - started
        council = done.council
        self.stdout.write(
            self.style.SUCCESS(f"Onboarded {council.name} ({council.code}) in {elapsed:.2f}s")
        )
        self.stdout.write(f"  schema:      {council.schema_name}")
        self.stdout.write(f"  address:     {council.get_primary_domain()}")
        self.stdout.write(f"  admin:       {done.admin_email}")
        self.stdout.write(f"  invitation:  {done.invitation_url}")
        self.stdout.write("  (the invitation works once; send it to the administrator securely)")
