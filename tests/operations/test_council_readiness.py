"""Readiness per council (issue 18): a council whose schema is behind the code answers 503
on its own -- a clear page for people, JSON for machines -- while every other council
serves, /readyz stays ready and the operator console shows which council is not serving."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from tenants.selectors import migration_memory_clear
from tenants.tasks import celery_heartbeat
from tests.personas import sign_in


@pytest.fixture(autouse=True)
def _fresh_migration_memory() -> Iterator[None]:
    """Each test starts as a new process would, and leaves no council remembered as behind
    for the tests after it."""
    migration_memory_clear()
    yield
    migration_memory_clear()


def migration_unapplied(schema_name: str) -> None:
    """The council's schema lacks one migration the code has (as after a release whose
    `migrate_platform` has not reached it yet)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {schema_name}.django_migrations "
            "WHERE app = 'core' AND name = '0001_initial'"
        )


def migration_reapplied(schema_name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {schema_name}.django_migrations (app, name, applied) "
            "VALUES ('core', '0001_initial', now())"
        )


def test_a_council_behind_answers_503_alone_and_the_others_serve(world, db) -> None:
    """Staffordshire behind: its sign-in page is the "unavailable" page (503, Retry-After),
    its API and federation answer JSON 503; Brighton's practitioners go on working and the
    deployment stays ready."""
    brighton = sign_in(world.brighton_social_worker)
    migration_unapplied(world.staffordshire.schema_name)

    page = Client(HTTP_HOST=world.staffordshire_gp.host).get("/sign-in/")
    assert page.status_code == 503
    assert int(page["Retry-After"]) >= 1
    body = page.content.decode()
    assert f"Sorry, Patchwork for {escape(world.staffordshire.name)} is unavailable" in body
    assert "being updated" in body
    assert "govuk-heading-l" in body

    for path in ("/api/v1/people/", "/federation/v1/who-is-involved", "/fhir/Patient"):
        answer = Client(HTTP_HOST=world.staffordshire_gp.host).get(path)
        assert answer.status_code == 503, path
        assert answer.json()["reason"] == "council_updating"
        assert "being updated" in answer.json()["detail"]

    assert brighton.get("/").status_code == 200
    assert Client(HTTP_HOST=world.brighton_admin.host).get("/sign-in/").status_code == 200
    celery_heartbeat.delay()
    ready = Client(HTTP_HOST="localhost").get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["warnings"] == ["councils"]


def test_a_council_serves_again_once_its_migrations_are_applied(world, db) -> None:
    """The council is read again within a second of being found behind: when the
    migration is in, it serves without any restart."""
    migration_unapplied(world.staffordshire.schema_name)
    host = world.staffordshire_gp.host
    assert Client(HTTP_HOST=host).get("/sign-in/").status_code == 503
    migration_reapplied(world.staffordshire.schema_name)
    time.sleep(1.05)
    assert Client(HTTP_HOST=host).get("/sign-in/").status_code == 200


def test_a_council_whose_schema_is_missing_is_unavailable_not_an_error(world, db) -> None:
    """A broken council (its schema gone, as after a failed restore) answers the
    unavailable page, never a server error, and the others serve."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER SCHEMA {world.staffordshire.schema_name} RENAME TO broken_council")
    try:
        assert Client(HTTP_HOST=world.staffordshire_gp.host).get("/sign-in/").status_code == 503
        assert Client(HTTP_HOST=world.brighton_admin.host).get("/sign-in/").status_code == 200
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER SCHEMA broken_council RENAME TO {world.staffordshire.schema_name}"
            )


def test_the_console_shows_the_council_that_is_not_serving(world, db) -> None:
    migration_unapplied(world.staffordshire.schema_name)
    console = sign_in(world.operator)
    page = console.get("/").content.decode()
    rows = {
        name: page.split(escape(name), 1)[1].split("</tr>", 1)[0]
        for name in (world.staffordshire.name, world.brighton.name)
    }
    assert "Not serving" in rows[world.staffordshire.name]
    assert "1 migrations pending" in rows[world.staffordshire.name]
    assert "Not serving" not in rows[world.brighton.name]


def test_an_up_to_date_council_is_not_read_again_on_every_request(world, db) -> None:
    """After the first request, a council's migrations are not read again for minutes:
    the check costs a page nothing."""
    client = sign_in(world.brighton_social_worker)
    client.get("/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    assert not [q for q in queries.captured_queries if "django_migrations" in q["sql"]]
