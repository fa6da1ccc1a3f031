"""How accounts' own steps (unlocks, second-factor resets, recovery codes) reach an audit
log and an inbox. accounts sits below every other app, so it cannot write to the council's
audit (core) or the platform's (tenants), nor queue an email (core's outbox): it sends
these signals, and the app that owns the current schema's log answers. A step that no log
took is refused, so no step goes unaudited (decision 0019)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.dispatch import Signal

from accounts.models import User

# Sent with `actor`, `action`, `user` (whose account) and `detail`, inside the step's
# transaction. A receiver returns True when it wrote the event.
account_audited = Signal()
# Sent with `key` (idempotency), `to_email`, `subject` and `body`. A receiver returns True
# when it queued the email.
account_emailed = Signal()


def _taken(responses: list[tuple[Any, Any]]) -> bool:
    return any(response is True for _, response in responses)


def account_audit(
    *, actor: User | None, action: str, user: User, detail: dict[str, Any] | None = None
) -> None:
    """Write one event about `user`'s account to the current schema's audit log."""
    detail = {"user_id": user.pk, "user_email": user.email, **(detail or {})}
    responses = account_audited.send(
        sender=User, actor=actor, action=action, user=user, detail=detail
    )
    if not _taken(responses):
        raise ImproperlyConfigured(f"No audit log took {action}: the step is not made")


def account_email(*, key: str, to_email: str, subject: str, body: str) -> None:
    """Send `to_email` one email, after the caller's transaction commits."""
    responses = account_emailed.send(
        sender=User, key=key, to_email=to_email, subject=subject, body=body
    )
    if not _taken(responses):
        raise ImproperlyConfigured(f"Nothing could send the email {key}")
