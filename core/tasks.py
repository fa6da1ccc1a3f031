"""Background work inside one council, run per council by the tenant-aware beat schedule
(`tenants.tasks.for_each_council`). Tasks are thin: they call services.

The delivery tasks (sending email, emailing notifications) live beside the code that queues
them, in `core.delivery`; importing them here registers them with the worker, which loads
each app's `tasks` module."""

from celery import shared_task
from django.db import connection
from django.utils import timezone

from core.delivery.email import email_send, email_send_batch, email_sweep_task
from core.delivery.notifications import (
    notifications_digest_send_task,
    notifications_email_immediate_task,
)
from core.feeds import (
    feed_import,
    feed_import_claim,
    feed_imports_waiting,
    import_files_forget,
)
from core.models import ImportRun
from core.retention import retention_archive, retention_purge
from tenants.queueing import task_enqueue

__all__ = [
    "email_send",
    "email_send_batch",
    "email_sweep_task",
    "notifications_digest_send_task",
    "notifications_email_immediate_task",
    "feed_import_task",
    "feed_import_sweep_task",
    "retention_run",
]


@shared_task(name="core.tasks.feed_import")
def feed_import_task(run_id: int) -> dict[str, object]:
    """Run one queued import from a source system, in the schema it was queued for; a run
    another worker already started is left to it."""
    if not feed_import_claim(run_id=run_id):
        return {"run": run_id, "status": "skipped"}
    run = feed_import(run=ImportRun.objects.get(pk=run_id))
    return {"run": run.pk, "status": run.status, **run.counts}


@shared_task(name="core.tasks.feed_import_sweep")
def feed_import_sweep_task() -> int:
    """Beat's safety net, per council: queue again the runs whose task the broker lost."""
    waiting = feed_imports_waiting()
    for run_id in waiting:
        task_enqueue(feed_import_task, run_id)
    return len(waiting)


@shared_task
def retention_run() -> dict[str, object]:
    """Archive and purge what the council's retention policy says, in the schema the task
    was enqueued for."""
    today = timezone.localdate()
    archived = retention_archive(today=today)
    purged = retention_purge(today=today)
    files = import_files_forget()
    return {
        "schema": connection.schema_name,  # type: ignore[attr-defined]
        "archived": len(archived.person_ids),
        "purged": len(purged.person_ids),
        "expired_involvements": purged.involvements,
        "import_files_deleted": files,
    }


def feed_import_queue(run: ImportRun) -> None:
    """Start the run on a worker once the transaction that created it commits."""
    run_id = run.pk
    task_enqueue(feed_import_task, run_id)
