from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from tenants import archives
from tenants.management.commands._council_arg import council_from_code
from tenants.services import council_export


class Command(BaseCommand):
    help = "Export one council's data to a sealed, checksummed archive (nothing is removed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code")
        parser.add_argument("--output", type=Path, default=None, help="folder for the archive")

    def handle(self, *args: object, **options: object) -> None:
        council = council_from_code(str(options["code"]))
        path = council_export(council=council, directory=options["output"])  # type: ignore[arg-type]
        manifest = archives.archive_manifest(path)
        rows = sum(facts["rows"] for facts in manifest["tables"].values())
        self.stdout.write(self.style.SUCCESS(f"Exported {council} to {path}"))
        self.stdout.write(f"  {len(manifest['tables'])} tables, {rows} rows (checked)")
