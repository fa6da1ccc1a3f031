"""The embedded PostgreSQL: started only by the command line and pytest, never by reading
the settings; its bookkeeping survives an interrupted command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.embedded_pg import handle_list_repair, start_unless_configured


def test_an_empty_or_broken_handle_list_is_started_afresh(tmp_path: Path) -> None:
    pids = tmp_path / ".handle_pids.json"
    assert not handle_list_repair(tmp_path)  # no file: nothing to do
    for broken in ["", "[12, 1", "{}"]:
        pids.write_text(broken)
        assert handle_list_repair(tmp_path)
        assert json.loads(pids.read_text()) == []
    pids.write_text("[123, 456]")
    assert not handle_list_repair(tmp_path)
    assert json.loads(pids.read_text()) == [123, 456]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(
                errors="replace"
            ):
                found.append(int(proc.name))
        except OSError:
            continue  # it ended while we looked
    return found


def test_importing_the_settings_starts_no_database(tmp_path: Path) -> None:
    """With no DATABASE_URL (test mode, a fresh data folder), importing deploy.settings, as
    mypy's django-stubs plugin does, starts no PostgreSQL and creates no data folder."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DATABASE_URL_FILE"}}
    env.update(PATCHWORK_ENV="test", PATCHWORK_DATA_DIR=str(tmp_path))
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import deploy.settings as s; print(s.DATABASE_URL)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "pgdata").exists()
        assert _processes_mentioning(str(tmp_path)) == []
        # A placeholder that can reach no server, not a guess at a local one.
        assert done.stdout.strip().endswith(".invalid/patchwork")
    finally:
        # Should the import have started a server, stop it rather than leave it running.
        for pid in _processes_mentioning(str(tmp_path)):
            os.kill(pid, signal.SIGTERM)


def test_the_embedded_server_is_not_started_over_a_configured_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A DATABASE_URL, or production mode, leaves the embedded server alone."""
    monkeypatch.setenv("PATCHWORK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@db.example/patchwork")
    start_unless_configured()
    assert os.environ["DATABASE_URL"] == "postgres://postgres@db.example/patchwork"
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("PATCHWORK_ENV", "production")
    start_unless_configured()
    assert "DATABASE_URL" not in os.environ
    assert not (tmp_path / "pgdata").exists()
