"""Lockout warnings, unlocking, second-factor resets and recovery codes (decision 0019),
through the real pages at a council's host and at the operator console."""

from __future__ import annotations

import copy
import secrets

import pytest
from axes.models import AccessAttempt
from django.test import Client, override_settings
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.factors import recovery_codes_issue
from accounts.models import SecondFactorReset, User
from core.delivery.email import email_deliver
from core.models import AuditEvent, EmailOutbox
from tenants.models import Council, PlatformAuditEvent
from tenants.platform_audit import platform_audit_verify
from tests.personas import Persona, World, make_persona, sign_in
from tests.teamwork.conftest import FlakySmtp, flaky_smtp  # noqa: F401  (the suite's SMTP server)

WRONG = "not the password at all"


def _someone(council: Council | None, role: str = User.Role.PRACTITIONER) -> Persona:
    """A new person with a password and an authenticator app, under a fresh address (the
    rate-limit counters in Redis outlive the test's transaction)."""
    tag = secrets.token_hex(4)
    domain = "platform.test" if council is None else "council.test"
    return make_persona(council, f"pat-{tag}@{domain}", f"Pat Example {tag}", role)


def _user(persona: Persona) -> User:
    with schema_context(persona.schema_name):
        return User.objects.get(email=persona.email)


def _lock(persona: Persona, limit: int = 5) -> Client:
    client = Client(HTTP_HOST=persona.host)
    for _ in range(limit):
        client.post("/sign-in/", {"email": persona.email, "password": WRONG})
    return client


def _recovery_codes(persona: Persona) -> list[str]:
    with schema_context(persona.schema_name):
        return recovery_codes_issue(user=User.objects.get(email=persona.email))


def _actions(persona: Persona) -> list[str]:
    with schema_context(persona.schema_name):
        events = AuditEvent.objects.filter(detail__user_email=persona.email).order_by("id")
        return list(events.values_list("action", flat=True))


def test_it_warns_before_the_last_attempt_and_says_how_long_a_lockout_lasts(world, db) -> None:
    """The fourth wrong password of five warns; the fifth locks, naming the time left."""
    persona = _someone(world.brighton)
    client = Client(HTTP_HOST=persona.host)
    for _ in range(3):
        page = client.post("/sign-in/", {"email": persona.email, "password": WRONG})
        assert b"more attempt" not in page.content
    page = client.post("/sign-in/", {"email": persona.email, "password": WRONG})
    assert (
        "You have 1 more attempt before your account is locked for 30 minutes."
        in page.content.decode()
    )
    page = client.post("/sign-in/", {"email": persona.email, "password": WRONG})
    assert page.status_code == 429
    assert "Try again in 30 minutes" in page.content.decode()


@override_settings(RATE_LIMIT_SIGN_IN_ACCOUNT="3/15m")
def test_the_warning_names_the_rate_limit_when_it_comes_first(world, db) -> None:
    """With fewer attempts allowed by the account's rate limit than by the lockout, the
    warning says how long the wait would be, not that the account would lock."""
    persona = _someone(world.brighton)
    client = Client(HTTP_HOST=persona.host)
    client.post("/sign-in/", {"email": persona.email, "password": WRONG})
    page = client.post("/sign-in/", {"email": persona.email, "password": WRONG})
    assert "You have 1 more attempt before you must wait 15 minutes" in page.content.decode()


def test_a_wrong_code_warns_before_the_last_attempt_too(world, db) -> None:
    """Wrong codes count towards the same lockout, and warn the same way."""
    persona = _someone(world.brighton)
    client = Client(HTTP_HOST=persona.host)
    client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    wrong = "000000" if persona.code() != "000000" else "111111"
    pages = [client.post("/sign-in/code/", {"code": wrong}) for _ in range(4)]
    assert b"1 more attempt" not in pages[2].content
    assert b"1 more attempt before your account is locked" in pages[3].content


def test_a_recovery_code_signs_in_once_and_the_count_left_is_shown(world, db) -> None:
    """A recovery code replaces the authenticator's code once; the second time it is refused."""
    persona = _someone(world.brighton)
    codes = _recovery_codes(persona)
    assert len(codes) == 10
    client = Client(HTTP_HOST=persona.host)
    client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    signed_in = client.post("/sign-in/recovery-code/", {"code": codes[0].upper()})
    assert signed_in.status_code == 302
    assert client.get("/").status_code == 200
    assert "You have 9 recovery codes left" in client.get("/my/recovery-codes/").content.decode()

    again = Client(HTTP_HOST=persona.host)
    again.post("/sign-in/", {"email": persona.email, "password": persona.password})
    refused = again.post("/sign-in/recovery-code/", {"code": codes[0]})
    assert refused.status_code == 200
    assert b"That recovery code is not right, or it has been used" in refused.content
    assert again.get("/").status_code == 302
    assert _actions(persona) == ["recovery_codes_issued", "recovery_code_used"]


def test_new_recovery_codes_replace_the_old_ones(world, db) -> None:
    """Regenerating shows ten new codes once; an old code then no longer signs in."""
    persona = _someone(world.brighton)
    old = _recovery_codes(persona)
    client = sign_in(persona)
    page = client.post("/my/recovery-codes/")
    assert page.status_code == 200
    assert len(page.context["codes"]) == 10
    retry = Client(HTTP_HOST=persona.host)
    retry.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert retry.post("/sign-in/recovery-code/", {"code": old[1]}).status_code == 200
    assert retry.get("/").status_code == 302


def test_an_admin_unlocks_a_locked_account_and_it_is_in_the_audit_export(world, db) -> None:
    """The locked account is listed; Unlock lets its owner sign in at once; the export says so."""
    persona = _someone(world.brighton)
    _lock(persona)
    admin = sign_in(world.brighton_admin)
    listed = admin.get("/admin/locked-accounts/")
    assert persona.email in listed.content.decode()
    user = _user(persona)
    response = admin.post(f"/admin/locked-accounts/{user.pk}/unlock/")
    assert response.status_code == 302
    assert persona.email not in admin.get("/admin/locked-accounts/").content.decode()
    assert sign_in(persona).get("/").status_code == 200
    assert _actions(persona) == ["account_locked", "account_unlocked"]
    export = b"".join(admin.get("/admin/audit/export.csv").streaming_content).decode()
    assert "account_unlocked" in export
    assert persona.email in export


def test_unlocking_an_account_that_is_not_locked_changes_nothing(world, db) -> None:
    """A clear message, and no audit event."""
    persona = _someone(world.brighton)
    admin = sign_in(world.brighton_admin)
    page = admin.post(f"/admin/locked-accounts/{_user(persona).pk}/unlock/", follow=True)
    assert "account is not locked" in page.content.decode()
    assert _actions(persona) == []


def test_only_administrators_reach_the_account_pages(world, db) -> None:
    """A practitioner is refused the locked accounts and second factors pages."""
    client = sign_in(_someone(world.brighton))
    assert client.get("/admin/locked-accounts/").status_code == 403
    assert client.get("/admin/second-factors/").status_code == 403


@pytest.mark.parametrize("direction", ["brighton to staffordshire", "staffordshire to brighton"])
def test_an_admin_of_one_council_cannot_unlock_or_reset_at_another(world, db, direction) -> None:
    """An administrator signed in at their own council neither reaches the other council's
    pages (nor the operator console's) with their session, nor touches the other council's
    account by its id from their own host."""
    own, other = (world.brighton, world.staffordshire)
    if direction.startswith("staffordshire"):
        own, other = other, own
    staffs = _someone(other)
    _lock(staffs)
    staffs_user = _user(staffs)
    admin = sign_in(_someone(own, User.Role.COUNCIL_ADMIN))
    console = Client(HTTP_HOST=world.operator.host)
    console.cookies = copy.deepcopy(admin.cookies)
    assert console.get("/admin/locked-accounts/")["Location"].startswith("/sign-in/")
    other_host = Client(HTTP_HOST=staffs.host)
    other_host.cookies = copy.deepcopy(admin.cookies)  # the same session cookie, elsewhere
    for path in (
        f"/admin/locked-accounts/{staffs_user.pk}/unlock/",
        f"/admin/second-factors/{staffs_user.pk}/reset/",
    ):
        refused = other_host.post(path)
        assert refused.status_code == 302
        assert refused["Location"].startswith("/sign-in/")
    with schema_context(own.schema_name):
        brighton_ids = set(User.objects.values_list("pk", flat=True))
    missing = max(brighton_ids | {staffs_user.pk}) + 1000
    assert admin.post(f"/admin/locked-accounts/{missing}/unlock/").status_code == 404
    assert admin.post(f"/admin/second-factors/{missing}/reset/").status_code == 404
    with schema_context(other.schema_name):
        assert AccessAttempt.objects.filter(username=staffs.email).exists()
        assert TOTPDevice.objects.filter(user__email=staffs.email, confirmed=True).exists()
        assert not SecondFactorReset.objects.exists()


def test_an_admin_resets_a_second_factor_and_the_practitioner_enrols_again(
    world,
    db,
    flaky_smtp: FlakySmtp,  # noqa: F811
) -> None:
    """The old device stops working at once, the practitioner is emailed through the outbox
    (sent to a real SMTP server), sets up a new authenticator after their password, gets
    new recovery codes, and every step is in the council's audit log."""
    persona = _someone(world.brighton)
    _recovery_codes(persona)
    session = sign_in(persona)
    admin = sign_in(world.brighton_admin)
    user = _user(persona)
    confirm = admin.get(f"/admin/second-factors/{user.pk}/reset/")
    assert b"Reset authenticator app" in confirm.content
    assert admin.post(f"/admin/second-factors/{user.pk}/reset/").status_code == 302
    assert session.get("/").status_code == 302  # the old session is no longer verified
    with schema_context(persona.schema_name):
        email = EmailOutbox.objects.get(to_email=persona.email)
        assert not TOTPDevice.objects.filter(user=user).exists()
        assert not StaticToken.objects.filter(device__user=user).exists()
        assert email_deliver(outbox_id=email.pk) == "sent"
    (received,) = flaky_smtp.received
    assert persona.email.encode() in received
    assert b"reset the authenticator app" in received

    client = Client(HTTP_HOST=persona.host)
    response = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert response["Location"] == "/sign-in/new-authenticator/"
    page = client.get("/sign-in/new-authenticator/")
    assert b"Set up your authenticator app again" in page.content
    with schema_context(persona.schema_name):
        device = TOTPDevice.objects.get(user=user, confirmed=False)
    new_persona = Persona(persona.email, persona.schema_name, persona.host, device.key)
    wrong = "000000" if new_persona.code() != "000000" else "111111"
    assert (
        b"The code is not right"
        in client.post("/sign-in/new-authenticator/", {"code": wrong}).content
    )
    done = client.post("/sign-in/new-authenticator/", {"code": new_persona.code()})
    assert len(done.context["codes"]) == 10
    assert client.get("/").status_code == 200
    assert _actions(persona) == [
        "recovery_codes_issued",
        "second_factor_reset",
        "second_factor_enrolled",
        "recovery_codes_issued",
    ]
    # The way in after a reset works once: a second sign-in asks for the new app's code.
    later = Client(HTTP_HOST=persona.host)
    response = later.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert response["Location"] == "/sign-in/code/"


def test_an_admin_cannot_reset_their_own_second_factor(world, db) -> None:
    """Refused with a message, nothing changed."""
    admin_persona = _someone(world.brighton, User.Role.COUNCIL_ADMIN)
    admin = sign_in(admin_persona)
    page = admin.post(f"/admin/second-factors/{_user(admin_persona).pk}/reset/", follow=True)
    assert "You cannot reset your own second factor" in page.content.decode()
    with schema_context(admin_persona.schema_name):
        assert TOTPDevice.objects.filter(user__email=admin_persona.email).exists()


def test_an_operator_resets_and_unlocks_another_operator_on_the_console(
    world: World,
    db: None,
    django_capture_on_commit_callbacks,
    flaky_smtp: FlakySmtp,  # noqa: F811
) -> None:
    """On the operator console: the same pages, the platform's audit log, a direct email."""
    colleague = _someone(None, User.Role.OPERATOR)
    _lock(colleague)
    operator = sign_in(_someone(None, User.Role.OPERATOR))
    assert colleague.email in operator.get("/admin/locked-accounts/").content.decode()
    user = _user(colleague)
    operator.post(f"/admin/locked-accounts/{user.pk}/unlock/")
    with django_capture_on_commit_callbacks(execute=True):
        assert operator.post(f"/admin/second-factors/{user.pk}/reset/").status_code == 302
    (received,) = flaky_smtp.received
    assert colleague.email.encode() in received
    assert b"reset the authenticator app" in received
    events = list(
        PlatformAuditEvent.objects.filter(detail__user_email=colleague.email).values_list(
            "action", flat=True
        )
    )
    assert events == ["account_locked", "account_unlocked", "second_factor_reset"]
    assert platform_audit_verify() is None
    response = Client(HTTP_HOST=colleague.host).post(
        "/sign-in/", {"email": colleague.email, "password": colleague.password}
    )
    assert response["Location"] == "/sign-in/new-authenticator/"


def test_the_platform_audit_log_refuses_changes(world, db) -> None:
    """Append-only in the database, as a council's log is."""
    from django.db import DatabaseError, transaction

    operator = _someone(None, User.Role.OPERATOR)
    colleague = _someone(None, User.Role.OPERATOR)
    client = sign_in(operator)
    client.post(f"/admin/second-factors/{_user(colleague).pk}/reset/")
    with pytest.raises(DatabaseError), transaction.atomic():
        PlatformAuditEvent.objects.update(action="nothing")
