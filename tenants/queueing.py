"""Handing work to Celery, best effort.

Every task Patchwork enqueues goes through `task_enqueue`. What must happen is already
written down before it is called (an `EmailOutbox` row, a federation `OutboxMessage`, a
notification, an import run): the message on the broker only says "now would be a good
time". So enqueueing never fails or stalls the caller. With the broker down it gives up
within the short timeouts set in `deploy/settings.py` (CELERY_BROKER_* and
CELERY_TASK_PUBLISH_RETRY), logs, counts the failure in `patchwork_task_enqueue_failures`,
and returns; beat's sweeps (`core.tasks.email_sweep`, `federation.tasks.outbox_sweep`, the
notification emails every minute) find the work the broker never carried."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task, current_app
from django.conf import settings
from django.db import transaction
from django_tenants.utils import schema_context
from prometheus_client import Counter

from tenants.db import current_schema

logger = logging.getLogger(__name__)

# Counted per process; the web's processes are the ones /metrics reads (deploy/metrics.py).
ENQUEUE_FAILURES = Counter(
    "patchwork_task_enqueue_failures",
    "Tasks that could not be handed to the Celery broker (left for the sweeps), by task.",
    ["task"],
)


# Until when (time.monotonic()) this process leaves the broker alone after a failure.
_broker_down_until = 0.0


def task_enqueue(task: Task, *args: Any, countdown: float | None = None) -> None:
    """Ask a worker to run `task(*args)` in the current council's schema, once the current
    transaction commits (at once outside one), so a worker never looks for a row that was
    rolled back or not yet committed. Never raises a broker error: the failure is logged
    and counted, and the sweeps do the work later. Nobody waits for the task's result, so
    none is kept (asking for one subscribes to Redis, which is what stalled requests for
    19 s when Redis was down)."""
    schema = current_schema()
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}

    def publish() -> None:
        global _broker_down_until
        with schema_context(schema):
            if current_app.conf.task_always_eager:
                # No broker: the task runs here and now, and its errors are the caller's.
                task.apply_async(args, **options)
                return
            if time.monotonic() < _broker_down_until:
                ENQUEUE_FAILURES.labels(task.name).inc()
                return
            started = time.monotonic()
            try:
                task.apply_async(args, ignore_result=True, **options)
            except Exception:
                _broker_down_until = time.monotonic() + settings.BROKER_RETRY_AFTER_SECONDS
                ENQUEUE_FAILURES.labels(task.name).inc()
                logger.warning(
                    "Could not hand %s to the broker after %.2fs; a sweep will do it",
                    task.name,
                    time.monotonic() - started,
                    exc_info=True,
                )

    transaction.on_commit(publish)
