"""Who is on a person's team, as a given user may see it: the shared access rules for
timeline, tasks, messages and meetings. Built on `core.selectors` (person_access,
person_viewable), so every rule about seeing a person still lives in one place.

- Coordinating (tasks, messages, meetings, contacts) is for the person's current team.
- A colleague from a sensitive service is reachable by name only by their own service;
  everyone else reaches the service through the brokered contact request."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import User
from core.models import Involvement, Organisation, Person, Practitioner
from core.selectors import (
    Access,
    person_access,
    practitioner_of,
    sensitive_services_for_contact,
)


@dataclass(frozen=True)
class Colleague:
    """A current team member the viewer may name, with their role on this person's team."""

    user: User
    practitioner: Practitioner
    role: str
    organisation: str
    lead_professional: bool

    @property
    def label(self) -> str:
        return f"{self.user.full_name} – {self.role}, {self.organisation}"


def person_for_team(user: User, person_id: int) -> Person:
    """The person, if `user` is on their current team; 404 for people they may not know
    exist, PermissionDenied for people they may see but do not work with."""
    access = person_access(user, person_id)
    if access.access != Access.TEAM:
        raise PermissionDenied("Only the person's current team can do this")
    return access.person


def team_colleagues(viewer: User, person: Person) -> list[Colleague]:
    """The current team as `viewer` may name it: sensitive involvements only within their
    own service. Sorted lead first, then by name; one entry per practitioner."""
    own = practitioner_of(viewer)
    involvements = (
        Involvement.objects.filter(person=person, end_date__isnull=True)
        .select_related("practitioner__user", "organisation", "role")
        .order_by("-lead_professional", "practitioner__user__full_name")
    )
    seen: set[int] = set()
    colleagues = []
    for inv in involvements:
        if inv.sensitive and (own is None or inv.organisation_id != own.organisation_id):
            continue
        if inv.practitioner_id in seen or not inv.practitioner.user.is_active:
            continue
        seen.add(inv.practitioner_id)
        colleagues.append(
            Colleague(
                user=inv.practitioner.user,
                practitioner=inv.practitioner,
                role=inv.role.name,
                organisation=inv.organisation.name,
                lead_professional=inv.lead_professional,
            )
        )
    return colleagues


def sensitive_services_involved(viewer: User, person: Person) -> list[Organisation]:
    """Sensitive services on the team that `viewer` reaches only by a brokered request, in
    an order that says nothing about them (the form offers "Sensitive service 1, 2…": an
    order by name would tell which is which). Never shown to the viewer."""
    return [service for _, service in sensitive_services_for_contact(viewer, person)]


def colleague_pick(viewer: User, person: Person, user_ids: list[int]) -> list[User]:
    """The chosen colleagues, each checked to be one the viewer may reach; Http404 if any
    is not (the same answer as for an id that does not exist)."""
    reachable = {c.user.pk: c.user for c in team_colleagues(viewer, person)}
    chosen = []
    for user_id in dict.fromkeys(user_ids):
        if user_id not in reachable:
            raise Http404("No such colleague on this team")
        chosen.append(reachable[user_id])
    return chosen


def current_involvement_of(user: User, person: Person) -> Involvement | None:
    return (
        Involvement.objects.filter(person=person, practitioner__user=user, end_date__isnull=True)
        .order_by("-lead_professional", "start_date")
        .first()
    )
