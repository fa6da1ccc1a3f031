"""Teamwork's background work, run per council by the beat schedule. Thin: calls services."""

from celery import shared_task

from core.delivery.email import email_send_batch
from teamwork import reminders
from tenants.db import current_schema
from tenants.queueing import task_enqueue

EMAIL_BATCH = 200


# Named as it was in `core.tasks`, so messages queued before an upgrade still find it.
@shared_task(name="core.tasks.reminders_run")
def reminders_run() -> dict[str, object]:
    """Remind practitioners to confirm their involvements; flag the unconfirmed ones. The
    emails are sent in batches by `email_send_batch`."""
    run = reminders.reminders_run()
    for start in range(0, len(run.emails), EMAIL_BATCH):
        task_enqueue(email_send_batch, run.emails[start : start + EMAIL_BATCH])
    return {
        "schema": current_schema(),
        "reminded": run.reminded,
        "emails": len(run.emails),
        "flagged": run.flagged,
        "team_notified": run.team_notified,
    }
