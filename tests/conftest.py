"""Fixtures: real PostgreSQL schemas for two councils, named people in each, and clients
that speak to a council's host.

The councils are onboarded once per session inside `django_db_blocker.unblock()` (pytest-
django only sees the public schema otherwise: django-tenants #633), through the same service
the CLI uses. Every test starts and ends on the public schema (#603)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from tenants.models import Council
from tenants.services import council_onboard

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


@pytest.fixture(scope="session")
def world(django_db_setup: None, django_db_blocker) -> World:  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock():
        brighton = council_onboard(
            name="Brighton and Hove", code="E06000043", admin_email="first.admin@brighton.test"
        ).council
        staffordshire = council_onboard(
            name="Staffordshire", code="E10000028", admin_email="first.admin@staffs.test"
        ).council
        return World(
            brighton=brighton,
            staffordshire=staffordshire,
            operator=make_persona(None, "ops@platform.test", "Olu Operator", User.Role.OPERATOR),
            brighton_admin=make_persona(
                brighton, "admin@brighton.test", "Bea Admin", User.Role.COUNCIL_ADMIN
            ),
            brighton_social_worker=make_persona(
                brighton, "sam.social@brighton.test", "Sam Social", User.Role.PRACTITIONER
            ),
            brighton_school_nurse=make_persona(
                brighton, "nia.nurse@brighton.test", "Nia Nurse", User.Role.PRACTITIONER
            ),
            staffordshire_gp=make_persona(
                staffordshire, "gil.gp@staffs.test", "Gil GP", User.Role.PRACTITIONER
            ),
        )


@pytest.fixture(autouse=True)
def _public_schema_around_each_test() -> Iterator[None]:
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


@pytest.fixture(autouse=True)
def _federation_keys_forgotten() -> Iterator[None]:
    """Each test makes its own councils and keys: none is held over from another test."""
    from federation import keycache

    keycache.forget()
    yield
    keycache.forget()


@pytest.fixture(autouse=True)
def _celery_eager(settings) -> None:  # type: ignore[no-untyped-def]
    """Tasks run in-process unless a test starts the real worker (see `celery_worker`)."""
    from deploy.celery import app

    app.conf.task_always_eager = True


@pytest.fixture
def celery_worker(world, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """A real Celery worker thread consuming from the real Redis broker (no eager mode).
    Data the tasks read must be committed: the worker has its own database connection."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set: the real-worker tests need a Redis server")
    from celery.contrib.testing.worker import start_worker

    from deploy.celery import app

    app.conf.task_always_eager = False
    try:
        with (
            django_db_blocker.unblock(),
            start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30),
        ):
            yield
    finally:
        app.conf.task_always_eager = True


def sign_in(persona: Persona) -> Client:
    """A client signed in at the persona's own host, through both steps of the real flow."""
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert response.status_code == 302, response.content
    response = client.post("/sign-in/code/", {"code": persona.code()})
    assert response.status_code == 302, response.content
    return client
