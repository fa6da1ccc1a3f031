"""Who may read a person through the API: the pages' access table, endpoint by endpoint."""

from __future__ import annotations

import pytest

from tests.api.client import ApiClient
from tests.personas import sign_in

READS = ["/api/v1/people/{id}", "/api/v1/people/{id}/network", "/api/v1/people/{id}/involvements"]
NOT_FOUND = {"detail": "Not found"}
ZED_QUERY = {"family_name": "Hollis", "date_of_birth": "2016-05-02"}
AVA_QUERY = {"nhs_number": "943 476 5919"}


def caller(who, scenario, world, api) -> ApiClient:  # type: ignore[no-untyped-def]
    """Administrators cannot hold API tokens, so they come through their browser session."""
    if who == "admin":
        return ApiClient(sign_in(world.brighton_admin))
    return api(getattr(scenario, who))


def prepare(client: ApiClient, steps: str, person) -> None:  # type: ignore[no-untyped-def]
    """Search (plainly or with break-glass) and state a reason, as the steps say."""
    query = AVA_QUERY if person.given_name == "Ava" else ZED_QUERY
    if "search" in steps:
        assert client.post("/api/v1/search", query).status_code == 200
    if "break-glass" in steps:
        response = client.post("/api/v1/search", {**query, "break_glass": True})
        assert response.status_code == 200
    if "reason" in steps:
        response = client.post(
            f"/api/v1/people/{person.pk}/openings",
            {"reason": "safeguarding", "note": "A worrying disclosure in class this morning."},
        )
        assert response.status_code == 201, response.content


ACCESS_TABLE = [
    ("social_worker", "", "ava", 200),
    ("school_nurse", "", "ava", 200),
    ("camhs_worker", "", "ava", 200),
    ("teacher", "", "ava", 404),
    ("teacher", "search", "ava", 403),
    ("teacher", "search, reason", "ava", 200),
    ("camhs_colleague", "", "ava", 404),
    ("admin", "", "ava", 404),
    ("social_worker", "", "zed", 200),
    ("teacher", "search", "zed", 404),
    ("mash_worker", "search", "zed", 404),
    ("mash_worker", "break-glass", "zed", 403),
    ("mash_worker", "break-glass, reason", "zed", 200),
]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(("who", "steps", "whom", "expected"), ACCESS_TABLE)
def test_access_to_a_person_through_the_api(
    scenario, world, api, audit, path, who, steps, whom, expected
) -> None:
    """Team sees; an outsider who searched is told to state a reason; others get a 404."""
    person = getattr(scenario, whom)
    client = caller(who, scenario, world, api)
    prepare(client, steps, person)
    log = audit()
    response = client.get(path.format(id=person.pk))
    assert response.status_code == expected, response.content
    viewed = [e for e in log.since() if e[0] == "person_viewed"]
    if expected == 200:
        assert viewed == [("person_viewed", getattr(scenario, who).pk, person.pk)]
    else:
        assert viewed == []
    if expected == 404:
        assert response.json() == NOT_FOUND
    if expected == 403:
        body = response.json()
        assert body["code"] == "reason_required"
        assert body["openings_url"] == f"/api/v1/people/{person.pk}/openings"
        assert "State why you need to see the record" in body["detail"]
        assert body["break_glass"] is (whom == "zed")
        assert "safeguarding" in body["reasons"]


def test_a_person_who_does_not_exist_looks_like_one_you_may_not_see(scenario, api) -> None:
    """The 404 body is identical for "no such person" and "not yours to know about"."""
    client = api(scenario.teacher)
    hidden = client.get(f"/api/v1/people/{scenario.zed.pk}")
    missing = client.get("/api/v1/people/999999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content


def test_an_outsider_states_a_reason_and_the_lead_is_told(scenario, api, audit) -> None:
    """The opening is audited once, the lead professional is notified, and the record opens."""
    from core.models import Notification

    client = api(scenario.teacher)
    client.post("/api/v1/search", AVA_QUERY)
    log = audit()
    response = client.post(
        f"/api/v1/people/{scenario.ava.pk}/openings",
        {"reason": "new_referral", "note": "Referral received from the school office."},
    )
    assert response.status_code == 201
    assert response.json()["access"] == "opened"
    assert log.since() == [("record_opened", scenario.teacher.pk, scenario.ava.pk)]
    told = Notification.objects.get(recipient=scenario.social_worker, kind="record_opened")
    assert "New referral" in told.text
    record = client.get(f"/api/v1/people/{scenario.ava.pk}").json()
    assert record["access"] == "opened" and record["nhs_number"] == "9434765919"


def test_a_break_glass_opening_is_recorded_as_one(scenario, api, audit) -> None:
    """A shielded record opened after a break-glass search is audited as break-glass."""
    client = api(scenario.mash_worker)
    client.post("/api/v1/search", {**ZED_QUERY, "break_glass": True})
    log = audit()
    response = client.post(
        f"/api/v1/people/{scenario.zed.pk}/openings",
        {"reason": "section_47", "note": "Section 47 strategy discussion at 10 today."},
    )
    assert response.status_code == 201
    assert response.json()["break_glass"] is True
    assert log.since() == [("record_break_glass", scenario.mash_worker.pk, scenario.zed.pk)]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"note": "A worrying disclosure in class."}, "reason", "Choose the reason"),
        ({"reason": "curiosity", "note": "Just looking at this."}, "reason", "Choose the reason"),
        ({"reason": "safeguarding", "note": "worry"}, "note", "at least 10 characters"),
        ({"reason": "safeguarding"}, "note", "Say in a sentence why"),
    ],
)
def test_an_opening_without_a_proper_reason_is_refused(
    scenario, api, audit, body, field, message
) -> None:
    """400 with what to fix; nothing recorded and the record stays closed."""
    client = api(scenario.teacher)
    client.post("/api/v1/search", AVA_QUERY)
    log = audit()
    response = client.post(f"/api/v1/people/{scenario.ava.pk}/openings", body)
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert log.since() == []
    assert client.get(f"/api/v1/people/{scenario.ava.pk}").status_code == 403


def test_a_team_member_needs_no_reason(scenario, api, audit) -> None:
    """Stating a reason for your own child's record changes nothing and tells no one."""
    client = api(scenario.school_nurse)
    log = audit()
    response = client.post(
        f"/api/v1/people/{scenario.ava.pk}/openings",
        {"reason": "safeguarding", "note": "Checking the team before the meeting."},
    )
    assert response.status_code == 200
    assert response.json()["access"] == "team"
    assert log.since() == []


def test_an_opening_for_someone_not_found_by_search_is_a_404(scenario, api, audit) -> None:
    """A reason cannot be used to reach a person the caller has not found."""
    client = api(scenario.teacher)
    log = audit()
    response = client.post(
        f"/api/v1/people/{scenario.ava.pk}/openings",
        {"reason": "safeguarding", "note": "A worrying disclosure in class."},
    )
    assert response.status_code == 404
    assert log.since() == []
