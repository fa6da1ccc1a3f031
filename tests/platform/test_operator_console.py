"""The operator console on the platform host."""

from __future__ import annotations

from django.test import Client
from django_tenants.utils import schema_exists

from tenants.models import Council
from tests.personas import sign_in


def test_an_operator_sees_the_councils_and_their_state(world, db) -> None:
    """The list shows each council with its status and migration state."""
    page = sign_in(world.operator).get("/")
    assert page.status_code == 200
    assert b"Brighton and Hove" in page.content
    assert b"Staffordshire" in page.content
    assert b"up to date" in page.content


def test_an_operator_onboards_a_council_with_the_form(world, db) -> None:
    """The form creates the council and shows its one-time invitation link."""
    client = sign_in(world.operator)
    response = client.post(
        "/councils/new/",
        {
            "name": "East Sussex",
            "code": "E10000011",
            "slug": "",
            "admin_name": "Eve Admin",
            "admin_email": "eve@eastsussex.test",
        },
    )
    assert response.status_code == 200
    assert b"East Sussex is on Patchwork" in response.content
    assert b"http://east-sussex.localhost:8000/invitation/" in response.content
    assert schema_exists("council_e10000011")


def test_the_onboarding_form_explains_bad_input(world, db) -> None:
    """A duplicate code is explained on the form and nothing is created."""
    client = sign_in(world.operator)
    before = Council.objects.count()
    response = client.post(
        "/councils/new/",
        {"name": "Elsewhere", "code": "E06000043", "admin_name": "X", "admin_email": "x@x.test"},
    )
    assert b"already on this platform" in response.content
    assert Council.objects.count() == before


def test_an_operator_suspends_and_resumes_a_council(world, db) -> None:
    """Suspending from the console closes the council's host; resuming reopens it."""
    client = sign_in(world.operator)
    client.post(f"/councils/{world.staffordshire.code}/suspend/")
    council_page = Client(HTTP_HOST=world.staffordshire_gp.host).get("/sign-in/")
    assert council_page.status_code == 503
    client.post(f"/councils/{world.staffordshire.code}/resume/")
    assert Client(HTTP_HOST=world.staffordshire_gp.host).get("/sign-in/").status_code == 200


def test_the_console_needs_an_operator_with_a_second_factor(world, db) -> None:
    """Anonymous visitors are sent to sign in; suspend cannot be done by a GET."""
    client = Client(HTTP_HOST="localhost")
    assert client.get("/")["Location"].startswith("/sign-in/")
    assert client.post(f"/councils/{world.brighton.code}/suspend/").status_code == 302
    assert Council.objects.get(pk=world.brighton.pk).status == "active"
    signed_in = sign_in(world.operator)
    assert signed_in.get(f"/councils/{world.brighton.code}/suspend/").status_code == 405
