"""Background work for accounts, run per council by the tenant-aware beat schedule."""

from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone

from tenants.db import current_schema


@shared_task
def sessions_clear_expired() -> dict[str, object]:
    """Delete expired sessions in the schema the task was enqueued for."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return {"schema": current_schema(), "deleted": deleted}
