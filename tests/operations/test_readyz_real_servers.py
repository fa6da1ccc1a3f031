"""/readyz against real servers that stop and come back: a private PostgreSQL and a private
Redis (never the machine's shared ones), the app under gunicorn, a Celery worker with beat."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
REDIS_SERVER = shutil.which("redis-server")
METRICS_TOKEN = "metrics-token-for-the-real-server-test-0123"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    """A throwaway cluster in a temporary directory, on its own port."""

    def __init__(self, directory: Path) -> None:
        self.bin = PG_BINS[-1].parent
        self.directory = directory
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        # PostgreSQL refuses to run as root: run it as the `postgres` account instead.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(directory, user="postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=60)

    def create(self) -> None:
        data = self.directory / "data"
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "utf8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-m",
            "fast",
            "-w",
            "-t",
            "30",
            "stop",
        )

    def running(self) -> bool:
        return (self.directory / "data" / "postmaster.pid").exists()


class PrivateRedis:
    """redis-server as a child process on its own port; stopped with SHUTDOWN SAVE so it
    comes back with its data, as a production Redis with persistence would."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self._ping(), "Redis to start", 10)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        assert self.process is not None
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(b"SHUTDOWN SAVE\r\n")
        self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)


def wait_for(condition: Callable[[], object], what: str, seconds: float) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"Timed out after {seconds}s waiting for {what}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Kill a throwaway server and everything it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def deployment() -> Iterator[tuple[str, PrivatePostgres, PrivateRedis, Path]]:
    """Private PostgreSQL and Redis, migrated; gunicorn and a Celery worker with beat."""
    if not PG_BINS or REDIS_SERVER is None:
        pytest.skip("needs PostgreSQL's server binaries and redis-server installed")
    directory = Path(tempfile.mkdtemp(prefix="patchwork-readyz-"))
    directory.chmod(0o755)
    pg_dir, redis_dir, metrics_dir = directory / "pg", directory / "redis", directory / "metrics"
    for made in (pg_dir, redis_dir, metrics_dir):
        made.mkdir()
    postgres, redis = PrivatePostgres(pg_dir), PrivateRedis(redis_dir)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        postgres.create()
        postgres.start()
        redis.start()
        env = {
            **{k: v for k, v in os.environ.items() if k not in {"TEST_DATABASE_NAME"}},
            "PATCHWORK_ENV": "test",
            "PATCHWORK_DATA_DIR": str(directory / "data"),
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "DB_CONN_MAX_AGE": "60",
            "DB_CONNECT_TIMEOUT": "2",
            "CELERY_HEARTBEAT_SECONDS": "1",
            "READYZ_HEARTBEAT_MAX_AGE": "20",
            # Two web processes counting requests into one multiprocess metrics directory.
            "GUNICORN_WORKERS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "METRICS_TOKEN": METRICS_TOKEN,
        }
        port = free_port()
        logs = {name: (directory / f"{name}.log").open("wb") for name in ("web", "worker")}
        processes.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "--config",
                    "python:deploy.gunicorn_conf",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "deploy.wsgi:application",
                ],
                cwd=ROOT,
                env=env,
                stdout=logs["web"],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        processes.append(
            subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "deploy",
                    "worker",
                    "--beat",
                    "--pool",
                    "solo",
                    "--schedule",
                    str(directory / "beat-schedule"),
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=logs["worker"],
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        # The web and the worker start while the database is migrated; readyz says
        # "unready" (migrations pending) until that is done.
        subprocess.run(
            [sys.executable, "-m", "deploy.cli", "migrate_platform"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"http://127.0.0.1:{port}/readyz", postgres, redis, directory
    finally:
        for process in processes:
            stop_process(process)
        redis.kill()
        if postgres.running():
            postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


def probe(url: str) -> tuple[int, dict]:
    try:
        response = httpx.get(url, headers={"Host": "localhost"}, timeout=5)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()


def test_it_goes_unready_when_postgresql_or_redis_stops_and_ready_when_back(
    deployment,
) -> None:
    """Stop PostgreSQL: 503 naming the database; start it: 200. The same for Redis."""
    url, postgres, redis, directory = deployment
    started = time.monotonic()

    def ready() -> bool:
        return probe(url)[0] == 200

    def unready_naming(check: str) -> dict | None:
        status, body = probe(url)
        return body if status == 503 and check in body.get("failing", []) else None

    timings: list[str] = []

    def step(what: str, condition: Callable[[], object], seconds: float) -> object:
        begun = time.monotonic()
        result = wait_for(condition, what, seconds)
        timings.append(f"{what}: {time.monotonic() - begun:.1f}s")
        return result

    try:
        step("the first ready (web up, migrated, first heartbeat)", ready, 60)

        postgres.stop()
        body = step("unready without PostgreSQL", lambda: unready_naming("database"), 15)
        assert body["checks"]["database"]["status"] == "error"  # type: ignore[index]
        assert body["checks"]["redis"]["status"] == "ok"  # type: ignore[index]
        postgres.start()
        step("ready again with PostgreSQL back", ready, 20)

        redis.stop()
        body = step("unready without Redis", lambda: unready_naming("redis"), 15)
        assert body["checks"]["database"]["status"] == "ok"  # type: ignore[index]
        assert "celery" in body["failing"]  # type: ignore[index]
        redis.start()
        step("ready again with Redis back", ready, 30)
    except AssertionError as failure:
        logs = "\n".join(
            f"--- {name}.log\n" + (directory / f"{name}.log").read_text(errors="replace")[-3000:]
            for name in ("web", "worker")
        )
        raise AssertionError(f"{failure}; last answer {probe(url)}\n{logs}") from None
    print("; ".join(timings))  # noqa: T201 - figures for the report
    assert time.monotonic() - started < 90


def test_it_adds_up_request_counts_across_gunicorn_processes(deployment) -> None:
    """Two gunicorn workers, one multiprocess directory: every scrape counts every request,
    whichever process answered it and whichever answers the scrape."""
    base = deployment[0].removesuffix("/readyz")
    key = (("host_kind", "platform"), ("method", "GET"), ("status", "2xx"))

    def counted() -> float:
        response = httpx.get(
            f"{base}/metrics",
            headers={"Host": "localhost", "Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 200
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "patchwork_http_requests_total"
            and tuple(sorted((k, v) for k, v in sample.labels.items() if k != "council")) == key
        )

    before = counted()
    for _ in range(20):
        # A new connection each time, so the requests spread over both processes.
        assert httpx.get(f"{base}/sign-in/", headers={"Host": "localhost"}).status_code == 200
    assert [counted() for _ in range(4)] == [before + 20] * 4
