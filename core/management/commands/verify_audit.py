from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from core.audit import audit_verify
from tenants.selectors import council_by_code, councils_list


class Command(BaseCommand):
    help = "Check every council's audit chain (or one council's) for tampering."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("code", nargs="?", help="one council's ONS code; all if omitted")

    def handle(self, *args: object, **options: str | None) -> None:
        if options["code"]:
            council = council_by_code(options["code"])
            if council is None:
                raise CommandError(f"No council with the code {options['code']}")
            councils = [council]
        else:
            councils = list(councils_list())
        broken = 0
        for council in councils:
            with schema_context(council.schema_name):
                report = audit_verify()
            if report.intact:
                self.stdout.write(f"{council.code} {council.name}: {report.events} events, intact")
            else:
                broken += 1
                self.stdout.write(
                    self.style.ERROR(
                        f"{council.code} {council.name}: BROKEN at event {report.first_broken_id}"
                        f" ({report.problem})"
                    )
                )
        if broken:
            raise CommandError(f"{broken} audit chains are broken")
