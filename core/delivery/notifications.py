"""Change notifications: in the app always; by email straight away or in a daily digest,
as each practitioner chooses per kind of change.

`core.services` creates `Notification` rows itself (team joined or left, lead changed,
record opened, contact requests); the services of this module add task, meeting, message
and reminder notifications. Email goes out from the rows, not from the code that made them:
a sweep (`notifications_email_immediate`, every minute from Celery beat and straight after
our own changes) emails the "straight away" ones, and `notifications_digest_send` sends
each person one digest a day. `NotificationEmail` remembers what has gone, so nothing is
emailed twice."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from celery import shared_task
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import User
from core.delivery.email import email_enqueue
from core.models import (
    NOTIFICATION_TEXT_MAX,
    Notification,
    NotificationEmail,
    NotificationPreference,
    Person,
)
from tenants.db import current_schema, prepared_cursor
from tenants.models import Council
from tenants.queueing import task_enqueue
from tenants.selectors import council_url

Delivery = NotificationPreference.Delivery

# Every kind a practitioner can choose for, in the words of the preferences page and in the
# page's order, and what they get until they choose. Core's own kinds are listed here; the
# apps above core register theirs (teamwork and federation, in their AppConfig.ready).
KINDS: dict[str, tuple[str, str]] = {}
_KIND_ORDER: dict[str, int] = {}
# Kinds whose email is the notification itself (team messages): their in-app copy is never
# emailed again.
ALWAYS_EMAILED: set[str] = set()


def notification_kind_register(kind: str, label: str, default: str, *, order: int) -> None:
    """Add a kind of change people can hear about, at `order` on the preferences page."""
    _KIND_ORDER[kind] = order
    KINDS[kind] = (label, default)
    ordered = sorted(KINDS.items(), key=lambda item: _KIND_ORDER[item[0]])
    KINDS.clear()
    KINDS.update(ordered)


def notification_kind_always_emailed(kind: str) -> None:
    """A kind whose email is sent as itself (a team message): its in-app copy is never
    emailed again, by the sweep or in a digest."""
    ALWAYS_EMAILED.add(kind)


notification_kind_register("team_joined", "Someone joins the team", Delivery.DIGEST, order=10)
notification_kind_register("team_left", "Someone leaves the team", Delivery.DIGEST, order=20)
notification_kind_register(
    "lead_changed", "The lead professional changes", Delivery.IMMEDIATE, order=30
)
notification_kind_register(
    "record_opened", "Someone outside the team opens the record", Delivery.IMMEDIATE, order=60
)
notification_kind_register(
    "contact_requested", "Someone asks your service to get in touch", Delivery.IMMEDIATE, order=80
)
notification_kind_register(
    "contact_answered",
    "A service answers your request to get in touch",
    Delivery.IMMEDIATE,
    order=90,
)
SWEEP_WINDOW = timedelta(days=2)


def default_delivery(kind: str) -> str:
    return KINDS.get(kind, ("", Delivery.DIGEST))[1]


# One statement for the rows and for "does anyone want an email now?": a notification is
# written inside other work (a lookup from another council, a change to the team) that
# should not wait on two round trips for it.
NOTIFY_SQL = """
WITH added AS (
    INSERT INTO core_notification (recipient_id, person_id, kind, text, created_at)
    SELECT r.recipient, %(person)s, %(kind)s, %(text)s, %(now)s
    FROM unnest(%(recipients)s::bigint[]) WITH ORDINALITY AS r(recipient, position)
    ORDER BY r.position
    RETURNING id, recipient_id
)
SELECT added.id, added.recipient_id, EXISTS (
    SELECT 1 FROM core_notificationpreference p
    WHERE p.user_id = added.recipient_id AND p.kind = %(kind)s AND p.delivery = %(immediate)s
) FROM added ORDER BY added.id
"""


def notification_send(
    *, recipients: Sequence[User | int], person: Person | None, kind: str, text: str
) -> list[Notification]:
    """Tell each recipient (a user, or a user's id; in the app; by email as they chose).
    Call inside the change's own transaction: the emails go once it commits."""
    users = {r if isinstance(r, int) else r.pk: r for r in recipients}
    if not users:
        return []
    now = timezone.now()
    text = text[:NOTIFICATION_TEXT_MAX]
    with prepared_cursor() as cursor:
        cursor.execute(
            NOTIFY_SQL,
            {
                "person": person.pk if person is not None else None,
                "kind": kind,
                "text": text,
                "now": now,
                "recipients": list(users),
                "immediate": Delivery.IMMEDIATE.value,
            },
        )
        added = cursor.fetchall()
    rows = []
    for notification_id, user_id, _ in added:
        row = Notification(
            id=notification_id, recipient_id=user_id, person=person, kind=kind, text=text
        )
        row.created_at = now
        user = users[user_id]
        if not isinstance(user, int):
            row.recipient = user
        row._state.adding = False
        row._state.db = connection.alias
        rows.append(row)
    if default_delivery(kind) == Delivery.IMMEDIATE or any(wants for *_, wants in added):
        task_enqueue(notifications_email_immediate_task)
    return rows


def preferences_for(user: User) -> list[tuple[str, str, str]]:
    """(kind, label, chosen delivery) for every kind, in the page's order."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "delivery"))
    return [(kind, label, chosen.get(kind, default)) for kind, (label, default) in KINDS.items()]


@transaction.atomic
def notification_preferences_set(*, user: User, choices: dict[str, str]) -> None:
    """Save the user's choice for each kind; unknown kinds or deliveries are refused."""
    for kind, delivery in choices.items():
        if kind not in KINDS or delivery not in Delivery.values:
            raise ValidationError("Choose how you want to hear of each kind of change")
    for kind, delivery in choices.items():
        NotificationPreference.objects.update_or_create(
            user=user, kind=kind, defaults={"delivery": delivery}
        )


def _unemailed() -> QuerySet[Notification]:
    preference = NotificationPreference.objects.filter(
        user_id=OuterRef("recipient_id"), kind=OuterRef("kind")
    ).values("delivery")[:1]
    return (
        Notification.objects.filter(email__isnull=True, read_at__isnull=True)
        .exclude(kind__in=ALWAYS_EMAILED)
        .annotate(chosen=Subquery(preference))
        .select_related("recipient", "person")
    )


def _effective(notification: Notification) -> str:
    return notification.chosen or default_delivery(notification.kind)  # type: ignore[attr-defined]


def council_link(path: str) -> str:
    """An absolute link to `path` on the current council's host (for emails)."""
    return council_base_url() + path


def council_base_url() -> str:
    """The current council's address without a trailing slash ("" outside a council);
    look it up once per email, not once per link."""
    council = Council.objects.filter(schema_name=current_schema()).first()
    if council is None or council.is_platform:
        return ""
    return council_url(council, "").rstrip("/")


def notifications_email_immediate() -> int:
    """Email every recent "straight away" notification not yet emailed. Returns how many."""
    since = timezone.now() - SWEEP_WINDOW
    count = 0
    immediate_by_default = [k for k, (_, default) in KINDS.items() if default == Delivery.IMMEDIATE]
    # Chosen in SQL: the digest's rows (thousands on a reminder day) are never loaded here.
    due = _unemailed().filter(
        Q(chosen=Delivery.IMMEDIATE) | Q(chosen__isnull=True, kind__in=immediate_by_default),
        created_at__gte=since,
    )
    for notification in due.order_by("pk"):
        with transaction.atomic():
            # The row lock makes two concurrent sweeps email each notification once.
            locked = (
                Notification.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=notification.pk, email__isnull=True)
                .first()
            )
            if locked is None:
                continue
            outbox = email_enqueue(
                key=f"notification:{notification.pk}",
                kind="notification",
                to_email=email_for(notification.recipient),
                subject=_subject(notification),
                body=f"{notification.text}\n\n"
                f"See it in Patchwork: {council_link('/notifications/')}\n\n"
                "Choose which changes you hear about by email: "
                f"{council_link('/notifications/preferences/')}\n",
            )
            NotificationEmail.objects.create(
                notification=notification, delivery=Delivery.IMMEDIATE, outbox=outbox
            )
        count += 1
    return count


def _subject(notification: Notification) -> str:
    label = KINDS.get(notification.kind, ("A change on Patchwork", ""))[0]
    person = f" – {notification.person}" if notification.person else ""
    return f"Patchwork: {label}{person}"[:200]


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(day, time.min), tz)
    return start, start + timedelta(days=1)


@transaction.atomic
def notifications_digest_send(*, day: date | None = None) -> int:
    """One email per person collecting the day's digest notifications (yesterday by
    default, for the morning run). Returns how many digests it queued."""
    day = day or timezone.localdate() - timedelta(days=1)
    start, end = _day_bounds(day)
    pending = (
        _unemailed()
        .filter(created_at__gte=start, created_at__lt=end)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("created_at")
    )
    by_user: dict[int, list[Notification]] = defaultdict(list)
    for notification in pending:
        if _effective(notification) == Delivery.DIGEST:
            by_user[notification.recipient_id].append(notification)
    for notifications in by_user.values():
        recipient = notifications[0].recipient
        lines = [f"- {n.created_at.astimezone():%H:%M} {n.text}" for n in notifications]
        outbox = email_enqueue(
            key=f"digest:{recipient.pk}:{day.isoformat()}",
            kind="digest",
            to_email=email_for(recipient),
            subject=f"Patchwork: {len(notifications)} changes on {day:%-d %B %Y}",
            body=f"Changes on people you work with, {day:%-d %B %Y}:\n\n"
            + "\n".join(lines)
            + f"\n\nSee them in Patchwork: {council_link('/notifications/')}\n",
        )
        NotificationEmail.objects.bulk_create(
            NotificationEmail(notification=n, delivery=Delivery.DIGEST, outbox=outbox)
            for n in notifications
        )
    return len(by_user)


def email_for(user: User) -> str:
    """The address a colleague's mail goes to: their secure email if they gave one."""
    practitioner = getattr(user, "practitioner", None)
    return (practitioner.secure_email if practitioner else "") or user.email


# --- Celery tasks (named as they were in `core.tasks`, for messages queued before an
# upgrade). -------------------------------------------------------------------------------


@shared_task(name="core.tasks.notifications_email_immediate")
def notifications_email_immediate_task() -> int:
    """Email the notifications their recipients want straight away."""
    return notifications_email_immediate()


@shared_task(name="core.tasks.notifications_digest_send")
def notifications_digest_send_task(day: str | None = None) -> int:
    """Email each user one digest of a day's changes (yesterday by default)."""
    return notifications_digest_send(day=date.fromisoformat(day) if day else None)
