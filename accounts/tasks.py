"""Background work for accounts, run per council by the tenant-aware beat schedule."""

from celery import shared_task
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone


@shared_task
def sessions_clear_expired() -> dict[str, object]:
    """Delete expired sessions in the schema the task was enqueued for."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    # django-tenants' connection names its schema; read here, not through tenants.db, as
    # accounts sits below tenants and imports none of it.
    return {"schema": connection.schema_name, "deleted": deleted}  # type: ignore[attr-defined]
