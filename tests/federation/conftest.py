"""Two councils with an agreement in force: Brighton asks, Staffordshire answers.

Staffordshire knows Kai (a child with a school nurse, a youth worker and a sensitive
substance-misuse service involved) and Zara (shielded). The agreement lets only the
"School nurse" and "Child protection social worker" roles cross."""

from __future__ import annotations

from datetime import date

import pytest
from django_tenants.utils import schema_context

from core.models import CouncilPolicy, PersonName
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PersonFactory,
    PractitionerFactory,
    RoleFactory,
)
from tests.federation.agreement import KAI_NHS, Pair, make_agreement


@pytest.fixture
def pair(world, db) -> Pair:  # type: ignore[no-untyped-def]
    brighton, staffs = world.brighton, world.staffordshire
    with schema_context(staffs.schema_name):
        policy = CouncilPolicy.current()
        policy.duty_team_contact = "Staffordshire children's duty team, 0300 111 8007"
        policy.save()
        school = OrganisationFactory(name="Leek High School", phone="01538 000000")
        youth = OrganisationFactory(name="Leek Youth Club", agency_type="youth")
        drugs = OrganisationFactory(
            name="Staffs Recovery Service", agency_type="substance_misuse", sensitive_service=True
        )
        kai = PersonFactory(
            given_name="Kai",
            family_name="Müller-Jones",
            date_of_birth=date(2014, 6, 1),
            nhs_number=KAI_NHS,
        )
        PersonName.objects.create(
            person=kai, kind="previous", given_name="Kai", family_name="Jones"
        )
        InvolvementFactory(
            person=kai,
            practitioner=PractitionerFactory(organisation=school, work_phone="01538 111222"),
            role=RoleFactory(name="School nurse"),
        )
        InvolvementFactory(
            person=kai,
            practitioner=PractitionerFactory(organisation=youth),
            role=RoleFactory(name="Youth worker"),
        )
        InvolvementFactory(
            person=kai,
            practitioner=PractitionerFactory(organisation=drugs),
            role=RoleFactory(name="Recovery worker"),
        )
        zara = PersonFactory(
            given_name="Zara",
            family_name="Hollis",
            date_of_birth=date(2013, 2, 2),
            nhs_number="9434765919",
            shielded=True,
        )
        InvolvementFactory(
            person=zara,
            practitioner=PractitionerFactory(organisation=school),
            role=RoleFactory(name="School nurse"),
        )
    brighton_agreement, staffs_agreement = make_agreement(brighton, staffs)
    assert staffs_agreement is not None
    return Pair(brighton, staffs, kai, zara, brighton_agreement, staffs_agreement)
