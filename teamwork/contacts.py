"""The contact log: "I saw / spoke to the child on <date>", in two clicks. Logging a
contact also moves the involvement's last contact date (through core's own
`involvement_update`), which is what the network shows."""

from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.models import Person
from core.services import involvement_update
from teamwork.models import ContactLog
from teamwork.team import current_involvement_of


@transaction.atomic
def contact_log(
    *, actor: User, person: Person, kind: str, contact_date: date | None = None
) -> ContactLog:
    """Record that the actor saw or spoke to the person on a day (today by default).
    Only someone currently involved can log a contact, and only for themselves."""
    if kind not in ContactLog.Kind.values:
        raise ValidationError({"kind": "Choose whether you saw or spoke to them"})
    involvement = current_involvement_of(actor, person)
    if involvement is None:
        raise ValidationError("Only someone currently involved can record a contact")
    contact_date = contact_date or timezone.localdate()
    if contact_date > timezone.localdate():
        raise ValidationError({"contact_date": "The contact date cannot be in the future"})
    if contact_date < involvement.start_date:
        raise ValidationError(
            {"contact_date": "The contact date cannot be before your involvement started"}
        )
    log = ContactLog.objects.create(
        involvement=involvement,
        person=person,
        kind=kind,
        contact_date=contact_date,
        recorded_by=actor,
    )
    if involvement.last_contact_date is None or contact_date > involvement.last_contact_date:
        involvement_update(actor=actor, involvement=involvement, last_contact_date=contact_date)
    audit_record(
        actor=actor,
        action="contact_logged",
        person_id=person.pk,
        detail={"contact_id": log.pk, "kind": kind, "date": contact_date.isoformat()},
    )
    return log
