from django.core.management.base import BaseCommand, CommandParser

from tenants.management.commands._council_arg import council_from_code
from tenants.services import council_suspend


class Command(BaseCommand):
    help = "Suspend a council: its host shows a 'suspended' page and nobody can sign in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code")

    def handle(self, *args: object, **options: str) -> None:
        council = council_suspend(council=council_from_code(options["code"]))
        self.stdout.write(self.style.SUCCESS(f"Suspended {council}"))
