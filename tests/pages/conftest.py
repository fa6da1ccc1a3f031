"""The Brighton scenario (tests/core) for the pages, and sign-in for any of its people."""

from __future__ import annotations

from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from tests.conftest import Persona, World, sign_in
from tests.core.conftest import Scenario, scenario  # noqa: F401  (the fixture, re-exported)

__all__ = ["Scenario", "client_for", "scenario"]


def client_for(world: World, user: User) -> Client:
    """A client signed in as one of the scenario's Brighton users, through the real flow
    (password, then a code from a freshly confirmed authenticator)."""
    with schema_context(world.brighton.schema_name):
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    persona = Persona(
        email=user.email,
        schema_name=world.brighton.schema_name,
        host=world.brighton.get_primary_domain().domain,
        device_key=device.key,
    )
    return sign_in(persona)
