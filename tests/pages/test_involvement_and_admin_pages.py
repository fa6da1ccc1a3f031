"""Adding, confirming, updating and ending involvements; my pages; the council's admin
pages and the audit export. Each with its "cannot reach it" case."""

from __future__ import annotations

import csv
import io

import pytest
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import AuditEvent, Involvement, InvolvementRole, Notification, Practitioner
from tests.factories import PractitionerFactory, RoleFactory, UserFactory
from tests.personas import client_for


def _in(world, fn):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return fn()


def _open_ava(client, scenario) -> None:  # type: ignore[no-untyped-def]
    client.post("/search/", {"nhs_number": "9434765919"})
    client.post(
        f"/people/{scenario.ava.pk}/",
        {"reason": "starting_work", "note": "I start supporting Ava in class next week."},
    )


def test_an_outsider_adds_their_involvement_after_stating_a_reason(world, scenario) -> None:
    """The teacher joins Ava's team; the team is told."""
    client = client_for(world, scenario.teacher)
    url = f"/people/{scenario.ava.pk}/involvements/new/"
    assert client.get(url).status_code == 404  # not found by search yet
    _open_ava(client, scenario)
    role = _in(world, lambda: RoleFactory(name="Class teacher"))
    form = client.get(url).content.decode()
    assert 'name="sensitive"' in form and "Class teacher" in form
    done = client.post(url, {"role": role.pk, "legal_basis": "public_task"})
    assert done.status_code == 302
    assert _in(
        world,
        lambda: Involvement.objects.filter(
            person=scenario.ava, practitioner__user=scenario.teacher, role=role, sensitive=False
        ).exists(),
    )
    assert _in(
        world,
        lambda: Notification.objects.filter(
            recipient=scenario.school_nurse, kind="team_joined"
        ).exists(),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"legal_basis": "public_task"}, "Choose your role from the list"),
        (
            {"role": "LEAD", "legal_basis": "public_task", "lead_professional": "on"},
            "already the lead",
        ),
        (
            {"role": "CP", "legal_basis": "public_task", "sensitive": "on"},
            "cannot be marked sensitive",
        ),
        (
            {
                "role": "LEAD",
                "legal_basis": "public_task",
                "start_date_day": "1",
                "start_date_month": "1",
                "start_date_year": "2099",
            },
            "Start date must be today or in the past",
        ),
    ],
)
def test_bad_involvements_are_refused_and_change_nothing(world, scenario, data, message) -> None:
    """Errors re-render the form with a message; no involvement is added."""
    client = client_for(world, scenario.teacher)
    _open_ava(client, scenario)
    roles = _in(
        world,
        lambda: {
            "LEAD": RoleFactory(name="Class teacher").pk,
            "CP": InvolvementRole.objects.get(child_protection=True).pk,
        },
    )
    data = {k: roles.get(v, v) if k == "role" else v for k, v in data.items()}
    before = _in(world, Involvement.objects.count)
    page = client.post(f"/people/{scenario.ava.pk}/involvements/new/", data)
    assert page.status_code == 200
    assert b"There is a problem" in page.content and message.encode() in page.content
    assert _in(world, Involvement.objects.count) == before


def test_a_practitioner_confirms_updates_and_ends_their_involvement(world, scenario) -> None:
    """The school nurse's own involvement, from confirming to ending with a reason."""
    involvement = _in(
        world,
        lambda: Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        ),
    )
    client = client_for(world, scenario.school_nurse)
    base = f"/involvements/{involvement.pk}/"
    assert b"Confirm I am still involved" in client.get(base).content
    assert client.post(base + "confirm/").status_code == 302
    future = {
        "last_contact_date_day": "1",
        "last_contact_date_month": "1",
        "last_contact_date_year": "2099",
    }
    assert b"must be today or in the past" in client.post(base + "update/", future).content
    early = {
        "last_contact_date_day": "1",
        "last_contact_date_month": "1",
        "last_contact_date_year": "2001",
    }
    assert b"before the involvement started" in client.post(base + "update/", early).content
    assert client.post(base + "end/", {}).status_code == 200
    assert client.post(base + "end/", {"end_reason": "case_closed"}).status_code == 302
    ended = _in(world, lambda: Involvement.objects.get(pk=involvement.pk))
    assert ended.end_date is not None and ended.end_reason == "case_closed"
    assert ended.last_confirmed_at is not None and ended.last_contact_date is None
    page = client.get("/my/involvements/").content.decode()
    assert "Ended" in page and "Work finished" in page


@pytest.mark.parametrize("path", ["", "update/", "end/"])
def test_someone_elses_involvement_is_not_found(world, scenario, path) -> None:
    """The teacher cannot reach the school nurse's involvement, even though they share an
    organisation, and a POST changes nothing."""
    involvement = _in(
        world,
        lambda: Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        ),
    )
    client = client_for(world, scenario.teacher)
    assert client.get(f"/involvements/{involvement.pk}/{path}").status_code == 404
    assert client.post(f"/involvements/{involvement.pk}/confirm/").status_code == 404
    assert (
        client.post(
            f"/involvements/{involvement.pk}/end/", {"end_reason": "case_closed"}
        ).status_code
        == 404
    )
    assert _in(world, lambda: Involvement.objects.get(pk=involvement.pk).end_date) is None


def test_a_manager_acts_for_their_staff(world, scenario) -> None:
    """A school manager ends a member of staff's involvement and sees it among their staff's."""
    manager = _in(
        world,
        lambda: (
            PractitionerFactory(
                user=UserFactory(role=User.Role.MANAGER),
                organisation=scenario.school,
                job_title="Head",
            ).user
        ),
    )
    involvement = _in(
        world,
        lambda: Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        ),
    )
    client = client_for(world, manager)
    assert scenario.school_nurse.full_name.encode() in client.get("/my/involvements/").content
    done = client.post(f"/involvements/{involvement.pk}/end/", {"end_reason": "left_role"})
    assert done.status_code == 302
    assert _in(world, lambda: Involvement.objects.get(pk=involvement.pk).end_reason) == "left_role"


def test_the_profile_is_saved_and_a_bad_one_changes_nothing(world, scenario) -> None:
    """Job title is required; the council's child-protection flag is kept as it was."""
    client = client_for(world, scenario.social_worker)
    organisation = _in(world, lambda: scenario.social_worker.practitioner.organisation_id)
    bad = client.post("/my/profile/", {"organisation": organisation, "job_title": ""})
    assert b"Enter a job title" in bad.content
    good = client.post(
        "/my/profile/",
        {
            "organisation": organisation,
            "job_title": "Senior social worker",
            "work_phone": "01273 1",
        },
    )
    assert good.status_code == 302
    saved = _in(world, lambda: Practitioner.objects.get(user=scenario.social_worker))
    assert saved.job_title == "Senior social worker" and saved.child_protection


def test_home_and_notifications_show_what_is_new(world, scenario) -> None:
    """The unread count on the home page; the list marks them read."""
    _in(
        world,
        lambda: Notification.objects.create(
            recipient=scenario.social_worker,
            person=scenario.ava,
            kind="team_joined",
            text="Someone joined the team",
        ),
    )
    client = client_for(world, scenario.social_worker)
    home = client.get("/").content.decode()
    assert "1 unread notification" in home and scenario.ava.full_name.replace("'", "&#x27;") in home
    assert "Someone joined the team" in client.get("/my/notifications/").content.decode()
    assert "0 unread notifications" in client.get("/").content.decode()


def test_a_practitioner_without_a_profile_is_asked_for_one_before_searching(
    world, scenario
) -> None:
    """Search needs to know where someone works."""
    newcomer = _in(world, lambda: UserFactory())
    client = client_for(world, newcomer)
    page = client.get("/search/")
    assert page.status_code == 302 and page["Location"] == "/my/profile/"


def test_an_administrator_adds_a_role_and_a_duplicate_is_refused(world, scenario) -> None:
    """Roles are added (and audited); the same name twice is refused with a message."""
    client = client_for(world, scenario.admin)
    assert client.post("/admin/roles/", {"name": "Youth worker"}).status_code == 302
    again = client.post("/admin/roles/", {"name": "youth  worker"})
    assert b"already on the list of roles" in again.content
    assert (
        _in(world, lambda: InvolvementRole.objects.filter(name__iexact="youth worker").count()) == 1
    )
    assert _in(world, lambda: AuditEvent.objects.filter(action="role_created").count()) == 1


def test_the_audit_log_export_is_a_csv_and_is_itself_audited(world, scenario) -> None:
    """Every event, oldest first, with its hashes; the export is recorded."""
    client = client_for(world, scenario.admin)
    response = client.get("/admin/audit/export.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["id", "at", "actor_id", "actor_email", "action"]
    assert len(rows) > 1 and [int(r[0]) for r in rows[1:]] == sorted(int(r[0]) for r in rows[1:])
    exported = _in(world, lambda: AuditEvent.objects.filter(action="audit_exported").get())
    assert exported.actor_email == scenario.admin.email
    assert rows[-1][0] == str(exported.pk) and rows[-1][4] == "audit_exported"


@pytest.mark.parametrize(
    "path", ["/admin/roles/", "/admin/audit/", "/admin/audit/export.csv", "/admin/users/"]
)
def test_practitioners_cannot_reach_the_admin_pages(world, scenario, path) -> None:
    """A practitioner gets 403, and no export is recorded."""
    client = client_for(world, scenario.social_worker)
    assert client.get(path).status_code == 403
    assert not _in(world, lambda: AuditEvent.objects.filter(action="audit_exported").exists())


def test_the_header_shows_each_role_its_own_links(world, scenario) -> None:
    """Practitioners see Search and My involvements; administrators see the admin pages."""
    practitioner = client_for(world, scenario.school_nurse).get("/").content.decode()
    admin = client_for(world, scenario.admin).get("/").content.decode()
    assert 'href="/search/"' in practitioner and 'href="/admin/roles/"' not in practitioner
    assert 'href="/admin/roles/"' in admin and 'href="/search/"' not in admin
