"""Fixtures shared by every folder: real PostgreSQL schemas for two councils with named people
in each, the Brighton scenario, and Celery (eager, or a real worker).

The councils are onboarded once per session inside `django_db_blocker.unblock()` (pytest-
django only sees the public schema otherwise: django-tenants #633), through the same service
the CLI uses. Every test starts and ends on the public schema (#603). The people and helpers
themselves are plain code in tests/personas.py and tests/factories.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Involvement, Organisation, Practitioner
from core.services import practitioner_profile_set
from tenants.services import council_onboard
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PersonFactory,
    PractitionerFactory,
    RoleFactory,
)
from tests.personas import Scenario, World, make_persona

# The deployment test boots containers as root for many minutes: `make deploy-test` runs it.
collect_ignore = [] if os.environ.get("PATCHWORK_DEPLOY_TEST") else ["deploy"]


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


@pytest.fixture
def scenario(world, db):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        social_care = OrganisationFactory(
            name="Brighton Children's Services", agency_type="social_care"
        )
        school = OrganisationFactory(name="Hove Park School", agency_type="school")
        camhs = OrganisationFactory(
            name="Sussex CAMHS", agency_type="mental_health", sensitive_service=True
        )
        cp_role = RoleFactory(name="Child protection social worker", child_protection=True)
        nurse_role = RoleFactory(name="School nurse")
        camhs_role = RoleFactory(name="CAMHS practitioner")

        def profile(email: str, organisation: Organisation, title: str, cp: bool = False) -> User:
            user = User.objects.get(email=email)
            practitioner_profile_set(
                user=user, organisation=organisation, job_title=title, child_protection=cp
            )
            return user

        social_worker = profile(
            world.brighton_social_worker.email, social_care, "Social worker", cp=True
        )
        school_nurse = profile(world.brighton_school_nurse.email, school, "School nurse")
        camhs_worker = PractitionerFactory(organisation=camhs, job_title="CAMHS worker").user
        camhs_colleague = PractitionerFactory(organisation=camhs, job_title="CAMHS worker").user
        teacher = PractitionerFactory(organisation=school, job_title="Teacher").user
        mash_worker = PractitionerFactory(
            organisation=social_care, job_title="MASH social worker", child_protection=True
        ).user
        ava = PersonFactory(
            given_name="Ava",
            family_name="O'Brien-Smith",
            date_of_birth=date(2015, 3, 14),
            postcode="BN3 7BQ",
            nhs_number="9434765919",
        )
        zed = PersonFactory(
            given_name="Zed",
            family_name="Hollis",
            date_of_birth=date(2016, 5, 2),
            shielded=True,
            postcode="BN1 1AA",
        )
        InvolvementFactory(
            person=ava,
            practitioner=social_worker.practitioner,
            role=cp_role,
            lead_professional=True,
        )
        InvolvementFactory(person=ava, practitioner=school_nurse.practitioner, role=nurse_role)
        InvolvementFactory(
            person=ava, practitioner=Practitioner.objects.get(user=camhs_worker), role=camhs_role
        )
        InvolvementFactory(person=zed, practitioner=social_worker.practitioner, role=cp_role)
        assert Involvement.objects.get(person=ava, organisation=camhs).sensitive
        admin = User.objects.get(email=world.brighton_admin.email)
        yield Scenario(
            ava=ava,
            zed=zed,
            social_worker=social_worker,
            school_nurse=school_nurse,
            camhs_worker=camhs_worker,
            camhs_colleague=camhs_colleague,
            teacher=teacher,
            mash_worker=mash_worker,
            admin=admin,
            school=school,
            camhs=camhs,
        )
