"""A Brighton scenario: a child's team, an outsider, a sensitive service and a shielded child."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Involvement, Organisation, Person, Practitioner
from core.services import practitioner_profile_set
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PersonFactory,
    PractitionerFactory,
    RoleFactory,
)


@dataclass
class Scenario:
    ava: Person  # a child with a team
    zed: Person  # a shielded child
    social_worker: User  # Ava's lead professional, child-protection role; on Zed's team too
    school_nurse: User  # on Ava's team
    camhs_worker: User  # on Ava's team, from a sensitive service
    camhs_colleague: User  # same sensitive service, not on the team
    teacher: User  # outside every team
    mash_worker: User  # child-protection practitioner outside every team
    admin: User
    school: Organisation
    camhs: Organisation


@pytest.fixture
def scenario(world, db):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        social_care = OrganisationFactory(
            name="Brighton Children's Services", agency_type="social_care"
        )
        school = OrganisationFactory(name="Hove Park School", agency_type="school")
        camhs = OrganisationFactory(
            name="Sussex CAMHS", agency_type="mental_health", sensitive_service=True
        )
        cp_role = RoleFactory(name="Child protection social worker", child_protection=True)
        nurse_role = RoleFactory(name="School nurse")
        camhs_role = RoleFactory(name="CAMHS practitioner")

        def profile(email: str, organisation: Organisation, title: str, cp: bool = False) -> User:
            user = User.objects.get(email=email)
            practitioner_profile_set(
                user=user, organisation=organisation, job_title=title, child_protection=cp
            )
            return user

        social_worker = profile(
            world.brighton_social_worker.email, social_care, "Social worker", cp=True
        )
        school_nurse = profile(world.brighton_school_nurse.email, school, "School nurse")
        camhs_worker = PractitionerFactory(organisation=camhs, job_title="CAMHS worker").user
        camhs_colleague = PractitionerFactory(organisation=camhs, job_title="CAMHS worker").user
        teacher = PractitionerFactory(organisation=school, job_title="Teacher").user
        mash_worker = PractitionerFactory(
            organisation=social_care, job_title="MASH social worker", child_protection=True
        ).user
        ava = PersonFactory(
            given_name="Ava",
            family_name="O'Brien-Smith",
            date_of_birth=date(2015, 3, 14),
            postcode="BN3 7BQ",
            nhs_number="9434765919",
        )
        zed = PersonFactory(
            given_name="Zed",
            family_name="Hollis",
            date_of_birth=date(2016, 5, 2),
            shielded=True,
            postcode="BN1 1AA",
        )
        InvolvementFactory(
            person=ava,
            practitioner=social_worker.practitioner,
            role=cp_role,
            lead_professional=True,
        )
        InvolvementFactory(person=ava, practitioner=school_nurse.practitioner, role=nurse_role)
        InvolvementFactory(
            person=ava, practitioner=Practitioner.objects.get(user=camhs_worker), role=camhs_role
        )
        InvolvementFactory(person=zed, practitioner=social_worker.practitioner, role=cp_role)
        assert Involvement.objects.get(person=ava, organisation=camhs).sensitive
        admin = User.objects.get(email=world.brighton_admin.email)
        yield Scenario(
            ava=ava,
            zed=zed,
            social_worker=social_worker,
            school_nurse=school_nurse,
            camhs_worker=camhs_worker,
            camhs_colleague=camhs_colleague,
            teacher=teacher,
            mash_worker=mash_worker,
            admin=admin,
            school=school,
            camhs=camhs,
        )
