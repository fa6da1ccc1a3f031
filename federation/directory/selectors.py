"""Reads of the signed directory of councils: the directory in force, its state for the
operator (console, /readyz), and why a stopped peer is stopped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models.functions import Coalesce
from django.utils import timezone

from federation.directory.models import DirectoryDocument, FederationPeer

OK, WARNING, SKIPPED = "ok", "warning", "skipped"


def directory_in_force() -> DirectoryDocument | None:
    """The last good directory: the accepted one with the highest sequence."""
    return (
        DirectoryDocument.objects.filter(decision=DirectoryDocument.Decision.ACCEPTED)
        .order_by("-sequence", "-received_at")
        .first()
    )


def directory_published() -> DirectoryDocument | None:
    """The directory this deployment serves to others: the newest one its own operator
    published (`patchwork directory_publish`)."""
    return (
        DirectoryDocument.objects.filter(
            decision=DirectoryDocument.Decision.ACCEPTED, published=True
        )
        .order_by("-sequence", "-received_at")
        .first()
    )


def directory_recent(limit: int = 10) -> list[DirectoryDocument]:
    return list(DirectoryDocument.objects.order_by("-received_at", "-id")[:limit])


@dataclass(frozen=True)
class DirectoryState:
    """What an operator monitors: `ok`, `warning` (something needs attention: the
    directory in force expired, or the last fetch was refused or failed) or `skipped` (this
    deployment does not use a directory)."""

    status: str
    detail: str
    sequence: int | None = None
    valid_until: datetime | None = None


def _last_seen(record: DirectoryDocument) -> datetime:
    return max(record.received_at, record.checked_at or record.received_at)


def directory_state() -> DirectoryState:
    in_force = directory_in_force()
    configured = bool(settings.FEDERATION_GOVERNANCE_KEYS)
    if in_force is None:
        if not configured:
            return DirectoryState(
                SKIPPED, "no directory of councils: FEDERATION_GOVERNANCE_KEYS unset"
            )
        last = DirectoryDocument.objects.order_by("-received_at", "-id").first()
        why = f": the last one was refused ({last.reason})" if last else ""
        return DirectoryState(WARNING, f"no directory of councils accepted yet{why}")
    now = timezone.now()
    assert in_force.valid_until is not None
    if in_force.valid_until <= now:
        return DirectoryState(
            WARNING,
            f"the directory in force (sequence {in_force.sequence}) expired at "
            f"{in_force.valid_until:%Y-%m-%d %H:%M} UTC: peers are kept as it left them",
            in_force.sequence,
            in_force.valid_until,
        )
    refused = (
        DirectoryDocument.objects.filter(decision=DirectoryDocument.Decision.REFUSED)
        .annotate(seen=Coalesce("checked_at", "received_at"))
        .order_by("-seen", "-id")
        .first()
    )
    if refused is not None and _last_seen(refused) > _last_seen(in_force):
        return DirectoryState(
            WARNING,
            f"the last directory received was refused ({refused.reason}); sequence "
            f"{in_force.sequence} stays in force",
            in_force.sequence,
            in_force.valid_until,
        )
    return DirectoryState(
        OK,
        f"sequence {in_force.sequence}, valid until {in_force.valid_until:%Y-%m-%d %H:%M} UTC",
        in_force.sequence,
        in_force.valid_until,
    )


STOPPED_REASONS = {"suspended": "peer_suspended", "left": "peer_left"}


def peer_stopped_reason(federation_id: str) -> str | None:
    """For a peer the directory stopped, the refusal's reason code (`peer_suspended`,
    `peer_left`); None for any other peer. Read only on the refusal path."""
    status = (
        FederationPeer.objects.filter(federation_id=federation_id, removed_at__isnull=False)
        .values_list("directory_status", flat=True)
        .first()
    )
    return STOPPED_REASONS.get(status or "")


def peer_held_by_directory(federation_id: str) -> bool:
    """A peer the directory suspended (not one that left): messages to it wait."""
    return peer_stopped_reason(federation_id) == "peer_suspended"
