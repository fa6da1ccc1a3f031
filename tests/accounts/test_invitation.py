"""Invitations: a one-time link to choose a password and set up the second factor."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import Invitation, User
from accounts.services import user_invite
from tests.personas import sign_in

NEW_PASSWORD = "marmalade lighthouse quietly"


def _code_for(schema: str, email: str) -> str:
    with schema_context(schema):
        device = TOTPDevice.objects.get(user__email=email)
    return f"{TOTP(device.bin_key).token():06d}"


def test_an_admin_invites_a_practitioner_who_then_signs_in(world, db) -> None:
    """The admin's invite link lets the new person set up and then sign in at that council."""
    admin = sign_in(world.brighton_admin)
    response = admin.post(
        "/admin/users/",
        {"full_name": "Tom Teacher", "email": "tom.teacher@brighton.test", "role": "practitioner"},
    )
    assert response.status_code == 200
    link = response.context["invitation_url"]
    path = link.split(world.brighton_admin.host, 1)[1]
    newcomer = Client(HTTP_HOST=world.brighton_admin.host)
    page = newcomer.get(path)
    assert page.status_code == 200
    assert b"Set up your account" in page.content
    code = _code_for(world.brighton.schema_name, "tom.teacher@brighton.test")
    done = newcomer.post(
        path, {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD, "code": code}
    )
    assert b"Your account is ready" in done.content
    assert newcomer.get(path).status_code == 404  # the link works once
    with schema_context(world.brighton.schema_name):
        assert User.objects.get(email="tom.teacher@brighton.test").check_password(NEW_PASSWORD)


def test_it_changes_nothing_when_the_code_is_wrong(world, db) -> None:
    """A wrong authenticator code leaves the password unset and the link still usable."""
    with schema_context(world.brighton.schema_name):
        user, token = user_invite(email="amy@brighton.test", full_name="Amy", role="practitioner")
    client = Client(HTTP_HOST=world.brighton_admin.host)
    client.get(f"/invitation/{token}/")
    response = client.post(
        f"/invitation/{token}/",
        {"password": NEW_PASSWORD, "password_again": NEW_PASSWORD, "code": "000000"},
    )
    assert b"The code is not right" in response.content or b"not right" in response.content
    with schema_context(world.brighton.schema_name):
        user.refresh_from_db()
        assert not user.has_usable_password()
        assert not TOTPDevice.objects.get(user=user).confirmed
    assert client.get(f"/invitation/{token}/").status_code == 200


def test_it_refuses_a_weak_password(world, db) -> None:
    """A short or common password is refused in plain words."""
    with schema_context(world.brighton.schema_name):
        _, token = user_invite(email="ben@brighton.test", full_name="Ben", role="practitioner")
    client = Client(HTTP_HOST=world.brighton_admin.host)
    client.get(f"/invitation/{token}/")
    code = _code_for(world.brighton.schema_name, "ben@brighton.test")
    response = client.post(
        f"/invitation/{token}/",
        {"password": "password", "password_again": "password", "code": code},
    )
    assert b"too short" in response.content or b"too common" in response.content


def test_it_refuses_an_expired_invitation(world, db) -> None:
    """An expired link says so and sets nothing up."""
    with schema_context(world.brighton.schema_name):
        user, token = user_invite(email="cat@brighton.test", full_name="Cat", role="practitioner")
        Invitation.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(hours=1))
    response = Client(HTTP_HOST=world.brighton_admin.host).get(f"/invitation/{token}/")
    assert response.status_code == 404
    assert b"does not work" in response.content


def test_it_does_not_accept_a_brighton_invitation_at_staffordshire(world, db) -> None:
    """An invitation belongs to its council's host only."""
    with schema_context(world.brighton.schema_name):
        _, token = user_invite(email="dan@brighton.test", full_name="Dan", role="practitioner")
    response = Client(HTTP_HOST=world.staffordshire_gp.host).get(f"/invitation/{token}/")
    assert response.status_code == 404


def test_practitioners_cannot_reach_admin_pages(world, db) -> None:
    """Only council administrators manage users and organisations."""
    client = sign_in(world.brighton_social_worker)
    assert client.get("/admin/users/").status_code == 403
    assert client.get("/admin/organisations/").status_code == 403
