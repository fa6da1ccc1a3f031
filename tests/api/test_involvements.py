"""Adding, confirming, updating and ending involvements through the API: the services'
rules, audited as on the pages; bad input is a 400 in the user's words and changes nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from accounts.models import User
from core.models import AuditEvent, Involvement, InvolvementRole, Notification
from tests.api.client import ApiClient
from tests.factories import RoleFactory
from tests.personas import sign_in

NOT_FOUND = {"detail": "Not found"}


def involvement_of(user: User, person) -> Involvement:  # type: ignore[no-untyped-def]
    return Involvement.objects.get(person=person, practitioner__user=user, end_date__isnull=True)


def snapshot(person) -> tuple[list[tuple], int]:  # type: ignore[no-untyped-def, type-arg]
    """Every involvement of the person, field by field, and how long the audit log is."""
    rows = list(Involvement.objects.filter(person=person).order_by("id").values_list())
    return rows, AuditEvent.objects.count()


@pytest.fixture
def teacher_with_reason(scenario, api) -> ApiClient:  # type: ignore[no-untyped-def]
    client = api(scenario.teacher)
    client.post("/api/v1/search", {"nhs_number": "9434765919"})
    response = client.post(
        f"/api/v1/people/{scenario.ava.pk}/openings",
        {"reason": "starting_work", "note": "Ava joins my tutor group from Monday."},
    )
    assert response.status_code == 201
    return client


def test_a_practitioner_adds_their_involvement_and_the_team_is_told(
    scenario, teacher_with_reason, audit
) -> None:
    """201 with the involvement; audited once; the team hears someone joined."""
    role = RoleFactory(name="Form tutor")
    log = audit()
    response = teacher_with_reason.post(
        f"/api/v1/people/{scenario.ava.pk}/involvements",
        {"role": role.pk, "last_contact_date": date.today().isoformat()},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["role_name"] == "Form tutor" and body["organisation"] == "Hove Park School"
    assert body["practitioner_name"] == scenario.teacher.full_name
    assert body["sensitive"] is False and body["end_date"] is None
    assert log.since() == [("involvement_added", scenario.teacher.pk, scenario.ava.pk)]
    assert Notification.objects.filter(recipient=scenario.school_nurse, kind="team_joined").exists()
    # Now on the team: no reason needed any more, and the network shows them.
    network = teacher_with_reason.get(f"/api/v1/people/{scenario.ava.pk}/network").json()
    assert any(e.get("is_me") for e in network["current"])


def test_an_outsider_must_state_a_reason_before_adding_themselves(scenario, api) -> None:
    """Finding the child is not enough to join the team: 403 with where to state why."""
    client = api(scenario.teacher)
    client.post("/api/v1/search", {"nhs_number": "9434765919"})
    before = snapshot(scenario.ava)
    response = client.post(
        f"/api/v1/people/{scenario.ava.pk}/involvements", {"role": RoleFactory(name="Tutor").pk}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "reason_required"
    assert snapshot(scenario.ava) == before


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "role", "Choose the role you have with this person"),
        ({"role": 999999}, "role", "Choose a role from the council's list"),
        ({"role": "nurse"}, "role", "Choose a role from the council's list"),
        ({"role": "ROLE", "start_date": "yesterday"}, "start_date", "year-month-day"),
        ({"role": "ROLE", "start_date": "2999-01-01"}, "start_date", "today or in the past"),
        ({"role": "ROLE", "legal_basis": "because"}, "legal_basis", "Choose the legal basis"),
        ({"role": "CP", "sensitive": True}, "sensitive", "cannot be marked sensitive"),
        ({"role": "ROLE", "lead_professional": True}, "lead_professional", "already the lead"),
        ({"role": "ROLE", "practitioner": 999999}, "practitioner", "one of your own staff"),
        ({"role": "ROLE", "practitioner": "me"}, "practitioner", "one of your own staff"),
        ({"role": "NURSE"}, "non_field_errors", "already involved as School nurse"),
    ],
)
def test_bad_involvements_are_refused_and_nothing_changes(
    scenario, api, body, field, message
) -> None:
    """400 naming what to fix (409 when it is the record's state: a lead professional
    already named, the same involvement already recorded); no involvement, no audit event,
    no notification."""
    aliases = {
        "ROLE": RoleFactory(name="Family support worker").pk,
        "CP": InvolvementRole.objects.get(name="Child protection social worker").pk,
        "NURSE": InvolvementRole.objects.get(name="School nurse").pk,
    }
    if body.get("role") in aliases:
        body = {**body, "role": aliases[body["role"]]}
    client = api(scenario.school_nurse)
    before = snapshot(scenario.ava), Notification.objects.count()
    response = client.post(f"/api/v1/people/{scenario.ava.pk}/involvements", body)
    conflict = "already" in message
    assert response.status_code == (409 if conflict else 400), response.content
    assert message in " ".join(response.json()[field])
    assert (snapshot(scenario.ava), Notification.objects.count()) == before


def test_a_practitioner_cannot_add_someone_else_s_involvement(scenario, api) -> None:
    """Only managers act for their organisation's staff."""
    nurse = scenario.school_nurse.practitioner
    client = api(scenario.social_worker)
    before = snapshot(scenario.ava)
    response = client.post(
        f"/api/v1/people/{scenario.ava.pk}/involvements",
        {"role": RoleFactory(name="Health visitor").pk, "practitioner": nurse.pk},
    )
    assert response.status_code == 400
    assert response.json() == {"practitioner": ["Choose yourself or one of your own staff"]}
    assert snapshot(scenario.ava) == before


def test_a_practitioner_confirms_their_involvement(scenario, api, audit) -> None:
    """The confirmation date moves on, and is audited."""
    involvement = involvement_of(scenario.school_nurse, scenario.ava)
    client = api(scenario.school_nurse)
    log = audit()
    response = client.post(f"/api/v1/involvements/{involvement.pk}/confirm")
    assert response.status_code == 200
    assert response.json()["last_confirmed_at"]
    assert log.since() == [("involvement_confirmed", scenario.school_nurse.pk, scenario.ava.pk)]


def test_a_practitioner_records_their_last_contact(scenario, api, audit) -> None:
    """PATCH changes only what was sent."""
    involvement = involvement_of(scenario.school_nurse, scenario.ava)
    client = api(scenario.school_nurse)
    log = audit()
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    response = client.patch(
        f"/api/v1/involvements/{involvement.pk}", {"last_contact_date": yesterday}
    )
    assert response.status_code == 200
    assert response.json()["last_contact_date"] == yesterday
    assert response.json()["lead_professional"] is False
    assert log.since() == [("involvement_updated", scenario.school_nurse.pk, scenario.ava.pk)]


def test_the_lead_professional_hands_over(scenario, api, audit) -> None:
    """The lead steps down, then the nurse takes it on; the team is told each time."""
    lead = involvement_of(scenario.social_worker, scenario.ava)
    nurse = involvement_of(scenario.school_nurse, scenario.ava)
    log = audit()
    stepped = api(scenario.social_worker).patch(
        f"/api/v1/involvements/{lead.pk}", {"lead_professional": False}
    )
    assert stepped.status_code == 200
    took = api(scenario.school_nurse).patch(
        f"/api/v1/involvements/{nurse.pk}", {"lead_professional": True}
    )
    assert took.status_code == 200 and took.json()["lead_professional"] is True
    assert [e[0] for e in log.since() if e[0] != "api_token_issued"] == [
        "involvement_updated",
        "involvement_updated",
    ]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "non_field_errors", "Give a last contact date"),
        ({"last_contact_date": "2999-01-01"}, "last_contact_date", "today or in the past"),
        ({"last_contact_date": "2000-01-01"}, "last_contact_date", "before the involvement"),
        ({"last_contact_date": "01/01/2025"}, "last_contact_date", "year-month-day"),
        ({"lead_professional": True}, "lead_professional", "already the lead professional"),
        ({"lead_professional": "perhaps"}, "lead_professional", "true or false"),
    ],
)
def test_bad_updates_are_refused_and_nothing_changes(scenario, api, body, field, message) -> None:
    """400 naming what to fix (409 for a lead professional already named); the involvement
    and the audit log are as they were."""
    involvement = involvement_of(scenario.school_nurse, scenario.ava)
    client = api(scenario.school_nurse)
    before = snapshot(scenario.ava)
    response = client.patch(f"/api/v1/involvements/{involvement.pk}", body)
    conflict = "already" in message
    assert response.status_code == (409 if conflict else 400), response.content
    assert message in " ".join(response.json()[field])
    assert snapshot(scenario.ava) == before


def test_a_practitioner_ends_their_involvement_and_it_becomes_history(scenario, api, audit) -> None:
    """Ended, audited, still visible as history; ending twice is refused."""
    involvement = involvement_of(scenario.school_nurse, scenario.ava)
    client = api(scenario.school_nurse)
    log = audit()
    response = client.post(
        f"/api/v1/involvements/{involvement.pk}/end", {"end_reason": "case_closed"}
    )
    assert response.status_code == 200
    assert response.json()["end_date"] == date.today().isoformat()
    assert log.since() == [("involvement_ended", scenario.school_nurse.pk, scenario.ava.pk)]
    history = api(scenario.social_worker).get(f"/api/v1/people/{scenario.ava.pk}/network")
    assert scenario.school_nurse.full_name in [
        e["practitioner_name"] for e in history.json()["history"]
    ]
    again = client.post(f"/api/v1/involvements/{involvement.pk}/end", {"end_reason": "case_closed"})
    assert again.status_code == 409
    assert "already ended" in " ".join(again.json()["non_field_errors"])


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "end_reason", "Choose why the involvement is ending"),
        ({"end_reason": "bored"}, "end_reason", "Choose why the involvement is ending"),
        ({"end_reason": "case_closed", "end_date": "2000-01-01"}, "end_date", "before the start"),
        ({"end_reason": "case_closed", "end_date": "soon"}, "end_date", "year-month-day"),
    ],
)
def test_bad_endings_are_refused_and_nothing_changes(scenario, api, body, field, message) -> None:
    """400 naming what to fix; still current."""
    involvement = involvement_of(scenario.school_nurse, scenario.ava)
    client = api(scenario.school_nurse)
    before = snapshot(scenario.ava)
    response = client.post(f"/api/v1/involvements/{involvement.pk}/end", body)
    assert response.status_code == 400
    assert message in " ".join(response.json()[field])
    assert snapshot(scenario.ava) == before


ACTIONS = [
    ("post", "/api/v1/involvements/{id}/confirm", {}),
    ("patch", "/api/v1/involvements/{id}", {"last_contact_date": "2026-01-01"}),
    ("post", "/api/v1/involvements/{id}/end", {"end_reason": "case_closed"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ACTIONS)
@pytest.mark.parametrize("who", ["school_nurse", "teacher", "camhs_worker", "admin"])
def test_only_the_practitioner_acts_on_their_involvement(
    scenario, world, api, method, path, body, who
) -> None:
    """Someone else's involvement is a 404, identical to one that does not exist."""
    involvement = involvement_of(scenario.social_worker, scenario.ava)
    client = (
        ApiClient(sign_in(world.brighton_admin)) if who == "admin" else api(getattr(scenario, who))
    )
    before = snapshot(scenario.ava)
    theirs = getattr(client, method)(path.format(id=involvement.pk), body)
    missing = getattr(client, method)(path.format(id=999999), body)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == NOT_FOUND
    assert snapshot(scenario.ava) == before


def test_the_roles_list_is_for_practitioners(scenario, world, api) -> None:
    """Practitioners see the council's roles; administrators get a 403 as on the pages."""
    names = [r["name"] for r in api(scenario.teacher).get("/api/v1/roles").json()]
    assert "School nurse" in names and "Child protection social worker" in names
    assert ApiClient(sign_in(world.brighton_admin)).get("/api/v1/roles").status_code == 403


@pytest.fixture
def school_manager(scenario) -> User:  # type: ignore[no-untyped-def]
    from tests.factories import PractitionerFactory

    return PractitionerFactory(
        organisation=scenario.school, job_title="Head of year", user__role=User.Role.MANAGER
    ).user


def test_a_manager_records_and_confirms_for_their_staff(
    scenario, api, audit, school_manager
) -> None:
    """A manager acts for their organisation's staff; the audit names the manager."""
    client = api(school_manager)
    client.post("/api/v1/search", {"nhs_number": "9434765919"})
    client.post(
        f"/api/v1/people/{scenario.ava.pk}/openings",
        {"reason": "starting_work", "note": "Arranging support from a member of my staff."},
    )
    teacher = scenario.teacher.practitioner
    log = audit()
    added = client.post(
        f"/api/v1/people/{scenario.ava.pk}/involvements",
        {"role": RoleFactory(name="Form tutor").pk, "practitioner": teacher.pk},
    )
    assert added.status_code == 201, added.content
    assert added.json()["practitioner_name"] == scenario.teacher.full_name
    confirmed = client.post(f"/api/v1/involvements/{added.json()['id']}/confirm")
    assert confirmed.status_code == 200
    assert log.since() == [
        ("involvement_added", school_manager.pk, scenario.ava.pk),
        ("involvement_confirmed", school_manager.pk, scenario.ava.pk),
    ]


def test_a_manager_cannot_act_for_another_organisation_s_staff(
    scenario, api, school_manager
) -> None:
    """The social worker's involvement is not the school's to change: 404."""
    involvement = involvement_of(scenario.social_worker, scenario.ava)
    client = api(school_manager)
    before = snapshot(scenario.ava)
    response = client.post(f"/api/v1/involvements/{involvement.pk}/confirm")
    assert response.status_code == 404
    assert snapshot(scenario.ava) == before
