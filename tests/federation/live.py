"""A live deployment for the federation's end-to-end tests: the test database served by
gunicorn on a loopback port, and real Celery workers in their own processes (so one can be
killed with SIGKILL mid-delivery). Data these tests use is committed: the server and the
workers are other processes and cannot see a test's open transaction."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress

from django.conf import settings
from django.db import connections
from patchwork_demo.federation import database_url, free_port, server_start, server_stop

__all__ = [
    "free_port",
    "server_start",
    "server_stop",
    "live_env",
    "worker_start",
    "worker_kill",
    "wait_for",
]


def live_env(port: int, **extra: str) -> dict[str, str]:
    """The environment of a process serving (or working for) the test database."""
    env = {
        **os.environ,
        "PATCHWORK_ENV": "test",
        "DATABASE_URL": database_url(
            settings.DATABASE_URL, connections["default"].settings_dict["NAME"]
        ),
        "PLATFORM_DOMAIN": "localhost",
        "SITE_PORT": str(port),
        "SITE_SCHEME": "http",
        "FEDERATION_BACKOFF_BASE_SECONDS": "0.5",
        "FEDERATION_BACKOFF_MAX_SECONDS": "1",
        **extra,
    }
    env.pop("TEST_DATABASE_NAME", None)
    return env


def worker_start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`celery -A deploy.celery worker` in its own process group."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "deploy.celery",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def worker_kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait(timeout=20)


def wait_for(condition: Callable[[], bool], *, timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


# --- Leaving the test database as a module found it -------------------------------------------


def committed_snapshot() -> tuple[set[int], set[int]]:
    """The councils and peers committed before a module's live fixture adds its own."""
    from federation.directory.models import FederationPeer
    from tenants.models import Council

    return (
        set(Council.objects.values_list("pk", flat=True)),
        set(FederationPeer.objects.values_list("pk", flat=True)),
    )


def committed_restore(snapshot: tuple[set[int], set[int]]) -> None:
    """Remove the councils (schema and platform rows) and peers committed since `snapshot`.
    Live tests commit what their servers must see; left behind, it changes what later
    modules find (the peers a council asks, or chooses as witnesses, and the codes free)."""
    from django.db import connection

    from federation.directory.models import FederationPeer
    from tenants.models import Council

    councils, peers = snapshot
    connection.set_schema_to_public()
    FederationPeer.objects.exclude(pk__in=peers).delete()
    for council in Council.objects.exclude(pk__in=councils):
        schema = council.schema_name
        council.delete()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def knows_the_child(council, nhs: str) -> None:  # type: ignore[no-untyped-def]
    """`council` knows a child with this NHS number, with a school nurse involved: a council
    that answers "match" to a lookup for that child."""
    from django_tenants.utils import schema_context

    from accounts.models import User
    from core.models import InvolvementRole
    from core.services import (
        involvement_add,
        organisation_create,
        person_create,
        practitioner_profile_set,
    )

    with schema_context(council.schema_name):
        school = organisation_create(name=f"{council.name} Academy", agency_type="school")
        user = User.objects.create_user(
            f"nurse@{council.slug}.test", full_name="Sam Nurse", role="practitioner"
        )
        nurse = practitioner_profile_set(
            user=user, organisation=school, job_title="School nurse", work_phone="01000 000000"
        )
        child = person_create(actor=None, given_name="Ellis", family_name="Marsh", nhs_number=nhs)
        involvement_add(
            actor=user,
            person=child,
            practitioner=nurse,
            role=InvolvementRole.objects.get_or_create(name="School nurse")[0],
        )
