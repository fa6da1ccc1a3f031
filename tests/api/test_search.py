"""POST /api/v1/search: the same safe search as the page, refused when too broad."""

from __future__ import annotations

import pytest

from core.models import AuditEvent
from tests.api.client import ApiClient
from tests.personas import sign_in


def test_a_search_finds_the_child_with_the_minimum_to_pick_them(scenario, api, audit) -> None:
    """Name, date of birth, sex and postcode area: no address, no NHS number, no team."""
    client = api(scenario.teacher)
    log = audit()
    response = client.post(
        "/api/v1/search", {"family_name": "obrien smith", "date_of_birth": "2015-03-14"}
    )
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result == {
        "id": scenario.ava.pk,
        "name": "Ava O'Brien-Smith",
        "date_of_birth": "2015-03-14",
        "sex": "Not known",
        "postcode_area": "BN3",
        "on_team": False,
        "shielded": False,
        "url": f"/api/v1/people/{scenario.ava.pk}",
    }
    assert log.since() == [("search", scenario.teacher.pk, None)]
    event = AuditEvent.objects.get(action="search", actor_id=scenario.teacher.pk)
    assert event.detail["result_ids"] == [scenario.ava.pk]


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        ({"family_name": "Smith"}, "Add a date of birth"),
        ({"family_name": "Smith", "given_name": "Ava", "postcode": "BN3"}, "Add a date of birth"),
        ({"given_name": "Ava", "date_of_birth": "2015-03-14"}, "Enter an NHS number"),
        ({}, "Enter an NHS number"),
        ({"nhs_number": "943 476 5918"}, "not a valid NHS number"),
    ],
)
def test_a_too_broad_search_is_refused_with_what_to_add(
    scenario, api, audit, query, complaint
) -> None:
    """400 with the page's message; nothing is searched, so nothing is audited."""
    client = api(scenario.teacher)
    log = audit()
    response = client.post("/api/v1/search", query)
    assert response.status_code == 400
    assert complaint in response.json()["detail"]
    assert log.since() == []


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (
            {"family_name": "Smith", "date_of_birth": "14/03/2015"},
            "date_of_birth",
            "year-month-day",
        ),
        ({"nhs_number": "9" * 21}, "nhs_number", "20 characters or fewer"),
        ({"nhs_number": "9434765919", "break_glass": "maybe"}, "break_glass", "true or false"),
    ],
)
def test_malformed_search_fields_get_field_messages(
    scenario, api, audit, query, field, message
) -> None:
    """400 naming the field and saying how to put it right."""
    client = api(scenario.teacher)
    log = audit()
    response = client.post("/api/v1/search", query)
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert log.since() == []


@pytest.mark.parametrize(
    ("who", "break_glass", "finds_zed"),
    [
        ("social_worker", False, True),
        ("teacher", False, False),
        ("mash_worker", False, False),
        ("mash_worker", True, True),
    ],
)
def test_a_shielded_child_is_found_only_by_their_team_or_break_glass(
    scenario, api, audit, who, break_glass, finds_zed
) -> None:
    """The answer never confirms that a shielded child exists to anyone else."""
    client = api(getattr(scenario, who))
    log = audit()
    response = client.post(
        "/api/v1/search",
        {"family_name": "Hollis", "date_of_birth": "2016-05-02", "break_glass": break_glass},
    )
    assert response.status_code == 200
    ids = [r["id"] for r in response.json()["results"]]
    assert (scenario.zed.pk in ids) is finds_zed
    action = "search_break_glass" if break_glass else "search"
    assert log.since() == [(action, getattr(scenario, who).pk, None)]


def test_only_child_protection_practitioners_may_break_glass(scenario, api, audit) -> None:
    """403 for anyone else, and nothing searched."""
    client = api(scenario.teacher)
    log = audit()
    response = client.post("/api/v1/search", {"nhs_number": "9434765919", "break_glass": True})
    assert response.status_code == 403
    assert "child-protection" in response.json()["detail"]
    assert log.since() == []


def test_an_administrator_cannot_search(scenario, world, audit) -> None:
    """Administrators manage but do not read records."""
    client = ApiClient(sign_in(world.brighton_admin))
    log = audit()
    response = client.post("/api/v1/search", {"nhs_number": "9434765919"})
    assert response.status_code == 403
    assert log.since() == []
