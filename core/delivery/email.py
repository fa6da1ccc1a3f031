"""Email, behind one interface.

Everything Patchwork emails goes through `email_enqueue`, which writes one `EmailOutbox`
row keyed by an idempotency key and, once the caller's transaction commits, asks Celery to
send it (best effort: `tenants.queueing.task_enqueue`). The row is the promise: beat's
`core.tasks.email_sweep` sends any row the broker never brought to a worker. Whoever sends
(the task, a retry, the sweep) first claims the row with one conditional UPDATE, so an email
is sent once however many of them arrive (`email_deliver`).

Delivery is Django's email backend (SMTP in production, the console in the demo) unless
`NOTIFY_API_KEY` is set, when GOV.UK Notify sends it. A failed or bounced address is kept on
the row and shown to the council's administrators."""

from __future__ import annotations

import hashlib
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core.models import EmailOutbox
from tenants.db import current_schema
from tenants.queueing import task_enqueue


@dataclass(frozen=True)
class OutgoingEmail:
    """What a delivery backend needs: no database rows, so backends stay simple."""

    to_email: str
    subject: str
    body: str
    reference: str
    ics: str = ""
    ics_method: str = "REQUEST"


class PermanentEmailError(Exception):
    """The address will never accept this email: retrying would not help."""


class EmailDelivery(Protocol):
    def send(self, email: OutgoingEmail) -> str:
        """Send one email; return the provider's reference. Raise to have it retried,
        or PermanentEmailError when the address is refused."""
        ...


def _message_id(reference: str) -> str:
    """A Message-ID made from the council and the email's idempotency key."""
    digest = hashlib.sha256(f"{current_schema()}:{reference}".encode()).hexdigest()[:40]
    return f"<{digest}@{settings.PLATFORM_DOMAIN}>"


class DjangoEmailDelivery:
    """Django's configured email backend: SMTP by default, the console in the demo."""

    def send(self, email: OutgoingEmail) -> str:
        message = EmailMultiAlternatives(
            subject=email.subject,
            body=email.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[email.to_email],
            headers={
                "X-Patchwork-Reference": email.reference,
                # The same for every attempt: should a worker die after the server took the
                # email but before it was marked sent, the resent copy is recognised as one.
                "Message-ID": _message_id(email.reference),
            },
            connection=get_connection(fail_silently=False),
        )
        if email.ics:
            # Outlook and Google read the calendar part best both as an inline
            # text/calendar alternative (with METHOD) and as an attached invite.ics.
            content_type = f'text/calendar; charset="utf-8"; method={email.ics_method}'
            message.attach_alternative(email.ics, content_type)
            message.attach("invite.ics", email.ics.encode(), "application/ics")
        try:
            message.send()
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentEmailError(f"The mail server refused the address: {exc}") from exc
        return email.reference


class NotifyEmailDelivery:
    """GOV.UK Notify: one template whose subject and body are `((subject))` and `((body))`;
    a calendar file goes as a Notify file link, since Notify sends no attachments."""

    def __init__(self, api_key: str, template_id: str, base_url: str) -> None:
        from notifications_python_client.notifications import NotificationsAPIClient

        self.client = NotificationsAPIClient(api_key, base_url=base_url)
        self.template_id = template_id

    def send(self, email: OutgoingEmail) -> str:
        from notifications_python_client import prepare_upload
        from notifications_python_client.errors import HTTPError

        personalisation: dict[str, Any] = {"subject": email.subject, "body": email.body}
        if email.ics:
            import io

            personalisation["calendar"] = prepare_upload(
                io.BytesIO(email.ics.encode()), filename="invite.ics"
            )
        try:
            response = self.client.send_email_notification(
                email_address=email.to_email,
                template_id=self.template_id,
                personalisation=personalisation,
                reference=email.reference,
            )
        except HTTPError as exc:
            if exc.status_code == 400:
                raise PermanentEmailError(str(exc)) from exc
            raise
        return str(response.get("id", ""))


def delivery_backend() -> EmailDelivery:
    if settings.NOTIFY_API_KEY:
        return NotifyEmailDelivery(
            settings.NOTIFY_API_KEY,
            settings.NOTIFY_TEMPLATE_ID,
            settings.NOTIFY_BASE_URL,
        )
    return DjangoEmailDelivery()


# Emails queued without a body, by kind: the body is made from the row's context when it is
# sent. The app that queues such emails registers how (teamwork: involvement reminders).
BODY_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {}


def email_body_renderer_register(kind: str, render: Callable[[dict[str, Any]], str]) -> None:
    BODY_RENDERERS[kind] = render


def email_enqueue(
    *,
    key: str,
    kind: str,
    to_email: str,
    subject: str,
    body: str = "",
    context: dict[str, Any] | None = None,
    ics: str = "",
) -> EmailOutbox:
    """Queue one email. The same `key` twice queues it once. It is sent after the caller's
    transaction commits, so an email never tells of a change that was rolled back; the row
    is the promise, and if the broker cannot take the task the sweep sends it."""
    row, created = EmailOutbox.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "kind": kind,
            "to_email": to_email,
            "subject": subject[:200],
            "body": body,
            "context": context or {},
            "ics": ics,
        },
    )
    if created:
        task_enqueue(email_send, row.pk)
    return row


def _render(row: EmailOutbox) -> OutgoingEmail:
    body = row.body
    if not body:
        # Bulk emails (reminders) are inserted by SQL; their links are signed at send time.
        render = BODY_RENDERERS.get(row.kind)
        if render is None:
            raise PermanentEmailError(f"No text for a {row.kind} email: nothing to send")
        body = render(row.context)
    method = "CANCEL" if "METHOD:CANCEL" in row.ics else "REQUEST"
    return OutgoingEmail(
        to_email=row.to_email,
        subject=row.subject,
        body=body,
        reference=row.idempotency_key,
        ics=row.ics,
        ics_method=method,
    )


def _claim(outbox_id: int, *, now: datetime) -> tuple[EmailOutbox, datetime] | None:
    """Take the email for this sender, in one conditional UPDATE committed before anything
    is sent: of two senders (the sweep and a late broker message, or a retry) only one
    matches. Returns the row and the claim's expiry (the sender's token), or None."""
    until = now + timedelta(seconds=settings.EMAIL_CLAIM_SECONDS)
    claimed = EmailOutbox.objects.filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
        pk=outbox_id,
        status=EmailOutbox.Status.QUEUED,
    ).update(claimed_until=until)
    if not claimed:
        return None
    return EmailOutbox.objects.get(pk=outbox_id), until


def email_deliver(*, outbox_id: int) -> str:
    """Send one queued email, exactly once: claim it, send it, mark it sent. Returns "sent";
    "skipped" when it is already sent, gone, or held by another sender; "failed" when it
    never can be (a refused address, or the last of EMAIL_MAX_RETRIES + 1 attempts); or
    "retry" when the attempt failed: it is due again after a growing wait (next_attempt_at).

    A worker that dies between sending and marking leaves its claim to expire; the sweep
    then sends again, with the same Message-ID, which mail stores recognise as one email."""
    now = timezone.now()
    claim = _claim(outbox_id, now=now)
    if claim is None:
        return "skipped"
    row, token = claim
    mine = EmailOutbox.objects.filter(pk=outbox_id, claimed_until=token)
    try:
        reference = delivery_backend().send(_render(row))
    except PermanentEmailError as exc:
        mine.update(
            status=EmailOutbox.Status.FAILED,
            attempts=F("attempts") + 1,
            last_error=str(exc)[:500],
            claimed_until=None,
        )
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any other failure is worth another try
        attempts = row.attempts + 1
        final = attempts > settings.EMAIL_MAX_RETRIES
        wait = min(settings.EMAIL_RETRY_SECONDS * 2 ** (attempts - 1), 6 * 3600)
        mine.update(
            status=EmailOutbox.Status.FAILED if final else EmailOutbox.Status.QUEUED,
            attempts=attempts,
            last_error=(str(exc) or repr(exc))[:500],
            next_attempt_at=timezone.now() + timedelta(seconds=wait),
            claimed_until=None,
        )
        return "failed" if final else "retry"
    mine.update(
        status=EmailOutbox.Status.SENT,
        sent_at=timezone.now(),
        attempts=F("attempts") + 1,
        provider_reference=reference[:200],
        last_error="",
        claimed_until=None,
    )
    return "sent"


def email_due(*, limit: int = 500) -> list[int]:
    """Emails the broker never brought to a worker, or due another try: queued at least
    SWEEP_AFTER_SECONDS ago, due, and held by no sender."""
    now = timezone.now()
    return list(
        EmailOutbox.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now),
            status=EmailOutbox.Status.QUEUED,
            created_at__lte=now - timedelta(seconds=settings.SWEEP_AFTER_SECONDS),
            next_attempt_at__lte=now,
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def email_sweep() -> int:
    """Send the emails `email_due` finds, here and now. Returns how many were sent."""
    return sum(email_deliver(outbox_id=outbox_id) == "sent" for outbox_id in email_due())


@transaction.atomic
def email_bounce_record(*, provider_reference: str, error: str = "") -> int:
    """Mark emails the provider later reported as bounced (e.g. a Notify callback).
    Returns how many rows it marked."""
    return EmailOutbox.objects.filter(
        provider_reference=provider_reference, status=EmailOutbox.Status.SENT
    ).update(status=EmailOutbox.Status.BOUNCED, last_error=error[:500] or "Bounced")


def email_problems() -> QuerySet[EmailOutbox]:
    """Failed and bounced emails, newest first, for the administrators' page."""
    return EmailOutbox.objects.filter(
        status__in=[EmailOutbox.Status.FAILED, EmailOutbox.Status.BOUNCED]
    ).order_by("-created_at")


def email_recent(limit: int = 100) -> QuerySet[EmailOutbox]:
    """The latest emails, for the demo's outbox page."""
    return EmailOutbox.objects.order_by("-created_at")[:limit]


# --- Celery tasks. Their names are the ones they had in `core.tasks`, so messages queued
# before an upgrade still find them. ---------------------------------------------------------


@shared_task(name="core.tasks.email_send", acks_late=True)
def email_send(outbox_id: int) -> str:
    """Send one outbox email. After a failure it asks to be run again when the wait is
    over (and the sweep tries then if that message is lost); a duplicate task, or one
    after the email was sent, sends nothing."""
    outcome = email_deliver(outbox_id=outbox_id)
    if outcome == "retry":
        due = EmailOutbox.objects.filter(pk=outbox_id).values_list("next_attempt_at", flat=True)
        wait = (due[0] - timezone.now()).total_seconds() if due else 0.0
        task_enqueue(email_send, outbox_id, countdown=max(wait, 0.0))
    return outcome


@shared_task(name="core.tasks.email_send_batch")
def email_send_batch(outbox_ids: list[int]) -> int:
    """Send a batch of bulk emails (reminders); one that fails is tried again by the sweep."""
    return sum(email_deliver(outbox_id=outbox_id) == "sent" for outbox_id in outbox_ids)


@shared_task(name="core.tasks.email_sweep")
def email_sweep_task() -> int:
    """Beat's safety net, per council: send what the broker lost and what is due a retry."""
    return email_sweep()
