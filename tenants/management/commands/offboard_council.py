from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.management.commands._council_arg import council_from_code
from tenants.services import council_offboard


class Command(BaseCommand):
    help = "Export a council's data to a sealed archive, then remove the council and its schema."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code")
        parser.add_argument("--confirm", required=True, help="the council's code again")
        parser.add_argument("--output", type=Path, default=None, help="folder for the archive")

    def handle(self, *args: object, **options: object) -> None:
        council = council_from_code(str(options["code"]))
        try:
            archive = council_offboard(
                council=council,
                confirm_code=str(options["confirm"]),
                directory=options["output"],  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(self.style.SUCCESS(f"Offboarded {council}. Archive: {archive}"))
