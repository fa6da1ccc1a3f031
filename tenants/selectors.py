"""Reads about councils: lookups, links and migration state."""

from __future__ import annotations

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
@cache
def platform_migrations_on_disk() -> frozenset[tuple[str, str]]:
    """Every migration: `migrate_schemas --shared` records all of them in the public schema,
    including the council apps' (whose tables it does not create there)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def public_migrations_pending() -> int:
    return len(platform_migrations_on_disk() - applied_migrations("public"))


def tenant_migrations_on_disk() -> frozenset[tuple[str, str]]:
    """Every migration of the apps that live in a council's schema, as (app, name)."""
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


def template_is_current() -> bool:
    return migration_state(get_tenant_base_schema()).pending == 0 and schema_exists(
        get_tenant_base_schema()
    )
