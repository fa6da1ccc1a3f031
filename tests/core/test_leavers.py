"""Leavers and movers (issue 13, point 2): a leaver's involvements are handed over (a lead
professional's must be), the teams are told, and the account stops working on the very
next request, session and API token alike. A mover keeps their history."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django_otp import devices_for_user
from django_tenants.utils import schema_context

from accounts.models import User
from core.leavers import practitioner_move, staff_deactivate
from core.models import AuditEvent, Involvement, Notification, Organisation, Practitioner
from tests.api.client import host_of
from tests.factories import OrganisationFactory, PractitionerFactory
from tests.personas import client_for


def _in(world, work):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return work()


def _lead_of_ava(scenario) -> Involvement:  # type: ignore[no-untyped-def]
    return Involvement.objects.get(
        person=scenario.ava, practitioner__user=scenario.social_worker, end_date__isnull=True
    )


def _mash(scenario) -> Practitioner:  # type: ignore[no-untyped-def]
    return Practitioner.objects.get(user=scenario.mash_worker)


def test_a_lead_professional_cannot_leave_without_a_successor(world, scenario) -> None:
    """The page refuses, naming the child, and nothing changes: still active, still lead."""
    admin = client_for(world, scenario.admin)
    lead = _in(world, lambda: _lead_of_ava(scenario))
    response = admin.post(f"/admin/users/{scenario.social_worker.pk}/deactivate/", {})
    assert response.status_code == 200
    assert "is the lead professional for Ava O&#x27;Brien-Smith: choose who takes over" in (
        response.content.decode()
    )

    def unchanged() -> None:
        scenario.social_worker.refresh_from_db()
        assert scenario.social_worker.is_active and scenario.social_worker.has_usable_password()
        lead.refresh_from_db()
        assert lead.is_current and lead.lead_professional
        assert not AuditEvent.objects.filter(action="user_deactivated").exists()

    _in(world, unchanged)


def test_a_leaver_hands_over_and_is_signed_out_at_once(world, scenario) -> None:
    """The lead goes to a colleague, the other involvement ends, the team hears of it, and
    the leaver's session and API token are refused on the very next request."""
    leaver = client_for(world, scenario.social_worker)
    token = leaver.post("/api/v1/tokens/").json()["token"]
    system = Client(HTTP_HOST=host_of(world.brighton), HTTP_AUTHORIZATION=f"Bearer {token}")
    assert system.get(f"/api/v1/people/{scenario.ava.pk}").status_code == 200
    assert leaver.get("/").status_code == 200

    def deactivate() -> dict[str, object]:
        lead = _lead_of_ava(scenario)
        zed = Involvement.objects.get(
            person=scenario.zed, practitioner__user=scenario.social_worker
        )
        staff_deactivate(
            actor=scenario.admin,
            user=scenario.social_worker,
            successors={lead.pk: _mash(scenario), zed.pk: None},
        )
        lead.refresh_from_db()
        zed.refresh_from_db()
        return {"lead": lead, "zed": zed}

    from accounts.factors import recovery_codes_issue

    _in(world, lambda: recovery_codes_issue(user=scenario.social_worker))
    done = _in(world, deactivate)
    assert leaver.get("/").status_code == 302
    assert leaver.get("/")["Location"].startswith("/sign-in/")
    assert system.get(f"/api/v1/people/{scenario.ava.pk}").status_code == 401

    def check() -> None:
        assert done["lead"].end_reason == Involvement.EndReason.TRANSFERRED
        assert done["zed"].end_reason == Involvement.EndReason.LEFT_ROLE
        new_lead = Involvement.objects.get(person=scenario.ava, lead_professional=True)
        assert new_lead.practitioner.user == scenario.mash_worker and new_lead.is_current
        told = Notification.objects.get(recipient=scenario.school_nurse, kind="lead_changed")
        assert "takes over as Child protection social worker and lead professional" in told.text
        assert not Notification.objects.filter(recipient=scenario.social_worker).exists()
        user = User.objects.get(pk=scenario.social_worker.pk)
        assert not user.is_active and not user.has_usable_password()
        assert list(devices_for_user(user, confirmed=None)) == []  # recovery codes gone too
        assert not any(
            s.get_decoded().get("_auth_user_id") == str(user.pk) for s in Session.objects.all()
        )
        event = AuditEvent.objects.get(action="user_deactivated")
        assert event.actor_id == scenario.admin.pk and event.detail["user_id"] == user.pk

    _in(world, check)
    # Signing in again is refused, in the same words as any wrong password.
    again = Client(HTTP_HOST=world.brighton_social_worker.host)
    response = again.post(
        "/sign-in/",
        {
            "email": world.brighton_social_worker.email,
            "password": world.brighton_social_worker.password,
        },
    )
    assert b"The email address or password is not right" in response.content


def test_a_manager_switches_off_their_own_staff_only(world, scenario) -> None:
    """A manager at the school deactivates a teacher there, but cannot even see the social
    worker's page; a practitioner reaches none of it."""

    def manager() -> User:
        practitioner = PractitionerFactory(organisation=scenario.school, job_title="Head")
        practitioner.user.role = User.Role.MANAGER
        practitioner.user.save()
        return practitioner.user

    boss = client_for(world, _in(world, manager))
    assert boss.get(f"/admin/users/{scenario.social_worker.pk}/deactivate/").status_code == 404
    assert boss.get(f"/admin/users/{scenario.teacher.pk}/").status_code == 200
    response = boss.post(f"/admin/users/{scenario.teacher.pk}/deactivate/", {})
    assert response.status_code == 302
    assert not _in(world, lambda: User.objects.get(pk=scenario.teacher.pk).is_active)
    nurse = client_for(world, scenario.school_nurse)
    assert nurse.get(f"/admin/users/{scenario.teacher.pk}/").status_code == 403


def test_an_administrator_cannot_switch_off_their_own_account(world, scenario) -> None:
    admin = client_for(world, scenario.admin)
    assert admin.get(f"/admin/users/{scenario.admin.pk}/deactivate/").status_code == 404


def test_a_mover_keeps_their_history(world, scenario) -> None:
    """The school nurse moves to a GP practice: her involvement with Ava ends as history,
    still with the school on it; her profile names the practice."""

    def move() -> tuple[Involvement, Practitioner, Organisation]:
        practice = OrganisationFactory(name="Hove Medical Centre", agency_type="gp")
        involvement = Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        )
        practitioner_move(
            actor=scenario.admin,
            user=scenario.school_nurse,
            organisation=practice,
            job_title="Practice nurse",
            successors={involvement.pk: None},
        )
        involvement.refresh_from_db()
        return involvement, Practitioner.objects.get(user=scenario.school_nurse), practice

    involvement, practitioner, practice = _in(world, move)
    assert not involvement.is_current
    assert involvement.organisation_id == scenario.school.pk
    assert practitioner.organisation_id == practice.pk
    assert practitioner.job_title == "Practice nurse"
    assert _in(world, lambda: AuditEvent.objects.filter(action="practitioner_moved").count()) == 1


@pytest.mark.parametrize("who", ["sensitive", "self"])
def test_a_successor_who_cannot_lead_is_refused(world, scenario, who) -> None:
    """A lead handed to the sensitive service, or to the leaver themself, is refused."""

    def attempt() -> str:
        lead = _lead_of_ava(scenario)
        successor = (
            Practitioner.objects.get(user=scenario.camhs_colleague)
            if who == "sensitive"
            else Practitioner.objects.get(user=scenario.social_worker)
        )
        try:
            staff_deactivate(
                actor=scenario.admin, user=scenario.social_worker, successors={lead.pk: successor}
            )
        except Exception as exc:  # noqa: BLE001
            return " ".join(getattr(exc, "messages", [str(exc)]))
        return "accepted"

    message = _in(world, attempt)
    assert message != "accepted"
    assert ("sensitive" in message) if who == "sensitive" else ("other than" in message)
    assert _in(world, lambda: User.objects.get(pk=scenario.social_worker.pk).is_active)


def test_the_move_page_hands_over_and_refuses_a_bad_choice(world, scenario) -> None:
    """Through the page: no organisation chosen is refused in plain words and changes
    nothing; then the lead social worker moves, handing the lead to the MASH worker."""
    admin = client_for(world, scenario.admin)
    path = f"/admin/users/{scenario.social_worker.pk}/move/"
    assert admin.get(path).status_code == 200
    refused = admin.post(path, {"job_title": "Team manager"})
    assert b"Choose the organisation they move to" in refused.content
    lead = _in(world, lambda: _lead_of_ava(scenario))
    zed = _in(
        world,
        lambda: Involvement.objects.get(
            person=scenario.zed, practitioner__user=scenario.social_worker
        ),
    )
    no_lead = admin.post(path, {"organisation": scenario.school.pk, "job_title": "Teacher"})
    assert b"choose who takes over" in no_lead.content
    moved = admin.post(
        path,
        {
            "organisation": scenario.school.pk,
            "job_title": "Designated safeguarding lead",
            f"successor_{lead.pk}": _in(world, lambda: _mash(scenario).pk),
            f"successor_{zed.pk}": "",
        },
    )
    assert moved.status_code == 302

    def check() -> None:
        practitioner = Practitioner.objects.get(user=scenario.social_worker)
        assert practitioner.organisation == scenario.school
        new_lead = Involvement.objects.get(person=scenario.ava, lead_professional=True)
        assert new_lead.practitioner.user == scenario.mash_worker
        assert User.objects.get(pk=scenario.social_worker.pk).is_active

    _in(world, check)


def test_the_successors_offered_are_colleagues_and_the_childs_visible_team(world, scenario) -> None:
    """For Ava's lead: the social worker's colleague and Ava's school nurse; not the
    sensitive service on her team, not a teacher who has nothing to do with her."""
    from core.leavers import successors_for

    def offered() -> set[int]:
        lead = _lead_of_ava(scenario)
        found = successors_for(scenario.admin, scenario.social_worker, [lead])[lead.pk]
        return {p.user_id for p in found}

    users = _in(world, offered)
    assert scenario.mash_worker.pk in users and scenario.school_nurse.pk in users
    assert scenario.camhs_worker.pk not in users and scenario.teacher.pk not in users
    assert scenario.social_worker.pk not in users
