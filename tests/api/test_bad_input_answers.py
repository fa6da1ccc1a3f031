"""Bad input to the API and FHIR gets a clear error in the API's own JSON shape and changes
nothing; the API refuses what the pages refuse (issue 14, points 7 and 10)."""

from __future__ import annotations

import json

import pytest

from core.models import Involvement, Person, RecordOpening

AVA_QUERY = {"nhs_number": "943 476 5919"}
NOTE = "Referral received from the school office."


def test_a_fhir_subject_in_superscript_digits_is_a_400_operation_outcome(scenario, api) -> None:
    """'²' passes str.isdigit() but is no number: a FHIR 400, not a server error."""
    response = api(scenario.social_worker).get("/fhir/CareTeam?subject=Patient/%C2%B2")
    assert response.status_code == 400, response.content
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_fhir_subject_in_full_width_digits_is_not_read_as_a_number(scenario, api) -> None:
    """'Patient/３' is not Patient/3 (nor anyone else)."""
    person_id = "".join(chr(ord(d) - ord("0") + ord("０")) for d in str(scenario.ava.pk))
    response = api(scenario.social_worker).get(f"/fhir/CareTeam?subject=Patient/{person_id}")
    assert response.status_code == 400, response.content
    assert "Ava" not in response.content.decode()


def test_an_id_that_is_not_a_number_is_the_api_s_json_404(scenario, api) -> None:
    """Not the pages' HTML 404: the API's own {"detail": ...}."""
    for path in ("/api/v1/people/null", "/api/v1/involvements/1.5/end", "/api/v1/nowhere"):
        response = api(scenario.social_worker).get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/json", path
        assert response.json() == {"detail": "Not found"}


def test_a_search_for_a_date_of_birth_in_the_future_is_refused(scenario, api) -> None:
    """The page's search refuses 2099; so does the API's."""
    response = api(scenario.social_worker).post(
        "/api/v1/search", {"family_name": "O'Brien-Smith", "date_of_birth": "2099-03-14"}
    )
    assert response.status_code == 400, response.content
    assert "today or in the past" in " ".join(response.json()["date_of_birth"])


def test_an_opening_note_longer_than_the_page_allows_is_refused(scenario, api, audit) -> None:
    """The page takes 1,000 characters; 2,000 is refused by the API too, and nothing opens."""
    client = api(scenario.teacher)
    client.post("/api/v1/search", AVA_QUERY)
    log = audit()
    response = client.post(
        f"/api/v1/people/{scenario.ava.pk}/openings",
        {"reason": "new_referral", "note": "x" * 2000},
    )
    assert response.status_code == 400, response.content
    assert "1000 characters or fewer" in " ".join(response.json()["note"])
    assert log.since() == []
    assert not RecordOpening.objects.filter(person=scenario.ava).exists()


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": "because", "note": NOTE}, {"reason": "new_referral", "note": "short"}],
)
def test_a_team_member_s_opening_is_validated_like_anyone_s(scenario, api, body) -> None:
    """The same request is valid or not whoever sends it: no 200 for garbage."""
    response = api(scenario.school_nurse).post(f"/api/v1/people/{scenario.ava.pk}/openings", body)
    assert response.status_code == 400, response.content


def test_an_involvement_cannot_end_in_the_future(scenario, api) -> None:
    """The end page refuses a future end date; so do the API and the service beneath both."""
    involvement = Involvement.objects.get(
        person=scenario.ava, practitioner__user=scenario.school_nurse
    )
    response = api(scenario.school_nurse).post(
        f"/api/v1/involvements/{involvement.pk}/end",
        {"end_reason": "case_closed", "end_date": "2099-01-01"},
    )
    assert response.status_code == 400, response.content
    involvement.refresh_from_db()
    assert involvement.end_date is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("confirm_new", 0),
        ("confirm_new", "yes"),
        ("given_name", 5),
        ("date_of_birth", "２０１５-０３-１４"),
        ("nhs_number", "９４３４７６５９１９"),
        ("postcode", "BN1 1AA" + " " * 10),
    ],
)
def test_a_person_with_a_value_of_the_wrong_type_is_refused(scenario, api, field, value) -> None:
    """Only what the schema says: JSON true/false, strings, digits 0-9; nothing is added."""
    before = Person.objects.count()
    body = {"given_name": "Mo", "family_name": "Tester", field: value}
    response = api(scenario.social_worker).post("/api/v1/people", body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert Person.objects.count() == before


def test_a_body_larger_than_the_server_reads_is_the_api_s_json_413(scenario, api, settings) -> None:
    """Past DATA_UPLOAD_MAX_MEMORY_SIZE: 413 with {"detail": ...}, not an HTML page."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps({"family_name": "x" * 2_000})
    client = api(scenario.social_worker).client
    response = client.post("/api/v1/search", body, content_type="application/json")
    assert response.status_code == 413, response.content
    assert "too large" in response.json()["detail"]


@pytest.mark.parametrize(
    "flag", ["full_snapshot=null", "dry_run=perhaps", "dry_run=true&dry_run=false"]
)
def test_an_import_flag_that_is_not_true_or_false_is_refused(
    world, db, settings, tmp_path, flag
) -> None:  # type: ignore[no-untyped-def]
    """The schema says boolean: `?full_snapshot=null` is a 400 naming the flag, and no
    import starts (it used to be read as false)."""
    from django.test import Client
    from django_tenants.utils import schema_context

    from core.feeds import source_system_create
    from core.models import ImportRun
    from tests.api.client import host_of

    settings.DATA_DIR = tmp_path
    with schema_context(world.brighton.schema_name):
        token = source_system_create(actor=None, name="Liquidlogic LCS")[1]
    client = Client(HTTP_HOST=host_of(world.brighton), HTTP_AUTHORIZATION=f"Bearer {token}")
    feed = "record,source_id,given_name,family_name\nperson,SW-1,Ottilie,Push\n"
    response = client.post(f"/api/v1/imports?{flag}", feed, content_type="text/csv")
    assert response.status_code == 400, response.content
    assert flag.split("=")[0] in response.json()
    with schema_context(world.brighton.schema_name):
        assert not ImportRun.objects.exists()
