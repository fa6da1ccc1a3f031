"""An embedded PostgreSQL for the demo and the tests when no DATABASE_URL is configured.

`pgserver` ships a PostgreSQL 16 build inside a wheel: a new user can try Patchwork with
nothing but Python. The server keeps running between commands (the demo's web server,
worker and CLI share it) and keeps its data in PATCHWORK_DATA_DIR, never in the repository.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

DATABASE_NAME = "patchwork"


def start_unless_configured() -> None:
    """Outside production, with no DATABASE_URL: start (or reuse) the embedded server and
    put its address in DATABASE_URL for this process and the ones it starts. Called before
    Django reads its settings by the `patchwork` command (deploy/cli.py) and at pytest's
    start (deploy/pytest_plugin.py); settings never start it, so importing them (as mypy's
    django-stubs plugin does) runs no server."""
    if os.environ.get("DATABASE_URL") or os.environ.get("DATABASE_URL_FILE"):
        return
    if os.environ.get("PATCHWORK_ENV", "production") not in {"development", "test"}:
        return  # production: settings refuse to start without a DATABASE_URL
    # The same folder as settings.DATA_DIR, which cannot be imported before this runs.
    data_dir = os.environ.get("PATCHWORK_DATA_DIR") or str(Path.home() / ".local/share/patchwork")
    os.environ["DATABASE_URL"] = embedded_database_url(Path(data_dir) / "pgdata")


def embedded_database_url(pgdata: Path) -> str:
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - only without the dev/embedded extra
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "No DATABASE_URL is set and the embedded PostgreSQL is not installed: "
            "`pip install 'patchwork[embedded]'` or set DATABASE_URL"
        ) from exc

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        # pgserver keeps its bookkeeping in the user's runtime folder; root and CI have none
        # (platformdirs then warns on every command): give it a private one beside the data.
        runtime = pgdata.parent / "run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    handle_list_repair(pgdata)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as under root and in CI).
        warnings.simplefilter("ignore")
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        if DATABASE_NAME not in server.psql("SELECT datname FROM pg_database;"):
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        return server.get_uri(DATABASE_NAME)


def handle_list_repair(pgdata: Path) -> bool:
    """pgserver keeps the ids of the processes using the server in a small JSON file. A
    process stopped mid-write (Ctrl-C at the wrong moment) leaves it empty, and every
    later command then fails reading it. It only counts users of the server, which
    Patchwork never stops that way: an unreadable list is started afresh. True if repaired."""
    path = pgdata / ".handle_pids.json"
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except ValueError:
        values = None
    if isinstance(values, list):
        return False
    path.write_text("[]")
    return True
