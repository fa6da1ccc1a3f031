"""What the benchmarks share: a database of their own on loopback, and gunicorn started
with the deployment's own settings. Only 127.0.0.1/localhost is ever contacted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def benchmark_database(example_name: str) -> str:
    """DATABASE_URL, checked to be a benchmark's own database on loopback (created if it
    is not there yet), never the tests'."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit(
            "Set DATABASE_URL to a benchmark database, e.g. "
            f"postgres://postgres@127.0.0.1:5432/{example_name}"
        )
    name = url.rsplit("/", 1)[-1].split("?")[0]
    host = re.sub(r"^.*@", "", url.rsplit("/", 1)[0]).split(":")[0]
    if host not in {"127.0.0.1", "localhost"}:
        sys.exit(f"The benchmark only runs against 127.0.0.1/localhost, not {host}")
    if name.startswith("test") or name == os.environ.get("TEST_DATABASE_NAME"):
        sys.exit(f"{name} looks like a test database: give the benchmark its own")
    import psycopg

    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"Created database {name}")
    return url


def gunicorn_start(
    env: Mapping[str, str],
    port: int,
    *,
    workers: int = 0,
    threads: int = 0,
    log: Path | None = None,
    code: Path | None = None,
) -> subprocess.Popen[bytes]:
    """gunicorn with the deployment's own settings (deploy/gunicorn_conf.py; `workers` and
    `threads` override them when given) on 127.0.0.1:port, DEBUG off. Returns once the
    workers answer the health check; stop it with patchwork_demo.federation.server_stop.
    `code`: another checkout of Patchwork to serve instead of this one (its own directory
    as the working directory and its gunicorn settings; put it on PYTHONPATH in `env`)."""
    import httpx

    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "DEBUG": "false"}
    if workers:
        env["GUNICORN_WORKERS"] = str(workers)
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str((code or ROOT) / "deploy/gunicorn_conf.py")]
        + ["--access-logfile", "/dev/null", "deploy.wsgi:application"],
        cwd=code or ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log else subprocess.DEVNULL,
        start_new_session=True,
    )
    # Ready when (about) every worker has loaded Django and answered the health check.
    wanted = 2 * (workers or (os.cpu_count() or 1) * 2 + 1)
    answered = 0
    deadline = time.monotonic() + 120
    while answered < wanted and time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn stopped at start on 127.0.0.1:{port}: see {log}")
        try:
            httpx.get(
                f"http://127.0.0.1:{port}/healthz", headers={"Host": "localhost"}, timeout=10
            ).raise_for_status()
            answered += 1
        except (httpx.HTTPError, OSError):
            time.sleep(0.2)
    if answered < wanted:
        process.terminate()
        raise SystemExit(f"gunicorn did not start on 127.0.0.1:{port}: see {log}")
    return process
