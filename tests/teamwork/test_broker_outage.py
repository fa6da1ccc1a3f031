"""Redis, the Celery broker, stops while practitioners work (issue 14, point 4).

A private redis-server on its own port, a real Celery worker process (with beat) on it and
the test database, and the suite's small SMTP server: with the broker stopped, scheduling
meetings and stating reasons answer at once and are saved; once Redis is back, the sweeps
send every email exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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


def worker_with_beat(env: dict[str, str], directory: Path) -> subprocess.Popen[bytes]:
    """`celery worker --beat` in its own process group, logging to directory/worker.log."""
    log = (directory / "worker.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "deploy.celery",
            "worker",
            "--beat",
            "--schedule",
            str(directory / "beat-schedule"),
            "--pool",
            "solo",
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
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


def worker_env(redis: PrivateRedis, smtp: FlakySmtp, **extra: str) -> dict[str, str]:
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
            EMAIL_SWEEP_SECONDS="1",
            EMAIL_SWEEP_AFTER_SECONDS="0",
        ),
        directory,
    )
    try:
        with broker_at(private_redis.url):
            from deploy.celery import app

            wait_for(lambda: bool(app.control.ping(timeout=0.5)), "the worker to start", timeout=30)
            failures_before = enqueue_failures()
            private_redis.stop()

            day = (date.today() + timedelta(days=7)).isoformat()
            for n, organiser in enumerate(organisers):
                started = time.monotonic()
                response = clients[organiser.pk].post(
                    f"/people/{team.child.pk}/meetings/new/",
                    {
                        "title": f"Core group {n}",
                        "day": day,
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

            wait_for(all_sent, "every email to be sent", timeout=45)
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
