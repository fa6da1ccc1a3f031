"""The backup reads each schema in a transaction of its own, yet every schema as of the
moment it began (one exported snapshot): a write committed while it runs is not in it, and a
council removed before its turn stops it without leaving an archive."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tenants import archives
from tenants.db import sql_identifier


def _other_connection() -> psycopg.Connection:
    """A second session, as a practitioner's request would be: it commits on its own."""
    source = connection.settings_dict
    return psycopg.connect(
        host=source["HOST"],
        port=source["PORT"] or 5432,
        user=source["USER"],
        password=source["PASSWORD"],
        dbname=source["NAME"],
        autocommit=True,
    )


def _archived_rows(path: Path, schema_name: str, table: str) -> bytes:
    with archives.ArchiveReader(path) as reader:
        for section in reader.schemas():
            for found in section.tables():
                if (section.name, found.name) == (schema_name, table):
                    return b"".join(found.blocks())
    raise AssertionError(f"{schema_name}.{table} is not in the archive")


def test_it_leaves_out_what_was_written_after_the_backup_began(
    world, django_db_blocker, tmp_path
) -> None:
    """An organisation added in Brighton once the backup has begun (after the platform was
    read, before Brighton's turn) is not in the archive; the ones before it are."""
    brighton = world.brighton.schema_name
    organisations = sql_identifier(brighton, "core_organisation")
    # Outside pytest-django's transaction: the backup makes transactions of its own.
    with django_db_blocker.unblock(), _other_connection() as other:
        before = other.execute(f"SELECT count(*) FROM {organisations}").fetchone()[0]  # noqa: S608

        def schemas() -> list[tuple[str, dict[str, str]]]:
            other.execute(
                f"INSERT INTO {organisations} "  # noqa: S608
                "(name, agency_type, sensitive_service, phone, secure_email, created_at) "
                "VALUES ('Added during the backup', 'police', false, '', '', now())"
            )
            return [("public", {"role": "platform"}), (brighton, {"role": "council"})]

        try:
            manifest = archives.archive_write(tmp_path / "b.pwa", {"kind": "test"}, schemas)
            rows = _archived_rows(tmp_path / "b.pwa", brighton, "core_organisation")
            assert manifest["schemas"][brighton]["tables"]["core_organisation"]["rows"] == before
            assert b"Added during the backup" not in rows
            now = other.execute(f"SELECT count(*) FROM {organisations}").fetchone()[0]  # noqa: S608
            assert now == before + 1
        finally:
            other.execute(
                f"DELETE FROM {organisations} WHERE name = 'Added during the backup'"  # noqa: S608
            )
            connection.close()


def test_it_stops_without_an_archive_when_a_council_is_removed_during_the_backup(
    world, django_db_blocker, tmp_path
) -> None:
    """A schema listed in the snapshot but gone by its turn: a clear error, no file left."""
    with django_db_blocker.unblock():
        try:
            with pytest.raises(archives.SchemaGone, match="run the backup again"):
                archives.archive_write(
                    tmp_path / "gone.pwa",
                    {"kind": "test"},
                    lambda: [("public", {}), ("council_e06000001", {"role": "council"})],
                )
        finally:
            connection.close()
    assert list(tmp_path.iterdir()) == []


# Also makes pytest-django create the test database when this module runs alone.
@pytest.mark.django_db
def test_it_reads_in_the_callers_transaction_inside_one(world, tmp_path) -> None:
    """Inside a transaction (as an offboarding exports a council) the archive is read in
    that transaction, and sees what it has written but not committed."""
    brighton = world.brighton.schema_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {sql_identifier(brighton, 'core_organisation')} "  # noqa: S608
            "(name, agency_type, sensitive_service, phone, secure_email, created_at) "
            "VALUES ('Not yet committed', 'school', false, '', '', now())"
        )
    archives.archive_write(
        tmp_path / "c.pwa", {"kind": "test"}, lambda: [(brighton, {"role": "council"})]
    )
    assert b"Not yet committed" in _archived_rows(tmp_path / "c.pwa", brighton, "core_organisation")
