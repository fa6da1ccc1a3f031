"""The platform's half of accounts' audit and email signals (accounts.auditing, decision
0019): an operator's unlock, second-factor reset or recovery code is written to the
platform's audit log. The public schema has no outbox (that is a council's), so an
operator's email goes straight to Django's email backend once the step commits; a failure
is logged, and the reset stands (the console shows it)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django_tenants.utils import get_public_schema_name

from tenants.db import current_schema
from tenants.platform_audit import platform_audit_record

log = logging.getLogger(__name__)


def account_event_audit(
    sender: type, *, actor: Any, action: str, detail: dict[str, Any], **kwargs: Any
) -> bool:
    if current_schema() != get_public_schema_name():
        return False
    platform_audit_record(actor=actor, action=action, detail=detail)
    return True


def _send(to_email: str, subject: str, body: str) -> None:
    try:
        send_mail(subject, body, None, [to_email])
    except Exception:  # noqa: BLE001 - the step is made; say the email was not sent
        log.exception("Operator email %r to %s not sent", subject, to_email)


def account_event_email(
    sender: type, *, key: str, to_email: str, subject: str, body: str, **kwargs: Any
) -> bool:
    if current_schema() != get_public_schema_name():
        return False
    transaction.on_commit(lambda: _send(to_email, subject, body))
    return True
