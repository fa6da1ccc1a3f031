"""Leavers and movers: an administrator (or a manager, for their own organisation's staff)
switches off the account of someone who left, or moves a practitioner to another
organisation.

Either way the practitioner's current involvements are handed over first: each goes to a
colleague (a new involvement in the same role, the lead professional's role with it) or
ends as history. A lead professional's involvement must be handed over: a child is never
left with a lead who cannot be reached. Each affected team is told, and every step audited.

A deactivated account stops working on the very next request (decision 0018): the user is
made inactive, which the session's backend and the API's bearer tokens both check; the
password is made unusable, which changes the hash every session and token carries; and the
user's sessions are deleted. Their authenticator and recovery codes are removed, so coming
back (an invitation, `core.invitations`) means choosing a new password and enrolling again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.sessions.models import Session
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django_otp import devices_for_user

from accounts.models import Invitation, User
from core.audit import audit_record
from core.delivery.notifications import notification_send
from core.models import Involvement, Organisation, Person, Practitioner
from core.services import practitioner_profile_set

EndReason = Involvement.EndReason


def _is_manager_of(actor: User, user: User) -> bool:
    own = Practitioner.objects.filter(user=actor).first()
    theirs = Practitioner.objects.filter(user=user).first()
    return (
        actor.role == User.Role.MANAGER
        and own is not None
        and theirs is not None
        and own.organisation_id == theirs.organisation_id
    )


def may_manage(actor: User, user: User) -> bool:
    """An administrator manages every account of the council but their own; a manager,
    the practitioners of their own organisation."""
    if actor.pk == user.pk or user.role == User.Role.OPERATOR:
        return False
    if actor.role == User.Role.COUNCIL_ADMIN:
        return True
    return user.role == User.Role.PRACTITIONER and _is_manager_of(actor, user)


def staff_member_for_actor(actor: User, user_id: int) -> User:
    """A user `actor` may manage, or 404 (the same for one that does not exist)."""
    user = User.objects.filter(pk=user_id).first()
    if user is None or not may_manage(actor, user):
        raise Http404("No such user")
    return user


def profile_of(user: User) -> Practitioner | None:
    """Where the user works (any role: an administrator's own view of a colleague)."""
    return Practitioner.objects.filter(user=user).select_related("organisation").first()


def involvements_to_hand_over(user: User) -> QuerySet[Involvement]:
    """The user's current involvements, for the hand-over: leads first."""
    return (
        Involvement.objects.filter(practitioner__user=user, end_date__isnull=True)
        .select_related("person", "role", "organisation")
        .order_by("-lead_professional", "person__family_name", "person__given_name", "pk")
    )


def successors_for(
    actor: User, user: User, involvements: Iterable[Involvement]
) -> dict[int, list[Practitioner]]:
    """Who may take over each of the user's involvements: the colleagues of the user's own
    organisation and, for an administrator, the child's current team (whose involvement the
    team can see): never the user themself, never someone who cannot sign in. Not everyone
    in the council: a county has thousands of practitioners."""
    active = Practitioner.objects.filter(
        user__is_active=True,
        user__role__in=[User.Role.PRACTITIONER, User.Role.MANAGER],
        organisation__closed_on__isnull=True,
    ).exclude(user=user)
    own = profile_of(user)
    colleagues = list(
        active.filter(organisation_id=own.organisation_id if own else -1)
        .select_related("user", "organisation")
        .order_by("user__full_name")
    )
    out: dict[int, list[Practitioner]] = {}
    for involvement in involvements:
        found = {p.pk: p for p in colleagues}
        if actor.role == User.Role.COUNCIL_ADMIN:
            team = active.filter(
                involvements__person_id=involvement.person_id,
                involvements__end_date__isnull=True,
                involvements__sensitive=False,
            ).select_related("user", "organisation")
            found.update({p.pk: p for p in team})
        out[involvement.pk] = sorted(found.values(), key=lambda p: p.user.full_name)
    return out


@dataclass(frozen=True)
class HandedOver:
    involvement: Involvement
    successor: Practitioner | None


def _team(person: Person, *, exclude: set[int]) -> list[int]:
    ids = Involvement.objects.filter(person=person, end_date__isnull=True).values_list(
        "practitioner__user_id", flat=True
    )
    return [pk for pk in dict.fromkeys(ids) if pk not in exclude]


def _successor_problem(involvement: Involvement, successor: Practitioner) -> str:
    """Why `successor` cannot take this involvement over, or "" when they can (the rules
    `core.services.involvement_add` applies to a new involvement)."""
    taking = Involvement.objects.filter(
        person=involvement.person, practitioner=successor, end_date__isnull=True
    ).first()
    if not successor.user.is_active:
        return (
            f"{successor.user.full_name}'s account is deactivated: choose someone who can sign in"
        )
    sensitive_service = successor.organisation.sensitive_service
    if taking is None and involvement.role.child_protection and sensitive_service:
        return (
            f"{successor.user.full_name} works for a sensitive service, which cannot hold "
            "a child-protection role: choose another colleague"
        )
    sensitive = taking.sensitive if taking is not None else sensitive_service
    if involvement.lead_professional and sensitive:
        return (
            f"{successor.user.full_name}'s involvement would be sensitive, and a sensitive "
            "involvement cannot be the lead professional: choose a colleague the team can see"
        )
    return ""


def _hand_over(
    *,
    actor: User,
    user: User,
    successors: dict[int, Practitioner | None],
    why: str,
) -> list[HandedOver]:
    """Hand over (or end) each of the user's current involvements, as `successors` says
    (involvement id: the colleague taking over, or None to end it). Refused, changing
    nothing, while a lead professional's involvement has no one to take over."""
    current = list(involvements_to_hand_over(user).select_for_update(of=("self",)))
    errors: dict[str, list[str]] = {}
    for involvement in current:
        successor = successors.get(involvement.pk)
        field = f"successor_{involvement.pk}"
        if involvement.lead_professional and successor is None:
            errors[field] = [
                f"{user.full_name} is the lead professional for {involvement.person.full_name}: "
                "choose who takes over"
            ]
        elif successor is not None and successor.user_id == user.pk:
            errors[field] = [f"Choose someone other than {user.full_name}"]
        elif successor is not None:
            problem = _successor_problem(involvement, successor)
            if problem:
                errors[field] = [problem]
    if errors:
        raise ValidationError(errors)
    today = timezone.localdate()
    done = []
    for involvement in current:
        successor = successors.get(involvement.pk)
        was_lead = involvement.lead_professional
        involvement.end_date = max(today, involvement.start_date)
        involvement.end_reason = EndReason.TRANSFERRED if successor else EndReason.LEFT_ROLE
        involvement.lead_professional = False
        involvement.save(update_fields=["end_date", "end_reason", "lead_professional"])
        audit_record(
            actor=actor,
            action="involvement_ended",
            person_id=involvement.person_id,
            detail={
                "involvement_id": involvement.pk,
                "reason": involvement.end_reason,
                "why": why,
            },
        )
        if successor is not None:
            _take_over(actor=actor, involvement=involvement, successor=successor, lead=was_lead)
        if not involvement.sensitive:
            _tell_the_team(involvement=involvement, successor=successor, lead=was_lead, why=why)
        done.append(HandedOver(involvement, successor))
    return done


def _take_over(
    *, actor: User, involvement: Involvement, successor: Practitioner, lead: bool
) -> None:
    """The successor's involvement in the same role: their current one with the person if
    they have one (the lead's role moved to it), otherwise a new one."""
    taking = Involvement.objects.filter(
        person=involvement.person, practitioner=successor, end_date__isnull=True
    ).first()
    if taking is not None:
        if lead:
            taking.lead_professional = True
            taking.save(update_fields=["lead_professional"])
            audit_record(
                actor=actor,
                action="involvement_updated",
                person_id=taking.person_id,
                detail={"involvement_id": taking.pk, "lead_professional": True},
            )
        return
    sensitive = successor.organisation.sensitive_service
    taking = Involvement.objects.create(
        person=involvement.person,
        practitioner=successor,
        organisation=successor.organisation,
        role=involvement.role,
        start_date=timezone.localdate(),
        legal_basis=involvement.legal_basis,
        sensitive=sensitive,
        lead_professional=lead,
        last_confirmed_at=timezone.now(),
    )
    audit_record(
        actor=actor,
        action="involvement_added",
        person_id=taking.person_id,
        detail={
            "involvement_id": taking.pk,
            "role": involvement.role.name,
            "sensitive": taking.sensitive,
            "handed_over_from": involvement.pk,
        },
    )


def _tell_the_team(
    *, involvement: Involvement, successor: Practitioner | None, lead: bool, why: str
) -> None:
    leaver = involvement.practitioner.user
    person = involvement.person
    gone = "has left" if why == "deactivated" else "has moved on from"
    text = f"{leaver} {gone} {involvement.organisation}"
    if successor is not None:
        text += f": {successor.user} takes over as {involvement.role}"
        if lead:
            text += " and lead professional"
    else:
        text += f" and is no longer involved with {person}"
    notification_send(
        recipients=_team(person, exclude={leaver.pk}),
        person=person,
        kind="lead_changed" if lead else "team_left",
        text=text,
    )


def _sessions_end(user: User) -> int:
    """Delete the user's sessions in this council (sessions live in its schema)."""
    ended = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator(500)
        if session.get_decoded().get("_auth_user_id") == str(user.pk)
    ]
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


@transaction.atomic
def staff_deactivate(
    *, actor: User, user: User, successors: dict[int, Practitioner | None]
) -> list[HandedOver]:
    """Switch off the account of someone who left: hand over their involvements (a lead
    professional's must be), then make the account unusable at once. Their records stay,
    as history; an invitation brings the same account back."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not may_manage(actor, user):
        raise PermissionDenied("You cannot deactivate this account")
    if not user.is_active:
        raise ValidationError(f"{user.full_name}'s account is already deactivated")
    done = _hand_over(actor=actor, user=user, successors=successors, why="deactivated")
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["is_active", "password"])
    for device in devices_for_user(user, confirmed=None):
        device.delete()  # the authenticator and any recovery codes
    Invitation.objects.filter(user=user, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    sessions = _sessions_end(user)
    audit_record(
        actor=actor,
        action="user_deactivated",
        detail={
            "user_id": user.pk,
            "email": user.email,
            "sessions_ended": sessions,
            "handed_over": [h.involvement.pk for h in done if h.successor is not None],
            "ended": [h.involvement.pk for h in done if h.successor is None],
        },
    )
    return done


@transaction.atomic
def practitioner_move(
    *,
    actor: User,
    user: User,
    organisation: Organisation,
    job_title: str,
    successors: dict[int, Practitioner | None],
) -> list[HandedOver]:
    """Move a practitioner to another organisation: their involvements for the old one
    are handed over (or ended), their profile names the new one. Their history (ended
    involvements, audit) stays as it was, with the old organisation on it."""
    if actor.role != User.Role.COUNCIL_ADMIN:
        raise PermissionDenied("Only an administrator can move someone between organisations")
    practitioner = Practitioner.objects.select_for_update().filter(user=user).first()
    if practitioner is None or not may_manage(actor, user):
        raise PermissionDenied("Only a practitioner with a profile can be moved")
    if not user.is_active:
        raise ValidationError(f"{user.full_name}'s account is deactivated: invite them back first")
    if organisation.pk == practitioner.organisation_id:
        raise ValidationError(
            {"organisation": f"{user.full_name} already works for {organisation.name}"}
        )
    old = practitioner.organisation
    done = _hand_over(actor=actor, user=user, successors=successors, why="moved")
    practitioner_profile_set(
        user=user,
        organisation=organisation,
        job_title=job_title,
        work_phone=practitioner.work_phone,
        secure_email=practitioner.secure_email,
        child_protection=practitioner.child_protection,
    )
    audit_record(
        actor=actor,
        action="practitioner_moved",
        detail={
            "user_id": user.pk,
            "from_organisation_id": old.pk,
            "to_organisation_id": organisation.pk,
            "handed_over": [h.involvement.pk for h in done if h.successor is not None],
            "ended": [h.involvement.pk for h in done if h.successor is None],
        },
    )
    return done
