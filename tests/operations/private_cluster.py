"""A PostgreSQL cluster of a test's own, in a temporary directory on a free port, started with
the settings the test is about (a small lock table, WAL archiving) and stopped after it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateCluster:
    """initdb, pg_ctl start/stop/restart with `settings`, and connections to it. Runs as the
    `postgres` account when the tests run as root (PostgreSQL refuses root)."""

    def __init__(self, directory: Path, settings: Mapping[str, str | int]) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.settings = dict(settings)
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(directory, user="postgres")

    def run(self, *args: str, timeout: int = 60) -> subprocess.CompletedProcess[str]:
        """A command as the cluster's owner; its output is in the error when it fails."""
        done = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def create(self) -> None:
        self.run(
            str(PG_BIN / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "utf8"),
        )

    def start(self, **overrides: str | int) -> None:
        settings = {
            "port": self.port,
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.directory),
            "fsync": "off",
            **self.settings,
            **overrides,
        }
        options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        self.run(
            str(PG_BIN / "pg_ctl"),
            *("-D", str(self.data), "-o", options, "-l", str(self.directory / "log")),
            *("-w", "-t", "60", "start"),
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True)

    def patchwork(self, database: str, *args: str, timeout: int = 300) -> str:
        """`patchwork <args>` against `database` in this cluster; its output."""
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"TEST_DATABASE_NAME", "REDIS_URL"}
        }
        env.update(
            DATABASE_URL=self.url(database).replace("postgresql://", "postgres://"),
            PATCHWORK_ENV="test",
            PATCHWORK_DATA_DIR=str(self.directory / "patchwork-data"),
        )
        done = subprocess.run(
            [sys.executable, "-m", "deploy.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"patchwork {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout
