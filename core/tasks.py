"""Background work inside one council, run per council by the tenant-aware beat schedule
(`tenants.tasks.for_each_council`). Tasks are thin: they call services."""

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.retention import retention_archive, retention_purge


@shared_task
def retention_run() -> dict[str, object]:
    """Archive and purge what the council's retention policy says, in the schema the task
    was enqueued for."""
    today = timezone.localdate()
    archived = retention_archive(today=today)
    purged = retention_purge(today=today)
    return {
        "schema": connection.schema_name,  # type: ignore[attr-defined]
        "archived": len(archived.person_ids),
        "purged": len(purged.person_ids),
        "expired_involvements": purged.involvements,
    }


# --- Teamwork: email outbox, notifications and involvement reminders ---------------------

from tenants.db import current_schema  # noqa: E402

EMAIL_BATCH = 200


@shared_task(bind=True, max_retries=None, acks_late=True)
def email_send(self: Any, outbox_id: int) -> str:
    """Send one outbox email. A failure is retried with growing waits; a retry (or a
    duplicate task) after it was sent sends nothing."""
    from core.email import PermanentEmailError, email_attempt_failed, email_deliver

    try:
        return email_deliver(outbox_id=outbox_id)
    except PermanentEmailError as exc:
        email_attempt_failed(outbox_id=outbox_id, error=str(exc), final=True)
        return "failed"
    except Exception as exc:
        final = self.request.retries >= settings.EMAIL_MAX_RETRIES
        email_attempt_failed(outbox_id=outbox_id, error=str(exc) or repr(exc), final=final)
        if final:
            return "failed"
        countdown = settings.EMAIL_RETRY_SECONDS * 2**self.request.retries
        raise self.retry(exc=exc, countdown=min(countdown, 6 * 3600)) from exc


@shared_task
def email_send_batch(outbox_ids: list[int]) -> int:
    """Send a batch of bulk emails (reminders); one that fails goes to `email_send` on its
    own, with its retries."""
    from core.email import email_deliver

    sent = 0
    for outbox_id in outbox_ids:
        try:
            sent += email_deliver(outbox_id=outbox_id) == "sent"
        except Exception:
            email_send.delay(outbox_id)
    return sent


@shared_task
def notifications_email_immediate() -> int:
    """Email the notifications their recipients want straight away."""
    from core import notifications

    return notifications.notifications_email_immediate()


@shared_task
def notifications_digest_send(day: str | None = None) -> int:
    """Email each user one digest of a day's changes (yesterday by default)."""
    from datetime import date

    from core import notifications

    return notifications.notifications_digest_send(day=date.fromisoformat(day) if day else None)


@shared_task
def reminders_run() -> dict[str, object]:
    """Remind practitioners to confirm their involvements; flag the unconfirmed ones. The
    emails are sent in batches by `email_send_batch`."""
    from core import reminders

    run = reminders.reminders_run()
    for start in range(0, len(run.emails), EMAIL_BATCH):
        email_send_batch.delay(run.emails[start : start + EMAIL_BATCH])
    return {
        "schema": current_schema(),
        "reminded": run.reminded,
        "emails": len(run.emails),
        "flagged": run.flagged,
        "team_notified": run.team_notified,
    }
