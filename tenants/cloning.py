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

from tenants.db import search_path_changed_here, tenant_connection


def _rows(cursor: CursorWrapper, sql: str, params: list[str | int]) -> list[tuple]:
    cursor.execute(sql, params)
    return list(cursor.fetchall())


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _unqualified(definition: str, source: str) -> str:
    """Drop the template's schema from a definition: pg_get_functiondef, pg_get_indexdef and
    pg_get_triggerdef name some objects with their schema whatever the search path."""
    return definition.replace(f"{_quote(source)}.", "").replace(f"{source}.", "")


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
    cursor.execute("SELECT set_config('search_path', %s, true)", [_quote(source)])
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
        f"CREATE TABLE {_quote(t)} (LIKE {_quote(source)}.{_quote(t)} "
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
        f"ALTER TABLE {table} ADD CONSTRAINT {_quote(name)} {definition}"
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
        has_rows = _rows(cursor, f"SELECT EXISTS (SELECT 1 FROM {_quote(table)})", [])[0][0]
        if has_rows:
            columns = [
                row[0]
                for row in _rows(
                    cursor,
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    [f"{_quote(source)}.{_quote(table)}"],
                )
            ]
            identity = _rows(
                cursor,
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attidentity <> '' AND NOT attisdropped",
                [f"{_quote(source)}.{_quote(table)}"],
            )
            with_rows.append((table, columns, identity[0][0] if identity else None))
    return script, with_rows


def schema_clone(source: str, target: str) -> None:
    """Create schema `target` as a structural and data copy of `source`. Run inside a
    transaction: a failure leaves no schema behind."""
    tenant_connection().set_schema_to_public()
    script, with_rows = clone_script(source)
    statements = [f"CREATE SCHEMA {_quote(target)}", f"SET LOCAL search_path TO {_quote(target)}"]
    statements += script
    # Foreign keys are deferred (Django makes them DEFERRABLE INITIALLY DEFERRED), so rows
    # can be copied in any order.
    for table, columns, identity in with_rows:
        column_list = ", ".join(_quote(c) for c in columns)
        statements.append(
            f"INSERT INTO {_quote(table)} ({column_list}) OVERRIDING SYSTEM VALUE "
            f"SELECT {column_list} FROM {_quote(source)}.{_quote(table)}"
        )
        if identity:
            statements.append(
                f"SELECT setval(pg_get_serial_sequence('{_quote(target)}.{_quote(table)}', "
                f"'{identity}'), (SELECT max({_quote(identity)}) FROM {_quote(table)}))"
            )
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(statements))
        cursor.execute("SET LOCAL search_path TO public")
    search_path_changed_here()
