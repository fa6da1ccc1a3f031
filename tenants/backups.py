"""Backups that restore: the whole deployment to one sealed archive and back, and one
council brought back (from its export or offboarding archive) as a new schema.

Restoring never starts until the whole archive has been read and every table checked
against its checksum, so a damaged, truncated or wrong-key archive changes nothing. Each
schema is then restored in its own transaction (a deployment of hundreds of councils in one
transaction would exhaust PostgreSQL's lock table); re-running a restore is safe, because
every schema it restores is first emptied or dropped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import get_tenant_base_schema, schema_context, schema_exists

from accounts.models import Invitation, SecondFactorReset, User
from accounts.services import invitation_issue
from tenants import archives
from tenants.archives import ArchiveReader, SchemaSection
from tenants.cloning import clone_script, schema_clone
from tenants.db import sql_identifier, tenant_connection
from tenants.models import Council, Domain
from tenants.selectors import council_url, councils_list, template_is_current
from tenants.services import (
    council_fields_clean,
    template_refresh,
)
from tenants.signals import council_credentials_forget

log = logging.getLogger(__name__)

CloneScript = tuple[list[str], list[tuple[str, list[str], str | None]]]


class RestoreRefused(Exception):
    """The archive is sound but cannot be brought back here; nothing was changed."""


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: dict[str, Any]
    seconds: float

    @property
    def schemas(self) -> int:
        return len(self.manifest["schemas"])

    @property
    def tables(self) -> int:
        return sum(len(entry["tables"]) for entry in self.manifest["schemas"].values())

    @property
    def rows(self) -> int:
        return manifest_rows(self.manifest)


@dataclass(frozen=True)
class Restored:
    schemas: list[str]
    rows: int
    left_alone: list[str]
    seconds: float


@dataclass(frozen=True)
class Imported:
    council: Council
    rows: int
    seconds: float
    # (email, one-time invitation link) for each of its administrators: nobody signs in
    # to a council brought back from an archive with what they used before.
    invitations: list[tuple[str, str]]


def manifest_rows(manifest: dict[str, Any]) -> int:
    return sum(
        facts["rows"]
        for entry in manifest["schemas"].values()
        for facts in entry["tables"].values()
    )


def _deployment_schemas() -> list[tuple[str, dict[str, Any]]]:
    schemas: list[tuple[str, dict[str, Any]]] = [
        ("public", {"role": "platform"}),
        (get_tenant_base_schema(), {"role": "template"}),
    ]
    for council in councils_list():
        about = {"name": council.name, "code": council.code, "slug": council.slug}
        schemas.append((council.schema_name, {"role": "council", "council": about}))
    return schemas


def deployment_backup(*, directory: Path) -> Backup:
    """Write the whole deployment (platform tables, the council template and every council)
    to one sealed, checksummed archive in `directory`, from one consistent snapshot."""
    started = time.perf_counter()
    stamp = timezone.now()
    target = directory / f"patchwork-{stamp:%Y%m%dT%H%M%S}Z.pwa"
    header = {
        "kind": "deployment",
        "created_at": stamp.isoformat(),
        "platform_domain": settings.PLATFORM_DOMAIN,
    }
    manifest = archives.archive_write(target, header, _deployment_schemas)
    backup = Backup(path=target, manifest=manifest, seconds=time.perf_counter() - started)
    log.info("Backed up %s schemas, %s rows to %s", backup.schemas, backup.rows, target)
    return backup


# --- Bringing schemas back ---


def _platform_structure_ensure() -> None:
    """An empty database gets the platform tables and the template from the migrations."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.django_migrations')")
        migrated = cursor.fetchone()[0] is not None
    if not migrated:
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    if not template_is_current():
        template_refresh()


def _migrations(schema_name: str) -> set[tuple[str, str]]:
    return {(app, name) for app, name in archives.applied_migrations(schema_name)}


def _migrations_match(schema_name: str, entry: dict[str, Any], structure: str) -> None:
    """Rows load only into tables shaped as they were when the rows were written."""
    archived = {(app, name) for app, name in entry["migrations"]}
    here = _migrations(structure)
    newer, older = archived - here, here - archived
    if newer:
        raise RestoreRefused(
            f"The archive's {schema_name} was made by a newer release of Patchwork "
            f"({len(newer)} migrations this release does not have, e.g. "
            f"{'.'.join(sorted(newer)[0])}). Restore it with that release. Nothing was changed."
        )
    if older:
        raise RestoreRefused(
            f"The archive's {schema_name} was made by an older release of Patchwork "
            f"({len(older)} migrations behind, e.g. {'.'.join(sorted(older)[0])}). Restore it "
            "with that release, then upgrade with `patchwork migrate_platform`. "
            "Nothing was changed."
        )


def _replica_mode() -> None:
    """Load rows as a replica would: no triggers, no per-row foreign key checks. Needs a
    superuser or (PostgreSQL 15+) `GRANT SET ON PARAMETER session_replication_role`.
    Without it the load still works: tables arrive parents first and Django's foreign keys
    are deferred to the commit."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        log.info("session_replication_role not permitted; loading with deferred constraints")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _schema_recreate(schema_name: str, script: CloneScript | None = None) -> None:
    """A council's schema, empty, with the template's tables, triggers and sequences.
    `script` is the template's `clone_script`, when read already."""
    if schema_exists(schema_name):
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"DROP SCHEMA {sql_identifier(schema_name)} CASCADE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    schema_clone(get_tenant_base_schema(), schema_name, script)
    # The clone brings the template's own rows (migration records, content types and
    # permissions); the archive holds the council's, which are loaded instead.
    _schema_empty(schema_name, archives.schema_tables(schema_name), truncate=False)


def _schema_empty(schema_name: str, tables: list[str], *, truncate: bool) -> None:
    here = set(archives.schema_tables(schema_name))
    present = [table for table in tables if table in here]
    if not present:
        return
    with connection.cursor() as cursor:
        if truncate:
            # Deferred foreign-key checks still pending in this transaction would block it.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # The platform's audit log refuses TRUNCATE by trigger, and only a superuser may
            # switch triggers off for a session (_replica_mode): the tables' owner switches
            # them off for this statement, inside the restore's transaction. Restoring the
            # deployment puts the log back as it was at the backup, as it does every table.
            names = [sql_identifier(schema_name, t) for t in present]
            for name in names:
                cursor.execute(f"ALTER TABLE {name} DISABLE TRIGGER USER")
            cursor.execute("TRUNCATE " + ", ".join(names))
            for name in names:
                cursor.execute(f"ALTER TABLE {name} ENABLE TRIGGER USER")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            # The audit table forbids TRUNCATE; it never holds rows in the template (nor in
            # a fresh clone of it), so a DELETE of each (small) table meets no trigger.
            for table in reversed(present):
                cursor.execute(f"DELETE FROM {sql_identifier(schema_name, table)}")  # noqa: S608


def _schema_load(section: SchemaSection, target: str) -> int:
    """COPY every table of `section` into schema `target`; check the counts; fix sequences."""
    raw = archives._raw_connection()
    expected: dict[str, int] = {}
    for table in section.tables():
        columns = archives.column_list(table.columns)
        sql = f"COPY {sql_identifier(target, table.name)} ({columns}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for block in table.blocks():
                copy.write(block)
        # The archive checked the table's checksum and row count with its last block.
        assert table.rows is not None
        expected[table.name] = table.rows
    with connection.cursor() as cursor:
        for name, rows in expected.items():
            cursor.execute(f"SELECT count(*) FROM {sql_identifier(target, name)}")  # noqa: S608
            found = cursor.fetchone()[0]
            if found != rows:
                raise RestoreRefused(
                    f"{target}.{name} holds {found} rows after loading, not {rows}"
                )
    _sequences_reset(target)
    return sum(expected.values())


def _sequences_reset(schema_name: str) -> None:
    """Each id sequence continues after the largest id loaded, so new rows never collide."""
    with connection.cursor() as cursor:
        # The schema's tables through pg_depend's index, as archives.schema_tables finds
        # them: a scan of all of pg_class for each council grows with the councils.
        cursor.execute(
            """
            SELECT c.relname, a.attname,
                   pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname)
            FROM pg_namespace n
            JOIN pg_depend d ON d.refobjid = n.oid
                AND d.refclassid = 'pg_namespace'::regclass AND d.classid = 'pg_class'::regclass
            JOIN pg_class c ON c.oid = d.objid
            JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
              AND pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname)
                  IS NOT NULL
            """,
            [schema_name],
        )
        for table, column, sequence in cursor.fetchall():
            largest = f"MAX({sql_identifier(column)})"
            cursor.execute(
                f"SELECT setval(%s, COALESCE({largest}, 1), {largest} IS NOT NULL) "  # noqa: S608
                f"FROM {sql_identifier(schema_name, table)}",
                [sequence],
            )


def _council_schemas_here() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'django_migrations'"
        )
        return {row[0] for row in cursor.fetchall()} - {"public", get_tenant_base_schema()}


def deployment_restore(*, path: Path) -> Restored:
    """Bring back a whole deployment from `patchwork backup`'s archive: the platform tables
    are emptied and reloaded, the template reloaded, and each council's schema dropped if
    present and recreated from the template before its rows are loaded.

    Into an empty database, the platform tables and the template are first made from the
    migrations. Schemas of councils that are not in the archive are left alone (and named).
    A damaged archive, or one from another release, is refused before anything changes."""
    started = time.perf_counter()
    manifest = archives.archive_verify(path)
    if manifest.get("kind") != "deployment":
        raise RestoreRefused(
            "This archive holds one council, not a whole deployment: bring it back with "
            "`patchwork import_council`. Nothing was changed."
        )
    _platform_structure_ensure()
    template = get_tenant_base_schema()
    for schema_name, entry in manifest["schemas"].items():
        structure = "public" if entry["role"] == "platform" else template
        _migrations_match(schema_name, entry, structure)
    rows = 0
    restored: list[str] = []
    # Read once the template is back, for every council after it: reading the catalog
    # for each council costs more as the councils (and their catalog rows) grow.
    script: CloneScript | None = None
    with ArchiveReader(path) as reader:
        for section in reader.schemas():
            tables = list(manifest["schemas"][section.name]["tables"])
            role = section.info["role"]
            with transaction.atomic():
                _replica_mode()
                if role == "platform":
                    _schema_empty("public", tables, truncate=True)
                elif role == "template":
                    _schema_empty(template, tables, truncate=False)
                else:
                    script = script or clone_script(template)
                    _schema_recreate(section.name, script)
                rows += _schema_load(section, section.name)
            tenant_connection().set_schema_to_public()
            restored.append(section.name)
    ContentType.objects.clear_cache()
    left_alone = sorted(_council_schemas_here() - set(restored))
    seconds = time.perf_counter() - started
    log.info("Restored %s schemas, %s rows from %s", len(restored), rows, path)
    return Restored(schemas=restored, rows=rows, left_alone=left_alone, seconds=seconds)


def council_import(*, path: Path, code: str = "", name: str = "", slug: str = "") -> Imported:
    """Bring a council back from its export or offboarding archive as a new council: a
    schema cloned from the template, every row loaded, a domain and a new signing key.

    It keeps its name, code and web address unless given new ones (needed when the
    original is still on this platform). Everything happens in one transaction: an archive
    that is damaged, of another kind or from another release, or a name, code or address
    already in use, leaves nothing behind."""
    started = time.perf_counter()
    manifest = archives.archive_verify(path)
    if manifest.get("kind") != "council" or len(manifest["schemas"]) != 1:
        raise RestoreRefused(
            "This archive is a whole-deployment backup, not one council: bring it back with "
            "`patchwork restore`. Nothing was changed."
        )
    original = manifest["council"]
    name = name or original["name"]
    slug = slug or (slugify(name) if name != original["name"] else original["slug"])
    name, code, slug = council_fields_clean(name=name, code=code or original["code"], slug=slug)
    if not template_is_current():
        template_refresh()
    ((archived_schema, entry),) = manifest["schemas"].items()
    _migrations_match(archived_schema, entry, get_tenant_base_schema())
    schema_name = f"council_{code.lower()}"
    if schema_exists(schema_name):
        raise ValidationError({"code": f"A schema called {schema_name} is already in the database"})
    with transaction.atomic():
        council = Council(name=name, code=code, slug=slug, schema_name=schema_name)
        council.full_clean()
        council.save()
        _replica_mode()
        _schema_recreate(schema_name)
        rows = 0
        with ArchiveReader(path) as reader:
            for section in reader.schemas():
                rows += _schema_load(section, schema_name)
        with schema_context(schema_name):
            invitations = _credentials_forget(council)
        tenant_connection().set_schema_to_public()
        Domain.objects.create(
            domain=f"{slug}.{settings.PLATFORM_DOMAIN}", tenant=council, is_primary=True
        )
    log.info("Imported %s from %s: %s rows", council, path, rows)
    return Imported(
        council=council,
        rows=rows,
        seconds=time.perf_counter() - started,
        invitations=[
            (email, council_url(council, f"/invitation/{token}/")) for email, token in invitations
        ],
    )


def _credentials_forget(council: Council) -> list[tuple[str, str]]:
    """A council brought back from an archive accepts nothing that let anyone in to the
    council the archive came from, which may still be running (beside it, or on another
    deployment): not a session, an API token, an unused invitation, a password, an
    authenticator app, nor (through `council_credentials_forget`) an import token. It keeps
    every record, user, role and audit event. Each active administrator gets a new one-time
    invitation (returned as (email, token)); they invite everyone else again from the Users
    page. Runs in the new council's schema."""
    Session.objects.all().delete()
    Invitation.objects.filter(accepted_at__isnull=True).delete()
    TOTPDevice.objects.all().delete()
    # Recovery codes and pending second-factor resets let someone in too (decision 0019).
    StaticDevice.objects.all().delete()
    SecondFactorReset.objects.filter(enrolled_at__isnull=True).delete()
    # A password that can never match ("!" + random, as Django's set_unusable_password):
    # it also changes each user's session hash, which every API token carries.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_user SET password = '!' || replace(gen_random_uuid()::text, '-', '')"
        )
    council_credentials_forget.send(sender=Council, council=council)
    administrators = User.objects.filter(role=User.Role.COUNCIL_ADMIN, is_active=True)
    return [
        (admin.email, invitation_issue(user=admin)) for admin in administrators.order_by("email")
    ]
