"""The nightly backup on a lock table too small for one transaction over every council: the
old way (one REPEATABLE READ transaction reading every table) runs out of shared memory;
`patchwork backup` (one exported snapshot, a transaction per schema) completes, and
`patchwork restore` brings every council back row for row.

A cluster of the test's own with `max_locks_per_transaction=10`, `max_connections=10` and
no background workers or WAL senders has a lock table of about 120 entries (10 for each of
its 12 possible processes, plus PostgreSQL's slack): 20 councils of 41 tables need over 800
locks in one transaction, one council about 50. The restore, which drops
and recreates a council's schema in one transaction, runs on PostgreSQL's defaults."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tenants.db import sql_identifier
from tests.operations.council_data import fingerprints
from tests.operations.private_cluster import PG_BIN, PrivateCluster

COUNCILS = 20
DATABASE = "patchwork"
# The lock table has max_locks_per_transaction x (max_connections + autovacuum workers + 1
# + max_worker_processes + max_wal_senders + max_prepared_transactions) entries.
SMALL_LOCK_TABLE = {
    "max_locks_per_transaction": 10,
    "max_connections": 10,
    "autovacuum_max_workers": 1,
    "max_worker_processes": 0,
    "max_wal_senders": 0,
}
POSTGRESQL_DEFAULTS = {
    "max_locks_per_transaction": 64,
    "max_connections": 100,
    "autovacuum_max_workers": 3,
    "max_worker_processes": 8,
    "max_wal_senders": 10,
}


def _schema_name(n: int) -> str:
    return f"council_e0900{n:04d}"


def _copy_council(target: psycopg.Connection, source_schema: str, n: int) -> None:
    """Council number `n` (its schema already loaded) gets a platform row and a domain, and
    an organisation of its own so no two councils hold the same rows."""
    schema = _schema_name(n)
    columns = [
        row[0]
        for row in target.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = 'tenants_council' AND column_name <> 'id' ORDER BY ordinal_position"
        )
    ]
    own = {"name": f"Copy Council {n}", "code": f"E0900{n:04d}", "slug": f"copy-{n}"}
    own["schema_name"] = schema
    chosen = ", ".join(
        f"%({column})s" if column in own else sql_identifier(column) for column in columns
    )
    council_id = target.execute(
        f"INSERT INTO tenants_council ({', '.join(sql_identifier(c) for c in columns)}) "  # noqa: S608
        f"SELECT {chosen} FROM tenants_council WHERE schema_name = %(source)s RETURNING id",
        {**own, "source": source_schema},
    ).fetchone()[0]
    target.execute(
        "INSERT INTO tenants_domain (domain, tenant_id, is_primary) VALUES (%s, %s, true)",
        [f"copy-{n}.localhost", council_id],
    )
    target.execute(
        f"INSERT INTO {sql_identifier(schema, 'core_organisation')} "  # noqa: S608
        "(name, agency_type, sensitive_service, phone, secure_email, created_at) "
        "VALUES (%s, 'school', false, '', '', now())",
        [f'Copy {n}\'s school\twith a tab\\ and a "quote"\nand a line — Ŵ'],
    )


@pytest.fixture(scope="module")
def crowded(
    tmp_path_factory, django_db_setup, django_db_blocker, world
) -> Iterator[PrivateCluster]:  # type: ignore[no-untyped-def]
    """A private cluster holding the test database's platform, template and councils, and
    COUNCILS copies of Brighton; started with a lock table too small for them all."""
    # Not under pytest's own temporary folder: the `postgres` account cannot enter it.
    directory = Path(tempfile.mkdtemp(prefix="patchwork-crowded-"))
    cluster = PrivateCluster(directory, SMALL_LOCK_TABLE)
    cluster.create()
    cluster.start(**POSTGRESQL_DEFAULTS)
    try:
        with django_db_blocker.unblock():
            source = connection.settings_dict
        source_url = (
            f"postgresql://{source['USER']}:{source['PASSWORD'] or ''}@{source['HOST']}:"
            f"{source['PORT'] or 5432}/{source['NAME']}"
        )
        dump = [str(PG_BIN / "pg_dump"), "--no-owner", "--no-privileges", source_url]
        whole = subprocess.run(dump, capture_output=True, text=True, check=True, timeout=120)
        brighton = world.brighton.schema_name
        council = subprocess.run(
            [*dump, "--schema", brighton], capture_output=True, text=True, check=True, timeout=120
        ).stdout
        # Every name in pg_dump's script is qualified with its schema.
        copies = "".join(
            re.sub(rf"\b{brighton}\b", _schema_name(n), council) for n in range(1, COUNCILS + 1)
        )
        with cluster.connect() as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")
        subprocess.run(
            [str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", cluster.url(DATABASE)],
            input=whole.stdout + copies,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        with cluster.connect(DATABASE) as target:
            for n in range(1, COUNCILS + 1):
                _copy_council(target, brighton, n)
        cluster.stop()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _schemas(conn: psycopg.Connection) -> list[str]:
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT schemaname FROM pg_tables WHERE schemaname NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1"
        )
    ]


# pytest-django makes the test database only for a session with a test marked as using it.
@pytest.mark.django_db
def test_it_backs_up_and_restores_more_councils_than_one_transaction_could_lock(
    crowded, tmp_path
) -> None:
    """One transaction over every table fails with "out of shared memory"; `patchwork backup`
    completes on the same server, and `patchwork restore` brings back every council that
    was dropped or changed, every table with the same rows."""
    with crowded.connect(DATABASE) as conn:
        assert conn.execute("SHOW max_locks_per_transaction").fetchone()[0] == "10"
        schemas = _schemas(conn)
        councils = [s for s in schemas if s.startswith("council_e0900")]
        assert len(councils) == COUNCILS
        tables = sum(len(fingerprints(s, conn.cursor())) for s in councils)
        assert tables > 40 * COUNCILS
        before = {schema: fingerprints(schema, conn.cursor()) for schema in schemas}

        # The old way: one snapshot, one transaction, a lock on every table it reads.
        every_table = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s)", [schemas]
        ).fetchall()
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with pytest.raises(psycopg.errors.OutOfMemory) as failed:
            for schema, table in every_table:
                with conn.cursor().copy(f"COPY {sql_identifier(schema, table)} TO STDOUT") as copy:
                    for _ in copy:
                        pass
        conn.execute("ROLLBACK")
        assert "max_locks_per_transaction" in str(failed.value.diag.message_hint)

    output = crowded.patchwork(DATABASE, "backup", "--output", str(tmp_path))
    assert f"{len(schemas)} schemas" in output
    (archive,) = tmp_path.glob("patchwork-*.pwa")

    # Dropping or recreating one council's schema locks each of its tables, indexes,
    # sequences and TOAST tables in one transaction (more than this tiny lock table holds,
    # well within PostgreSQL's default): the loss and the restore run on the defaults.
    crowded.stop()
    crowded.start(**POSTGRESQL_DEFAULTS)
    with crowded.connect(DATABASE) as conn:
        for schema in councils[: COUNCILS // 2]:
            conn.execute(f"DROP SCHEMA {sql_identifier(schema)} CASCADE")
        conn.execute("DELETE FROM tenants_domain WHERE domain LIKE 'copy-1%'")
        conn.execute("DELETE FROM tenants_council WHERE slug LIKE 'copy-1%'")
        conn.execute(
            f"UPDATE {sql_identifier(councils[-1], 'core_organisation')} SET name = 'Changed'"  # noqa: S608
        )

    crowded.patchwork(DATABASE, "restore", str(archive), "--confirm")

    with crowded.connect(DATABASE) as conn:
        assert _schemas(conn) == schemas
        after = {schema: fingerprints(schema, conn.cursor()) for schema in schemas}
    for schema in schemas:
        assert after[schema] == before[schema], schema
