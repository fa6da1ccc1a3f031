from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.archives import SchemaGone
from tenants.backups import deployment_backup


class Command(BaseCommand):
    help = (
        "Back up the whole deployment (platform tables, the council template and every "
        "council) to one sealed, checksummed archive."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="folder for the archive (default: PATCHWORK_DATA_DIR/backups)",
        )

    def handle(self, *args: object, **options: object) -> None:
        directory = options["output"] or settings.DATA_DIR / "backups"
        try:
            backup = deployment_backup(directory=directory)  # type: ignore[arg-type]
        except SchemaGone as exc:
            raise CommandError(str(exc)) from exc
        size = backup.path.stat().st_size
        self.stdout.write(self.style.SUCCESS(f"Backed up to {backup.path}"))
        self.stdout.write(
            f"  {backup.schemas} schemas, {backup.tables} tables, {backup.rows} rows, "
            f"{size / 1e6:.1f} MB in {backup.seconds:.1f}s"
        )
