"""Invitations by email (issue 13, point 1): each link is emailed through the outbox,
works once, expires, can be resent (the old link then stops working) or revoked; a
spreadsheet invites many at once with a report per row; someone who left is invited back
to the same account; and a council's link opens nothing at another council."""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import Invitation, User
from core.invitations import invitation_resend, invitation_revoke, staff_invite
from core.leavers import staff_deactivate
from core.models import AuditEvent, EmailOutbox, Involvement, Practitioner
from tests.personas import client_for

NEW_PASSWORD = "marmalade lighthouse quietly"


def _in(world, work):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return work()


def _emailed_path(world, email: str) -> str:  # type: ignore[no-untyped-def]
    """The invitation link of the newest email queued to `email`, as a path."""

    def newest() -> str:
        row = EmailOutbox.objects.filter(to_email=email, kind="invitation").latest("created_at")
        return row.body

    body = _in(world, newest)
    return re.search(r"https?://[^/\s]+(/invitation/[^/\s]+/)", body).group(1)  # type: ignore[union-attr]


def _accept(world, path: str, email: str) -> Client:  # type: ignore[no-untyped-def]
    client = Client(HTTP_HOST=world.brighton_admin.host)
    assert client.get(path).status_code == 200  # makes the authenticator to enrol

    def code() -> str:
        device = TOTPDevice.objects.get(user__email=email, confirmed=False)
        return f"{TOTP(device.bin_key).token():06d}"

    response = client.post(
        path,
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD, "code": _in(world, code)},
    )
    assert b"Your account is ready" in response.content, response.content
    return client


CSV = (
    "Name,Email,Organisation,Role,Job title\n"
    "Tia Teacher,tia.teacher@brighton.test,Hove Park School,Practitioner,Teacher\n"
    "Bad Email,not-an-email,Hove Park School,Practitioner,Teacher\n"
    "Nowhere Nell,nell@brighton.test,Atlantis Academy,Practitioner,Teacher\n"
    "Rory Role,rory@brighton.test,Hove Park School,Wizard,Teacher\n"
    "Otto Operator,otto@brighton.test,,Platform operator,\n"
    "Tia Twice,TIA.TEACHER@brighton.test,Hove Park School,Practitioner,Teacher\n"
    "Sam Again,sam.social@brighton.test,Hove Park School,Practitioner,Teacher\n"
    "Mo Manager,mo.manager@brighton.test,hove park school,manager,Head of year\n"
    ",nameless@brighton.test,Hove Park School,Practitioner,Teacher\n"
    "Jo Jobless,jo@brighton.test,Hove Park School,Practitioner,\n"
)


def test_a_spreadsheet_invites_the_good_rows_and_reports_the_bad(world, scenario) -> None:
    """Two rows are invited and emailed; each bad row says why, in plain words, and
    leaves no account, profile or email behind."""
    admin = client_for(world, scenario.admin)
    upload = SimpleUploadedFile("people.csv", ("\ufeff" + CSV).encode(), "text/csv")
    response = admin.post("/admin/users/invite-file/", {"file": upload})
    assert response.status_code == 200
    report = {row.line: row for row in response.context["report"]}
    assert [report[n].outcome for n in sorted(report)] == [
        "invited", "refused", "refused", "refused", "refused", "refused", "refused",
        "invited", "refused", "refused",
    ]  # fmt: skip
    assert "email address like" in report[3].reason
    assert 'No open organisation is called "Atlantis Academy"' in report[4].reason
    assert '"Wizard" is not a role here' in report[5].reason
    assert '"Platform operator" is not a role here' in report[6].reason
    assert "on an earlier row of this file" in report[7].reason
    assert "already has an account here" in report[8].reason
    assert "full name" in report[10].reason
    assert "job title" in report[11].reason
    assert b"2 invited by email, 8 not invited" in response.content

    def check() -> None:
        for invited in ["tia.teacher@brighton.test", "mo.manager@brighton.test"]:
            assert not User.objects.get(email=invited).has_usable_password()
        for refused in ["nell@brighton.test", "rory@brighton.test", "otto@brighton.test"]:
            assert not User.objects.filter(email=refused).exists()
            assert not EmailOutbox.objects.filter(to_email=refused).exists()
        assert not User.objects.filter(email__in=["nameless@brighton.test", "jo@brighton.test"])
        mo = Practitioner.objects.get(user__email="mo.manager@brighton.test")
        assert mo.organisation == scenario.school and mo.user.role == User.Role.MANAGER
        assert EmailOutbox.objects.filter(to_email="tia.teacher@brighton.test").count() == 1
        summary = AuditEvent.objects.get(action="users_invited_from_file")
        assert summary.detail == {"rows": 10, "invited": 2, "refused": 8}
        assert AuditEvent.objects.filter(action="user_invited").count() == 2

    _in(world, check)
    _accept(world, _emailed_path(world, "tia.teacher@brighton.test"), "tia.teacher@brighton.test")


def test_a_file_that_cannot_be_read_invites_no_one(world, scenario) -> None:
    """Missing columns, or a file not in UTF-8, is refused whole, saying what to do."""
    admin = client_for(world, scenario.admin)
    wrong = SimpleUploadedFile("x.csv", b"Name,Email\nA,a@brighton.test\n", "text/csv")
    response = admin.post("/admin/users/invite-file/", {"file": wrong})
    assert b"Missing: organisation, role, job title" in response.content
    latin = SimpleUploadedFile("x.csv", "Name,Email\nZo\xeb,z@b.test\n".encode("latin-1"))
    response = admin.post("/admin/users/invite-file/", {"file": latin})
    assert b"CSV UTF-8" in response.content
    assert not _in(world, lambda: EmailOutbox.objects.filter(kind="invitation").exists())


def test_expired_revoked_and_used_links_open_nothing(world, scenario) -> None:
    """A link works once; an expired, revoked or replaced one opens the "does not work"
    page, and sets nothing up."""

    def invite(email: str) -> str:
        return staff_invite(
            actor=scenario.admin, full_name=email.split("@")[0], email=email, role="practitioner"
        ).token

    expired = _in(world, lambda: invite("exp@brighton.test"))
    _in(
        world,
        lambda: Invitation.objects.filter(user__email="exp@brighton.test").update(
            expires_at=timezone.now() - timedelta(minutes=1)
        ),
    )
    revoked = _in(world, lambda: invite("rev@brighton.test"))
    _in(
        world,
        lambda: invitation_revoke(
            actor=scenario.admin, user=User.objects.get(email="rev@brighton.test")
        ),
    )
    replaced = _in(world, lambda: invite("rep@brighton.test"))
    _in(
        world,
        lambda: invitation_resend(
            actor=scenario.admin, user=User.objects.get(email="rep@brighton.test")
        ),
    )
    used = _in(world, lambda: invite("use@brighton.test"))
    _accept(world, f"/invitation/{used}/", "use@brighton.test")
    anyone = Client(HTTP_HOST=world.brighton_admin.host)
    for token in [expired, revoked, replaced, used]:
        response = anyone.get(f"/invitation/{token}/")
        assert response.status_code == 404 and b"does not work" in response.content
        refused = anyone.post(
            f"/invitation/{token}/",
            {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD, "code": "123456"},
        )
        assert refused.status_code == 404
    # The resent link (emailed) works, and the state of each shows to the administrator.
    _accept(world, _emailed_path(world, "rep@brighton.test"), "rep@brighton.test")
    page = client_for(world, scenario.admin).get("/admin/invitations/").content.decode()
    for email, state in [
        ("exp@brighton.test", "Invitation expired"),
        ("rev@brighton.test", "Invitation revoked"),
        ("rep@brighton.test", "Active"),
    ]:
        assert re.search(rf"{re.escape(email)}</td>.*?{state}</strong>", page, re.S)
    actions = _in(world, lambda: list(AuditEvent.objects.values_list("action", flat=True)))
    for action in ["invitation_revoked", "invitation_resent", "invitation_accepted"]:
        assert action in actions


def test_someone_who_left_is_invited_back_to_the_same_account(world, scenario) -> None:
    """The school nurse leaves; inviting her address again brings back her account, with
    her ended involvement still on it, and she signs in with a new password."""

    def leave() -> None:
        involvement = Involvement.objects.get(
            person=scenario.ava, practitioner__user=scenario.school_nurse
        )
        staff_deactivate(
            actor=scenario.admin, user=scenario.school_nurse, successors={involvement.pk: None}
        )

    _in(world, leave)
    admin = client_for(world, scenario.admin)
    response = admin.post(
        "/admin/users/",
        {
            "full_name": "Nia Nurse",
            "email": world.brighton_school_nurse.email,
            "role": "practitioner",
        },
    )
    assert b"is invited back" in response.content
    _accept(
        world,
        _emailed_path(world, world.brighton_school_nurse.email),
        world.brighton_school_nurse.email,
    )

    def check() -> None:
        user = User.objects.get(email=world.brighton_school_nurse.email)
        assert user.pk == scenario.school_nurse.pk and user.is_active
        assert user.check_password(NEW_PASSWORD)
        assert Involvement.objects.filter(practitioner__user=user, end_date__isnull=False).exists()
        assert AuditEvent.objects.filter(action="user_reactivation_invited").exists()

    _in(world, check)


def test_an_address_with_an_account_is_refused_and_a_waiting_one_told_to_resend(
    world, scenario
) -> None:
    admin = client_for(world, scenario.admin)
    taken = admin.post(
        "/admin/users/",
        {"full_name": "Sam", "email": world.brighton_social_worker.email, "role": "practitioner"},
    )
    assert b"already has an account here" in taken.content
    data = {"full_name": "Wes Waiting", "email": "wes@brighton.test", "role": "practitioner"}
    admin.post("/admin/users/", data)
    again = admin.post("/admin/users/", data)
    assert b"is already invited: resend the invitation" in again.content


def test_a_brighton_invitation_opens_nothing_at_staffordshire(world, scenario) -> None:
    """The emailed link is Brighton's; its token at Staffordshire's host is unknown there,
    and no account is set up in either council."""
    token = _in(
        world,
        lambda: (
            staff_invite(
                actor=scenario.admin,
                full_name="Iso Later",
                email="iso@brighton.test",
                role="practitioner",
            ).token
        ),
    )
    elsewhere = Client(HTTP_HOST=world.staffordshire_gp.host)
    assert elsewhere.get(f"/invitation/{token}/").status_code == 404
    response = elsewhere.post(
        f"/invitation/{token}/",
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD, "code": "123456"},
    )
    assert response.status_code == 404
    with schema_context(world.staffordshire.schema_name):
        assert not User.objects.filter(email="iso@brighton.test").exists()
    assert not _in(world, lambda: User.objects.get(email="iso@brighton.test").has_usable_password())
    # And the other way: Staffordshire's link opens nothing at Brighton.
    with schema_context(world.staffordshire.schema_name):
        from accounts.services import user_invite

        _, theirs = user_invite(
            email="iso@staffs.test", full_name="Iso Staffs", role="practitioner"
        )
    assert (
        Client(HTTP_HOST=world.brighton_admin.host).get(f"/invitation/{theirs}/").status_code == 404
    )
    assert (
        Client(HTTP_HOST=world.staffordshire_gp.host).get(f"/invitation/{theirs}/").status_code
        == 200
    )
    # The emailed link names Brighton's own host.
    assert world.brighton_admin.host in _in(
        world, lambda: EmailOutbox.objects.get(to_email="iso@brighton.test").body
    )


def test_an_operator_still_accepts_an_invitation_on_the_console(world, db) -> None:
    """The console's users are in the public schema, which has no audit log of its own:
    accepting there is not written to any council's log."""
    from accounts.services import user_invite

    _, token = user_invite(email="new-ops@platform.test", full_name="Nova Ops", role="operator")
    client = Client(HTTP_HOST="localhost")
    assert client.get(f"/invitation/{token}/").status_code == 200
    device = TOTPDevice.objects.get(user__email="new-ops@platform.test")
    response = client.post(
        f"/invitation/{token}/",
        {
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
            "code": f"{TOTP(device.bin_key).token():06d}",
        },
    )
    assert b"Your account is ready" in response.content
