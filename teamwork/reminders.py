"""Reminders: every current involvement is confirmed every
`CouncilPolicy.confirmation_interval_days`. The practitioner is emailed one link to say
"still involved" and one to say "no longer involved" (signed, single use, expiring); an
involvement still unconfirmed `confirmation_grace_days` after its reminder is flagged to the
team and shown as "unconfirmed since …". Nothing is ever ended or deleted silently.

The daily run is set-based SQL so a county (a million involvements) takes minutes: one
INSERT…SELECT picks the due involvements, one more writes one outbox email per practitioner
(their links are signed when the email is sent), one UPDATE…RETURNING flags the overdue
ones and one INSERT…SELECT tells their teams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.delivery.notifications import council_base_url
from core.models import CouncilPolicy, EmailOutbox, Involvement, Notification, Practitioner
from core.services import involvement_confirm, involvement_end
from teamwork.models import InvolvementReminder
from tenants.db import current_schema

LINK_SALT = "patchwork.involvement-reminder"
Answer = InvolvementReminder.Answer


@dataclass(frozen=True)
class ReminderRun:
    reminded: int
    emails: list[int]
    flagged: int
    team_notified: int


def _tables() -> dict[str, str]:
    return {
        "involvement": Involvement._meta.db_table,
        "reminder": InvolvementReminder._meta.db_table,
        "outbox": EmailOutbox._meta.db_table,
        "practitioner": Practitioner._meta.db_table,
        "notification": Notification._meta.db_table,
        "user": Practitioner._meta.get_field("user").related_model._meta.db_table,
        "person": Involvement._meta.get_field("person").related_model._meta.db_table,
    }


@transaction.atomic
def reminders_run(*, now: datetime | None = None) -> ReminderRun:
    """Send today's reminders and flag the overdue ones, for the current council."""
    now = now or timezone.now()
    policy = CouncilPolicy.current()
    interval = timedelta(days=policy.confirmation_interval_days)
    grace = timedelta(days=policy.confirmation_grace_days)
    # The SQL below is built only from these table names (from the models, never from
    # input); every value is a bound parameter.
    t = _tables()
    with connection.cursor() as cursor:
        # 1. One reminder for every current involvement due for confirmation that has not
        # had one since it was last confirmed; 2. one email per practitioner listing all of
        # them. The email's key is the practitioner and the batch's first reminder, so a
        # rerun never queues the same email twice.
        cursor.execute(
            f"""
            WITH reminded AS (
                INSERT INTO {t["reminder"]} (involvement_id, sent_at, expires_at, answer)
                SELECT i.id, %(now)s, %(expires)s, ''
                FROM {t["involvement"]} i
                WHERE i.end_date IS NULL
                  AND COALESCE(i.last_confirmed_at, i.created_at) < %(due_before)s
                  AND NOT EXISTS (
                    SELECT 1 FROM {t["reminder"]} r
                    WHERE r.involvement_id = i.id
                      AND r.sent_at >= COALESCE(i.last_confirmed_at, i.created_at)
                  )
                RETURNING id, involvement_id
            ), emails AS (
                INSERT INTO {t["outbox"]} (idempotency_key, kind, to_email, subject, body,
                    context, ics, status, attempts, last_error, provider_reference, created_at)
                SELECT 'reminder:' || p.id || ':' || min(r.id), 'involvement_reminder',
                    COALESCE(NULLIF(p.secure_email, ''), u.email),
                    'Patchwork: are you still involved? (' || count(*) || ')', '',
                    jsonb_build_object('reminder_ids', jsonb_agg(r.id ORDER BY r.id)),
                    '', 'queued', 0, '', '', %(now)s
                FROM reminded r
                JOIN {t["involvement"]} i ON i.id = r.involvement_id
                JOIN {t["practitioner"]} p ON p.id = i.practitioner_id
                JOIN {t["user"]} u ON u.id = p.user_id
                GROUP BY p.id, p.secure_email, u.email
                ON CONFLICT (idempotency_key) DO NOTHING
                RETURNING id
            )
            SELECT (SELECT count(*) FROM reminded),
                   (SELECT coalesce(array_agg(id ORDER BY id), '{{}}') FROM emails)
            """,  # noqa: S608
            {"now": now, "expires": now + grace, "due_before": now - interval},
        )
        reminded, emails = cursor.fetchone()
        # 3. Reminders unanswered after the grace period, with no confirmation since, are
        # flagged; 4. the rest of the team is told (for a sensitive involvement, only its
        # own service).
        cursor.execute(
            f"""
            WITH flagged AS (
                UPDATE {t["reminder"]} r SET flagged_at = %(now)s
                FROM {t["involvement"]} i
                WHERE r.involvement_id = i.id
                  AND r.answered_at IS NULL AND r.flagged_at IS NULL
                  AND r.sent_at < %(grace_before)s
                  AND i.end_date IS NULL
                  AND COALESCE(i.last_confirmed_at, i.created_at) < r.sent_at
                RETURNING r.involvement_id
            ), told AS (
                INSERT INTO {t["notification"]} (recipient_id, person_id, kind, text, created_at)
                SELECT DISTINCT ON (op.user_id, i.id) op.user_id, i.person_id,
                    'involvement_unconfirmed',
                    left(u.full_name || ' has not confirmed they are still involved with '
                        || pe.given_name || ' ' || pe.family_name || ' (unconfirmed since '
                        || to_char((COALESCE(i.last_confirmed_at, i.created_at)
                            + make_interval(days => %(interval_days)s))
                            AT TIME ZONE %(tz)s, 'FMDD FMMonth YYYY') || ')', 300),
                    %(now)s
                FROM flagged f
                JOIN {t["involvement"]} i ON i.id = f.involvement_id
                JOIN {t["practitioner"]} p ON p.id = i.practitioner_id
                JOIN {t["user"]} u ON u.id = p.user_id
                JOIN {t["person"]} pe ON pe.id = i.person_id
                JOIN {t["involvement"]} other ON other.person_id = i.person_id
                    AND other.end_date IS NULL AND other.practitioner_id <> i.practitioner_id
                    AND (NOT i.sensitive OR other.organisation_id = i.organisation_id)
                JOIN {t["practitioner"]} op ON op.id = other.practitioner_id
                RETURNING id
            )
            SELECT (SELECT count(*) FROM flagged), (SELECT count(*) FROM told)
            """,  # noqa: S608
            {
                "now": now,
                "grace_before": now - grace,
                "interval_days": policy.confirmation_interval_days,
                "tz": settings.TIME_ZONE,
            },
        )
        flagged, team_notified = cursor.fetchone()
    return ReminderRun(
        reminded=reminded, emails=list(emails), flagged=flagged, team_notified=team_notified
    )


def reminder_token(reminder_id: int, answer: str) -> str:
    return signing.Signer(salt=LINK_SALT).sign_object(
        {"s": current_schema(), "r": reminder_id, "a": answer}
    )


def reminder_email_body(context: dict[str, Any]) -> str:
    """The reminder email, with each involvement's two links signed now."""
    ids = context.get("reminder_ids", [])
    reminders = (
        InvolvementReminder.objects.filter(pk__in=ids)
        .select_related("involvement__person", "involvement__role")
        .order_by("involvement__person__family_name", "pk")
    )
    lines = []
    expires: date | None = None
    base = council_base_url()
    for reminder in reminders:
        involvement = reminder.involvement
        still = f"{base}/reminders/{reminder_token(reminder.pk, Answer.STILL_INVOLVED)}/"
        ended = f"{base}/reminders/{reminder_token(reminder.pk, Answer.NO_LONGER)}/"
        lines.append(
            f"{involvement.person} – {involvement.role} since {involvement.start_date:%-d %B %Y}\n"
            f"  Still involved: {still}\n  No longer involved: {ended}\n"
        )
        expires = timezone.localdate(reminder.expires_at)
    return (
        "Patchwork asks you to confirm, every so often, that you are still involved with the "
        "people listed against your name, so colleagues never chase someone who has moved on.\n\n"
        + "\n".join(lines)
        + (f"\nEach link works once, until {expires:%-d %B %Y}. " if expires else "\n")
        + "If you do not answer, the rest of the team will see that your involvement is "
        "unconfirmed. Nothing is removed without you.\n"
    )


def reminder_from_token(token: str) -> tuple[InvolvementReminder, str]:
    """The reminder and answer a link stands for, if it may still be used; otherwise a
    ValidationError saying why (altered, another council's, used, expired, ended)."""
    try:
        data = signing.Signer(salt=LINK_SALT).unsign_object(token)
    except signing.BadSignature as exc:
        raise ValidationError(
            "This link is not valid. Confirm your involvements in Patchwork."
        ) from exc
    if data.get("s") != current_schema() or data.get("a") not in Answer.values:
        raise ValidationError("This link is not valid. Confirm your involvements in Patchwork.")
    reminder = (
        InvolvementReminder.objects.select_related(
            "involvement__person", "involvement__role", "involvement__practitioner__user"
        )
        .filter(pk=data.get("r"))
        .first()
    )
    if reminder is None:
        raise ValidationError("This link is not valid. Confirm your involvements in Patchwork.")
    if reminder.answered_at is not None:
        raise ValidationError(
            f"This link was already used on {timezone.localtime(reminder.answered_at):%-d %B %Y}. "
            "Each link works once."
        )
    if reminder.expires_at < timezone.now():
        raise ValidationError(
            "This link has expired. Confirm your involvement from your list in Patchwork."
        )
    if not reminder.involvement.is_current:
        raise ValidationError("This involvement has already ended.")
    return reminder, data["a"]


@transaction.atomic
def reminder_answer(*, token: str) -> InvolvementReminder:
    """Act on a reminder link: confirm the involvement, or end it as no longer involved.
    The link then stops working."""
    reminder, answer = reminder_from_token(token)
    reminder = InvolvementReminder.objects.select_for_update().get(pk=reminder.pk)
    if reminder.answered_at is not None:
        raise ValidationError("This link was already used. Each link works once.")
    involvement = Involvement.objects.select_related("practitioner__user", "person").get(
        pk=reminder.involvement_id
    )
    actor = involvement.practitioner.user
    if answer == Answer.STILL_INVOLVED:
        involvement_confirm(actor=actor, involvement=involvement)
    else:
        involvement_end(
            actor=actor, involvement=involvement, reason=Involvement.EndReason.NOT_CONFIRMED
        )
    reminder.answered_at = timezone.now()
    reminder.answer = answer
    reminder.save(update_fields=["answered_at", "answer"])
    return reminder


def unconfirmed_since(involvement_ids: list[int]) -> dict[int, date]:
    """For flagged involvements among these, the day their confirmation fell due: shown as
    "unconfirmed since …" on the network and the timeline."""
    interval = timedelta(days=CouncilPolicy.current().confirmation_interval_days)
    flagged = (
        Involvement.objects.filter(
            pk__in=involvement_ids,
            end_date__isnull=True,
            reminders__flagged_at__isnull=False,
            reminders__answered_at__isnull=True,
            reminders__sent_at__gt=Coalesce("last_confirmed_at", "created_at"),
        )
        .distinct()
        .values_list("pk", "last_confirmed_at", "created_at")
    )
    return {
        pk: timezone.localdate((confirmed or created) + interval)
        for pk, confirmed, created in flagged
        if (confirmed or created) + interval <= timezone.now()
    }
