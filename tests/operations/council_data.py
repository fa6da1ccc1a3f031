"""Helpers for the operations tests: a fingerprint of every table (row count and a checksum
of the rows' contents, independent of their physical order) and councils filled with
awkward data."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from core.audit import audit_record
from tenants.db import sql_identifier
from tenants.models import Council
from tests.factories import InvolvementFactory, OrganisationFactory, PersonFactory

Fingerprints = dict[str, tuple[int, str]]


def fingerprints(schema_name: str, cursor: Any = None) -> Fingerprints:
    """Each table of the schema: (rows, md5 of its rows' text, sorted). Through Django's
    connection, or through `cursor` (e.g. on another database)."""
    if cursor is None:
        with connection.cursor() as django_cursor:
            return fingerprints(schema_name, django_cursor)
    # Through pg_depend's index (as tenants.archives.schema_tables): pg_tables reads all
    # of pg_class, slow for each of 1,000 councils (tests/bench/bench_backup.py).
    cursor.execute(
        "SELECT c.relname FROM pg_depend d JOIN pg_class c ON c.oid = d.objid "
        "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_namespace'::regclass "
        "AND d.refobjid = (SELECT oid FROM pg_namespace WHERE nspname = %s) "
        "AND c.relkind IN ('r', 'p') ORDER BY c.relname",
        [schema_name],
    )
    found: Fingerprints = {}
    for (table,) in cursor.fetchall():
        cursor.execute(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
            f"FROM {sql_identifier(schema_name, table)} t"
        )
        rows, digest = cursor.fetchone()
        found[table] = (rows, digest)
    return found


def council_fill(council: Council, *, people: int = 20) -> None:
    """People, organisations, involvements and audit events, with names that test quoting:
    tabs, newlines, backslashes, quotes, commas and non-ASCII letters."""
    with schema_context(council.schema_name):
        awkward = OrganisationFactory(name='St Mary\'s "Tab\there" \\ back, slash\nNew line — Ŵ')
        for _ in range(people):
            involvement = InvolvementFactory(practitioner__organisation=awkward)
            audit_record(
                actor=involvement.practitioner.user,
                action="person.viewed",
                person_id=involvement.person_id,
                detail={"note": "line one\nline two\t\\", "ok": True},
            )
        PersonFactory(nhs_number=None, postcode="")


def council_drop(council: Council) -> None:
    """Remove a council without an export: its platform rows and its schema."""
    schema = council.schema_name
    Council.objects.filter(pk=council.pk).delete()
    if schema_exists(schema):
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
