"""Celery tasks for the outbox and audit checkpoints: thin, taking ids; each runs in the
council's schema."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from federation.checkpoints import CheckpointRefused, audit_checkpoint_take
from federation.client import directory_fetch, outbox_deliver, outbox_due_peers
from federation.directory.selectors import WARNING, directory_state
from federation.selectors import own_council
from federation.witnessing import audit_witness_send
from tenants.queueing import task_enqueue

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def outbox_deliver_task(peer_id: str) -> int:
    """Deliver what is due for one peer; after a failure, come back when the backoff ends."""
    report = outbox_deliver(peer_id=peer_id)
    if report.retry_in is not None:
        task_enqueue(outbox_deliver_task, peer_id, countdown=report.retry_in)
    return report.delivered


@shared_task
def outbox_sweep() -> int:
    """Queue delivery for every peer with messages due: the safety net that finds messages
    whose task was lost (a worker killed mid-delivery, a broker restart)."""
    peers = outbox_due_peers()
    for peer_id in peers:
        task_enqueue(outbox_deliver_task, peer_id)
    return len(peers)


@shared_task
def audit_checkpoint_task() -> int | None:
    """Sign a checkpoint of this council's audit log if it grew (beat: every
    AUDIT_CHECKPOINT_MINUTES, through tenants.tasks.for_each_council). A log that no longer
    reaches its latest checkpoint is an error in the worker's log and a failed task."""
    council = own_council()
    try:
        checkpoint = audit_checkpoint_take(council=council)
    except CheckpointRefused:
        logger.exception("Audit checkpoint refused for %s (%s)", council.name, council.code)
        raise
    return checkpoint.sequence if checkpoint else None


@shared_task
def audit_witness_task() -> int:
    """Sign a checkpoint if the log grew, then send the latest to this council's witnesses
    (beat: every AUDIT_WITNESS_MINUTES, decision 0015). Returns how many witnessed it; a
    refusal is an error in the worker's log (federation.witnessing logs each)."""
    council = own_council()
    try:
        audit_checkpoint_take(council=council)
    except CheckpointRefused:
        logger.exception("Audit checkpoint refused for %s (%s)", council.name, council.code)
    results = audit_witness_send(council=council)
    witnessed = sum(1 for result in results if result.witnessed)
    if witnessed < 2:
        logger.warning(
            "The audit checkpoint of %s (%s) was witnessed by %s councils, fewer than two",
            council.name,
            council.code,
            witnessed,
        )
    return witnessed


@shared_task
def directory_fetch_task() -> int | None:
    """Fetch, verify and apply the directory of councils (beat: every
    FEDERATION_DIRECTORY_FETCH_MINUTES, on the platform, not per council). A directory
    refused, unreachable or expired is an ERROR in the worker's log; the last good one stays
    in force. Returns the sequence in force."""
    if not settings.FEDERATION_DIRECTORY_URLS:
        return None
    directory_fetch()
    state = directory_state()
    if state.status == WARNING:
        logger.error("Directory of councils needs attention: %s", state.detail)
    return state.sequence
