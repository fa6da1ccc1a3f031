import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import get_tenant_base_schema

from tenants.selectors import councils_list, migration_state, public_migrations_pending
from tenants.services import template_refresh

NOTHING_TO_DO = "Nothing to migrate: every schema was already up to date"


def applied(pending: int) -> str:
    if not pending:
        return "up to date"
    return f"{pending} migration{'s' if pending != 1 else ''} applied"


class Command(BaseCommand):
    help = (
        "Migrate the whole deployment: the public schema, then the template new councils are "
        "cloned from, then only the councils with migrations pending (in parallel)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--parallel", type=int, default=1, help="councils at once")

    def handle(self, *args: object, **options: int) -> None:
        public = public_migrations_pending()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        self.stdout.write(f"Public schema: {applied(public)}")
        template = migration_state(get_tenant_base_schema()).pending
        template_refresh()
        self.stdout.write(f"Council template: {applied(template)}")
        stale = [c for c in councils_list() if migration_state(c.schema_name).pending]
        self.stdout.write(f"Councils with migrations pending: {len(stale)}")
        if not (public or template or stale):
            # Deployment tools read this line to report "no change".
            self.stdout.write(self.style.SUCCESS(NOTHING_TO_DO))
            return

        def migrate(schema: str) -> tuple[str, int, str]:
            # A process per council: the migration machinery is not thread-safe.
            done = subprocess.run(
                [sys.executable, "-m", "deploy.cli", "migrate_schemas", f"--schema={schema}"],
                capture_output=True,
                text=True,
                check=False,
            )
            return schema, done.returncode, done.stderr

        with ThreadPoolExecutor(max_workers=max(1, options["parallel"])) as pool:
            failures = [r for r in pool.map(migrate, [c.schema_name for c in stale]) if r[1]]
        for schema, _, stderr in failures:
            self.stderr.write(f"{schema} failed:\n{stderr}")
        if failures:
            raise CommandError(f"{len(failures)} councils failed to migrate")
        self.stdout.write(self.style.SUCCESS("Every council is up to date"))
