"""Writes inside one council, with their rules. Every change is audited."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from core import selectors
from core.audit import audit_record
from core.delivery.notifications import notification_send
from core.identifiers import nhs_number_clean, postcode_display
from core.models import (
    AuditEvent,
    ContactRequest,
    FamilyRelationship,
    Involvement,
    InvolvementRole,
    Notification,
    Organisation,
    Person,
    PersonName,
    Practitioner,
    RecordOpening,
)
from core.signals import records_imported


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
    always sensitive; an administrator may mark others sensitive too."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Enter the organisation's name"})
    if agency_type not in Organisation.AgencyType.values:
        raise ValidationError({"agency_type": "Choose the kind of agency from the list"})
    if Organisation.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"{name} is already on the list of organisations"})
    sensitive = bool(sensitive_service) or agency_type in Organisation.SENSITIVE_BY_DEFAULT
    return Organisation.objects.create(
        name=name,
        agency_type=agency_type,
        sensitive_service=sensitive,
        phone=phone.strip(),
        secure_email=secure_email.strip().lower(),
    )


@transaction.atomic
def organisation_sensitive_set(
    *, organisation: Organisation, sensitive: bool, actor: User
) -> Organisation:
    """Mark a service sensitive, or not (audited). Mental health, substance misuse and
    sexual health services stay sensitive.

    Marked sensitive, the service's involvements recorded before become sensitive too (and
    stop leading: `_lead_check`), so nobody outside it goes on seeing its name and staff
    beside a child (a service imported from a register starts as not sensitive). A
    child-protection involvement stays visible, as it must. Marked not sensitive again, its
    involvements stay as they are: each may have been marked sensitive for its own reason."""
    if not sensitive and organisation.agency_type in Organisation.SENSITIVE_BY_DEFAULT:
        raise ValidationError(
            f"{organisation.name} is a {organisation.get_agency_type_display().lower()} "
            "service: it is always sensitive"
        )
    if organisation.sensitive_service != sensitive:
        organisation.sensitive_service = sensitive
        organisation.save(update_fields=["sensitive_service"])
        hidden: list[int] = []
        if sensitive:
            involvements = Involvement.objects.filter(
                organisation=organisation, sensitive=False, role__child_protection=False
            )
            hidden = sorted(set(involvements.values_list("person_id", flat=True)))
            involvements.update(sensitive=True, lead_professional=False)
        audit_record(
            actor=actor,
            action="organisation_sensitive_set",
            detail={
                "organisation_id": organisation.pk,
                "sensitive": sensitive,
                "people_with_involvements_made_sensitive": len(hidden),
            },
        )
        if hidden:
            # A bulk update sends no post_save: the apps above (federation's pointers) are
            # told as after a feed.
            records_imported.send(sender=Involvement, person_ids=[], involvement_person_ids=hidden)
    return organisation


@transaction.atomic
def practitioner_profile_set(
    *,
    user: User,
    organisation: Organisation,
    job_title: str,
    team: str = "",
    work_phone: str = "",
    secure_email: str = "",
    child_protection: bool = False,
) -> Practitioner:
    if not job_title.strip():
        raise ValidationError({"job_title": "Enter a job title, like School nurse"})
    current = Practitioner.objects.filter(user=user).values_list("organisation_id", flat=True)
    if organisation.closed_on is not None and organisation.pk not in current:
        raise ValidationError(
            {"organisation": f"{organisation.name} has closed: choose where you work now"}
        )
    user.__dict__.pop("_patchwork_practitioner", None)  # selectors.practitioner_of's memo
    practitioner, _ = Practitioner.objects.update_or_create(
        user=user,
        defaults={
            "organisation": organisation,
            "job_title": job_title.strip(),
            "team": team.strip(),
            "work_phone": work_phone.strip(),
            "secure_email": secure_email.strip().lower(),
            "child_protection": child_protection,
        },
    )
    return practitioner


NAME_MAX = 100

# The code of a refusal that is about the record's current state, not what was typed (an
# involvement that has ended, a lead professional already named): the API answers 409.
CONFLICT = "conflict"


def _name(value: str, field: str, label: str) -> str:
    name = " ".join((value or "").split())
    if not name:
        raise ValidationError({field: f"Enter the {label}"})
    if len(name) > NAME_MAX:
        raise ValidationError({field: f"The {label} must be {NAME_MAX} characters or fewer"})
    return name


def _birth_date_check(date_of_birth: date | None) -> None:
    if date_of_birth is not None and date_of_birth > timezone.localdate():
        raise ValidationError({"date_of_birth": "The date of birth must be today or in the past"})


def _sex_check(sex: str) -> None:
    if sex not in Person.Sex.values:
        raise ValidationError({"sex": "Choose female, male, other or not known"})


def _nhs_number_free(nhs_number: str | None, *, except_id: int | None = None) -> None:
    if not nhs_number:
        return
    holders = Person.objects.filter(nhs_number=nhs_number)
    if except_id is not None:
        holders = holders.exclude(pk=except_id)
    if holders.exists():
        raise ValidationError(
            {"nhs_number": "A record with this NHS number already exists"}, code="nhs_number_exists"
        )


def _may_add_people(actor: User | None) -> None:
    # None: the seeder and imports from source systems, which are not a person at a page.
    if actor is not None and selectors.practitioner_of(actor) is None:
        raise PermissionDenied("Only practitioners can add people")


@transaction.atomic
def person_create(
    *,
    actor: User | None,
    given_name: str,
    family_name: str,
    date_of_birth: date | None = None,
    sex: str = Person.Sex.UNKNOWN,
    nhs_number: str = "",
    address: str = "",
    postcode: str = "",
    shielded: bool = False,
    previous_names: list[tuple[str, str]] | None = None,
    local_identifiers: dict[str, str] | None = None,
) -> Person:
    """Record a child or adult. Names are required; the NHS number is checked with its
    modulus-11 digit and must not be another record's; the date of birth is not in the
    future. Callers at a page or the API look for likely duplicates first
    (`selectors.person_likely_matches`). The record's creator may see it for a while
    (`selectors.person_access`), so they can record their own involvement."""
    _may_add_people(actor)
    person = Person(
        given_name=_name(given_name, "given_name", "first name"),
        family_name=_name(family_name, "family_name", "surname"),
        date_of_birth=date_of_birth,
        sex=sex,
        nhs_number=nhs_number_clean(nhs_number) or None,
        address=address.strip(),
        postcode=postcode_display(postcode) if postcode.strip() else "",
        shielded=shielded,
        local_identifiers=local_identifiers or {},
    )
    _birth_date_check(date_of_birth)
    _sex_check(sex)
    person.full_clean(validate_unique=False)
    _nhs_number_free(person.nhs_number)
    try:
        with transaction.atomic():
            person.save()
    except IntegrityError as exc:  # the same NHS number added a moment ago, by someone else
        raise ValidationError(
            {"nhs_number": "A record with this NHS number already exists"}, code="nhs_number_exists"
        ) from exc
    PersonName.objects.create(
        person=person,
        kind=PersonName.Kind.CURRENT,
        given_name=person.given_name,
        family_name=person.family_name,
    )
    for given, family in previous_names or []:
        PersonName.objects.create(
            person=person, kind=PersonName.Kind.PREVIOUS, given_name=given, family_name=family
        )
    audit_record(actor=actor, action="person_created", person_id=person.pk)
    return person


# What person_update may change; the date of death has a service of its own.
PERSON_EDITABLE = (
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "nhs_number",
    "address",
    "postcode",
    "shielded",
)


def _audit_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


@transaction.atomic
def person_update(*, actor: User, person: Person, changes: dict[str, Any]) -> Person:
    """Change a person's details: anyone who may see the record, a shielded person's only
    their team (`selectors.person_editable`); only the team may shield or unshield. The
    audit event holds the changed fields alone, each with its value before and after. A
    changed name is kept as a previous name, so a search by the old name still finds them."""
    access = selectors.person_editable(actor, person.pk)
    person = Person.objects.select_for_update().get(pk=access.person.pk)
    unknown = set(changes) - set(PERSON_EDITABLE)
    if unknown:
        raise ValidationError(f"These cannot be changed here: {', '.join(sorted(unknown))}")
    wanted: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "given_name":
            value = _name(value, field, "first name")
        elif field == "family_name":
            value = _name(value, field, "surname")
        elif field == "nhs_number":
            value = nhs_number_clean(value or "") or None
        elif field == "address":
            value = (value or "").strip()
        elif field == "postcode":
            value = postcode_display(value) if (value or "").strip() else ""
        elif field == "date_of_birth":
            _birth_date_check(value)
        elif field == "sex":
            _sex_check(value)
        elif field == "shielded":
            value = bool(value)
        if getattr(person, field) != value:
            wanted[field] = value
    if "shielded" in wanted and access.access != selectors.Access.TEAM:
        raise PermissionDenied("Only the person's own team can shield or unshield their record")
    if not wanted:
        return person
    before = {field: getattr(person, field) for field in wanted}
    for field, value in wanted.items():
        setattr(person, field, value)
    if (
        person.date_of_death
        and person.date_of_birth
        and person.date_of_birth > person.date_of_death
    ):
        raise ValidationError(
            {"date_of_birth": "The date of birth must be before the date of death"}
        )
    person.full_clean(validate_unique=False)
    _nhs_number_free(person.nhs_number, except_id=person.pk)
    person.save()
    if {"given_name", "family_name"} & set(wanted):
        PersonName.objects.filter(person=person, kind=PersonName.Kind.CURRENT).update(
            kind=PersonName.Kind.PREVIOUS
        )
        PersonName.objects.create(
            person=person,
            kind=PersonName.Kind.CURRENT,
            given_name=person.given_name,
            family_name=person.family_name,
        )
    audit_record(
        actor=actor,
        action="person_updated",
        person_id=person.pk,
        detail={
            "changed": {
                field: {"before": _audit_value(before[field]), "after": _audit_value(value)}
                for field, value in wanted.items()
            }
        },
    )
    return person


@transaction.atomic
def person_death_record(*, actor: User, person: Person, date_of_death: date) -> Person:
    """Record (or correct) the date a person died. The record stays, with its team and
    history; the audit event holds the date before and after."""
    access = selectors.person_editable(actor, person.pk)
    person = Person.objects.select_for_update().get(pk=access.person.pk)
    if date_of_death > timezone.localdate():
        raise ValidationError({"date_of_death": "The date of death must be today or in the past"})
    if person.date_of_birth and date_of_death < person.date_of_birth:
        raise ValidationError(
            {"date_of_death": "The date of death must be on or after the date of birth"}
        )
    if person.date_of_death == date_of_death:
        raise ValidationError(
            {
                "date_of_death": ValidationError(
                    "That date of death is already recorded", code=CONFLICT
                )
            }
        )
    before = person.date_of_death
    person.date_of_death = date_of_death
    person.save(update_fields=["date_of_death"])
    audit_record(
        actor=actor,
        action="person_death_recorded",
        person_id=person.pk,
        detail={
            "changed": {
                "date_of_death": {
                    "before": _audit_value(before),
                    "after": date_of_death.isoformat(),
                }
            }
        },
    )
    return person


@transaction.atomic
def relationship_add(
    *, actor: User | None, person: Person, relative: Person, kind: str, start: date | None = None
) -> FamilyRelationship:
    """Record that `relative` is `person`'s parent, carer, sibling or household member. At a
    page or the API (an actor), the actor must know both (found by search, or on their team:
    404 otherwise) and be able to change the record of one of them (the relationship shows
    on both)."""
    if actor is not None:
        sides = [selectors.person_access(actor, p.pk) for p in (person, relative)]
        if not any(side.may_edit for side in sides):
            raise PermissionDenied("You can record the family of someone whose record you see")
    if person.pk == relative.pk:
        raise ValidationError("A person cannot be their own relative")
    if kind not in FamilyRelationship.Kind.values:
        raise ValidationError({"kind": "Choose parent, carer, sibling or household member"})
    if FamilyRelationship.objects.filter(
        person=person, relative=relative, kind=kind, end_date__isnull=True
    ).exists():
        raise ValidationError(
            {"kind": f"{relative} is already recorded as {person}'s {kind.replace('_', ' ')}"}
        )
    relationship = FamilyRelationship.objects.create(
        person=person, relative=relative, kind=kind, start_date=start
    )
    audit_record(
        actor=actor,
        action="relationship_added",
        person_id=person.pk,
        detail={"relative_id": relative.pk, "kind": kind},
    )
    return relationship


def _team_users(person: Person, *, exclude: User | None = None) -> list[User]:
    users = [
        inv.practitioner.user
        for inv in Involvement.objects.filter(person=person, end_date__isnull=True).select_related(
            "practitioner__user"
        )
    ]
    return [u for u in dict.fromkeys(users) if exclude is None or u.pk != exclude.pk]


def _lead_or_team(person: Person, *, exclude: User | None = None) -> list[User]:
    lead = (
        Involvement.objects.filter(person=person, end_date__isnull=True, lead_professional=True)
        .select_related("practitioner__user")
        .first()
    )
    if lead and (exclude is None or lead.practitioner.user_id != exclude.pk):
        return [lead.practitioner.user]
    return _team_users(person, exclude=exclude)


def _may_act_for(actor: User, practitioner: Practitioner) -> bool:
    """A practitioner acts for themselves; a manager for their organisation's staff."""
    if actor.pk == practitioner.user_id:
        return True
    own = getattr(actor, "practitioner", None)
    return (
        actor.role == User.Role.MANAGER
        and own is not None
        and own.organisation_id == practitioner.organisation_id
    )


@transaction.atomic
def involvement_add(
    *,
    actor: User,
    person: Person,
    practitioner: Practitioner,
    role: InvolvementRole,
    start_date: date | None = None,
    legal_basis: str = Involvement.LegalBasis.PUBLIC_TASK,
    sensitive: bool | None = None,
    lead_professional: bool = False,
    last_contact_date: date | None = None,
) -> Involvement:
    """Record that `practitioner` is involved with `person`. Involvements of a sensitive
    service are sensitive; child-protection roles never are, and are always visible."""
    if not _may_act_for(actor, practitioner):
        raise PermissionDenied("You can only record your own involvement, or your staff's")
    if not role.active:
        raise ValidationError({"role": "That role is no longer in use: choose another"})
    if practitioner.organisation.closed_on is not None:
        raise ValidationError(
            f"{practitioner.organisation.name} has closed: update the profile with where "
            f"{practitioner.user} works now, then add the involvement"
        )
    start_date = start_date or timezone.localdate()
    if start_date > timezone.localdate():
        raise ValidationError({"start_date": "The start date cannot be in the future"})
    if sensitive is None:
        sensitive = practitioner.organisation.sensitive_service
    if role.child_protection and sensitive:
        raise ValidationError(
            {
                "sensitive": "A child-protection role cannot be marked sensitive: it must always "
                "be visible to anyone who can see the child"
            }
        )
    if practitioner.organisation.sensitive_service and not sensitive:
        sensitive = True  # a sensitive service's involvement is always sensitive
        if role.child_protection:
            raise ValidationError(
                {"role": "A sensitive service cannot hold a child-protection role here"}
            )
    if Involvement.objects.filter(
        person=person, practitioner=practitioner, role=role, end_date__isnull=True
    ).exists():
        raise ValidationError(f"{practitioner.user} is already involved as {role}", code=CONFLICT)
    if lead_professional:
        _lead_check(person, sensitive=sensitive, actor=actor)
    involvement = Involvement.objects.create(
        person=person,
        practitioner=practitioner,
        organisation=practitioner.organisation,
        role=role,
        start_date=start_date,
        legal_basis=legal_basis,
        sensitive=sensitive,
        lead_professional=lead_professional,
        last_contact_date=last_contact_date,
        last_confirmed_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        action="involvement_added",
        person_id=person.pk,
        detail={"involvement_id": involvement.pk, "role": role.name, "sensitive": sensitive},
    )
    if not sensitive:
        notification_send(
            recipients=_team_users(person, exclude=practitioner.user),
            person=person,
            kind="team_joined",
            text=f"{practitioner.user} ({practitioner.organisation}) joined the team as {role}",
        )
    return involvement


SENSITIVE_LEAD = (
    "A sensitive involvement cannot be the lead professional: the lead is the person the "
    "rest of the team goes to, and a sensitive involvement is hidden from them. Ask a "
    "colleague whose involvement the team can see to lead"
)
LEAD_UNNAMED = (
    "A lead professional is already recorded, by a service whose involvement is sensitive "
    "and cannot be named here. To ask them to hand over, use Request contact on the "
    "person's page"
)


def _lead_check(
    person: Person, *, sensitive: bool, actor: User, except_id: int | None = None
) -> None:
    """May this involvement become the person's lead professional?

    - A sensitive involvement never leads. The lead professional is the team's named point of
      contact, shown on the person's page to everyone who may see it; a sensitive involvement
      is shown to them only as "a sensitive service is involved", so a sensitive lead would
      leave the team with a lead it cannot see or reach (and the page saying none is
      recorded). A council expects its lead to be visible: someone from a sensitive service
      who must lead records an involvement that is not sensitive.
    - One lead at a time: the current lead hands over first. The refusal names the lead only
      to someone who may see them; a lead recorded as sensitive before this rule (or by a
      feed) is, to anyone outside its service, "a service that cannot be named", reached
      through the brokered contact request."""
    if sensitive:
        raise ValidationError({"lead_professional": SENSITIVE_LEAD})
    current = Involvement.objects.filter(
        person=person, end_date__isnull=True, lead_professional=True
    ).select_related("practitioner__user")
    if except_id is not None:
        current = current.exclude(pk=except_id)
    lead = current.first()
    if lead is None:
        return
    own = getattr(actor, "practitioner", None)
    if lead.sensitive and (own is None or own.organisation_id != lead.organisation_id):
        raise ValidationError({"lead_professional": ValidationError(LEAD_UNNAMED, code=CONFLICT)})
    raise ValidationError(
        {
            "lead_professional": ValidationError(
                f"{lead.practitioner.user} is already the lead professional: they must hand "
                "over first",
                code=CONFLICT,
            )
        }
    )


@transaction.atomic
def involvement_confirm(*, actor: User, involvement: Involvement) -> Involvement:
    """The practitioner confirms they are still involved."""
    if not _may_act_for(actor, involvement.practitioner):
        raise PermissionDenied("You can only confirm your own involvement, or your staff's")
    if not involvement.is_current:
        raise ValidationError("This involvement has ended; add a new one instead", code=CONFLICT)
    involvement.last_confirmed_at = timezone.now()
    involvement.save(update_fields=["last_confirmed_at"])
    audit_record(
        actor=actor,
        action="involvement_confirmed",
        person_id=involvement.person_id,
        detail={"involvement_id": involvement.pk},
    )
    return involvement


@transaction.atomic
def involvement_update(
    *,
    actor: User,
    involvement: Involvement,
    last_contact_date: date | None = None,
    lead_professional: bool | None = None,
) -> Involvement:
    if not _may_act_for(actor, involvement.practitioner):
        raise PermissionDenied("You can only change your own involvement, or your staff's")
    if not involvement.is_current:
        raise ValidationError("This involvement has ended and cannot be changed", code=CONFLICT)
    changed: dict[str, Any] = {}
    if last_contact_date is not None:
        if last_contact_date > timezone.localdate():
            raise ValidationError({"last_contact_date": "The contact date cannot be in the future"})
        if last_contact_date < involvement.start_date:
            raise ValidationError(
                {"last_contact_date": "The contact date cannot be before the involvement started"}
            )
        involvement.last_contact_date = last_contact_date
        changed["last_contact_date"] = last_contact_date.isoformat()
    if lead_professional is not None and lead_professional != involvement.lead_professional:
        if lead_professional:
            _lead_check(
                involvement.person,
                sensitive=involvement.sensitive,
                actor=actor,
                except_id=involvement.pk,
            )
        involvement.lead_professional = lead_professional
        changed["lead_professional"] = lead_professional
    involvement.save()
    audit_record(
        actor=actor,
        action="involvement_updated",
        person_id=involvement.person_id,
        detail={"involvement_id": involvement.pk, **changed},
    )
    if "lead_professional" in changed and not involvement.sensitive:
        notification_send(
            recipients=_team_users(involvement.person, exclude=actor),
            person=involvement.person,
            kind="lead_changed",
            text=f"{involvement.practitioner.user} is "
            + ("now" if lead_professional else "no longer")
            + f" the lead professional for {involvement.person}",
        )
    return involvement


@transaction.atomic
def involvement_end(
    *, actor: User, involvement: Involvement, reason: str, end_date: date | None = None
) -> Involvement:
    """End an involvement. It stays visible as history; nothing is deleted."""
    if not _may_act_for(actor, involvement.practitioner):
        raise PermissionDenied("You can only end your own involvement, or your staff's")
    if not involvement.is_current:
        raise ValidationError("This involvement has already ended", code=CONFLICT)
    if reason not in Involvement.EndReason.values:
        raise ValidationError({"end_reason": "Choose why the involvement is ending"})
    end_date = end_date or timezone.localdate()
    if end_date > timezone.localdate():
        raise ValidationError({"end_date": "The end date cannot be in the future"})
    if end_date < involvement.start_date:
        raise ValidationError({"end_date": "The end date cannot be before the start date"})
    involvement.end_date = end_date
    involvement.end_reason = reason
    involvement.lead_professional = False
    involvement.save(update_fields=["end_date", "end_reason", "lead_professional"])
    audit_record(
        actor=actor,
        action="involvement_ended",
        person_id=involvement.person_id,
        detail={"involvement_id": involvement.pk, "reason": reason},
    )
    if not involvement.sensitive:
        notification_send(
            recipients=_team_users(involvement.person, exclude=involvement.practitioner.user),
            person=involvement.person,
            kind="team_left",
            text=f"{involvement.practitioner.user} ({involvement.organisation}) is no longer "
            f"involved with {involvement.person}",
        )
    return involvement


@transaction.atomic
def record_open(
    *, user: User, person: Person, reason: str, note: str, break_glass: bool = False
) -> RecordOpening:
    """A non-member opens a record, having stated why. The lead professional (or, without
    one, the whole team) is told who looked and why."""
    if reason not in RecordOpening.Reason.values:
        raise ValidationError({"reason": "Choose the reason you need to see this record"})
    if len(note.strip()) < RecordOpening.NOTE_MIN:
        raise ValidationError(
            {
                "note": "Say in a sentence why you need to see this record (at least "
                f"{RecordOpening.NOTE_MIN} characters)"
            }
        )
    if len(note.strip()) > RecordOpening.NOTE_MAX:
        raise ValidationError(
            {"note": f"The note must be {RecordOpening.NOTE_MAX} characters or fewer"}
        )
    opening = RecordOpening.objects.create(
        person=person, user=user, reason=reason, note=note.strip(), break_glass=break_glass
    )
    audit_record(
        actor=user,
        action="record_break_glass" if break_glass else "record_opened",
        person_id=person.pk,
        detail={"reason": reason, "note": note.strip()[:500], "opening_id": opening.pk},
    )
    organisation = getattr(getattr(user, "practitioner", None), "organisation", None)
    notification_send(
        recipients=_lead_or_team(person, exclude=user),
        person=person,
        kind="record_opened",
        text=f"{user} ({organisation or 'no organisation'}) opened the record of {person}: "
        f"{opening.get_reason_display()}"
        + (" (break-glass, will be reviewed)" if break_glass else ""),
    )
    return opening


@transaction.atomic
def contact_request_send(
    *, user: User, person: Person, organisation: Organisation, message: str
) -> ContactRequest:
    """Ask a sensitive service to get in touch. The requester is not told who the service
    is; the service decides whether to accept."""
    if len(message.strip()) < 10:
        raise ValidationError({"message": "Say in a sentence why you want to be put in touch"})
    if not Involvement.objects.filter(
        person=person, organisation=organisation, end_date__isnull=True, sensitive=True
    ).exists():
        raise ValidationError("That service is no longer involved")
    request = ContactRequest.objects.create(
        person=person, organisation=organisation, requested_by=user, message=message.strip()
    )
    audit_record(
        actor=user,
        action="contact_requested",
        person_id=person.pk,
        detail={"contact_request_id": request.pk},
    )
    service_staff = [
        inv.practitioner.user
        for inv in Involvement.objects.filter(
            person=person, organisation=organisation, end_date__isnull=True
        ).select_related("practitioner__user")
    ]
    notification_send(
        recipients=service_staff,
        person=person,
        kind="contact_requested",
        text=f"{user} asks to be put in touch about {person}",
    )
    return request


CONTACT_REPLY_MAX = 1000


@transaction.atomic
def contact_request_decide(
    *, user: User, request: ContactRequest, accept: bool, response: str = ""
) -> ContactRequest:
    """The service answers a request to get in touch. The requester is told in the app and
    by email, with the service's reply in full; an acceptance names who answered and how to
    reach them, a refusal names nobody."""
    own = getattr(user, "practitioner", None)
    if own is None or own.organisation_id != request.organisation_id:
        raise PermissionDenied("Only the service asked can answer this request")
    if request.status != ContactRequest.Status.PENDING:
        raise ValidationError("This request has already been answered")
    response = response.strip()
    if len(response) > CONTACT_REPLY_MAX:
        raise ValidationError(
            {"response": f"Keep your message to the requester to {CONTACT_REPLY_MAX} characters"}
        )
    request.status = ContactRequest.Status.ACCEPTED if accept else ContactRequest.Status.DECLINED
    request.decided_by = user
    request.decided_at = timezone.now()
    request.response = response
    request.save()
    audit_record(
        actor=user,
        action="contact_request_decided",
        person_id=request.person_id,
        detail={"contact_request_id": request.pk, "accepted": accept},
    )
    text = (
        f"{user} ({own.organisation}) accepted your request about {request.person}: "
        f"{own.work_phone or own.secure_email or user.email}"
        if accept
        else f"The service declined your request about {request.person}"
    )
    if response:
        text += f". Their reply: “{response}”"
    notification_send(
        recipients=[request.requested_by], person=request.person, kind="contact_answered", text=text
    )
    return request


def role_create(
    *, name: str, child_protection: bool = False, actor: User | None = None
) -> InvolvementRole:
    """Add a role to the council's list (audited when an administrator adds it)."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Enter the role's name"})
    if InvolvementRole.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"{name} is already on the list of roles"})
    try:
        with transaction.atomic():
            role = InvolvementRole.objects.create(name=name, child_protection=child_protection)
            if actor is not None:
                audit_record(
                    actor=actor,
                    action="role_created",
                    detail={"role_id": role.pk, "name": name, "child_protection": child_protection},
                )
            return role
    except IntegrityError as exc:
        raise ValidationError({"name": f"{name} is already on the list of roles"}) from exc


# The roles most councils' practitioners hold with a child or family, offered to every new
# council; each council renames, retires and adds its own. Only the child-protection social
# worker is a child-protection role: its involvement is always visible and never sensitive.
DEFAULT_ROLES: tuple[tuple[str, bool], ...] = (
    ("Social worker", False),
    ("Child protection social worker", True),
    ("Family support worker", False),
    ("Early help practitioner", False),
    ("Health visitor", False),
    ("School nurse", False),
    ("Midwife", False),
    ("GP", False),
    ("CAMHS practitioner", False),
    ("Class teacher", False),
    ("Designated safeguarding lead", False),
    ("Police officer", False),
    ("Youth justice officer", False),
    ("Housing officer", False),
)


@transaction.atomic
def roles_defaults_add(*, actor: User | None = None) -> list[InvolvementRole]:
    """Add the national default roles the council does not have yet (by name, ignoring
    case, so a renamed or retired role is never added back under its old name twice).
    Returns the roles added; audited when an administrator asks."""
    have = {name.lower() for name in InvolvementRole.objects.values_list("name", flat=True)}
    added = InvolvementRole.objects.bulk_create(
        InvolvementRole(name=name, child_protection=child_protection)
        for name, child_protection in DEFAULT_ROLES
        if name.lower() not in have
    )
    if actor is not None:
        audit_record(
            actor=actor,
            action="roles_defaults_added",
            detail={"names": [role.name for role in added]},
        )
    return added


@transaction.atomic
def role_change(*, role: InvolvementRole, name: str, active: bool, actor: User) -> InvolvementRole:
    """Rename a role or retire it (a retired role is no longer offered; involvements
    already recorded with it keep it), or bring it back."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Enter the role's name"})
    if InvolvementRole.objects.filter(name__iexact=name).exclude(pk=role.pk).exists():
        raise ValidationError({"name": f"{name} is already on the list of roles"})
    before = {"name": role.name, "active": role.active}
    role.name, role.active = name, active
    role.save(update_fields=["name", "active"])
    audit_record(
        actor=actor,
        action="role_changed",
        detail={"role_id": role.pk, "before": before, "name": name, "active": active},
    )
    return role


@transaction.atomic
def notifications_read(*, user: User) -> int:
    """Mark the user's unread notifications as read (they have seen the list)."""
    return Notification.objects.filter(recipient=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )


AUDIT_EXPORT_COLUMNS = [
    "id",
    "at",
    "actor_id",
    "actor_email",
    "action",
    "person_id",
    "detail",
    "previous_hash",
    "hash",
]


def audit_export(*, actor: User) -> Iterator[list[str]]:
    """The whole audit log, oldest first, as rows for a CSV file (header first). The export
    is itself audited before the first row is read, and ends with that event, so the log
    shows who took a copy and how much of it they took."""
    exported = audit_record(actor=actor, action="audit_exported")
    return _audit_rows(exported.pk)


def _audit_rows(last_id: int) -> Iterator[list[str]]:
    yield AUDIT_EXPORT_COLUMNS
    for event in AuditEvent.objects.filter(id__lte=last_id).order_by("id").iterator(2000):
        yield [
            str(event.id),
            event.at.isoformat(),
            "" if event.actor_id is None else str(event.actor_id),
            event.actor_email,
            event.action,
            "" if event.person_id is None else str(event.person_id),
            json.dumps(event.detail, sort_keys=True),
            event.previous_hash,
            event.hash,
        ]
