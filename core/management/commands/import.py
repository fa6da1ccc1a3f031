"""Import a feed from a source system into one council: `patchwork import --council
E06000043 --source "Liquidlogic LCS" --format csv people.csv [--dry-run] [--full-snapshot]`.
It runs the import here (not on a worker), printing progress, then the summary and where
the per-row report is. The source system is created on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from core.feeds import OUTCOMES, feed_import, import_run_start
from core.models import ImportRun, SourceSystem
from tenants.selectors import council_by_code


class Command(BaseCommand):
    help = "Import people, relationships and involvements from a source system's feed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the CSV template or a FHIR R4 Bundle")
        parser.add_argument("--council", required=True, help="the council's ONS code")
        parser.add_argument("--source", required=True, help="the source system's name")
        parser.add_argument("--format", choices=ImportRun.Format.values, default="csv")
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would change; change nothing"
        )
        parser.add_argument(
            "--full-snapshot",
            action="store_true",
            help="the file holds everything the source has: end its involvements missing here",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        council = council_by_code(options["council"])
        if council is None:
            raise CommandError(f"No council with the code {options['council']}")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"There is no file at {path}")
        with schema_context(council.schema_name):
            source, _ = SourceSystem.objects.get_or_create(name=options["source"].strip())
            if not source.active:
                raise CommandError(f"The source system {source.name} is switched off")
            with path.open("rb") as binary:
                run = import_run_start(
                    source=source,
                    file_format=options["format"],
                    binary=binary,
                    full_snapshot=options["full_snapshot"],
                    dry_run=options["dry_run"],
                )
            run = feed_import(run=run, progress=self._progress)
        self.stdout.write("")
        what = "Dry run (nothing changed)" if run.dry_run else "Imported"
        self.stdout.write(f"{council.name}: {what} from {source.name}, {run.rows_read} rows")
        for outcome in OUTCOMES:
            self.stdout.write(f"  {outcome}: {run.counts.get(outcome, 0)}")
        self.stdout.write(f"Report: {run.report_path}")
        if run.status == ImportRun.Status.FAILED:
            raise CommandError(run.error)

    def _progress(self, rows: int) -> None:
        self.stdout.write(f"\r{rows} rows read", ending="")
        self.stdout.flush()
