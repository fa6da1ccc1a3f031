"""A council's half of accounts' audit and email signals (accounts.auditing, decision
0019): an unlock, a second-factor reset or a recovery code used in a council's schema is
written to that council's audit log (and so to its audit export), and the email it sends
goes through the council's outbox."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import get_public_schema_name

from core.audit import audit_record
from core.delivery.email import email_enqueue
from tenants.db import current_schema


def account_event_audit(
    sender: type, *, actor: Any, action: str, detail: dict[str, Any], **kwargs: Any
) -> bool:
    if current_schema() == get_public_schema_name():
        return False
    audit_record(actor=actor, action=action, detail=detail)
    return True


def account_event_email(
    sender: type, *, key: str, to_email: str, subject: str, body: str, **kwargs: Any
) -> bool:
    if current_schema() == get_public_schema_name():
        return False
    email_enqueue(key=key, kind="account", to_email=to_email, subject=subject, body=body)
    return True
