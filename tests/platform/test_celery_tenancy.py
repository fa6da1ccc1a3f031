"""Celery tasks keep their council: a real worker on the real Redis (no eager mode)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.tasks import sessions_clear_expired
from tenants.tasks import for_each_council

pytestmark = pytest.mark.redis


def _expired_session(schema: str, key: str) -> None:
    with schema_context(schema):
        Session.objects.create(
            session_key=key, session_data="", expire_date=timezone.now() - timedelta(days=1)
        )


def _exists(schema: str, key: str) -> bool:
    with schema_context(schema):
        return Session.objects.filter(session_key=key).exists()


def test_it_runs_a_task_enqueued_under_brighton_in_brighton_only(
    world, django_db_blocker, celery_worker
) -> None:
    """Brighton's expired session goes; Staffordshire's identical one is untouched."""
    with django_db_blocker.unblock():
        _expired_session(world.brighton.schema_name, "expired-brighton-1")
        _expired_session(world.staffordshire.schema_name, "expired-staffs-1")
        try:
            with schema_context(world.brighton.schema_name):
                result = sessions_clear_expired.delay().get(timeout=30)
            assert result["schema"] == world.brighton.schema_name
            assert result["deleted"] >= 1
            assert not _exists(world.brighton.schema_name, "expired-brighton-1")
            assert _exists(world.staffordshire.schema_name, "expired-staffs-1")
        finally:
            with schema_context(world.staffordshire.schema_name):
                Session.objects.filter(session_key="expired-staffs-1").delete()


def test_it_fans_a_task_out_to_every_active_council(
    world, django_db_blocker, celery_worker
) -> None:
    """The beat entry reaches each council in its own schema."""
    with django_db_blocker.unblock():
        _expired_session(world.brighton.schema_name, "expired-brighton-2")
        _expired_session(world.staffordshire.schema_name, "expired-staffs-2")
        queued = for_each_council.delay("accounts.tasks.sessions_clear_expired").get(timeout=30)
        assert queued >= 2
        deadline = timezone.now() + timedelta(seconds=30)
        while timezone.now() < deadline and (
            _exists(world.brighton.schema_name, "expired-brighton-2")
            or _exists(world.staffordshire.schema_name, "expired-staffs-2")
        ):
            import time

            time.sleep(0.2)
        assert not _exists(world.brighton.schema_name, "expired-brighton-2")
        assert not _exists(world.staffordshire.schema_name, "expired-staffs-2")
