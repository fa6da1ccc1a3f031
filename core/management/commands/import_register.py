"""Import a register file into one council: `patchwork import_register --council E06000043
--gias edubasealldata.csv --la-code 846` (or --ods-gp epraccur.csv / --ods-trusts etr.csv
with --postcode-districts "BN1 BN2 BN3"). Without an area, the council's saved one is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from core.models import CouncilPolicy, Organisation
from core.registers import (
    ImportReport,
    register_area_clean,
    register_area_of,
    register_area_set,
    register_import,
)
from tenants.selectors import council_by_code

Register = Organisation.Register


class Command(BaseCommand):
    help = "Import schools (GIAS) or NHS organisations (ODS) from a register file into a council."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--council", required=True, help="the council's ONS code")
        files = parser.add_mutually_exclusive_group(required=True)
        files.add_argument("--gias", type=Path, help="a GIAS edubasealldata CSV")
        files.add_argument("--ods-gp", type=Path, help="an ODS epraccur CSV (GP practices)")
        files.add_argument("--ods-trusts", type=Path, help="an ODS etr CSV (NHS trusts)")
        parser.add_argument("--la-code", default="", help="local authority code(s), e.g. 846")
        parser.add_argument(
            "--postcode-districts", default="", help='postcode districts, e.g. "BN1 BN2"'
        )
        parser.add_argument(
            "--partial",
            action="store_true",
            help="the file is not a full extract: do not close organisations missing from it",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        council = council_by_code(options["council"])
        if council is None:
            raise CommandError(f"No council with the code {options['council']}")
        if options["gias"]:
            register, path, area_text = Register.GIAS, options["gias"], options["la_code"]
        elif options["ods_gp"]:
            register, path = Register.ODS_GP, options["ods_gp"]
            area_text = options["postcode_districts"]
        else:
            register, path = Register.ODS_TRUST, options["ods_trusts"]
            area_text = options["postcode_districts"]
        path = Path(path)
        if not path.is_file():
            raise CommandError(f"There is no file at {path}")
        with schema_context(council.schema_name):
            try:
                area = register_area_clean(
                    register, area_text or register_area_of(CouncilPolicy.current(), register)
                )
                with path.open("rb") as binary:
                    report = register_import(
                        register=register,
                        binary=binary,
                        area=area,
                        actor=None,
                        full_extract=not options["partial"],
                    )
                register_area_set(register=register, area=area)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
        self._print(council.name, report)

    def _print(self, council: str, report: ImportReport) -> None:
        self.stdout.write(f"{council}: {report.register_label}, area {' '.join(report.area)}")
        for line in report.changes:
            where = f"line {line.line}" if line.line else "not in file"
            reason = f": {line.reason}" if line.reason else ""
            self.stdout.write(f"  {line.outcome:9} {line.code} {line.name} ({where}){reason}")
        counts = ", ".join(f"{count} {outcome}" for outcome, count in report.counts.items())
        self.stdout.write(f"{counts}; {report.outside_area} outside the area")
