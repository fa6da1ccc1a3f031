"""Background work inside one council, run per council by the tenant-aware beat schedule
(`tenants.tasks.for_each_council`). Tasks are thin: they call services."""

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
        "schema": connection.schema_name,
        "archived": len(archived.person_ids),
        "purged": len(purged.person_ids),
        "expired_involvements": purged.involvements,
    }


# --- Teamwork: email outbox, notifications and involvement reminders ---------------------
# (Restored by the scale helper after it overwrote this part by mistake; see its report.)


@shared_task(bind=True, max_retries=settings.EMAIL_MAX_RETRIES)
def email_send(self, outbox_id: int) -> str:  # type: ignore[no-untyped-def]
    """Send one outbox email; retried with back-off, except when the address will never
    accept it."""
    from core.email import PermanentEmailError, email_attempt_failed, email_deliver

    try:
        return email_deliver(outbox_id=outbox_id)
    except PermanentEmailError as exc:
        email_attempt_failed(outbox_id=outbox_id, error=str(exc), final=True)
        return "failed"
    except Exception as exc:
        final = self.request.retries >= settings.EMAIL_MAX_RETRIES
        email_attempt_failed(outbox_id=outbox_id, error=str(exc), final=final)
        if final:
            return "failed"
        countdown = settings.EMAIL_RETRY_SECONDS * 2**self.request.retries
        raise self.retry(exc=exc, countdown=min(countdown, 6 * 3600)) from exc


@shared_task
def notifications_email_immediate() -> int:
    """Email the notifications their recipients want straight away."""
    from core import notifications

    return notifications.notifications_email_immediate()


@shared_task
def notifications_digest_send() -> int:
    """Email the daily digest to each user who chose one."""
    from core import notifications

    return notifications.notifications_digest_send()


@shared_task
def reminders_run() -> dict[str, object]:
    """Remind practitioners to confirm their involvements; flag the unconfirmed ones."""
    from core import reminders

    run = reminders.reminders_run()
    return {
        "schema": connection.schema_name,
        "reminded": run.reminded,
        "emails": len(run.emails),
        "flagged": run.flagged,
        "team_notified": run.team_notified,
    }
