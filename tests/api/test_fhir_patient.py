"""GET /fhir/Patient/<id>: the person a CareTeam's subject names, parsed back with the
fhir.resources R4B models, with the access rules and audit of GET /api/v1/people/<id>."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import Client
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from core.models import Person
from core.services import person_death_record
from tests.api.client import ApiClient, host_of
from tests.personas import sign_in

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def _patient(response) -> Patient:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    return Patient.model_validate_json(response.content)


def _outcome(response, status: int) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    return OperationOutcome.model_validate_json(response.content).issue[0].code


def test_the_patient_holds_identifier_name_birth_and_sex(scenario, api) -> None:
    """What the CareTeam references, with the NHS number in NHS England's system; no
    address."""
    patient = _patient(api(scenario.school_nurse).get(f"/fhir/Patient/{scenario.ava.pk}"))
    assert patient.id == str(scenario.ava.pk)
    assert [(i.system, i.value) for i in patient.identifier] == [(NHS, "9434765919")]
    assert (patient.name[0].family, patient.name[0].given) == ("O'Brien-Smith", ["Ava"])
    assert str(patient.birthDate) == "2015-03-14"
    assert patient.gender == "unknown"
    assert patient.deceasedDateTime is None
    assert patient.address is None


def test_the_care_team_subject_is_the_patient(scenario, api) -> None:
    """The CareTeam's subject reference reads back as this Patient."""
    client = api(scenario.school_nurse)
    bundle = Bundle.model_validate_json(
        client.get(f"/fhir/CareTeam?subject={scenario.ava.pk}").content
    )
    reference = bundle.entry[0].resource.subject.reference
    assert reference == f"Patient/{scenario.ava.pk}"
    assert _patient(client.get(f"/fhir/{reference}")).id == str(scenario.ava.pk)


def test_a_recorded_death_is_the_deceased_date(scenario, api) -> None:
    """deceasedDateTime, once a death is recorded."""
    person_death_record(
        actor=scenario.social_worker, person=scenario.ava, date_of_death=date(2025, 1, 5)
    )
    patient = _patient(api(scenario.school_nurse).get(f"/fhir/Patient/{scenario.ava.pk}"))
    assert str(patient.deceasedDateTime) == "2025-01-05"


@pytest.mark.parametrize(
    ("who", "searched", "whom", "status", "code"),
    [
        ("social_worker", False, "zed", 200, ""),  # on shielded Zed's team
        ("teacher", True, "ava", 403, "forbidden"),  # found her: state a reason first
        ("teacher", False, "ava", 404, "not-found"),  # never found her
        ("teacher", False, "zed", 404, "not-found"),  # shielded: as if there were none
    ],
)
def test_the_patient_follows_the_access_rules(
    scenario, api, audit, who, searched, whom, status, code
) -> None:
    """Team: the Patient, audited as a view; searched only: 403 naming the openings URL;
    anyone else: 404, the same as for an id that does not exist."""
    person = getattr(scenario, whom)
    client = api(getattr(scenario, who))
    if searched:
        client.post("/api/v1/search", {"nhs_number": "9434765919"})
    log = audit()
    response = client.get(f"/fhir/Patient/{person.pk}")
    viewed = [e for e in log.since() if e[0] == "person_viewed"]
    if status == 200:
        assert _patient(response).id == str(person.pk)
        assert viewed == [("person_viewed", getattr(scenario, who).pk, person.pk)]
    else:
        assert _outcome(response, status) == code
        assert viewed == []
        if status == 403:
            assert f"/api/v1/people/{person.pk}/openings" in response.content.decode()


def test_a_hidden_patient_looks_like_no_patient(scenario, api) -> None:
    """A shielded child's id answers exactly as an id that does not exist."""
    client = api(scenario.teacher)
    hidden = client.get(f"/fhir/Patient/{scenario.zed.pk}")
    missing = client.get("/fhir/Patient/999999")
    assert _outcome(hidden, 404) == _outcome(missing, 404) == "not-found"
    assert hidden.content.replace(str(scenario.zed.pk).encode(), b"") == missing.content.replace(
        b"999999", b""
    )


def test_an_administrator_and_an_anonymous_caller_are_refused(scenario, world) -> None:
    """Administrators manage but do not read records; without a token, a 401."""
    admin = ApiClient(sign_in(world.brighton_admin))
    assert _outcome(admin.get(f"/fhir/Patient/{scenario.ava.pk}"), 403) == "forbidden"
    anonymous = Client(HTTP_HOST=host_of(world.brighton))
    assert _outcome(anonymous.get(f"/fhir/Patient/{scenario.ava.pk}"), 401) == "login"
    assert Person.objects.filter(pk=scenario.ava.pk).exists()
