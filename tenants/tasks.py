"""Platform-level tasks: fan a per-council task out to every active council; prove that
beat and a worker are alive."""

import time

import redis
from celery import current_app, shared_task
from django.conf import settings
from django_tenants.utils import schema_context

from tenants.models import Council
from tenants.queueing import task_enqueue


@shared_task
def for_each_council(task_name: str) -> int:
    """Enqueue `task_name` once per active council, each carrying that council's schema.
    Suspended councils are skipped: nothing of theirs runs while they are suspended."""
    task = current_app.tasks[task_name]
    councils = Council.objects.exclude(schema_name="public").filter(status=Council.Status.ACTIVE)
    count = 0
    for schema_name in councils.values_list("schema_name", flat=True):
        with schema_context(schema_name):
            task_enqueue(task)
        count += 1
    return count


# Where the Celery heartbeat is kept in Redis: /readyz reads it back.
HEARTBEAT_KEY = "patchwork:celery:heartbeat"


@shared_task(ignore_result=True)
def celery_heartbeat() -> float:
    """Write the time now to Redis. Beat schedules this every CELERY_HEARTBEAT_SECONDS and
    a worker runs it, so a fresh value proves both are alive; /readyz checks its age."""
    now = time.time()
    if settings.REDIS_URL:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, **settings.REDIS_TLS_OPTIONS
        )
        client.set(HEARTBEAT_KEY, repr(now))
    return now
