"""The named people of the suite: personas who sign in with a password and an authenticator
app, the two councils they belong to, and the Brighton scenario's cast. Plain code (no
fixtures), so that factories, helpers and tests can import it; the fixtures that build these
live in tests/conftest.py."""

from __future__ import annotations

from dataclasses import dataclass

from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Organisation, Person
from tenants.models import Council

PASSWORD = "correct horse battery staple"


@dataclass
class Persona:
    """A named person with a password and an authenticator app."""

    email: str
    schema_name: str
    host: str
    device_key: str
    password: str = PASSWORD

    def code(self) -> str:
        device = TOTPDevice(key=self.device_key)
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        return f"{totp.token():06d}"


def make_persona(council: Council | None, email: str, full_name: str, role: str) -> Persona:
    schema = council.schema_name if council else "public"
    host = council.get_primary_domain().domain if council else "localhost"
    with schema_context(schema):
        user = User.objects.create_user(email, password=PASSWORD, full_name=full_name, role=role)
        device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return Persona(email=email, schema_name=schema, host=host, device_key=device.key)


@dataclass
class World:
    brighton: Council
    staffordshire: Council
    operator: Persona
    brighton_admin: Persona
    brighton_social_worker: Persona
    brighton_school_nurse: Persona
    staffordshire_gp: Persona


@dataclass
class Scenario:
    ava: Person  # a child with a team
    zed: Person  # a shielded child
    social_worker: User  # Ava's lead professional, child-protection role; on Zed's team too
    school_nurse: User  # on Ava's team
    camhs_worker: User  # on Ava's team, from a sensitive service
    camhs_colleague: User  # same sensitive service, not on the team
    teacher: User  # outside every team
    mash_worker: User  # child-protection practitioner outside every team
    admin: User
    school: Organisation
    camhs: Organisation


def sign_in(persona: Persona) -> Client:
    """A client signed in at the persona's own host, through both steps of the real flow."""
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert response.status_code == 302, response.content
    response = client.post("/sign-in/code/", {"code": persona.code()})
    assert response.status_code == 302, response.content
    return client


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
