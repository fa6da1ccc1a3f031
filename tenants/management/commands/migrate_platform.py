import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.selectors import councils_list, migration_state
from tenants.services import template_refresh


class Command(BaseCommand):
    help = (
        "Migrate the whole deployment: the public schema, then the template new councils are "
        "cloned from, then only the councils with migrations pending (in parallel)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--parallel", type=int, default=1, help="councils at once")

    def handle(self, *args: object, **options: int) -> None:
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        self.stdout.write("Public schema: up to date")
        template_refresh()
        self.stdout.write("Council template: up to date")
        stale = [c for c in councils_list() if migration_state(c.schema_name).pending]
        self.stdout.write(f"Councils with migrations pending: {len(stale)}")

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
