"""Celery tasks for the outbox: thin, taking ids; each runs in the council's schema."""

from __future__ import annotations

from celery import shared_task

from federation.client import outbox_deliver, outbox_due_peers
from tenants.queueing import task_enqueue


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
