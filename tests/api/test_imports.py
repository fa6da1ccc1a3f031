"""Scheduled pushes from a source system: the file as the body with the system's import
token, 202 and a run to follow; the token reaches nothing else, no other system's runs,
and no other council."""

from __future__ import annotations

from django.test import Client
from django_tenants.utils import schema_context

from core.feeds import source_system_create
from core.models import ImportRun, Person
from tests.api.client import host_of

FEED = (
    "record,source_id,given_name,family_name,date_of_birth\n"
    "person,SW-1,Ottilie,Push,2016-02-02\n"
    "person,SW-2,,Push,2016-02-02\n"
)


def _token(world, name: str = "Liquidlogic LCS") -> str:  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return source_system_create(actor=None, name=name)[1]


def _client(council, token: str) -> Client:  # type: ignore[no-untyped-def]
    return Client(HTTP_HOST=host_of(council), HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_system_pushes_a_file_and_follows_its_import(  # type: ignore[no-untyped-def]
    world, db, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    settings.DATA_DIR = tmp_path
    client = _client(world.brighton, _token(world))
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post("/api/v1/imports?full_snapshot=true", FEED, content_type="text/csv")
    assert sent.status_code == 202, sent.content
    assert sent.json()["full_snapshot"] is True and sent.json()["dry_run"] is False
    run = client.get(f"/api/v1/imports/{sent.json()['id']}").json()
    assert run["status"] == "done"
    assert run["counts"]["created"] == 1 and run["counts"]["rejected"] == 1
    report = client.get(f"/api/v1/imports/{run['id']}/report")
    text = b"".join(report.streaming_content).decode()
    assert "SW-2,rejected,The first name is missing" in text
    with schema_context(world.brighton.schema_name):
        assert Person.objects.filter(given_name="Ottilie", family_name="Push").exists()


def test_an_import_token_reaches_nothing_else(world, db) -> None:  # type: ignore[no-untyped-def]
    """Not the records, not another system's runs, not another council."""
    token = _token(world)
    client = _client(world.brighton, token)
    assert client.get("/api/v1/search?family_name=Push").status_code == 401
    assert client.get("/api/v1/roles").status_code == 401
    with schema_context(world.brighton.schema_name):
        other, _ = source_system_create(actor=None, name="SystmOne")
        theirs = ImportRun.objects.create(source_system=other, format="csv", file_path="x")
    assert client.get(f"/api/v1/imports/{theirs.pk}").status_code == 404
    staffs = _client(world.staffordshire, token)
    assert staffs.post("/api/v1/imports", FEED, content_type="text/csv").status_code == 401


def test_a_practitioner_token_cannot_push_a_file(world, scenario, api) -> None:  # type: ignore[no-untyped-def]
    answer = api(scenario.school_nurse).client.post(
        "/api/v1/imports", FEED, content_type="text/csv"
    )
    assert answer.status_code == 401


def test_a_file_of_another_kind_is_refused(world, db) -> None:  # type: ignore[no-untyped-def]
    client = _client(world.brighton, _token(world))
    answer = client.post("/api/v1/imports", "x", content_type="application/pdf")
    assert answer.status_code == 400 and "text/csv" in answer.json()["detail"]
