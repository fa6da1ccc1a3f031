"""The platform's audit log (decision 0019): operators' account events, in the public
schema, where no council's log exists. Append-only and hash-chained: each event's hash
covers its fields (RFC 8785 canonical JSON) and the previous event's hash."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from tenants.canonical import canonical_json
from tenants.models import PlatformAuditEvent

GENESIS = "0" * 64
_LOCK_KEY = zlib.crc32(b"patchwork-platform-audit")


def platform_event_hash(
    *,
    at: datetime,
    actor_id: int | None,
    actor_email: str,
    action: str,
    detail: dict[str, Any],
    previous_hash: str,
) -> str:
    body = {
        "at": at.astimezone(UTC).isoformat(),
        "actor_id": actor_id,
        "actor_email": actor_email,
        "action": action,
        "detail": detail,
        "previous_hash": previous_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def platform_audit_record(
    *, actor: Any | None, action: str, detail: dict[str, Any] | None = None
) -> PlatformAuditEvent:
    """Append one event to the platform's log, inside the caller's transaction."""
    detail = detail or {}
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        last = PlatformAuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        at = timezone.now()
        actor_id = getattr(actor, "pk", None)
        actor_email = getattr(actor, "email", "") or ""
        previous_hash = last or GENESIS
        return PlatformAuditEvent.objects.create(
            at=at,
            actor_id=actor_id,
            actor_email=actor_email,
            action=action,
            detail=detail,
            previous_hash=previous_hash,
            hash=platform_event_hash(
                at=at,
                actor_id=actor_id,
                actor_email=actor_email,
                action=action,
                detail=detail,
                previous_hash=previous_hash,
            ),
        )


def platform_audit_verify() -> int | None:
    """The id of the first event whose hash or link does not hold, or None when the whole
    chain holds."""
    previous = GENESIS
    for event in PlatformAuditEvent.objects.order_by("id").iterator(2000):
        expected = platform_event_hash(
            at=event.at,
            actor_id=event.actor_id,
            actor_email=event.actor_email,
            action=event.action,
            detail=event.detail,
            previous_hash=previous,
        )
        if event.previous_hash != previous or event.hash != expected:
            return event.id
        previous = event.hash
    return None
