"""Beat's audit checkpoints: the scheduled message runs on a real Celery worker, from the
real Redis, and signs a checkpoint for every active council in its own name."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from core.audit import audit_record
from core.models import AuditEvent
from federation.checkpoints import audit_check
from federation.tasks import audit_checkpoint_task
from tenants.models import AuditCheckpoint, Council
from tenants.tasks import for_each_council

pytestmark = pytest.mark.redis


def test_beat_schedules_a_checkpoint_of_every_council() -> None:
    """The entry beat runs every AUDIT_CHECKPOINT_MINUTES names the checkpoint task."""
    entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoints"]
    assert entry["task"] == "tenants.tasks.for_each_council"
    assert entry["schedule"] == settings.AUDIT_CHECKPOINT_MINUTES * 60.0
    assert entry["args"] == ["federation.tasks.audit_checkpoint_task"]
    assert entry["args"] == [audit_checkpoint_task.name]


def test_a_real_worker_signs_each_councils_checkpoint(  # type: ignore[no-untyped-def]
    world, django_db_blocker, celery_worker
) -> None:
    """The beat message, sent as beat sends it, leaves each council a checkpoint of its
    own log, signed with its own key."""
    councils = [world.brighton, world.staffordshire]
    with django_db_blocker.unblock():
        AuditCheckpoint.objects.filter(council__in=councils).delete()
        with schema_context(world.brighton.schema_name):
            audit_record(actor=None, action="search", detail={"result_ids": []})
            length = AuditEvent.objects.count()
        active = Council.objects.exclude(schema_name="public").filter(status="active").count()
        try:
            entry = settings.CELERY_BEAT_SCHEDULE["audit-checkpoints"]
            sent = for_each_council.delay(*entry["args"]).get(timeout=60)
            assert sent == active
            deadline = time.monotonic() + 60
            while AuditCheckpoint.objects.filter(council__in=councils).count() < len(councils):
                assert time.monotonic() < deadline, "no checkpoint within a minute"
                time.sleep(0.2)
            brighton = AuditCheckpoint.objects.get(council=world.brighton)
            assert brighton.sequence == 1 and brighton.document["events"] == length
            for council in councils:
                assert audit_check(council=council).intact
        finally:
            AuditCheckpoint.objects.filter(council__in=councils).delete()
