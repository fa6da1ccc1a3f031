"""/healthz, /readyz and /metrics as a load balancer and Prometheus see them (real
PostgreSQL and Redis; the failure of a whole server is in test_readyz_real_servers.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from prometheus_client.parser import text_string_to_metric_families

from deploy import health
from deploy.celery import app
from deploy.metrics import CELERY_QUEUE
from federation.models import OutboxMessage
from tenants.selectors import councils_list, migration_memory_clear
from tenants.tasks import HEARTBEAT_KEY, celery_heartbeat

TOKEN = "metrics-token-for-tests-0123456789abcdef"
PRODUCTION_STATIC = "whitenoise.storage.CompressedManifestStaticFilesStorage"
needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set: needs a Redis server"
)


@pytest.fixture(autouse=True)
def _fresh_migration_memory() -> Iterator[None]:
    """Each test sees readyz as a newly started process would."""
    migration_memory_clear()
    yield
    migration_memory_clear()


def platform() -> Client:
    return Client(HTTP_HOST="localhost")


def readyz() -> tuple[int, dict]:
    response = platform().get("/readyz")
    assert response["Cache-Control"] == "no-store"
    # Rendering the sign-in page makes a CSRF token: it must not become the probe's cookie.
    assert not response.cookies, response.cookies
    return response.status_code, response.json()


def production_static_files(settings, static_root: Path) -> None:
    """Static files as production serves them: collectstatic's manifest in STATIC_ROOT."""
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PRODUCTION_STATIC}}
    settings.STATIC_ROOT = static_root


def scrape(client: Client | None = None, **headers: str) -> dict[tuple[str, tuple], float]:
    response = (client or platform()).get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_it_says_the_process_is_up_on_every_host(world, db) -> None:
    """/healthz answers on the platform's host and on a council's."""
    for host in ("localhost", world.brighton_admin.host):
        response = Client(HTTP_HOST=host).get("/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})


@needs_redis
def test_it_is_ready_when_every_check_passes(world, db) -> None:
    """With a fresh heartbeat, readyz is 200 and names each check it made."""
    celery_heartbeat.delay()
    status, body = readyz()
    assert status == 200, body
    assert body["status"] == "ready"
    assert body["failing"] == []
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "redis": "ok",
        "migrations": "ok",
        "councils": "ok",
        "celery": "ok",
        "pages": "ok",
        # No FEDERATION_GOVERNANCE_KEYS in the tests: this deployment uses no directory.
        "directory": "skipped",
    }
    councils = councils_list().count()
    assert body["checks"]["councils"]["detail"] == f"{councils} councils up to date"


def test_it_is_not_served_on_a_council_host(world, db) -> None:
    """Readiness is the platform's: a council's host does not answer /readyz."""
    assert Client(HTTP_HOST=world.brighton_admin.host).get("/readyz").status_code == 404


@needs_redis
@pytest.mark.parametrize(
    ("heartbeat", "detail"),
    [
        (None, "no heartbeat yet"),
        (lambda: time.time() - 3600, "last heartbeat 3600s ago (limit 120s)"),
    ],
)
def test_it_is_unready_without_a_recent_celery_heartbeat(world, db, heartbeat, detail) -> None:
    """No heartbeat, or an old one, means beat or every worker is down: 503, celery named."""
    client = health.redis_client()
    if heartbeat is None:
        client.delete(HEARTBEAT_KEY)
    else:
        client.set(HEARTBEAT_KEY, repr(heartbeat()))
    try:
        status, body = readyz()
        assert status == 503
        assert body["failing"] == ["celery"]
        assert detail in body["checks"]["celery"]["detail"]
    finally:
        celery_heartbeat.delay()


@needs_redis
def test_it_is_unready_while_the_template_has_migrations_pending(world, db) -> None:
    """The template behind (a migration not applied): no council could be onboarded as the
    code expects, so the deployment is unready."""
    celery_heartbeat.delay()
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM council_template.django_migrations "
            "WHERE app = 'core' AND name = '0001_initial'"
        )
    status, body = readyz()
    assert status == 503
    assert body["failing"] == ["migrations"]
    assert "council_template (1)" in body["checks"]["migrations"]["detail"]
    assert "patchwork migrate_platform" in body["checks"]["migrations"]["detail"]


@needs_redis
def test_a_council_behind_is_a_warning_and_read_again_within_seconds(world, db) -> None:
    """One council behind leaves the deployment ready, with a warning naming it (it answers
    503 on its own: tests/operations/test_council_readiness.py); up-to-date councils are
    remembered for a few seconds, and the council is named once the memory is read again."""
    celery_heartbeat.delay()
    assert readyz()[0] == 200
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {world.brighton.schema_name}.django_migrations "
            "WHERE app = 'core' AND name = '0001_initial'"
        )
    # Brighton was up to date a moment ago and is remembered so.
    assert readyz()[1]["checks"]["councils"]["status"] == "ok"
    migration_memory_clear()
    status, body = readyz()
    assert status == 200, body
    assert body["warnings"] == ["councils"]
    detail = body["checks"]["councils"]["detail"]
    assert f"{world.brighton.schema_name} (1)" in detail
    assert "patchwork migrate_platform" in detail
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {world.brighton.schema_name}.django_migrations (app, name, applied) "
            "VALUES ('core', '0001_initial', now())"
        )
    migration_memory_clear()
    assert readyz()[1]["checks"]["councils"]["status"] == "ok"


def test_it_reads_every_councils_migrations_in_two_statements(world, db) -> None:
    """However many councils, the councils check reads them in two statements, and not at
    all within a few seconds of the last probe."""
    with CaptureQueriesContext(connection) as first:
        readyz()
    with CaptureQueriesContext(connection) as second:
        readyz()
    reads = [q for q in first.captured_queries if "django_migrations" in q["sql"]]
    # The public schema's own, then the template and the councils: two each.
    assert len(reads) <= 6, [q["sql"][:80] for q in reads]
    assert not [q for q in second.captured_queries if "council_" in q["sql"]]


def test_it_says_so_when_there_is_no_redis(world, db, settings) -> None:
    """Without REDIS_URL (tasks run in-process) the Redis and Celery checks are skipped."""
    settings.REDIS_URL = ""
    status, body = readyz()
    assert status == 200, body
    assert body["checks"]["redis"] == {
        "status": "skipped",
        "detail": "no REDIS_URL: the cache is in-process",
    }
    assert body["checks"]["celery"]["status"] == "skipped"
    assert "eagerly" in body["checks"]["celery"]["detail"]


def test_it_is_unready_when_the_pages_lack_their_static_files(
    world, db, settings, tmp_path
) -> None:
    """A release whose static files were never collected (or lack GOV.UK Frontend) fails
    every page: readyz is 503 with `pages` failing and names the missing file."""
    settings.REDIS_URL = ""
    production_static_files(settings, tmp_path)
    status, body = readyz()
    assert status == 503, body
    assert body["failing"] == ["pages"]
    assert body["checks"]["pages"] == {
        "status": "error",
        "detail": "the sign-in page did not render: ValueError: Missing staticfiles manifest "
        "entry for 'govuk/govuk-frontend.min.css'",
    }


def test_it_is_ready_once_the_static_files_are_collected(world, db, settings, tmp_path) -> None:
    """After collectstatic the sign-in page renders with production's storage: ready."""
    settings.REDIS_URL = ""
    production_static_files(settings, tmp_path)
    call_command("collectstatic", "--noinput", verbosity=0)
    status, body = readyz()
    assert status == 200, body
    assert body["checks"]["pages"] == {"status": "ok", "detail": "the sign-in page rendered"}


@pytest.mark.parametrize(
    ("host", "token", "authorization", "expected"),
    [
        ("localhost", "", f"Bearer {TOKEN}", 404),
        ("localhost", TOKEN, None, 401),
        ("localhost", TOKEN, "Bearer not-the-token", 401),
        ("localhost", TOKEN, TOKEN, 401),
        ("localhost", TOKEN, f"Bearer {TOKEN}", 200),
        ("brighton-and-hove.localhost", TOKEN, f"Bearer {TOKEN}", 404),
        ("unknown.localhost", TOKEN, f"Bearer {TOKEN}", 404),
    ],
)
def test_who_can_read_the_metrics(
    world, db, settings, host, token, authorization, expected
) -> None:
    """Only the platform host, only with the configured bearer token."""
    settings.METRICS_TOKEN = token
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = Client(HTTP_HOST=host).get("/metrics", **headers)
    assert response.status_code == expected
    if expected == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"patchwork_" not in response.content


def test_it_counts_requests_by_host_kind_and_council_never_by_path(world, db, settings) -> None:
    """A request to Brighton's sign-in page is counted under Brighton's code."""
    settings.METRICS_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    key = (
        "patchwork_http_requests_total",
        (("council", "E06000043"), ("host_kind", "council"), ("method", "GET"), ("status", "2xx")),
    )
    before = scrape(**auth).get(key, 0.0)
    Client(HTTP_HOST=world.brighton_admin.host).get("/sign-in/")
    Client(HTTP_HOST=world.brighton_admin.host).get("/healthz")
    samples = scrape(**auth)
    assert samples[key] == before + 1
    assert any(
        name == "patchwork_http_request_duration_seconds_bucket"
        and ("host_kind", "council") in labels
        for name, labels in samples
    )
    assert not any("path" in dict(labels) for _, labels in samples)


@needs_redis
def test_it_reports_the_celery_queue_length(world, db, settings) -> None:
    """A task waiting on the broker shows in the queue length."""
    settings.METRICS_TOKEN = TOKEN
    auth = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    key = ("patchwork_celery_queue_length", (("queue", CELERY_QUEUE),))
    before = scrape(**auth)[key]
    app.send_task("tenants.tasks.celery_heartbeat")
    try:
        assert scrape(**auth)[key] == before + 1
        assert scrape(**auth)[("patchwork_redis_up", ())] == 1
    finally:
        # kombu pushes on the left; the newest message is the one this test sent.
        health.redis_client().lpop(CELERY_QUEUE)


def test_it_reports_federation_deliveries_pending_per_council(world, db, settings) -> None:
    """Two pushes waiting in Brighton's outbox, one delivered: Brighton has 2 pending."""
    settings.METRICS_TOKEN = TOKEN
    with schema_context(world.brighton.schema_name):
        for n, delivered in enumerate([None, None, "2026-01-01T00:00:00Z"]):
            OutboxMessage.objects.create(
                idempotency_key=f"metrics-test-{n}",
                peer_id="council:E10000028",
                agreement_id="dsa-1",
                payload={},
                delivered_at=delivered,
            )
    samples = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert samples[("patchwork_federation_outbox_pending", (("council", "E06000043"),))] == 2
    assert samples[("patchwork_federation_outbox_pending", (("council", "E10000028"),))] == 0
    assert samples[("patchwork_councils", (("status", "active"),))] >= 2
