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

from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from core.models import AuditEvent
from tenants.canonical import canonical_json
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
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _chain_head_locked() -> str | None:
    """Take the council's audit lock (until the transaction ends) and read the hash of the
    chain's last event, or None for an empty log."""
    with prepared_cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key()])
        # No parameters, but prepared all the same (planned once per council).
        cursor.execute("SELECT hash FROM core_auditevent ORDER BY id DESC LIMIT 1", [])
        last = cursor.fetchone()
    return last[0] if last else None


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
        previous = _chain_head_locked()
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


PREPARED_EVENTS_MAX = 20


def audit_record_many(
    *, actor: Any | None, events: list[tuple[str, int | None, dict[str, Any]]]
) -> list[int]:
    """Append several events at once, each (action, person_id, detail), in order and in
    the caller's transaction: one lock, one read of the chain's head and one statement
    however many there are (a family page records a view of every relative it shows).
    Returns the new events' ids, in order (no model instances: the person page, which
    records a view on every visit, never reads them)."""
    if not events:
        return []
    with transaction.atomic(savepoint=False):
        previous_hash = _chain_head_locked() or GENESIS
        at = timezone.now()
        actor_id = getattr(actor, "pk", None)
        actor_email = getattr(actor, "email", "") or ""
        values: list[Any] = []
        for action, person_id, detail in events:
            digest = event_hash(
                at=at,
                actor_id=actor_id,
                actor_email=actor_email,
                action=action,
                person_id=person_id,
                detail=detail,
                previous_hash=previous_hash,
            )
            values += [at, actor_id, actor_email, action, person_id]
            values += [Jsonb(detail), previous_hash, digest]
            previous_hash = digest
        # Prepared once per number of events (a page records one, and one more per relative
        # it shows), each value bound on the server; a larger batch (PostgreSQL takes at
        # most 65,535 parameters to a prepared statement) is bound on the client instead.
        rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(events))
        hot = len(events) <= PREPARED_EVENTS_MAX
        with prepared_cursor() if hot else connection.cursor() as cursor:
            cursor.execute(INSERT_SQL.replace("(%s, %s, %s, %s, %s, %s, %s, %s)", rows), values)
            # Ids come from the sequence in the order of the rows.
            return sorted(row[0] for row in cursor.fetchall())


@dataclass(frozen=True)
class ChainHead:
    """Where the chain ends: how many events it holds and its newest event's id and hash
    (no id and GENESIS when it is empty)."""

    events: int
    head_id: int | None
    head_hash: str


@dataclass(frozen=True)
class ChainMark:
    """A head recorded earlier, outside the chain (a signed checkpoint, decision 0012): the
    chain must still hold at least `events` events, the `events`-th of them with
    `head_hash`. Deleting the newest events leaves a chain that links; it cannot leave one
    that reaches every mark."""

    events: int
    head_hash: str
    recorded_at: datetime


@dataclass(frozen=True)
class ChainReport:
    events: int
    first_broken_id: int | None
    problem: str = ""
    head: ChainHead | None = None
    # The latest mark the chain no longer reaches: its newest events were deleted.
    cut_short_of: ChainMark | None = None

    @property
    def intact(self) -> bool:
        return self.first_broken_id is None and self.cut_short_of is None


def audit_verify(
    events: Iterable[AuditEvent] | None = None,
    *,
    marks: Iterable[ChainMark] = (),
    start: ChainHead | None = None,
) -> ChainReport:
    """Walk the chain in order; report the first event whose hash or link does not hold,
    an event that differs from a mark's, or a chain that ends before a mark. From `start`
    (a head verified before), `events` are those after it."""
    by_position = {mark.events: mark for mark in marks}
    previous = start.head_hash if start else GENESIS
    count = start.events if start else 0
    head_id = start.head_id if start else None
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
        mark = by_position.get(count)
        if mark is not None and mark.head_hash != event.hash:
            return ChainReport(
                count,
                event.id,
                f"it is not the event a checkpoint signed at {_when(mark)} recorded there: "
                "the log was cut back and written again",
            )
        previous = event.hash
        head_id = event.id
    head = ChainHead(count, head_id, previous)
    beyond = [mark for mark in by_position.values() if mark.events > count]
    if beyond:
        latest = max(beyond, key=lambda mark: mark.events)
        return ChainReport(
            count,
            None,
            f"it ends at event {count}, but a checkpoint signed at {_when(latest)} recorded "
            f"{latest.events} events",
            head,
            latest,
        )
    return ChainReport(count, None, head=head)


def audit_verify_since(known: ChainHead) -> ChainReport:
    """Walk only the events after `known`, a head verified before: its newest event must
    still be there unchanged, and each later event must link and hash. Cheap enough to run
    every few minutes; a deletion *before* `known`'s head is found by the full walk."""
    if known.head_id is not None:
        still = AuditEvent.objects.filter(pk=known.head_id).values_list("hash", flat=True)
        if still.first() != known.head_hash:
            return ChainReport(
                known.events,
                known.head_id,
                f"event {known.events}, the newest when the last checkpoint was signed, "
                "is gone or changed: the log was cut back",
            )
    rows = AuditEvent.objects.filter(id__gt=known.head_id or 0).order_by("id").iterator(2000)
    return audit_verify(rows, start=known)


def _when(mark: ChainMark) -> str:
    return mark.recorded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
