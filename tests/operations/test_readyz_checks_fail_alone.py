"""/readyz when PostgreSQL stops answering after the database check has passed: the
failing check is named and the answer is 503, never a server error (issue 14, point 7)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections, transaction
from django.test import Client

from tenants.selectors import migration_memory_clear


@pytest.fixture(autouse=True)
def _fresh_migration_memory() -> Iterator[None]:
    """Each test sees readyz as a newly started process would."""
    migration_memory_clear()
    yield
    migration_memory_clear()


@pytest.fixture
def migrations_table_locked(db) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Another session holds an exclusive lock on the migrations table (as a long migration
    or a stuck backup would), so only the migrations check's query waits, then fails."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE public.django_migrations IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join(30)


def test_it_names_the_migrations_check_when_postgresql_fails_after_answering(
    world,  # type: ignore[no-untyped-def]
    migrations_table_locked,
) -> None:
    """SELECT 1 answers; the migrations check's query then fails (lock timeout): 503, with
    "migrations" named, and the other checks still reported."""
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '300ms'")
    response = Client(HTTP_HOST="localhost").get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["status"] == "ok"
    assert "migrations" in body["failing"]
    assert body["checks"]["migrations"]["detail"].startswith("the check failed")
    assert set(body["checks"]) == {
        "database",
        "redis",
        "migrations",
        "councils",
        "celery",
        "pages",
        "directory",
    }
