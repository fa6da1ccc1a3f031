import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, get_tenant_base_schema

from tenants.migrating import (
    FAILED,
    MIGRATED,
    UP_TO_DATE,
    MigrationLimits,
    SchemaMigrated,
    SchemaMigrator,
    migration_name,
    schemas_migrate,
)
from tenants.models import Council
from tenants.selectors import councils_list

NOTHING_TO_DO = "Nothing to migrate: every schema was already up to date"


def applied(count: int) -> str:
    if not count:
        return "up to date"
    return f"{count} migration{'s' if count != 1 else ''} applied"


class Command(BaseCommand):
    help = (
        "Migrate the whole deployment: the public schema, then the template new councils are "
        "cloned from, then only the councils with migrations pending, in a small pool of "
        "worker processes. A council that fails is reported at once and the others go on; "
        "run it again to finish what is left."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--parallel",
            type=int,
            default=settings.MIGRATION_WORKERS,
            help="worker processes, each migrating one council at a time",
        )
        parser.add_argument(
            "--plan",
            action="store_true",
            help="list the migrations that would run in each schema, and apply nothing",
        )
        parser.add_argument(
            "--json",
            metavar="FILE",
            help="write a summary for machines: each schema's status, migrations, time, error",
        )

    def handle(self, *args: object, **options: Any) -> None:
        started = time.monotonic()
        migrator = SchemaMigrator(MigrationLimits.from_settings())
        tenant_apps = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}

        def pending_in(*schemas: str) -> dict[str, list[str]]:
            """Each schema's pending migrations of the apps it holds (every app's, in public)."""
            return {
                schema: [
                    migration_name(m)
                    for m in plan
                    if schema == public or m.app_label in tenant_apps
                ]
                for schema, plan in migrator.plans(schemas).items()
            }

        public, template = get_public_schema_name(), get_tenant_base_schema()
        public_plan = pending_in(public)[public]

        if options["plan"]:
            template_plan = pending_in(template)[template]
            councils = self._councils()
            plans = pending_in(*councils)
            self._plan_show(public_plan, template_plan, plans, councils)
            if options["json"]:
                self._json_write(
                    options["json"],
                    {
                        "plan": True,
                        "public": public_plan,
                        "template": template_plan,
                        "councils": [
                            {"council": councils[s].code, "schema": s, "migrations": plan}
                            for s, plan in plans.items()
                        ],
                    },
                )
            return

        # The public schema first (the list of councils lives there), then the template.
        results: list[SchemaMigrated] = []
        platform_pending = 0
        for schema, label in [(public, "Public schema"), (template, "Council template")]:
            pending = len(public_plan if schema == public else pending_in(schema)[schema])
            platform_pending += pending
            result = migrator.migrate(schema) if pending else SchemaMigrated(schema=schema)
            results.append(result)
            if result.status == FAILED:
                self._json_write(options["json"], self._summary(results, {}, started))
                raise CommandError(
                    f"{label} failed to migrate, so no council was started: {result.error}"
                )
            self.stdout.write(f"{label}: {applied(len(result.migrations))}")
        councils = self._councils()
        stale = [schema for schema, plan in pending_in(*councils).items() if plan]

        self.stdout.write(f"Councils with migrations pending: {len(stale)}")
        if not (platform_pending or stale):
            # Deployment tools read this line to report "no change".
            self.stdout.write(self.style.SUCCESS(NOTHING_TO_DO))
            self._json_write(options["json"], self._summary(results, councils, started))
            return

        failed = 0
        every = max(1, len(stale) // 10)
        for done, result in enumerate(
            schemas_migrate(migrator, stale, workers=options["parallel"]), start=1
        ):
            results.append(result)
            council = councils[result.schema]
            if result.status == FAILED:
                failed += 1
                # At once, not at the end: the others go on meanwhile.
                self.stderr.write(
                    f"{council.code} {council.name} ({result.schema}) failed after "
                    f"{result.seconds:.1f} s: {result.error}"
                )
                self.stderr.flush()
            elif options["verbosity"] >= 2:
                self.stdout.write(
                    f"{council.code} {result.schema}: {applied(len(result.migrations))} "
                    f"in {result.seconds:.2f} s"
                )
            if done % every == 0 or done == len(stale):
                self.stdout.write(
                    f"{done} of {len(stale)} councils done"
                    + (f" ({failed} failed)" if failed else "")
                    + f", {time.monotonic() - started:.0f} s"
                )
                self.stdout.flush()
        self._json_write(options["json"], self._summary(results, councils, started))
        if failed:
            raise CommandError(
                f"{failed} council{'s' if failed != 1 else ''} failed to migrate (the others "
                "are up to date): fix the cause and run migrate_platform again"
            )
        self.stdout.write(self.style.SUCCESS("Every council is up to date"))

    def _councils(self) -> dict[str, Council]:
        """Every council by schema name (none before the public schema has its tables)."""
        with connection.cursor() as cursor:
            if "tenants_council" not in connection.introspection.table_names(cursor):
                return {}
        return {c.schema_name: c for c in councils_list().order_by("schema_name")}

    def _plan_show(
        self,
        public_plan: list[str],
        template_plan: list[str],
        plans: dict[str, list[str]],
        councils: dict[str, Council],
    ) -> None:
        def listed(plan: list[str]) -> str:
            return ", ".join(plan) if plan else "up to date"

        self.stdout.write(f"Public schema: {listed(public_plan)}")
        self.stdout.write(f"Council template: {listed(template_plan)}")
        stale = {schema: plan for schema, plan in plans.items() if plan}
        self.stdout.write(f"Councils with migrations pending: {len(stale)} of {len(plans)}")
        for schema, plan in stale.items():
            council = councils[schema]
            self.stdout.write(f"  {council.code} {council.name} ({schema}): {listed(plan)}")
        self.stdout.write("Nothing was applied (--plan)")

    def _summary(
        self, results: list[SchemaMigrated], councils: dict[str, Council], started: float
    ) -> dict[str, Any]:
        by_schema = {result.schema: result for result in results}
        rows = []
        for schema, council in councils.items():
            result = by_schema.get(schema) or SchemaMigrated(schema=schema)
            rows.append({"council": council.code, "name": council.name, **result.as_json()})
        statuses = [row["status"] for row in rows]
        public, template = get_public_schema_name(), get_tenant_base_schema()
        return {
            "finished_at": timezone.now().isoformat(),
            "seconds": round(time.monotonic() - started, 3),
            "public": (by_schema.get(public) or SchemaMigrated(schema=public)).as_json(),
            "template": (by_schema.get(template) or SchemaMigrated(schema=template)).as_json(),
            "counts": {status: statuses.count(status) for status in (MIGRATED, UP_TO_DATE, FAILED)},
            "councils": rows,
        }

    def _json_write(self, path: str | None, summary: dict[str, Any]) -> None:
        if path:
            Path(path).write_text(json.dumps(summary, indent=2) + "\n")
