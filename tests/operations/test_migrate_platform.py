"""`patchwork migrate_platform` taking a release (a nullable column, then its index built
CONCURRENTLY: tests/operations/release) to a handful of real council schemas, run as the
deployment runs it: its own process, with its pool of workers, on the committed test
database. A council that fails is reported at once while the others go on; a migration
held up by a long read gives up within its lock timeout and tries again; `--plan` applies
nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections
from patchwork_demo.federation import database_url

from tenants.models import Council
from tenants.services import council_onboard
from tests.federation.live import committed_restore, committed_snapshot, wait_for
from tests.operations.release import RELEASED, release_undo

# Without a test asking for the database, pytest-django would not make the test database.
pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
LOCK_TIMEOUT = 1  # seconds: MIGRATION_LOCK_TIMEOUT for the command under test


@pytest.fixture(scope="module")
def councils(django_db_setup: None, django_db_blocker) -> Iterator[list[Council]]:  # type: ignore[no-untyped-def]
    """Four councils committed for the command's own processes to migrate."""
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        made = [
            council_onboard(
                name=f"Release Council {n}", code=f"E0990000{n}", admin_email=f"it{n}@rc.test"
            ).council
            for n in range(1, 5)
        ]
        try:
            yield made
        finally:
            with connection.cursor() as cursor:
                release_undo(cursor)
            committed_restore(snapshot)
            # Plans this process prepared against the released tables are not kept.
            connection.close()


@pytest.fixture
def before_release(councils: list[Council]) -> Iterator[list[Council]]:
    """Every schema as it was before the release, before and after the test (committed at
    once: the test's own transaction is not the command's)."""
    with psycopg.connect(_database(), autocommit=True) as db:
        release_undo(db.cursor())
    yield councils
    with psycopg.connect(_database(), autocommit=True) as db:
        release_undo(db.cursor())


def _database() -> str:
    return database_url(settings.DATABASE_URL, connections["default"].settings_dict["NAME"])


@dataclass
class Run:
    """The command running: its output lines as they came, each with the second it came."""

    process: subprocess.Popen[str]
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    def seen(self, text: str) -> float | None:
        """When a line with `text` came (seconds after the start), or None."""
        for at, line in list(self.lines):
            if text in line:
                return at
        return None

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def finish(self, timeout: float = 90) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic() - self.started, line.rstrip("\n")))

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def _migrate_platform(*args: str) -> Run:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.operations.release.settings",
        "DATABASE_URL": _database(),
        "PATCHWORK_ENV": "test",
        "PYTHONUNBUFFERED": "1",
        "MIGRATION_LOCK_TIMEOUT": str(LOCK_TIMEOUT),
        "MIGRATION_RETRY_SECONDS": "1",
        "MIGRATION_LOCK_TRIES": "8",
    }
    env.pop("TEST_DATABASE_NAME", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "migrate_platform", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return Run(process=process, started=time.monotonic())


def _has_release(schema: str) -> bool:
    with psycopg.connect(_database()) as db:
        return bool(
            db.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'core_person' AND column_name = 'release_note'",
                [schema],
            ).fetchone()
        )


def _summary(path: Path) -> dict[str, dict[str, object]]:
    return {row["council"]: row for row in json.loads(path.read_text())["councils"]}


def test_it_reports_a_failing_council_at_once_goes_on_with_the_others_and_a_rerun_finishes_it(
    before_release: list[Council], tmp_path: Path
) -> None:
    """The first council has a column of the release's name already (a conflicting object):
    its failure is on the output within seconds, while the run is still going (the last
    council waits behind a long read), the others are migrated, and the exit status says a
    council failed. With the column gone, a second run migrates it and no other."""
    first, _, _, last = before_release
    summary = tmp_path / "summary.json"
    with psycopg.connect(_database(), autocommit=True) as db:
        db.execute(f'ALTER TABLE "{first.schema_name}".core_person ADD COLUMN release_note int')
        with psycopg.connect(_database()) as reader:
            # A long read of the last council's table, in a transaction left open.
            reader.execute(f'SELECT count(*) FROM "{last.schema_name}".core_person')
            run = _migrate_platform("--json", str(summary))
            assert wait_for(lambda: run.seen(f"{first.code} ") is not None, timeout=60), (
                run.output()
            )
            reported = run.seen(f"{first.code} ")
            assert run.process.poll() is None, "the failure came only when the run ended"
            assert wait_for(lambda: run.seen("trying again") is not None, timeout=30)
            reader.rollback()
        assert run.finish() == 1, run.output()
        ended = run.lines[-1][0]
        out = run.output()
        assert f"{first.code} Release Council 1 ({first.schema_name}) failed after" in out
        assert "core.9001_person_release_note: DuplicateColumn" in out, out
        assert "1 council failed to migrate (the others are up to date)" in out
        assert reported is not None and reported < ended - LOCK_TIMEOUT, out
        rows = _summary(summary)
        assert rows[first.code]["status"] == "failed"
        assert "already exists" in str(rows[first.code]["error"])
        assert rows[first.code]["migrations"] == []
        for council in before_release[1:]:
            assert rows[council.code]["status"] == "migrated", rows[council.code]
            assert rows[council.code]["migrations"] == [f"{a}.{n}" for a, n in RELEASED]
            assert _has_release(council.schema_name)
        assert int(str(rows[last.code]["tries"])) >= 2

        db.execute(f'ALTER TABLE "{first.schema_name}".core_person DROP COLUMN release_note')
    rerun = _migrate_platform("--json", str(summary))
    assert rerun.finish() == 0, rerun.output()
    assert "Councils with migrations pending: 1" in rerun.output()
    assert "Every council is up to date" in rerun.output()
    rows = _summary(summary)
    assert rows[first.code]["status"] == "migrated"
    assert all(rows[c.code]["status"] == "up to date" for c in before_release[1:])
    assert _has_release(first.schema_name)


def test_a_migration_held_up_by_a_long_read_gives_up_within_its_lock_timeout_and_tries_again(
    before_release: list[Council], tmp_path: Path
) -> None:
    """A transaction holds a read lock on one council's person table. The migration's
    ALTER TABLE waits for it, but only for the lock timeout: a read of that table made
    meanwhile (which queues behind the waiting ALTER) answers within about that time, not
    when the long read ends. The migration tries again, and applies once the read ends."""
    held = before_release[1]
    table = f'"{held.schema_name}".core_person'
    summary = tmp_path / "summary.json"
    with psycopg.connect(_database()) as reader, psycopg.connect(_database()) as watcher:
        watcher.autocommit = True
        reader.execute(f"SELECT count(*) FROM {table}")  # ACCESS SHARE until the rollback
        run = _migrate_platform("--json", str(summary))

        def alter_waits() -> bool:
            return bool(
                watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query ILIKE 'ALTER TABLE%%' AND %s = ANY(pg_blocking_pids(pid))",
                    [reader.info.backend_pid],
                ).fetchone()
            )

        assert wait_for(alter_waits, timeout=60, every=0.02), run.output()
        # Were the migration to wait on, so would this read: it stops after 6 s (and fails
        # the test) rather than wait for the long read this test ends only after it.
        with psycopg.connect(
            _database(), autocommit=True, options="-c statement_timeout=6s"
        ) as traffic:
            started = time.monotonic()
            traffic.execute(f"SELECT count(*) FROM {table}")
            waited = time.monotonic() - started
        # The lock timeout, and a margin for a busy machine: well short of the 6 s.
        assert waited < LOCK_TIMEOUT + 1.5, f"a read of the table queued for {waited:.1f} s"
        assert wait_for(lambda: run.seen("trying again") is not None, timeout=30)
        retry = run.seen("trying again")
        time.sleep(2 * LOCK_TIMEOUT)  # it goes on giving up while the read lasts
        assert not _has_release(held.schema_name)
        reader.rollback()
    assert run.finish() == 0, run.output()
    out = run.output()
    assert f"{held.schema_name}: core.9001_person_release_note gave up waiting 1 s" in out
    assert retry is not None
    row = _summary(summary)[held.code]
    assert row["status"] == "migrated" and int(str(row["tries"])) >= 2, row
    assert _has_release(held.schema_name)


def test_plan_lists_what_would_run_where_and_applies_nothing(
    before_release: list[Council], tmp_path: Path
) -> None:
    """`--plan` names the release's migrations for the public schema, the template and
    each council, in order, and changes no schema."""
    summary = tmp_path / "plan.json"
    run = _migrate_platform("--plan", "--json", str(summary))
    assert run.finish() == 0, run.output()
    out = run.output()
    release = ", ".join(f"{a}.{n}" for a, n in RELEASED)
    assert f"Council template: {release}" in out
    for council in before_release:
        assert f"  {council.code} {council.name} ({council.schema_name}): {release}" in out
    assert "Nothing was applied (--plan)" in out
    plan = json.loads(summary.read_text())
    assert {c["council"]: c["migrations"] for c in plan["councils"]}[before_release[0].code] == [
        f"{a}.{n}" for a, n in RELEASED
    ]
    assert not any(_has_release(c.schema_name) for c in before_release)
    assert not _has_release("council_template")
    with psycopg.connect(_database()) as db:
        recorded = db.execute(
            "SELECT count(*) FROM public.django_migrations WHERE app = 'core' AND name = ANY(%s)",
            [[name for _, name in RELEASED]],
        ).fetchone()
    assert recorded == (0,)


def test_post_migrate_runs_after_a_plan_changing_a_model_and_not_after_one_adding_a_column() -> (
    None
):
    """Content types and permissions come from the models and their options: a plan that
    only adds a column and an index leaves them as they were, so their handlers are
    skipped; a plan that creates a model, or changes its options, runs them."""
    from django.contrib.postgres.operations import AddIndexConcurrently
    from django.db import migrations, models

    from tenants.migrating import post_migrate_needed

    def migration(*operations: migrations.operations.base.Operation) -> migrations.Migration:
        made = migrations.Migration("9999_release", "core")
        made.operations = list(operations)
        return made

    column = migrations.AddField("person", "note", models.TextField(null=True))
    index = AddIndexConcurrently("person", models.Index(fields=["note"], name="note_idx"))
    model = migrations.CreateModel("Note", [("id", models.BigAutoField(primary_key=True))])
    options = migrations.AlterModelOptions("person", {"permissions": [("see", "See")]})
    assert not post_migrate_needed([migration(column), migration(index)])
    assert post_migrate_needed([migration(column), migration(model)])
    assert post_migrate_needed([migration(options)])
    assert post_migrate_needed([migration(migrations.RunSQL("SELECT 1"))])
