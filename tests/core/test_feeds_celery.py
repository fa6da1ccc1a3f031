"""An import queued as a Celery task runs on a real worker, from the real Redis, in the
council it was queued for."""

from __future__ import annotations

import io

import pytest
from django_tenants.utils import schema_context

from core.feeds import import_run_start
from core.models import FeedRecord, ImportRun, Person, SourceSystem
from core.tasks import feed_import_task

pytestmark = pytest.mark.redis

FEED = b"record,source_id,given_name,family_name\nperson,W-1,Wendell,Worker\n"


def test_an_import_runs_on_a_real_worker_in_its_own_council(  # type: ignore[no-untyped-def]
    world, django_db_blocker, celery_worker
) -> None:
    brighton, staffs = world.brighton.schema_name, world.staffordshire.schema_name
    with django_db_blocker.unblock():
        with schema_context(brighton):
            source = SourceSystem.objects.create(name="Worker test LCS")
            run = import_run_start(
                source=source,
                file_format="csv",
                binary=io.BytesIO(FEED),
                full_snapshot=False,
                dry_run=False,
            )
        try:
            with schema_context(brighton):
                result = feed_import_task.delay(run.pk).get(timeout=60)
                assert result["status"] == "done" and result["created"] == 1
                assert Person.objects.filter(given_name="Wendell").exists()
                assert ImportRun.objects.get(pk=run.pk).rows_read == 1
            with schema_context(staffs):
                assert not Person.objects.filter(given_name="Wendell").exists()
        finally:
            with schema_context(brighton):
                Person.objects.filter(given_name="Wendell", family_name="Worker").delete()
                FeedRecord.objects.filter(source_system=source).delete()
                ImportRun.objects.filter(source_system=source).delete()
                source.delete()
