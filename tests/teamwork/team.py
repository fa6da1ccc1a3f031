"""A Brighton child's team across four agencies, built with the factories; committed when the
caller commits (see the `committed_team` fixture)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Person
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PersonFactory,
    PractitionerFactory,
    RoleFactory,
)


@dataclass
class Team:
    """A child in Brighton with a lead social worker, a school nurse, a GP and a CAMHS
    worker (a sensitive service); all committed."""

    schema: str
    child: Person
    lead: User
    nurse: User
    gp: User
    camhs: User


def _unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:8]}"


def build_team(schema: str) -> Team:
    with schema_context(schema):
        social_care = OrganisationFactory(
            name=_unique("Children's Services"), agency_type="social_care"
        )
        school = OrganisationFactory(name=_unique("Academy"), agency_type="school")
        gp = OrganisationFactory(name=_unique("Surgery"), agency_type="gp")
        camhs = OrganisationFactory(
            name=_unique("CAMHS"), agency_type="mental_health", sensitive_service=True
        )
        child = PersonFactory(date_of_birth=date(2014, 6, 1))
        people = {}
        for key, org, role, lead in [
            ("lead", social_care, "Child protection social worker", True),
            ("nurse", school, "School nurse", False),
            ("gp", gp, "GP", False),
            ("camhs", camhs, "CAMHS practitioner", False),
        ]:
            practitioner = PractitionerFactory(
                organisation=org, user__email=f"{key}-{uuid.uuid4().hex[:8]}@brighton.test"
            )
            InvolvementFactory(
                person=child,
                practitioner=practitioner,
                role=RoleFactory(name=role, child_protection=lead),
                lead_professional=lead,
            )
            people[key] = practitioner.user
        return Team(schema=schema, child=child, **people)


def days_ago(days: int) -> date:
    return date.today() - timedelta(days=days)
