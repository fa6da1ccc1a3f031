"""Prometheus metrics at /metrics on the platform host, behind a bearer token.

Requests are counted and timed by a middleware with `prometheus_client`. gunicorn runs
several worker processes and a scrape reaches only one of them, so in production the
library's multiprocess mode is used: with PROMETHEUS_MULTIPROC_DIR set (a directory emptied
whenever the web service starts, e.g. systemd's RuntimeDirectory), every worker writes its
counts to a memory-mapped file there and a scrape adds them all up. Without it (runserver,
tests) the process's own registry is read. Only counters and histograms are recorded per
request, which multiprocess mode sums exactly.

Deployment-wide figures (Celery queue length, federation deliveries pending, emails
overdue, councils) are read fresh at each scrape, not kept in any process. Failed
hand-overs to the broker are counted where they happen (`tenants.queueing`) and served here.

Labels stay bounded: method, status class (2xx..5xx), host kind (platform, council,
unknown) and, on the request counter only, the council's code -- never a path.

Counters the lower layers keep (they may not import this module) are in the same registry
and so in every scrape: `patchwork_rate_limited` (accounts.ratelimits) and
`patchwork_federation_refused` (federation.server), decision 0011.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tenants.db import sql_identifier
from tenants.models import Council

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Probes and scrapes arrive every few seconds from machines: counted, they would drown the
# people's requests in the rates and latencies.
UNCOUNTED_PATHS = {"/healthz", "/readyz", "/metrics"}
# The Celery queue on Redis: kombu keeps one list per priority step beside the plain name.
CELERY_QUEUE = "celery"
CELERY_PRIORITY_SEPARATOR = "\x06\x16"
CELERY_PRIORITY_STEPS = (3, 6, 9)

# `_created` timestamps double the series and Prometheus does not need them.
disable_created_metrics()

REQUESTS = Counter(
    "patchwork_http_requests",
    "HTTP requests answered, by method, status class, kind of host and council.",
    ["method", "status", "host_kind", "council"],
)
LATENCY = Histogram(
    "patchwork_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, status class and kind of host.",
    ["method", "status", "host_kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def _host(request: HttpRequest) -> tuple[str, str]:
    council = getattr(request, "tenant", None)
    if not isinstance(council, Council):
        return "unknown", ""
    if council.schema_name == "public":
        return "platform", ""
    return "council", council.code


class RequestMetricsMiddleware:
    """Counts and times every request except health probes and scrapes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in UNCOUNTED_PATHS:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in METHODS else "other"
        status = f"{response.status_code // 100}xx"
        host_kind, council = _host(request)
        REQUESTS.labels(method, status, host_kind, council).inc()
        LATENCY.labels(method, status, host_kind).observe(elapsed)
        return response


def celery_queue_length() -> int | None:
    """Tasks waiting on the broker, or None when Redis does not answer (or is not used)."""
    if not settings.REDIS_URL:
        return None
    from deploy.health import redis_client

    names = [CELERY_QUEUE] + [
        f"{CELERY_QUEUE}{CELERY_PRIORITY_SEPARATOR}{step}" for step in CELERY_PRIORITY_STEPS
    ]
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            return int(sum(pipe.execute()))
    except Exception:  # noqa: BLE001 - any failure: Redis is down, report it as such
        return None


def _count_per_council(
    table: str, columns: list[str], condition: str, params: list[Any]
) -> dict[str, int]:
    """Rows of a council table meeting `condition`, per council code, in one UNION ALL
    query, from the councils whose table already has `columns` (a council still to be
    migrated is left out rather than failing the scrape)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.code, c.schema_name FROM tenants_council c
            JOIN information_schema.columns t
              ON t.table_schema = c.schema_name AND t.table_name = %s
             AND t.column_name = ANY(%s)
            WHERE c.schema_name <> 'public'
            GROUP BY c.code, c.schema_name
            HAVING count(*) = %s
            """,
            [table, columns, len(columns)],
        )
        councils = cursor.fetchall()
        if not councils:
            return {}
        parts = [
            f"SELECT %s, count(*) FROM {sql_identifier(schema, table)} WHERE {condition}"  # noqa: S608
            for _, schema in councils
        ]
        cursor.execute(
            " UNION ALL ".join(parts), [v for code, _ in councils for v in [code, *params]]
        )
        return {code: int(count) for code, count in cursor.fetchall()}


def federation_outbox_pending() -> dict[str, int]:
    """Pushes not yet delivered nor given up, per council code. Read through the app
    registry so the platform still reports (nothing pending) if the federation app has no
    outbox."""
    try:
        outbox = apps.get_model("federation", "OutboxMessage")
    except LookupError:
        return {}
    delivered = str(outbox._meta.get_field("delivered_at").column)
    given_up = str(outbox._meta.get_field("given_up_at").column)
    condition = f"{sql_identifier(delivered)} IS NULL AND {sql_identifier(given_up)} IS NULL"
    return _count_per_council(outbox._meta.db_table, [delivered, given_up], condition, [])


def email_outbox_overdue() -> dict[str, int]:
    """Emails still queued two sweeps after the sweep should have sent them, per council
    code: the sweep is not running (beat or every worker stopped, or Redis still down)."""
    outbox = apps.get_model("core", "EmailOutbox")
    status = str(outbox._meta.get_field("status").column)
    due = str(outbox._meta.get_field("next_attempt_at").column)
    late = settings.SWEEP_AFTER_SECONDS + 2 * settings.SWEEP_SECONDS
    condition = (
        f"{sql_identifier(status)} = 'queued' "
        f"AND {sql_identifier(due)} < now() - make_interval(secs => %s)"
    )
    return _count_per_council(outbox._meta.db_table, [status, due], condition, [late])


class DeploymentCollector(Collector):
    """Figures about the whole deployment, read at scrape time."""

    def collect(self) -> Iterator[Any]:
        length = celery_queue_length()
        if settings.REDIS_URL:
            redis_up = GaugeMetricFamily(
                "patchwork_redis_up", "Whether Redis answered this scrape (1) or not (0)."
            )
            redis_up.add_metric([], 0 if length is None else 1)
            yield redis_up
        if length is not None:
            queue = GaugeMetricFamily(
                "patchwork_celery_queue_length",
                "Celery tasks waiting on the broker for a worker.",
                labels=["queue"],
            )
            queue.add_metric([CELERY_QUEUE], length)
            yield queue
        pending = GaugeMetricFamily(
            "patchwork_federation_outbox_pending",
            "Federation pushes waiting to be delivered, per council.",
            labels=["council"],
        )
        for code, count in sorted(federation_outbox_pending().items()):
            pending.add_metric([code], count)
        yield pending
        overdue = GaugeMetricFamily(
            "patchwork_email_outbox_overdue",
            "Emails still waiting two sweeps after they were due, per council.",
            labels=["council"],
        )
        for code, count in sorted(email_outbox_overdue().items()):
            overdue.add_metric([code], count)
        yield overdue
        councils = GaugeMetricFamily(
            "patchwork_councils", "Councils on this deployment, by status.", labels=["status"]
        )
        for status in Council.Status:
            count = Council.objects.exclude(schema_name="public").filter(status=status).count()
            councils.add_metric([status.value], count)
        yield councils


def _authorised(request: HttpRequest) -> bool:
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {settings.METRICS_TOKEN}"
    return hmac.compare_digest(given.encode(), expected.encode())


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format; 404 on council hosts or with no token configured, 401
    without the right bearer token."""
    council = getattr(request, "tenant", None)
    if not settings.METRICS_TOKEN or not isinstance(council, Council) or not council.is_platform:
        raise Http404
    if not _authorised(request):
        response = HttpResponse("A bearer token is needed\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        requests_registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(requests_registry)
    else:
        requests_registry = REGISTRY
    deployment_registry = CollectorRegistry()
    deployment_registry.register(DeploymentCollector())
    body = generate_latest(requests_registry) + generate_latest(deployment_registry)
    response = HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
