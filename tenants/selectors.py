"""Reads about councils: lookups, links and migration state."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.models import QuerySet
from django_tenants.utils import get_tenant_base_schema, schema_exists

from tenants.db import sql_identifier
from tenants.models import Council


def councils_list() -> QuerySet[Council]:
    return Council.objects.exclude(schema_name="public").prefetch_related("domains")


def council_by_code(code: str) -> Council | None:
    return Council.objects.filter(code=code.strip().upper()).first()


def council_host(council: Council) -> str:
    domain = council.get_primary_domain()
    return domain.domain if domain else f"{council.slug}.{settings.PLATFORM_DOMAIN}"


def site_url(host: str, path: str = "/") -> str:
    port = f":{settings.SITE_PORT}" if settings.SITE_PORT else ""
    return f"{settings.SITE_SCHEME}://{host}{port}{path}"


def council_url(council: Council, path: str = "/") -> str:
    return site_url(council_host(council), path)


@cache
def platform_migrations_on_disk() -> frozenset[tuple[str, str]]:
    """Every migration: `migrate_schemas --shared` records all of them in the public schema,
    including the council apps' (whose tables it does not create there)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def public_migrations_pending() -> int:
    return len(platform_migrations_on_disk() - applied_migrations("public"))


@cache
def tenant_migrations_on_disk() -> frozenset[tuple[str, str]]:
    """Every migration of the apps that live in a council's schema, as (app, name). Read
    from disk once per process: the code does not change under a running process."""
    tenant_labels = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset(key for key in loader.disk_migrations if key[0] in tenant_labels)


def applied_migrations(schema_name: str) -> set[tuple[str, str]]:
    if not schema_exists(schema_name):
        return set()
    with connection.cursor() as cursor:
        table = sql_identifier(schema_name, "django_migrations")
        cursor.execute("SELECT to_regclass(%s)", [table])
        if cursor.fetchone()[0] is None:
            return set()
        cursor.execute(f"SELECT app, name FROM {table}")  # noqa: S608
        return {(app, name) for app, name in cursor.fetchall()}


@dataclass(frozen=True)
class MigrationState:
    schema_name: str
    pending: int

    @property
    def label(self) -> str:
        return "up to date" if self.pending == 0 else f"{self.pending} migrations pending"


def migration_state(schema_name: str) -> MigrationState:
    pending = tenant_migrations_on_disk() - applied_migrations(schema_name)
    return MigrationState(schema_name=schema_name, pending=len(pending))


def migration_states(schema_names: Iterable[str]) -> dict[str, MigrationState]:
    """`migration_state` for many schemas in two statements, not three per schema: the
    console and /readyz with hundreds of councils. A schema (or its migrations table) that
    does not exist has every migration pending."""
    names = list(dict.fromkeys(schema_names))
    if not names:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations' AND c.relkind = 'r' "
            "AND n.nspname = ANY(%s)",
            [names],
        )
        with_table = [row[0] for row in cursor.fetchall()]
        applied: dict[str, set[tuple[str, str]]] = {name: set() for name in names}
        if with_table:
            union = " UNION ALL ".join(
                f"SELECT %s, app, name FROM {sql_identifier(name, 'django_migrations')}"  # noqa: S608
                for name in with_table
            )
            cursor.execute(union, with_table)
            for schema_name, app, name in cursor.fetchall():
                applied[schema_name].add((app, name))
    on_disk = tenant_migrations_on_disk()
    return {
        name: MigrationState(schema_name=name, pending=len(on_disk - applied[name]))
        for name in names
    }


# Each council schema's migration state as last read by this process, and when (monotonic
# seconds). A schema falls behind only when the code changes (a new process, with an empty
# memory) or when someone migrates it backwards by hand; it catches up when
# `migrate_platform` reaches it.
_states: dict[str, tuple[int, float]] = {}


def _remember(state: MigrationState, now: float) -> int:
    _states[state.schema_name] = (state.pending, now)
    return state.pending


def council_pending(schema_name: str, *, max_age: float) -> int:
    """How many migrations `schema_name` lacks, as read at most `max_age` seconds ago."""
    now = time.monotonic()
    known = _states.get(schema_name)
    if known is not None and now - known[1] < max_age:
        return known[0]
    return _remember(migration_state(schema_name), now)


def councils_pending(schema_names: Iterable[str], *, max_age: float) -> dict[str, int]:
    """`council_pending` for many schemas, those not known recently read in one go."""
    now = time.monotonic()
    names = list(schema_names)
    stale = [name for name in names if now - _states.get(name, (0, -max_age - 1))[1] >= max_age]
    for state in migration_states(stale).values():
        _remember(state, now)
    return {name: _states[name][0] for name in names}


def council_behind(schema_name: str) -> int:
    """Migrations a council lacks, for deciding whether it may serve this request. A council
    found up to date is read again after COUNCIL_MIGRATIONS_RECHECK_SECONDS; one found behind
    after a second, so it serves again within a second of `migrate_platform` reaching it
    and a flood of requests to it costs at most one read a second per process."""
    known = _states.get(schema_name)
    up_to_date = known is not None and known[0] == 0
    max_age = settings.COUNCIL_MIGRATIONS_RECHECK_SECONDS if up_to_date else 1.0
    return council_pending(schema_name, max_age=max_age)


def migration_memory_clear() -> None:
    """Forget every council's remembered migration state (tests; a process after a
    hand-made change to a schema's migrations)."""
    _states.clear()


def template_is_current() -> bool:
    return migration_state(get_tenant_base_schema()).pending == 0 and schema_exists(
        get_tenant_base_schema()
    )
