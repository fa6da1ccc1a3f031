"""Email, behind one interface.

Everything Patchwork emails goes through `email_enqueue`, which writes one `EmailOutbox`
row keyed by an idempotency key and, once the caller's transaction commits, asks Celery to
send it. The sending task (`core.tasks.email_send`) calls `email_deliver`, which locks the
row, sends it and marks it sent in the same transaction: a retried or duplicated task finds
the row already sent and sends nothing.

Delivery is Django's email backend (SMTP in production, the console in the demo) unless
`NOTIFY_API_KEY` is set, when GOV.UK Notify sends it. A failed or bounced address is kept on
the row and shown to the council's administrators."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.models import EmailOutbox


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


class DjangoEmailDelivery:
    """Django's configured email backend: SMTP by default, the console in the demo."""

    def send(self, email: OutgoingEmail) -> str:
        message = EmailMultiAlternatives(
            subject=email.subject,
            body=email.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[email.to_email],
            headers={"X-Patchwork-Reference": email.reference},
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
    transaction commits, so an email never tells of a change that was rolled back."""
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
        transaction.on_commit(lambda: email_send.delay(row.pk))
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


def email_deliver(*, outbox_id: int) -> str:
    """Send one queued email and mark it sent in the same transaction. Returns "sent",
    or "skipped" when it was already sent (a retry or a duplicate task) or is gone."""
    with transaction.atomic():
        row = EmailOutbox.objects.select_for_update().filter(pk=outbox_id).first()
        if row is None or row.status != EmailOutbox.Status.QUEUED:
            return "skipped"
        reference = delivery_backend().send(_render(row))
        row.status = EmailOutbox.Status.SENT
        row.sent_at = timezone.now()
        row.attempts += 1
        row.provider_reference = reference[:200]
        row.last_error = ""
        row.save(
            update_fields=["status", "sent_at", "attempts", "provider_reference", "last_error"]
        )
    return "sent"


def email_attempt_failed(*, outbox_id: int, error: str, final: bool) -> None:
    """Record a failed attempt; after the last one the address shows as failed to admins."""
    row = EmailOutbox.objects.filter(pk=outbox_id, status=EmailOutbox.Status.QUEUED).first()
    if row is None:
        return
    row.attempts += 1
    row.last_error = error[:500]
    if final:
        row.status = EmailOutbox.Status.FAILED
    row.save(update_fields=["attempts", "last_error", "status"])


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


@shared_task(name="core.tasks.email_send", bind=True, max_retries=None, acks_late=True)
def email_send(self: Any, outbox_id: int) -> str:
    """Send one outbox email. A failure is retried with growing waits; a retry (or a
    duplicate task) after it was sent sends nothing."""
    try:
        return email_deliver(outbox_id=outbox_id)
    except PermanentEmailError as exc:
        email_attempt_failed(outbox_id=outbox_id, error=str(exc), final=True)
        return "failed"
    except Exception as exc:
        final = self.request.retries >= settings.EMAIL_MAX_RETRIES
        email_attempt_failed(outbox_id=outbox_id, error=str(exc) or repr(exc), final=final)
        if final:
            return "failed"
        countdown = settings.EMAIL_RETRY_SECONDS * 2**self.request.retries
        raise self.retry(exc=exc, countdown=min(countdown, 6 * 3600)) from exc


@shared_task(name="core.tasks.email_send_batch")
def email_send_batch(outbox_ids: list[int]) -> int:
    """Send a batch of bulk emails (reminders); one that fails goes to `email_send` on its
    own, with its retries."""
    sent = 0
    for outbox_id in outbox_ids:
        try:
            sent += email_deliver(outbox_id=outbox_id) == "sent"
        except Exception:
            email_send.delay(outbox_id)
    return sent
