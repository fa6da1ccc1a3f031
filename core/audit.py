"""The council's audit log: append-only and hash-chained.

Each event's hash covers its own fields (as RFC 8785 canonical JSON) and the previous
event's hash, so editing, deleting or reordering any event breaks every hash after it.
Appends take a per-council advisory lock so the chain never forks."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from core.models import AuditEvent
from tenants.db import current_schema, prepared_cursor

GENESIS = "0" * 64
INSERT_SQL = (
    "INSERT INTO core_auditevent "
    "(at, actor_id, actor_email, action, person_id, detail, previous_hash, hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def _lock_key() -> int:
    # Advisory locks are database-wide: key the lock by schema so councils never wait on
    # each other. crc32 fits the signed 64-bit key space.
    return zlib.crc32(f"patchwork-audit:{current_schema()}".encode())


def event_hash(
    *,
    at: datetime,
    actor_id: int | None,
    actor_email: str,
    action: str,
    person_id: int | None,
    detail: dict[str, Any],
    previous_hash: str,
) -> str:
    body = {
        "at": at.astimezone(UTC).isoformat(),
        "actor_id": actor_id,
        "actor_email": actor_email,
        "action": action,
        "person_id": person_id,
        "detail": detail,
        "previous_hash": previous_hash,
    }
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def audit_record(
    *,
    actor: Any | None,
    action: str,
    person_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. `detail` holds only JSON strings, integers, booleans and lists."""
    detail = detail or {}
    # Inside the change's own transaction no savepoint is needed: if the event cannot be
    # written, the change is not made either.
    with transaction.atomic(savepoint=False):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key()])
            cursor.execute("SELECT hash FROM core_auditevent ORDER BY id DESC LIMIT 1")
            last = cursor.fetchone()
        previous = last[0] if last else None
        at = timezone.now()
        actor_id = getattr(actor, "pk", None)
        actor_email = getattr(actor, "email", "") or ""
        previous_hash = previous or GENESIS
        digest = event_hash(
            at=at,
            actor_id=actor_id,
            actor_email=actor_email,
            action=action,
            person_id=person_id,
            detail=detail,
            previous_hash=previous_hash,
        )
        event = AuditEvent(
            at=at,
            actor_id=actor_id,
            actor_email=actor_email,
            action=action,
            person_id=person_id,
            detail=detail,
            previous_hash=previous_hash,
            hash=digest,
        )
        # Written on every view and every exchange: a plain statement.
        with prepared_cursor() as cursor:
            cursor.execute(
                INSERT_SQL,
                [at, actor_id, actor_email, action, person_id]
                + [Jsonb(detail), previous_hash, digest],
            )
            event.pk = cursor.fetchone()[0]
        event._state.adding = False
        event._state.db = connection.alias
        return event


@dataclass(frozen=True)
class ChainReport:
    events: int
    first_broken_id: int | None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None


def audit_verify(events: Iterable[AuditEvent] | None = None) -> ChainReport:
    """Walk the chain in order; report the first event whose hash or link does not hold."""
    previous = GENESIS
    count = 0
    rows = events if events is not None else AuditEvent.objects.order_by("id").iterator(2000)
    for event in rows:
        count += 1
        if event.previous_hash != previous:
            return ChainReport(count, event.id, "an event before it was removed or changed")
        expected = event_hash(
            at=event.at,
            actor_id=event.actor_id,
            actor_email=event.actor_email,
            action=event.action,
            person_id=event.person_id,
            detail=event.detail,
            previous_hash=event.previous_hash,
        )
        if expected != event.hash:
            return ChainReport(count, event.id, "its contents were changed")
        previous = event.hash
    return ChainReport(count, None)
