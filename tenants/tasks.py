"""Platform-level tasks: fan a per-council task out to every active council."""

from celery import current_app, shared_task
from django_tenants.utils import schema_context

from tenants.models import Council


@shared_task
def for_each_council(task_name: str) -> int:
    """Enqueue `task_name` once per active council, each carrying that council's schema.
    Suspended councils are skipped: nothing of theirs runs while they are suspended."""
    task = current_app.tasks[task_name]
    councils = Council.objects.exclude(schema_name="public").filter(status=Council.Status.ACTIVE)
    count = 0
    for schema_name in councils.values_list("schema_name", flat=True):
        with schema_context(schema_name):
            task.delay()
        count += 1
    return count
