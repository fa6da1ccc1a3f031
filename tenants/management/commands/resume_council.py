from django.core.management.base import BaseCommand, CommandParser

from tenants.management.commands._council_arg import council_from_code
from tenants.services import council_resume


class Command(BaseCommand):
    help = "Make a suspended council active again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code")

    def handle(self, *args: object, **options: str) -> None:
        council = council_resume(council=council_from_code(options["code"]))
        self.stdout.write(self.style.SUCCESS(f"{council} is active"))
