"""The start-up guard against a connection pooler in transaction mode, with a real PgBouncer
in front of the test PostgreSQL: refused in transaction mode, accepted in session mode.
Each check is a new `patchwork` process, whose first connection runs the guard."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

CONNECT = "from django.db import connection; connection.ensure_connection(); print('connected')"


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if found:
        return found
    # CI installs it (.ci/run): there a missing binary is a broken set-up, not a reason to skip.
    if os.environ.get("CI") == "true":
        pytest.fail("pgbouncer is not installed (apt-get install pgbouncer)")
    pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def pgbouncer(pool_mode: str, *, pool_size: int = 5) -> Iterator[int]:
    """A PgBouncer on a free loopback port in front of the test database's server."""
    binary = _pgbouncer_binary()
    server = connection.settings_dict
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as folder:
        config = Path(folder) / "pgbouncer.ini"
        users = Path(folder) / "userlist.txt"
        users.write_text(f'"{server["USER"]}" ""\n')
        config.write_text(
            "[databases]\n"
            f"* = host={server['HOST'] or '127.0.0.1'} port={server['PORT'] or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
        )
        # PgBouncer will not run as root; it reads its files before taking the user's rights.
        as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
        process = subprocess.Popen(
            [binary, *as_user, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert process.poll() is None, process.communicate()[0].decode()
                    time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def _through_pgbouncer(port: int) -> str:
    server = connection.settings_dict
    return f"postgres://{server['USER']}@127.0.0.1:{port}/{server['NAME']}"


def _straight_to_postgresql() -> str:
    server = connection.settings_dict
    host, port = server["HOST"] or "127.0.0.1", server["PORT"] or 5432
    if host.startswith("/"):  # the embedded server listens on a socket in its data folder
        return f"postgres://{server['USER']}@/{server['NAME']}?host={host}&port={port}"
    return f"postgres://{server['USER']}@{host}:{port}/{server['NAME']}"


def _patchwork(url: str, code: str = CONNECT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", "shell", "--no-imports", "-c", code],
        env={**os.environ, "PATCHWORK_ENV": "test", "DATABASE_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db
def test_it_refuses_a_transaction_pooler() -> None:
    """Behind PgBouncer in transaction mode the first connection fails with the reason and
    the way out, and nothing runs."""
    with pgbouncer("transaction") as port:
        done = _patchwork(_through_pgbouncer(port))
    assert done.returncode != 0
    assert "connected" not in done.stdout
    assert "ImproperlyConfigured" in done.stderr
    assert "transaction mode" in done.stderr
    assert "pool_mode = session" in done.stderr


@pytest.mark.django_db
def test_it_refuses_a_transaction_pooler_at_every_attempt() -> None:
    """A refused connection is not kept: the process's next attempt is checked again."""
    twice = (
        "from django.db import connection\n"
        "for _ in range(2):\n"
        "    try:\n"
        "        connection.ensure_connection()\n"
        "        print('connected')\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__)\n"
    )
    with pgbouncer("transaction") as port:
        done = _patchwork(_through_pgbouncer(port), twice)
    assert done.stdout.split() == ["ImproperlyConfigured", "ImproperlyConfigured"], done.stderr


@pytest.mark.django_db
def test_it_accepts_a_session_pooler() -> None:
    """PgBouncer in session mode is accepted."""
    with pgbouncer("session") as port:
        done = _patchwork(_through_pgbouncer(port))
    assert done.returncode == 0, done.stderr
    assert "connected" in done.stdout


@pytest.mark.django_db
def test_it_accepts_a_full_session_pool() -> None:
    """In session mode with every server connection taken (ours is the only one), the second
    client waits; ours still answers at once, so the guard accepts rather than hang."""
    with pgbouncer("session", pool_size=1) as port:
        done = _patchwork(_through_pgbouncer(port))
    assert done.returncode == 0, done.stderr
    assert "connected" in done.stdout


@pytest.mark.django_db
def test_it_can_be_turned_off_explicitly() -> None:
    """DATABASE_POOLER_CHECK=false (unsafe, documented as such) lets the process connect."""
    with pgbouncer("transaction") as port:
        done = _patchwork(_through_pgbouncer(port), DATABASE_POOLER_CHECK="false")
    assert done.returncode == 0, done.stderr
    assert "connected" in done.stdout


@pytest.mark.django_db
def test_it_accepts_postgresql_directly() -> None:
    """Straight to PostgreSQL, the guard passes."""
    done = _patchwork(_straight_to_postgresql())
    assert done.returncode == 0, done.stderr
    assert "connected" in done.stdout
