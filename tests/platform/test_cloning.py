"""A council's schema is an exact structural copy of the template it was cloned from."""

from __future__ import annotations

from django.db import connection

CATALOG = {
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attidentity, pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r'
          AND a.attnum > 0 AND NOT a.attisdropped""",
    "constraints": """
        SELECT r.relname, c.conname, c.contype,
               replace(pg_get_constraintdef(c.oid), %s || '.', ''), c.condeferrable, c.condeferred
        FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
        WHERE r.relnamespace = %s::regnamespace""",
    "indexes": """
        SELECT ic.relname, replace(pg_get_indexdef(i.indexrelid), %s || '.', '')
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE ic.relnamespace = %s::regnamespace""",
    "triggers": """
        SELECT r.relname, t.tgname, t.tgtype, t.tgenabled
        FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid
        WHERE r.relnamespace = %s::regnamespace AND NOT t.tgisinternal""",
    "functions": "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = %s::regnamespace",
}


def _catalog(schema: str) -> dict[str, set[tuple]]:
    found = {}
    with connection.cursor() as cursor:
        for kind, sql in CATALOG.items():
            params = [schema, schema] if kind in {"indexes", "constraints"} else [schema]
            cursor.execute(sql, params)
            found[kind] = {tuple(row) for row in cursor.fetchall()}
    return found


def test_a_cloned_council_matches_the_template_exactly(world, db) -> None:
    """Columns, defaults, identities, constraints (by name), indexes, triggers, functions."""
    template = _catalog("council_template")
    council = _catalog(world.brighton.schema_name)
    for kind in CATALOG:
        assert template[kind], f"the template has no {kind}"
        assert council[kind] == template[kind], kind


def test_a_cloned_council_has_the_template_rows_and_working_sequences(world, db) -> None:
    """Migration records and content types are copied; new rows get fresh ids."""
    with connection.cursor() as cursor:
        for table in ["django_migrations", "django_content_type", "auth_permission"]:
            cursor.execute(f"SELECT count(*) FROM council_template.{table}")
            expected = cursor.fetchone()[0]
            cursor.execute(f"SELECT count(*) FROM {world.brighton.schema_name}.{table}")
            assert cursor.fetchone()[0] == expected > 0
        cursor.execute(
            f"INSERT INTO {world.brighton.schema_name}.django_content_type (app_label, model) "
            "VALUES ('probe', 'probe') RETURNING id"
        )
        new_id = cursor.fetchone()[0]
        cursor.execute("SELECT max(id) FROM council_template.django_content_type")
        assert new_id > cursor.fetchone()[0]
