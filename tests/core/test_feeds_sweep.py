"""An import whose task the broker lost (Redis down when it was queued) is queued again by
beat's sweep, and runs once however many messages for it arrive (issue 14, point 4)."""

from __future__ import annotations

import io
from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import schema_context

from core.feeds import import_run_start
from core.models import ImportRun, Person, SourceSystem
from core.tasks import feed_import_sweep_task, feed_import_task

FEED = b"record,source_id,given_name,family_name\nperson,S-1,Sweepy,Swept\n"


def _run(minutes_ago: int) -> ImportRun:
    source = SourceSystem.objects.create(name=f"Sweep test LCS {minutes_ago}")
    run = import_run_start(
        source=source,
        file_format="csv",
        binary=io.BytesIO(FEED),
        full_snapshot=False,
        dry_run=False,
    )
    ImportRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return run


def test_the_sweep_runs_an_import_the_broker_lost_once(
    world, db, django_capture_on_commit_callbacks
) -> None:
    """A run queued two minutes ago and never started is run by the sweep; one queued just
    now is left to its own message; a late message for the swept run does nothing."""
    with schema_context(world.brighton.schema_name):
        lost, fresh = _run(minutes_ago=2), _run(minutes_ago=0)
        with django_capture_on_commit_callbacks(execute=True):
            assert feed_import_sweep_task() == 1
        assert ImportRun.objects.get(pk=lost.pk).status == ImportRun.Status.DONE
        assert ImportRun.objects.get(pk=fresh.pk).status == ImportRun.Status.QUEUED
        assert feed_import_task(lost.pk) == {"run": lost.pk, "status": "skipped"}
        assert Person.objects.filter(given_name="Sweepy", family_name="Swept").count() == 1
