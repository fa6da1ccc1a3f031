"""Point-in-time recovery with pgBackRest, as the Ansible role sets it up (WAL archived by
`archive_command`, a full backup, restore to a moment): on a real PostgreSQL cluster of the
test's own and a repository in a temporary folder, with Debian's pgbackrest."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operations.private_cluster import PrivateCluster

PGBACKREST = shutil.which("pgbackrest")
pytestmark = pytest.mark.skipif(PGBACKREST is None, reason="apt-get install pgbackrest")


@pytest.fixture
def workspace() -> Iterator[Path]:
    # Not under pytest's own temporary folder: the `postgres` account cannot enter it.
    directory = Path(tempfile.mkdtemp(prefix="patchwork-pitr-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _config(directory: Path, data: Path, port: int) -> Path:
    """The settings of ansible/roles/postgresql/templates/pgbackrest.conf.j2 (but the
    repository's encryption and compression), with every path in `directory`."""
    config = directory / "pgbackrest.conf"
    config.write_text(
        "[global]\n"
        f"repo1-path={directory / 'repository'}\n"
        "repo1-retention-full=2\n"
        "start-fast=y\n"
        "log-level-console=warn\n"
        "log-level-file=off\n"
        f"lock-path={directory / 'lock'}\n"
        "archive-timeout=30\n"
        "\n[patchwork]\n"
        f"pg1-path={data}\n"
        f"pg1-port={port}\n"
        f"pg1-socket-path={directory}\n"
    )
    return config


def test_it_restores_to_the_moment_between_two_writes(workspace) -> None:
    """Write, note the time, write more; a restore to the noted time holds exactly the
    first writes, and the restored server accepts new ones."""
    cluster = PrivateCluster(workspace, {})
    config = _config(workspace, cluster.data, cluster.port)
    backrest = [str(PGBACKREST), f"--config={config}", "--stanza=patchwork"]
    restored = PrivateCluster(workspace, {})
    restored.data = workspace / "restored"
    for folder in ("repository", "lock", "restored"):
        (workspace / folder).mkdir(mode=0o700)
        if cluster.as_user:
            shutil.chown(workspace / folder, user="postgres")
    try:
        cluster.create()
        cluster.start(
            archive_mode="on",
            archive_command=f"'{' '.join(backrest)} archive-push %p'",
            wal_level="replica",
        )
        cluster.run(*backrest, "stanza-create")
        cluster.run(*backrest, "backup", "--type=full")
        with cluster.connect() as conn:
            conn.execute("CREATE TABLE involvement (id int PRIMARY KEY, role text NOT NULL)")
            conn.execute("INSERT INTO involvement VALUES (1, 'social worker'), (2, 'school nurse')")
            time.sleep(1)
            noted = conn.execute("SELECT clock_timestamp()::text").fetchone()[0]
            time.sleep(1)
            conn.execute("INSERT INTO involvement VALUES (3, 'health visitor')")
            conn.execute("UPDATE involvement SET role = 'changed' WHERE id = 1")
            # The segment holding the later writes goes to the repository too, as it would
            # once full or after archive_timeout.
            conn.execute("SELECT pg_switch_wal()")
        cluster.run(*backrest, "check")
        cluster.stop()

        cluster.run(
            *backrest,
            f"--pg1-path={restored.data}",
            "restore",
            "--type=time",
            f"--target={noted}",
            "--target-action=promote",
        )
        restored.start()
        with restored.connect() as conn:
            for _ in range(100):
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    break
                time.sleep(0.2)
            rows = conn.execute("SELECT id, role FROM involvement ORDER BY id").fetchall()
            assert rows == [(1, "social worker"), (2, "school nurse")]
            conn.execute("INSERT INTO involvement VALUES (3, 'after the restore')")
    finally:
        restored.stop()
        cluster.stop()
