"""A release for the tests and the benchmark of `migrate_platform`: core's migrations as
they are, plus two more in the expand/contract style (docs/operations.md): a nullable
column, then its index built CONCURRENTLY outside a transaction. A process takes the release
with `MIGRATION_MODULES = RELEASE` (set before its first migration command)."""

from typing import Any

RELEASE = {"core": "tests.operations.release.core"}
RELEASED = [("core", "9001_person_release_note"), ("core", "9002_person_release_note_index")]


def release_undo(cursor: Any) -> None:
    """Take the release back out of every schema that has it (the column, with its index,
    and the records of both migrations), so the next test or run starts before it."""
    cursor.execute(
        "SELECT table_schema FROM information_schema.columns "
        "WHERE table_name = 'core_person' AND column_name = 'release_note'"
    )
    for (schema,) in cursor.fetchall():
        cursor.execute(f'ALTER TABLE "{schema}".core_person DROP COLUMN release_note')
    cursor.execute(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'django_migrations'"
    )
    for (schema,) in cursor.fetchall():
        cursor.execute(
            f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = ANY(%s)',  # noqa: S608
            ["core", [name for _, name in RELEASED]],
        )
