"""Writes inside one council, with their rules."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from core.models import Organisation


@transaction.atomic
def organisation_create(
    *,
    name: str,
    agency_type: str,
    sensitive_service: bool | None = None,
    phone: str = "",
    secure_email: str = "",
) -> Organisation:
    """Add an agency. Mental health, substance misuse and sexual health services are
    sensitive unless the administrator says otherwise."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Enter the organisation's name"})
    if agency_type not in Organisation.AgencyType.values:
        raise ValidationError({"agency_type": "Choose the kind of agency from the list"})
    if Organisation.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"{name} is already on the list of organisations"})
    if sensitive_service is None:
        sensitive_service = agency_type in Organisation.SENSITIVE_BY_DEFAULT
    return Organisation.objects.create(
        name=name,
        agency_type=agency_type,
        sensitive_service=sensitive_service,
        phone=phone.strip(),
        secure_email=secure_email.strip().lower(),
    )
