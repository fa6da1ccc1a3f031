"""The session and the verified second factor, read by plain statements on every request
(accounts.sessions, accounts.middleware; decision 0027), refuse what Django and django-otp
refuse: an expired session, and a device no longer confirmed or no longer the user's."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.backends import USER_BACKEND
from accounts.models import User
from accounts.sessions import MODEL_BACKEND, SessionStore
from tests.personas import Persona, make_persona, sign_in


def _someone(world) -> Persona:
    """A Brighton practitioner of their own (the rate-limit counters outlive the test)."""
    tag = secrets.token_hex(4)
    return make_persona(
        world.brighton, f"pat-{tag}@council.test", f"Pat Example {tag}", User.Role.PRACTITIONER
    )


def test_it_keeps_a_signed_in_user_signed_in(world, db) -> None:
    """A signed-in, verified practitioner reaches their home page, request after request."""
    client = sign_in(_someone(world))
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200


def test_an_expired_session_signs_the_user_out(world, db) -> None:
    """A session past its expiry is no session: the next request goes to sign in."""
    persona = _someone(world)
    client = sign_in(persona)
    with schema_context(persona.schema_name):
        Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert client.get("/").status_code == 302


def test_an_unconfirmed_device_no_longer_verifies_the_session(world, db) -> None:
    """The authenticator that verified the session, marked unconfirmed, verifies nothing."""
    persona = _someone(world)
    client = sign_in(persona)
    with schema_context(persona.schema_name):
        TOTPDevice.objects.filter(user__email=persona.email).update(confirmed=False)
    assert client.get("/").status_code == 302


def test_another_users_device_does_not_verify_the_session(world, db) -> None:
    """A device moved to someone else verifies nothing for the session's user."""
    persona, other = _someone(world), _someone(world)
    client = sign_in(persona)
    with schema_context(persona.schema_name):
        somebody = User.objects.get(email=other.email)
        TOTPDevice.objects.filter(user__email=persona.email).update(user=somebody)
    assert client.get("/").status_code == 302


def test_a_session_from_before_the_upgrade_stays_signed_in(world, db) -> None:
    """A session recorded by Django's ModelBackend (before decision 0027) is still signed
    in after the upgrade: nobody has to sign in again."""
    persona = _someone(world)
    client = sign_in(persona)
    with schema_context(persona.schema_name):
        row = Session.objects.get(session_key=client.cookies["patchwork_session"].value)
        data = row.get_decoded()
        assert data[BACKEND_SESSION_KEY] == USER_BACKEND
        data[BACKEND_SESSION_KEY] = MODEL_BACKEND
        row.session_data = SessionStore().encode(data)
        row.save()
    assert client.get("/").status_code == 200
