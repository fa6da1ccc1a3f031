"""The nightly retention task on a real Celery worker and the real Redis: each council's
run touches that council only."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from core.models import Involvement, Person
from core.retention import years_before
from core.tasks import retention_run
from tenants.tasks import for_each_council
from tests.factories import InvolvementFactory, PersonFactory

pytestmark = pytest.mark.redis


def _past_retention(schema: str) -> int:
    """A person whose only involvement ended seven years ago (committed: the worker sees it)."""
    with schema_context(schema):
        person = PersonFactory()
        end = years_before(timezone.localdate(), 7)
        InvolvementFactory(
            person=person,
            start_date=end - timedelta(days=300),
            end_date=end,
            end_reason=Involvement.EndReason.CASE_CLOSED,
        )
        return person.pk


def _archived(schema: str, pk: int) -> bool:
    with schema_context(schema):
        return Person.objects.filter(pk=pk, archived_at__isnull=False).exists()


def _remove(schema: str, pk: int) -> None:
    with schema_context(schema):
        Person.objects.filter(pk=pk).delete()


def test_the_retention_task_runs_per_council_on_a_real_worker(
    world, django_db_blocker, celery_worker
) -> None:
    """Enqueued under Brighton it archives only Brighton's person; the beat fan-out then
    reaches Staffordshire too."""
    brighton, staffs = world.brighton.schema_name, world.staffordshire.schema_name
    with django_db_blocker.unblock():
        in_brighton = _past_retention(brighton)
        in_staffs = _past_retention(staffs)
        try:
            with schema_context(brighton):
                result = retention_run.delay().get(timeout=60)
            assert result["schema"] == brighton
            assert result["archived"] >= 1
            assert _archived(brighton, in_brighton)
            assert not _archived(staffs, in_staffs)

            queued = for_each_council.delay("core.tasks.retention_run").get(timeout=60)
            assert queued >= 2
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not _archived(staffs, in_staffs):
                time.sleep(0.2)
            assert _archived(staffs, in_staffs)
        finally:
            _remove(brighton, in_brighton)
            _remove(staffs, in_staffs)


def test_the_retention_task_reports_what_it_did_in_its_council(world, db) -> None:
    """Run in-process (eager), the task archives in the council it was enqueued for and says
    how many people it archived and purged."""
    brighton = world.brighton.schema_name
    person = _past_retention(brighton)
    with schema_context(brighton):
        result = retention_run.delay().get(timeout=30)
    assert result == {
        "schema": brighton,
        "archived": 1,
        "purged": 0,
        "expired_involvements": 0,
        "import_files_deleted": 0,
    }
    assert _archived(brighton, person)
