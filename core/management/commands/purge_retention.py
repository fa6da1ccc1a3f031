from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django_tenants.utils import schema_context

from core.retention import retention_archive, retention_purge
from tenants.models import Council
from tenants.selectors import council_by_code, councils_list


class Command(BaseCommand):
    help = (
        "Apply each council's retention policy now: archive people past retention, then purge "
        "what was archived long enough ago. The beat schedule does this every night."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--council", help="ONS code; every active council if left out")
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would happen; change nothing"
        )

    def handle(self, *args: object, **options: object) -> None:
        code = options.get("council")
        if code:
            council = council_by_code(str(code))
            if council is None:
                raise CommandError(f"No council with the code {code} is on this platform")
            councils = [council]
        else:
            councils = list(councils_list().filter(status=Council.Status.ACTIVE))
        dry_run = bool(options["dry_run"])
        today = timezone.localdate()
        verb = ("would archive", "would purge") if dry_run else ("archived", "purged")
        for council in councils:
            with schema_context(council.schema_name):
                archived = retention_archive(today=today, dry_run=dry_run)
                purged = retention_purge(today=today, dry_run=dry_run)
            self.stdout.write(
                f"{council.name} ({council.code}): {verb[0]} {len(archived.person_ids):,} people; "
                f"{verb[1]} {len(purged.person_ids):,} people and "
                f"{purged.involvements:,} involvements past retention"
            )
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
