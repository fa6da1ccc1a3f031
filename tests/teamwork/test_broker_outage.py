"""Redis, the Celery broker, stops while practitioners work (issue 14, point 4).

A private redis-server on its own port, a real Celery worker and beat (two processes) on it and
the test database, and the suite's small SMTP server: with the broker stopped, scheduling
meetings and stating reasons answer at once and are saved; once Redis is back, the sweeps
send every email exactly once."""

from __future__ import annotations

import os
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django_tenants.utils import schema_context
from patchwork_demo.federation import database_url
from prometheus_client import REGISTRY

from core.models import EmailOutbox, RecordOpening
from teamwork.models import Meeting
from tests.factories import OrganisationFactory, PractitionerFactory
from tests.operations.test_readyz_real_servers import REDIS_SERVER, PrivateRedis
from tests.personas import client_for
from tests.teamwork.conftest import FlakySmtp
from tests.teamwork.team import Team

pytestmark = pytest.mark.redis

# Every page a practitioner saves must answer within this, broker or no broker.
ANSWER_WITHIN = 2.0


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"Timed out after {timeout}s waiting for {what}")


def _celery(env: dict[str, str], log: Path, *arguments: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "deploy.celery", *arguments, "--loglevel", "info"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def worker_with_beat(env: dict[str, str], directory: Path) -> list[subprocess.Popen[bytes]]:
    """A Celery worker and beat, each its own process (as the patchwork-worker and
    patchwork-beat services are) in its own process group, logging into `directory`."""
    return [
        _celery(
            env,
            directory / "worker.log",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
        ),
        _celery(
            env, directory / "beat.log", "beat", "--schedule", str(directory / "beat-schedule")
        ),
    ]


def stop_worker(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """This process's Celery app publishes to `url` (not eagerly) for the block."""
    from deploy.celery import app
    from tenants import queueing

    def reset() -> None:
        app._pool = None  # type: ignore[attr-defined]
        app.amqp._producer_pool = None
        queueing._broker_down_until = 0.0

    before = app.conf.broker_url
    app.conf.task_always_eager = False
    app.conf.broker_url = url
    reset()
    try:
        yield
    finally:
        app.conf.broker_url = before
        app.conf.task_always_eager = True
        reset()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if REDIS_SERVER is None or not os.environ.get("REDIS_URL"):
        pytest.skip("needs redis-server installed and REDIS_URL set")
    directory = Path(tempfile.mkdtemp(prefix="patchwork-broker-redis-"))
    redis = PrivateRedis(directory)
    redis.start()
    yield redis
    redis.kill()


def worker_env(redis: PrivateRedis, smtp: FlakySmtp | HoldingSmtp, **extra: str) -> dict[str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "TEST_DATABASE_NAME"},
        "PATCHWORK_ENV": "test",
        "DATABASE_URL": database_url(
            settings.DATABASE_URL, connections["default"].settings_dict["NAME"]
        ),
        "REDIS_URL": redis.url,
        "PLATFORM_DOMAIN": "localhost",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_USE_TLS": "false",
        **extra,
    }
    return env


def references(smtp: FlakySmtp) -> Counter[str]:
    """How many times the server accepted each email, by Patchwork's reference."""
    return Counter(str(message_from_bytes(raw)["X-Patchwork-Reference"]) for raw in smtp.received)


def enqueue_failures() -> float:
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == "patchwork_task_enqueue_failures":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def test_the_cache_misses_quietly_while_redis_is_down(private_redis: PrivateRedis, db) -> None:
    """The Django cache is Redis too: stopped, a read is a miss and a write does nothing,
    each within a second, instead of an error that would be a 500."""
    from django_redis.cache import RedisCache

    params = {**settings.CACHES["default"], "LOCATION": private_redis.url}
    cache = RedisCache(private_redis.url, params)
    cache.set("broker-outage", "kept", 60)
    assert cache.get("broker-outage") == "kept"
    private_redis.stop()
    started = time.monotonic()
    assert cache.get("broker-outage") is None
    cache.set("broker-outage", "lost", 60)
    assert time.monotonic() - started < 1.0


def test_it_saves_at_once_with_the_broker_down_and_emails_each_once_when_it_returns(
    world, committed_team: Team, private_redis: PrivateRedis, flaky_smtp: FlakySmtp
) -> None:
    """Three meetings and two stated reasons while Redis is stopped: every page answers
    within 2 s and everything is saved; when Redis returns, the sweeps send every email
    (invitations, the lead's "record opened" notices) once, none twice, none missing."""
    team = committed_team
    schema = team.schema
    with schema_context(schema):
        first_new_email = (
            EmailOutbox.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        ) + 1
        outsiders = [
            PractitionerFactory(
                organisation=OrganisationFactory(name=f"Youth service {uuid.uuid4().hex[:6]}"),
                user__email=f"outsider-{n}-{uuid.uuid4().hex[:6]}@brighton.test",
            ).user
            for n in range(2)
        ]
    organisers = [team.lead, team.nurse, team.gp]
    clients = {user.pk: client_for(world, user) for user in organisers + outsiders}
    directory = Path(tempfile.mkdtemp(prefix="patchwork-broker-"))
    worker = worker_with_beat(
        worker_env(
            private_redis,
            flaky_smtp,
            SWEEP_SECONDS="1",
            SWEEP_AFTER_SECONDS="0",
        ),
        directory,
    )
    try:
        with broker_at(private_redis.url):
            from deploy.celery import app

            wait_for(lambda: bool(app.control.ping(timeout=0.5)), "the worker to start", timeout=30)
            failures_before = enqueue_failures()
            private_redis.stop()

            day = date.today() + timedelta(days=7)
            for n, organiser in enumerate(organisers):
                started = time.monotonic()
                response = clients[organiser.pk].post(
                    f"/people/{team.child.pk}/meetings/new/",
                    {
                        "title": f"Core group {n}",
                        "day_day": str(day.day),
                        "day_month": str(day.month),
                        "day_year": str(day.year),
                        "starts": f"{10 + n}:00",
                        "ends": f"{10 + n}:45",
                        "place": "Hove Town Hall, room 2",
                        "whole_team": "on",
                    },
                )
                took = time.monotonic() - started
                assert response.status_code == 302, response.content[:500]
                assert took < ANSWER_WITHIN, f"scheduling a meeting took {took:.1f}s"
            for outsider in outsiders:
                client = clients[outsider.pk]
                client.post("/search/", {"nhs_number": team.child.nhs_number})
                started = time.monotonic()
                response = client.post(
                    f"/people/{team.child.pk}/",
                    {"reason": "safeguarding", "note": "A worry raised at the youth club."},
                )
                took = time.monotonic() - started
                assert response.status_code == 302, response.content[:500]
                assert took < ANSWER_WITHIN, f"stating a reason took {took:.1f}s"

            with schema_context(schema):
                meetings = Meeting.objects.filter(person=team.child, title__startswith="Core")
                invitations = sum(m.invitations.count() for m in meetings)
                assert meetings.count() == 3 and invitations >= 6
                assert RecordOpening.objects.filter(user__in=outsiders).count() == 2
                waiting = EmailOutbox.objects.filter(pk__gte=first_new_email)
                assert waiting.filter(status="queued").count() == invitations
            assert flaky_smtp.received == []
            assert enqueue_failures() > failures_before

            private_redis.start()
            # Beat's minute job emails the "straight away" notifications; the email sweep
            # (every second here) sends whatever the broker never carried.
            app.send_task(
                "tenants.tasks.for_each_council",
                args=["core.tasks.notifications_email_immediate"],
            )

            def all_sent() -> bool:
                with schema_context(schema):
                    rows = EmailOutbox.objects.filter(pk__gte=first_new_email)
                    notices = rows.filter(kind="notification", to_email=team.lead.email)
                    return notices.count() >= 2 and not rows.exclude(status="sent").exists()

            try:
                wait_for(all_sent, "every email to be sent", timeout=60)
            except AssertionError:
                with schema_context(schema):
                    rows = EmailOutbox.objects.filter(pk__gte=first_new_email)
                    left = list(rows.exclude(status="sent").values_list("kind", "status"))
                raise AssertionError(f"not sent: {left}; worker log: {directory}") from None
            time.sleep(3)  # a few more sweeps: none may send anything again
    finally:
        stop_worker(worker)

    with schema_context(schema):
        keys = list(
            EmailOutbox.objects.filter(pk__gte=first_new_email).values_list(
                "idempotency_key", flat=True
            )
        )
    sent = references(flaky_smtp)
    assert sum(key.startswith("meeting:") for key in keys) == invitations
    assert {key: sent[key] for key in keys} == dict.fromkeys(keys, 1)
    assert sum(sent.values()) == len(keys)


class _HoldingSmtpHandler(socketserver.StreamRequestHandler):
    """Takes the first email's text, then never answers: the sender is stuck mid-send
    until it dies. Every later email is accepted and counted."""

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        server: HoldingSmtp = self.server.state  # type: ignore[attr-defined]
        self._say("220 127.0.0.1 test SMTP")
        body: list[bytes] | None = None
        while line := self.rfile.readline():
            if body is not None:
                if line != b".\r\n":
                    body.append(line)
                    continue
                if not server.holding.is_set():
                    server.holding.set()
                    while self.rfile.readline():  # until the sender's socket closes
                        pass
                    return
                server.received.append(b"".join(body))
                self._say("250 2.0.0 Queued")
                body = None
                continue
            command = line[:4].upper()
            if command in {b"EHLO", b"HELO"}:
                self._say("250 127.0.0.1")
            elif command == b"DATA":
                body = []
                self._say("354 End data with <CR><LF>.<CR><LF>")
            elif command == b"QUIT":
                self._say("221 Bye")
                return
            else:
                self._say("250 OK")


@dataclass
class HoldingSmtp:
    port: int
    holding: threading.Event = field(default_factory=threading.Event)
    received: list[bytes] = field(default_factory=list)


@pytest.fixture
def holding_smtp() -> Iterator[HoldingSmtp]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HoldingSmtpHandler)
    server.daemon_threads = True
    state = HoldingSmtp(port=server.server_address[1])
    server.state = state  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def test_an_email_whose_worker_died_mid_send_is_sent_once_by_the_sweep(
    world, committed_team: Team, private_redis: PrivateRedis, holding_smtp: HoldingSmtp
) -> None:
    """A worker is killed (SIGKILL) while the mail server holds its email; the next worker's
    sweep waits out the dead worker's claim, then sends the email, once."""
    with schema_context(committed_team.schema):
        row = EmailOutbox.objects.create(
            idempotency_key=f"t:orphan:{uuid.uuid4().hex}",
            kind="notification",
            to_email=committed_team.nurse.email,
            subject="Patchwork: a task",
            body="Sam gave you a task",
        )
    env = worker_env(
        private_redis,
        holding_smtp,
        SWEEP_SECONDS="1",
        SWEEP_AFTER_SECONDS="0",
        EMAIL_TIMEOUT="3",
        EMAIL_CLAIM_SECONDS="4",
    )
    directory = Path(tempfile.mkdtemp(prefix="patchwork-broker-"))
    first = worker_with_beat(env, directory)
    try:
        assert holding_smtp.holding.wait(timeout=40), "no worker began to send the email"
    finally:
        stop_worker(first)
    with schema_context(committed_team.schema):
        row.refresh_from_db()
    assert row.status == EmailOutbox.Status.QUEUED and row.claimed_until is not None

    # A beat killed mid-write may leave its schedule file unreadable: the next has its own.
    second = worker_with_beat(env, Path(tempfile.mkdtemp(prefix="patchwork-broker-")))
    try:

        def sent() -> bool:
            with schema_context(committed_team.schema):
                row.refresh_from_db()
            return row.status == EmailOutbox.Status.SENT

        wait_for(sent, "the sweep to send the email", timeout=40)
        time.sleep(2)  # a few more sweeps: none may send it again
    finally:
        stop_worker(second)
    references = [message_from_bytes(m)["X-Patchwork-Reference"] for m in holding_smtp.received]
    assert references == [row.idempotency_key]
