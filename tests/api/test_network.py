"""GET /api/v1/people/{id}/network and /involvements: the team around the child, with
sensitive services masked for everyone outside them."""

from __future__ import annotations

from datetime import date

import pytest

from tests.factories import InvolvementFactory, PersonFactory, RoleFactory

MASKED = {"sensitive_service": True, "message": "A sensitive service is involved – request contact"}


@pytest.mark.parametrize("who", ["social_worker", "school_nurse"])
def test_a_sensitive_service_is_only_a_notice_to_everyone_else(scenario, api, who) -> None:
    """The masked entry has no other field, and the service's name is nowhere in the body."""
    response = api(getattr(scenario, who)).get(f"/api/v1/people/{scenario.ava.pk}/network")
    assert response.status_code == 200
    current = response.json()["current"]
    assert MASKED in current
    assert [e for e in current if "sensitive_service" in e] == [MASKED]
    named = {e["practitioner_name"] for e in current if "practitioner_name" in e}
    assert named == {scenario.social_worker.full_name, scenario.school_nurse.full_name}
    assert b"Sussex CAMHS" not in response.content
    assert scenario.camhs_worker.full_name.encode() not in response.content


def test_the_sensitive_service_sees_itself_in_full(scenario, api) -> None:
    """Its own staff see who and how to reach them; nothing is masked for them."""
    body = api(scenario.camhs_worker).get(f"/api/v1/people/{scenario.ava.pk}/network").json()
    assert MASKED not in body["current"]
    mine = [e for e in body["current"] if e["is_me"]]
    assert [(e["organisation"], e["role"]) for e in mine] == [
        ("Sussex CAMHS", "CAMHS practitioner")
    ]


def test_the_network_shows_contact_details_lead_and_child_protection(scenario, api) -> None:
    """What a colleague needs to reach the team: names, roles, organisations, phone, email."""
    body = api(scenario.school_nurse).get(f"/api/v1/people/{scenario.ava.pk}/network").json()
    lead = next(e for e in body["current"] if e.get("lead_professional"))
    assert lead["practitioner_name"] == scenario.social_worker.full_name
    assert lead["child_protection"] is True
    assert lead["organisation"] == "Brighton Children's Services"
    assert lead["email"] == scenario.social_worker.email
    assert body["person"] == {
        "id": scenario.ava.pk,
        "name": "Ava O'Brien-Smith",
        "date_of_birth": "2015-03-14",
    }


def test_the_family_and_their_teams_are_included(scenario, api) -> None:
    """A parent appears with how they stand to the child and their own team."""
    from core.services import relationship_add

    mother = PersonFactory(given_name="Maya", family_name="O'Brien-Smith")
    relationship_add(actor=None, person=scenario.ava, relative=mother, kind="parent")
    InvolvementFactory(person=mother, role=RoleFactory(name="Housing officer"))
    body = api(scenario.school_nurse).get(f"/api/v1/people/{scenario.ava.pk}/network").json()
    (family,) = body["family"]
    assert family["relationship"] == "Parent"
    assert family["person"]["name"] == "Maya O'Brien-Smith"
    assert [e["role"] for e in family["current"]] == ["Housing officer"]


def test_ended_involvements_are_history_and_sensitive_history_is_left_out(scenario, api) -> None:
    """Past involvements stay visible; a sensitive service's past is not even a notice."""
    from core.models import Involvement

    today = date.today()
    Involvement.objects.filter(person=scenario.ava, organisation=scenario.camhs).update(
        end_date=today, end_reason="case_closed"
    )
    Involvement.objects.filter(
        person=scenario.ava, practitioner__user=scenario.school_nurse
    ).update(end_date=today, end_reason="case_closed")
    client = api(scenario.social_worker)
    body = client.get(f"/api/v1/people/{scenario.ava.pk}/network").json()
    assert [e["practitioner_name"] for e in body["history"]] == [scenario.school_nurse.full_name]
    assert body["history"][0]["end_reason"] == "Work finished"
    assert MASKED not in body["current"] and MASKED not in body["history"]
    listed = client.get(f"/api/v1/people/{scenario.ava.pk}/involvements").json()["results"]
    assert [e["practitioner_name"] for e in listed] == [
        scenario.social_worker.full_name,
        scenario.school_nurse.full_name,
    ]


def test_the_involvements_list_masks_like_the_network(scenario, api) -> None:
    """Current first, then history; the sensitive service only as the notice."""
    response = api(scenario.school_nurse).get(f"/api/v1/people/{scenario.ava.pk}/involvements")
    results = response.json()["results"]
    assert MASKED in results and len(results) == 3
    assert b"Sussex CAMHS" not in response.content


def test_the_record_shows_the_person_and_how_access_was_granted(scenario, api) -> None:
    """Identity details for the team, with their previous names."""
    from core.models import PersonName

    PersonName.objects.create(
        person=scenario.ava, kind="previous", given_name="Ava", family_name="Kowalski"
    )
    body = api(scenario.school_nurse).get(f"/api/v1/people/{scenario.ava.pk}").json()
    assert body["access"] == "team" and body["break_glass"] is False
    assert body["nhs_number"] == "9434765919" and body["postcode"] == "BN3 7BQ"
    assert body["other_names"] == [
        {"kind": "Previous name", "given_name": "Ava", "family_name": "Kowalski"}
    ]
    assert body["network_url"] == f"/api/v1/people/{scenario.ava.pk}/network"
