"""Create a council's schema as a copy of the template schema, in time that does not grow
with the number of councils.

django-tenants' `clone_schema` SQL function checks each cloned table against every table
in the database, so cloning slows as councils are added (40 s at 50 councils, measured;
see docs/benchmarks.md). This copy reads only the template's own catalog entries (by
namespace), writes one DDL script and runs it:

- tables with their columns, defaults, identities and NOT NULLs (`CREATE TABLE ... LIKE`);
- every constraint and index under its original name (Django drops and alters them by name
  in later migrations), from `pg_get_constraintdef` / `pg_get_indexdef`;
- functions and triggers (the audit log's append-only trigger);
- the rows the template holds (migration records, content types, permissions), with each
  identity sequence moved past the copied ids.

Definitions are read with the search path set to the template alone, so PostgreSQL writes
them unqualified, and the script runs with the search path set to the new schema alone."""

from __future__ import annotations

from django.db import connection
from django.db.backends.utils import CursorWrapper

from tenants.db import search_path_changed_here, sql_identifier, tenant_connection


def _rows(cursor: CursorWrapper, sql: str, params: list[str | int]) -> list[tuple]:
    cursor.execute(sql, params)
    return list(cursor.fetchall())


def _unqualified(definition: str, source: str) -> str:
    """Drop the template's schema from a definition: pg_get_functiondef, pg_get_indexdef and
    pg_get_triggerdef name some objects with their schema whatever the search path."""
    return definition.replace(f"{sql_identifier(source)}.", "").replace(f"{source}.", "")


def clone_script(source: str) -> tuple[list[str], list[tuple[str, list[str], str | None]]]:
    """The DDL that rebuilds `source`'s structure in whatever schema is first on the search
    path, and the tables holding rows to copy: (table, columns, identity column or None)."""
    # Read everything on one cursor, with the search path set to the template alone; then
    # make django-tenants set its own search path again on the next cursor (it may cache it).
    try:
        with connection.cursor() as cursor:
            return _clone_script(cursor, source)
    finally:
        search_path_changed_here()


def _clone_script(
    cursor: CursorWrapper, source: str
) -> tuple[list[str], list[tuple[str, list[str], str | None]]]:
    cursor.execute("SELECT set_config('search_path', %s, true)", [sql_identifier(source)])
    oid = _rows(cursor, "SELECT oid FROM pg_namespace WHERE nspname = %s", [source])[0][0]
    tables = [
        row[0]
        for row in _rows(
            cursor,
            "SELECT relname FROM pg_class WHERE relnamespace = %s AND relkind IN ('r', 'p') "
            "ORDER BY relname",
            [oid],
        )
    ]
    script = [
        f"CREATE TABLE {sql_identifier(t)} (LIKE {sql_identifier(source, t)} "
        "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE "
        "INCLUDING COMMENTS)"
        for t in tables
    ]
    functions = _rows(
        cursor,
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.pronamespace = %s "
        "ORDER BY p.proname",
        [oid],
    )
    script += [_unqualified(definition, source) for (definition,) in functions]
    constraints = _rows(
        cursor,
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype "
        "FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid "
        "WHERE r.relnamespace = %s AND c.contype IN ('p', 'u', 'c', 'x', 'f') "
        "ORDER BY c.contype = 'f', c.conrelid::regclass::text, c.conname",
        [oid],
    )
    script += [
        f"ALTER TABLE {table} ADD CONSTRAINT {sql_identifier(name)} {definition}"
        for table, name, definition, _ in constraints
    ]
    # Indexes that back a constraint were made with it; the rest are plain indexes.
    indexes = _rows(
        cursor,
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class ic ON ic.oid = i.indexrelid "
        "WHERE ic.relnamespace = %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
        "AND c.conrelid = i.indrelid) ORDER BY ic.relname",
        [oid],
    )
    script += [_unqualified(definition, source) for (definition,) in indexes]
    triggers = _rows(
        cursor,
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid "
        "WHERE r.relnamespace = %s AND NOT t.tgisinternal ORDER BY t.tgname",
        [oid],
    )
    script += [_unqualified(definition, source) for (definition,) in triggers]
    with_rows = []
    for table in tables:
        has_rows = _rows(cursor, f"SELECT EXISTS (SELECT 1 FROM {sql_identifier(table)})", [])[0][0]
        if has_rows:
            columns = [
                row[0]
                for row in _rows(
                    cursor,
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    [sql_identifier(source, table)],
                )
            ]
            identity = _rows(
                cursor,
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attidentity <> '' AND NOT attisdropped",
                [sql_identifier(source, table)],
            )
            with_rows.append((table, columns, identity[0][0] if identity else None))
    return script, with_rows


def schema_clone(
    source: str,
    target: str,
    prepared: tuple[list[str], list[tuple[str, list[str], str | None]]] | None = None,
) -> None:
    """Create schema `target` as a structural and data copy of `source`. Run inside a
    transaction: a failure leaves no schema behind. `prepared` is `clone_script(source)`,
    when it was read already (a restore makes hundreds of councils from one template)."""
    tenant_connection().set_schema_to_public()
    script, with_rows = prepared or clone_script(source)
    statements = [
        f"CREATE SCHEMA {sql_identifier(target)}",
        f"SET LOCAL search_path TO {sql_identifier(target)}",
    ]
    statements += script
    # Foreign keys are deferred (Django makes them DEFERRABLE INITIALLY DEFERRED), so rows
    # can be copied in any order.
    for table, columns, identity in with_rows:
        column_list = ", ".join(sql_identifier(c) for c in columns)
        statements.append(
            f"INSERT INTO {sql_identifier(table)} ({column_list}) OVERRIDING SYSTEM VALUE "
            f"SELECT {column_list} FROM {sql_identifier(source, table)}"
        )
        if identity:
            statements.append(
                f"SELECT setval(pg_get_serial_sequence('{sql_identifier(target, table)}', "
                f"'{identity}'), (SELECT max({sql_identifier(identity)}) "
                f"FROM {sql_identifier(table)}))"
            )
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(statements))
        cursor.execute("SET LOCAL search_path TO public")
    search_path_changed_here()
