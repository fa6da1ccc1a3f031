from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from federation.directory.models import DirectoryDocument
from federation.directory.services import directory_receive


class Command(BaseCommand):
    help = (
        "Verify a signed directory of councils, apply it on this deployment and serve it at "
        "/.well-known/patchwork/directory on the platform host for other deployments."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the signed directory (JSON)")

    def handle(self, *args: object, **options: str) -> None:
        try:
            content = Path(options["file"]).read_bytes()
        except OSError as exc:
            raise CommandError(f"Could not read {options['file']}: {exc.strerror}") from exc
        record = directory_receive(
            content=content, source=f"publish:{options['file']}", publish=True
        )
        if record.decision != DirectoryDocument.Decision.ACCEPTED:
            raise CommandError(f"Refused, nothing changed: {record.reason}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Published directory {record.sequence}, "
                f"valid until {record.valid_until:%Y-%m-%d %H:%M} UTC"
            )
        )
        for line in record.changes:
            self.stdout.write(f"  {line}")
