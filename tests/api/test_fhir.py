"""GET /fhir/CareTeam: a person's current network as FHIR R4, parsed back with the
fhir.resources R4B models, with the same access rules and audit as the network page."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.test import Client
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.api.client import ApiClient, host_of
from tests.personas import sign_in

NHS = "https://fhir.nhs.uk/Id/nhs-number"
MASKED_ROLE = "Sensitive service – request contact"


def care_teams(response) -> list[CareTeam]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    bundle = Bundle.model_validate_json(response.content)
    assert bundle.type == "searchset"
    return [entry.resource for entry in bundle.entry or []]


def outcome(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/fhir+json"
    parsed = OperationOutcome.model_validate_json(response.content)
    return parsed.issue[0].code


def test_the_care_team_holds_exactly_the_visible_facts(scenario, api) -> None:
    """Named members with role, organisation and start; the sensitive service as a notice."""
    response = api(scenario.school_nurse).get(f"/fhir/CareTeam?subject=Patient/{scenario.ava.pk}")
    (team,) = care_teams(response)
    assert isinstance(team, CareTeam)
    assert team.status == "active"
    assert team.subject.identifier.system == NHS
    assert team.subject.identifier.value == "9434765919"
    named = {
        (p.member.display, p.onBehalfOf.display, tuple(r.text for r in p.role))
        for p in team.participant
        if p.member is not None
    }
    assert named == {
        (
            scenario.social_worker.full_name,
            "Brighton Children's Services",
            ("Child protection social worker", "Lead professional"),
        ),
        (scenario.school_nurse.full_name, "Hove Park School", ("School nurse",)),
    }
    assert all(p.period.start for p in team.participant if p.member is not None)
    masked = [p for p in team.participant if p.member is None]
    assert len(masked) == 1
    assert [r.text for r in masked[0].role] == [MASKED_ROLE]
    assert masked[0].onBehalfOf is None and masked[0].period is None
    assert b"Sussex CAMHS" not in response.content
    assert b"CAMHS practitioner" not in response.content
    assert scenario.camhs_worker.full_name.encode() not in response.content


def test_the_sensitive_service_sees_itself_in_its_care_team(scenario, api) -> None:
    """Masking depends on who asks, as on the page."""
    response = api(scenario.camhs_worker).get(f"/fhir/CareTeam?subject={scenario.ava.pk}")
    (team,) = care_teams(response)
    assert "Sussex CAMHS" in {p.onBehalfOf.display for p in team.participant if p.onBehalfOf}
    assert all(p.member is not None for p in team.participant)


@pytest.mark.parametrize(
    "query",
    ["subject=Patient/{id}", "subject={id}", f"subject:identifier={quote(NHS)}|9434765919"],
)
def test_every_way_of_naming_the_subject_finds_the_same_team(scenario, api, audit, query) -> None:
    """By our id, or by NHS number (which is a search, and audited as one)."""
    client = api(scenario.school_nurse)
    log = audit()
    (team,) = care_teams(client.get("/fhir/CareTeam?" + query.format(id=scenario.ava.pk)))
    assert len(team.participant) == 3
    expected = [("person_viewed", scenario.school_nurse.pk, scenario.ava.pk)]
    if "identifier" in query:
        expected.insert(0, ("search", scenario.school_nurse.pk, None))
    assert log.since() == expected


@pytest.mark.parametrize(
    ("who", "steps", "whom", "expected"),
    [
        ("social_worker", "", "zed", "team"),
        ("teacher", "", "ava", "none"),
        ("teacher", "search", "ava", "forbidden"),
        ("teacher", "search, reason", "ava", "team"),
        ("teacher", "", "zed", "none"),
        ("camhs_colleague", "", "ava", "none"),
    ],
)
def test_the_care_team_follows_the_access_rules(
    scenario, api, audit, who, steps, whom, expected
) -> None:
    """Team or stated reason: the team; searched only: 403; otherwise: no match at all."""
    person = getattr(scenario, whom)
    client = api(getattr(scenario, who))
    if "search" in steps:
        client.post("/api/v1/search", {"nhs_number": "9434765919"})
    if "reason" in steps:
        client.post(
            f"/api/v1/people/{person.pk}/openings",
            {"reason": "safeguarding", "note": "A worrying disclosure in class."},
        )
    log = audit()
    response = client.get(f"/fhir/CareTeam?subject=Patient/{person.pk}")
    viewed = [e for e in log.since() if e[0] == "person_viewed"]
    if expected == "team":
        assert len(care_teams(response)) == 1
        assert viewed == [("person_viewed", getattr(scenario, who).pk, person.pk)]
    elif expected == "none":
        assert care_teams(response) == []
        assert viewed == []
    else:
        assert outcome(response, 403) == "forbidden"
        assert f"/api/v1/people/{person.pk}/openings" in response.json()["issue"][0]["diagnostics"]
        assert viewed == []


def test_a_hidden_person_looks_like_no_person_at_all(scenario, api) -> None:
    """The same empty searchset for a shielded child as for an id that does not exist."""
    client = api(scenario.teacher)
    hidden = json.loads(client.get(f"/fhir/CareTeam?subject=Patient/{scenario.zed.pk}").content)
    missing = json.loads(client.get("/fhir/CareTeam?subject=Patient/999999").content)
    for body in (hidden, missing):
        body.pop("timestamp")
        body.pop("link")
    assert hidden == missing == {"resourceType": "Bundle", "type": "searchset", "total": 0}


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "required"),
        ("subject=Patient/ava", "invalid"),
        ("subject:identifier=https://example.org/id|9434765919", "invalid"),
        (f"subject:identifier={quote(NHS)}|9434765918", "invalid"),
    ],
)
def test_bad_searches_are_operation_outcomes(scenario, api, query, code) -> None:
    """400 with an OperationOutcome saying what to send."""
    response = api(scenario.school_nurse).get(f"/fhir/CareTeam?{query}")
    assert outcome(response, 400) == code


def test_an_anonymous_caller_gets_a_401_operation_outcome(scenario, world) -> None:
    """No token, no team; the challenge says how to authenticate."""
    client = Client(HTTP_HOST=host_of(world.brighton), HTTP_ACCEPT="application/fhir+json")
    response = client.get(f"/fhir/CareTeam?subject={scenario.ava.pk}")
    assert outcome(response, 401) == "login"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_administrator_gets_a_403_operation_outcome(scenario, world) -> None:
    """Administrators manage but do not read records."""
    client = ApiClient(sign_in(world.brighton_admin))
    assert outcome(client.get(f"/fhir/CareTeam?subject={scenario.ava.pk}"), 403) == "forbidden"


def test_the_capability_statement_is_public_and_names_careteam_search(scenario, world) -> None:
    """FHIR clients read /fhir/metadata before they authenticate."""
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    response = Client(HTTP_HOST=host_of(world.brighton)).get("/fhir/metadata")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    statement = CapabilityStatement.model_validate_json(response.content)
    patient, care_team = statement.rest[0].resource
    assert (patient.type, [i.code for i in patient.interaction]) == ("Patient", ["read"])
    assert care_team.type == "CareTeam"
    assert [p.name for p in care_team.searchParam] == ["subject"]


def test_any_other_fhir_path_is_an_operation_outcome(scenario, world) -> None:
    """Not an HTML page: FHIR clients get something they can parse."""
    response = Client(HTTP_HOST=host_of(world.brighton)).get("/fhir/Observation/1")
    assert outcome(response, 404) == "not-supported"
