"""The masked entry's place in the API's and FHIR's team lists says nothing about the
sensitive service (issue 14, point 1)."""

from __future__ import annotations

from django_tenants.utils import schema_context

from core.models import Involvement
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PractitionerFactory,
    RoleFactory,
)

MASKED = {"sensitive_service": True, "message": "A sensitive service is involved – request contact"}


def test_it_lists_a_sensitive_service_after_the_named_team_in_the_api(world, scenario, api) -> None:
    """Where the masked entry sits says nothing: the team is ordered lead first, then by kind
    of agency, so an entry left in place would tell a mental health service (between "GP"
    and "school") from a youth service, or that the hidden service leads."""
    with schema_context(world.brighton.schema_name):
        youth = OrganisationFactory(name="Hove Youth Club", agency_type="youth")
        gp = OrganisationFactory(name="Hove Surgery", agency_type="gp")
        for organisation, name in ((youth, "Youth worker"), (gp, "GP")):
            InvolvementFactory(
                person=scenario.ava,
                practitioner=PractitionerFactory(organisation=organisation, job_title=name),
                role=RoleFactory(name=name),
            )
        # The hidden service's involvement was made lead before the rule: still not told.
        Involvement.objects.filter(person=scenario.ava).update(lead_professional=False)
        Involvement.objects.filter(person=scenario.ava, organisation=scenario.camhs).update(
            lead_professional=True
        )
    body = api(scenario.school_nurse).get(f"/api/v1/people/{scenario.ava.pk}/network").json()
    assert body["current"][-1] == MASKED
    assert [e for e in body["current"] if "sensitive_service" in e] == [MASKED]
    assert not any(e.get("lead_professional") for e in body["current"])
    fhir = api(scenario.school_nurse).get(f"/fhir/CareTeam?subject=Patient/{scenario.ava.pk}")
    assert fhir.status_code == 200
    participants = fhir.json()["entry"][0]["resource"]["participant"]
    assert "member" not in participants[-1]
    assert all("member" in p for p in participants[:-1])


def test_the_api_refuses_a_sensitive_lead_and_names_no_hidden_one(scenario, api) -> None:
    """Through the API as through the pages: a sensitive involvement cannot be added as lead
    (400, nothing added), and a refusal caused by a sensitive lead does not name it."""
    camhs_role = RoleFactory(name="CAMHS duty worker")
    before = Involvement.objects.count()
    refused = api(scenario.camhs_worker).post(
        f"/api/v1/people/{scenario.ava.pk}/involvements",
        {"role": camhs_role.pk, "lead_professional": True},
    )
    assert refused.status_code == 400, refused.content
    assert "cannot be the lead professional" in " ".join(refused.json()["lead_professional"])
    assert Involvement.objects.count() == before

    Involvement.objects.filter(person=scenario.ava).update(lead_professional=False)
    Involvement.objects.filter(person=scenario.ava, organisation=scenario.camhs).update(
        lead_professional=True
    )
    nurse = Involvement.objects.get(person=scenario.ava, practitioner__user=scenario.school_nurse)
    answer = api(scenario.school_nurse).patch(
        f"/api/v1/involvements/{nurse.pk}", {"lead_professional": True}
    )
    # A lead already recorded is a conflict with the record's state (409), as for any lead.
    assert answer.status_code == 409, answer.content
    assert "cannot be named here" in answer.content.decode()
    assert scenario.camhs_worker.full_name not in answer.content.decode()
    assert b"Sussex CAMHS" not in answer.content
