"""Health checks for load balancers and monitoring.

`/healthz` (every host): the process is up. `/readyz` (the platform host): this process
can serve -- the database and Redis answer, the public schema's and the template's
migrations are applied (a council behind is a warning: it answers 503 on its own), Celery
beat and a worker are alive (a heartbeat they write to Redis is recent), and a real page
renders: the sign-in page, through the whole template and static-files pipeline, so a
release whose static files are missing from collectstatic's manifest (every page a 500)
is caught. The JSON body names each check; any failing check makes it 503.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string
from django_tenants.utils import get_tenant_base_schema

from accounts.forms import SignInForm
from federation.directory.selectors import directory_state
from tenants.selectors import councils_list, councils_pending, public_migrations_pending
from tenants.tasks import HEARTBEAT_KEY

OK, ERROR, SKIPPED, WARNING = "ok", "error", "skipped", "warning"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


@cache
def redis_client() -> redis.Redis:
    """A Redis client that gives up within a second, so a probe never hangs on Redis."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry_on_timeout=False,
        **settings.REDIS_TLS_OPTIONS,
    )


def _database_answers() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_database() -> Check:
    try:
        _database_answers()
    except Exception:  # noqa: BLE001
        # A connection kept from before a PostgreSQL restart fails once: drop it, try anew.
        connection.close()
        try:
            _database_answers()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            connection.close()
            return Check("database", ERROR, f"PostgreSQL did not answer ({type(exc).__name__})")
    return Check("database", OK, "PostgreSQL answered")


def check_redis() -> Check:
    if not settings.REDIS_URL:
        return Check("redis", SKIPPED, "no REDIS_URL: the cache is in-process")
    try:
        redis_client().ping()
    except Exception as exc:  # noqa: BLE001
        return Check("redis", ERROR, f"Redis did not answer ({type(exc).__name__})")
    return Check("redis", OK, "Redis answered")


def check_migrations(database: Check) -> Check:
    """The public schema and the template: behind, no council can be onboarded or served
    as the code expects, so the deployment is not ready."""
    if database.status != OK:
        return Check("migrations", ERROR, "not checked: the database did not answer")
    behind: list[str] = []
    public_pending = public_migrations_pending()
    if public_pending:
        behind.append(f"public ({public_pending})")
    template = get_tenant_base_schema()
    template_pending = councils_pending(
        [template], max_age=settings.READYZ_MIGRATIONS_CACHE_SECONDS
    )[template]
    if template_pending:
        behind.append(f"{template} ({template_pending})")
    if behind:
        return Check(
            "migrations",
            ERROR,
            "migrations pending in " + ", ".join(behind) + ": run `patchwork migrate_platform`",
        )
    return Check("migrations", OK, "up to date: the public schema and the template")


COUNCILS_NAMED = 10


def check_councils(database: Check) -> Check:
    """Each council's schema. One behind answers 503 on its own ("being updated") while
    the others serve, so it is a warning here, never a failed probe: draining every
    council's traffic for one council's problem would turn one outage into all of them."""
    if database.status != OK:
        return Check("councils", SKIPPED, "not checked: the database did not answer")
    schemas = list(councils_list().values_list("schema_name", flat=True))
    pending = councils_pending(schemas, max_age=settings.READYZ_MIGRATIONS_CACHE_SECONDS)
    behind = [f"{name} ({count})" for name, count in sorted(pending.items()) if count]
    if not behind:
        return Check("councils", OK, f"{len(schemas)} councils up to date")
    named = ", ".join(behind[:COUNCILS_NAMED])
    more = f" and {len(behind) - COUNCILS_NAMED} more" if len(behind) > COUNCILS_NAMED else ""
    return Check(
        "councils",
        WARNING,
        f"{len(behind)} of {len(schemas)} councils not serving (migrations pending in "
        f"{named}{more}): run `patchwork migrate_platform`",
    )


def check_celery(redis_check: Check) -> Check:
    if not settings.REDIS_URL:
        return Check("celery", SKIPPED, "no REDIS_URL: tasks run in-process, eagerly")
    if redis_check.status != OK:
        return Check("celery", ERROR, "not checked: Redis did not answer")
    try:
        written = redis_client().get(HEARTBEAT_KEY)
    except Exception as exc:  # noqa: BLE001
        return Check("celery", ERROR, f"Redis did not answer ({type(exc).__name__})")
    if written is None:
        return Check("celery", ERROR, "no heartbeat yet: are Celery beat and a worker running?")
    age = time.time() - float(written)
    limit = settings.READYZ_HEARTBEAT_MAX_AGE
    if age > limit:
        return Check(
            "celery",
            ERROR,
            f"last heartbeat {age:.0f}s ago (limit {limit}s): are Celery beat and a worker "
            "running?",
        )
    return Check("celery", OK, f"heartbeat {max(age, 0):.0f}s ago")


def check_pages(request: HttpRequest) -> Check:
    """Render the sign-in page as a visitor would get it: its templates, the context
    processors, and each `{% static %}` (in production, a lookup in collectstatic's
    manifest, which raises for a file that was never collected)."""
    # A copy of the probe's request with its own META: the form's CSRF token would
    # otherwise be set as a cookie on the probe's answer.
    page_request = copy.copy(request)
    page_request.META = dict(request.META)
    try:
        render_to_string("accounts/sign_in.html", {"form": SignInForm()}, request=page_request)
    except Exception as exc:  # noqa: BLE001 - whatever breaks the page breaks every page
        return Check(
            "pages", ERROR, f"the sign-in page did not render: {type(exc).__name__}: {exc}"
        )
    return Check("pages", OK, "the sign-in page rendered")


def check_directory(database: Check) -> Check:
    """The signed directory of councils (decision 0014): a `warning` when the one in force
    has expired or the last one received was refused. A warning never fails readiness:
    the deployment serves with the last good directory; monitoring alerts on it."""
    if database.status != OK:
        return Check("directory", SKIPPED, "not checked: the database did not answer")
    try:
        state = directory_state()
    except Exception as exc:  # noqa: BLE001 - a warning, never a failed probe
        return Check("directory", WARNING, f"the check failed: {type(exc).__name__}")
    return Check("directory", state.status, state.detail)


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """The check's own answer, or an error naming it: PostgreSQL or Redis can die between
    one check and the next, and a probe must then say which check failed, never answer 500."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        # A connection PostgreSQL dropped is closed at the request's end (it had errors).
        return Check(name, ERROR, f"the check failed: {type(exc).__name__}")


def readiness(request: HttpRequest) -> list[Check]:
    database = _guarded("database", check_database)
    redis_check = _guarded("redis", check_redis)
    return [
        database,
        redis_check,
        _guarded("migrations", lambda: check_migrations(database)),
        _guarded("councils", lambda: check_councils(database)),
        _guarded("celery", lambda: check_celery(redis_check)),
        _guarded("pages", lambda: check_pages(request)),
        _guarded("directory", lambda: check_directory(database)),
    ]


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: 200 when every check passes (or is skipped), else 503."""
    checks = readiness(request)
    failing = [check.name for check in checks if check.status == ERROR]
    response = JsonResponse(
        {
            "status": "unready" if failing else "ready",
            "failing": failing,
            "warnings": [check.name for check in checks if check.status == WARNING],
            "checks": {c.name: {"status": c.status, "detail": c.detail} for c in checks},
        },
        status=503 if failing else 200,
    )
    response["Cache-Control"] = "no-store"
    return response
