from django.core.management.base import BaseCommand, CommandParser

from federation.selectors import RETIRED_KEY_VALID
from federation.services import council_keys_rotate
from tenants.management.commands._council_arg import council_from_code


class Command(BaseCommand):
    help = "Issue a council a new signing key; the old one keeps verifying for seven days."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", help="the council's ONS code, e.g. E06000043")

    def handle(self, *args: object, **options: str) -> None:
        council = council_from_code(options["code"])
        key = council_keys_rotate(council=council)
        self.stdout.write(self.style.SUCCESS(f"{council.name} now signs with {key.key_id}"))
        self.stdout.write(f"  earlier keys stay valid for {RETIRED_KEY_VALID.days} days")
