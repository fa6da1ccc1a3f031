"""POST /api/v1/people and PATCH /api/v1/people/<id>: the contract (201 with Location, 409
for an NHS number already held, 300 for possible matches unless confirmed, 400 in the
user's words), the access rules and the audit."""

from __future__ import annotations

from django_tenants.utils import schema_context

from core.models import AuditEvent, Person
from tests.factories import valid_nhs_number

ROSA = {"given_name": "Rosa", "family_name": "Penhaligon", "date_of_birth": "2019-01-02"}


def _detail(world, action):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return AuditEvent.objects.filter(action=action).order_by("-id").first().detail


def test_a_new_person_is_created_with_location_and_open_to_the_creator(scenario, api) -> None:
    """201, Location names the record, which the creator may read (access "created") and
    record their involvement with."""
    client = api(scenario.teacher)
    response = client.post("/api/v1/people", {**ROSA, "nhs_number": valid_nhs_number()})
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"].endswith(f"/api/v1/people/{body['id']}")
    assert (body["given_name"], body["access"]) == ("Rosa", "created")
    assert client.get(f"/api/v1/people/{body['id']}").json()["access"] == "created"
    involvement = client.post(
        f"/api/v1/people/{body['id']}/involvements",
        {"role": client.get("/api/v1/roles").json()[0]["id"]},
    )
    assert involvement.status_code == 201, involvement.content


def test_the_same_nhs_number_is_a_409_naming_the_existing_record(scenario, api) -> None:
    response = api(scenario.teacher).post("/api/v1/people", {**ROSA, "nhs_number": "943 476 5919"})
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "nhs_number_exists"
    assert body["existing"] == {"id": scenario.ava.pk, "url": f"/api/v1/people/{scenario.ava.pk}"}


def test_a_shielded_holder_of_the_nhs_number_is_not_named(scenario, api, world) -> None:
    """409 all the same (a second record cannot be made), with whom to ask and no id."""
    with schema_context(world.brighton.schema_name):
        zed_nhs = Person.objects.get(pk=scenario.zed.pk).nhs_number
    response = api(scenario.teacher).post("/api/v1/people", {**ROSA, "nhs_number": zed_nhs})
    assert response.status_code == 409
    assert response.json()["existing"] is None
    assert "administrator" in response.json()["detail"]
    assert str(scenario.zed.pk) not in response.content.decode()


def test_possible_matches_come_back_as_300_until_confirmed(scenario, api, world) -> None:
    """Same surname and date of birth as Ava: nothing is added until the client says none
    of them is the person."""
    client = api(scenario.teacher)
    like_ava = {"given_name": "Eva", "family_name": "OBrien-Smith", "date_of_birth": "2015-03-14"}
    with schema_context(world.brighton.schema_name):
        before = Person.objects.count()
    response = client.post("/api/v1/people", like_ava)
    assert response.status_code == 300, response.content
    assert response.json()["code"] == "possible_matches"
    assert [m["id"] for m in response.json()["possible_matches"]] == [scenario.ava.pk]
    with schema_context(world.brighton.schema_name):
        assert Person.objects.count() == before
    confirmed = client.post("/api/v1/people", {**like_ava, "confirm_new": True})
    assert confirmed.status_code == 201, confirmed.content


def test_a_shielded_namesake_is_not_a_possible_match(scenario, api) -> None:
    """Zed is shielded: outside his team the request simply succeeds."""
    response = api(scenario.teacher).post(
        "/api/v1/people",
        {"given_name": "Zed", "family_name": "Hollis", "date_of_birth": "2016-05-02"},
    )
    assert response.status_code == 201, response.content


def test_wrong_details_are_a_400_in_the_users_words(scenario, api) -> None:
    response = api(scenario.teacher).post(
        "/api/v1/people",
        {"given_name": "", "date_of_birth": "2999-01-01", "nhs_number": "9434765918"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["given_name"] == ["Enter the first name"]
    assert body["family_name"] == ["Enter the surname"]
    assert body["date_of_birth"] == ["The date of birth must be today or in the past"]
    assert "Enter a valid NHS number" in body["nhs_number"][0]


def test_an_administrator_cannot_add_people(scenario, api, world) -> None:
    from tests.api.client import ApiClient
    from tests.personas import sign_in

    admin = ApiClient(sign_in(world.brighton_admin))
    assert admin.post("/api/v1/people", ROSA).status_code == 403


def test_a_patch_changes_only_what_is_sent_and_audits_before_and_after(
    scenario, api, world
) -> None:
    client = api(scenario.school_nurse)
    response = client.patch(
        f"/api/v1/people/{scenario.ava.pk}",
        {"postcode": "bn1 1aa", "given_name": "Ava", "date_of_death": "2025-01-05"},
    )
    assert response.status_code == 200, response.content
    assert (response.json()["postcode"], response.json()["date_of_death"]) == (
        "BN1 1AA",
        "2025-01-05",
    )
    assert _detail(world, "person_updated") == {
        "changed": {"postcode": {"before": "BN3 7BQ", "after": "BN1 1AA"}}
    }
    assert _detail(world, "person_death_recorded") == {
        "changed": {"date_of_death": {"before": None, "after": "2025-01-05"}}
    }


def test_a_patch_is_refused_to_those_who_may_not_change_the_record(scenario, api) -> None:
    """Found by search only: 403 with the openings URL; never found: 404; a shielded
    record by someone outside its team who broke glass: 403."""
    teacher = api(scenario.teacher)
    assert teacher.patch(f"/api/v1/people/{scenario.ava.pk}", {"address": "x"}).status_code == 404
    teacher.post("/api/v1/search", {"nhs_number": "9434765919"})
    refused = teacher.patch(f"/api/v1/people/{scenario.ava.pk}", {"address": "x"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "reason_required"
    assert (
        api(scenario.teacher)
        .patch(f"/api/v1/people/{scenario.zed.pk}", {"address": "x"})
        .status_code
        == 404
    )


def test_an_empty_or_wrong_patch_is_a_400(scenario, api) -> None:
    client = api(scenario.school_nurse)
    assert client.patch(f"/api/v1/people/{scenario.ava.pk}", {}).json() == {
        "non_field_errors": ["Give at least one detail to change"]
    }
    wrong = client.patch(f"/api/v1/people/{scenario.ava.pk}", {"nhs_number": "9434765918"})
    assert wrong.status_code == 400 and "nhs_number" in wrong.json()
