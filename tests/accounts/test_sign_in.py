"""Signing in: password, then a code from an authenticator app, with lockout."""

from __future__ import annotations

from django.test import Client, override_settings
from django_tenants.utils import schema_context

from accounts.models import User
from tests.personas import sign_in


def test_it_signs_in_with_password_and_code(world, db) -> None:
    """Both factors lead to the council's home page, with the person's name on it."""
    client = sign_in(world.brighton_school_nurse)
    page = client.get("/")
    assert page.status_code == 200
    assert b"Nia Nurse" in page.content


def test_it_does_not_sign_in_on_the_password_alone(world, db) -> None:
    """After the password step, pages still need the second factor."""
    persona = world.brighton_school_nurse
    client = Client(HTTP_HOST=persona.host)
    client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/sign-in/")


def test_it_sends_a_deactivated_user_back_to_sign_in(world, db) -> None:
    """An account deactivated while signed in reaches no page on its next request."""
    persona = world.brighton_school_nurse
    client = sign_in(persona)
    assert client.get("/").status_code == 200
    with schema_context(persona.schema_name):
        User.objects.filter(email=persona.email).update(is_active=False)
    try:
        response = client.get("/my/involvements/")
        assert response.status_code == 302
        assert response["Location"] == "/sign-in/?next=/my/involvements/"
    finally:
        with schema_context(persona.schema_name):
            User.objects.filter(email=persona.email).update(is_active=True)


def test_it_refuses_a_wrong_code(world, db) -> None:
    """A wrong code keeps the person out, with a message saying what to do."""
    persona = world.brighton_school_nurse
    client = Client(HTTP_HOST=persona.host)
    client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    wrong = "000000" if persona.code() != "000000" else "111111"
    response = client.post("/sign-in/code/", {"code": wrong})
    assert b"The code is not right" in response.content
    assert client.get("/").status_code == 302


@override_settings(AXES_FAILURE_LIMIT=3)
def test_it_locks_an_account_after_repeated_failures(world, db) -> None:
    """Three wrong passwords lock the account: even the right one is then refused."""
    persona = world.brighton_social_worker
    client = Client(HTTP_HOST=persona.host)
    for _ in range(3):
        client.post("/sign-in/", {"email": persona.email, "password": "wrong password 123"})
    response = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert b"locked" in response.content
    assert "patchwork_pending_user" not in client.session


@override_settings(AXES_FAILURE_LIMIT=3)
def test_it_locks_only_that_account_and_only_at_that_council(world, db) -> None:
    """A locked Brighton account does not lock a colleague, nor anyone at Staffordshire."""
    attacked = world.brighton_social_worker
    client = Client(HTTP_HOST=attacked.host)
    for _ in range(3):
        client.post("/sign-in/", {"email": attacked.email, "password": "wrong password 123"})
    assert sign_in(world.brighton_school_nurse).get("/").status_code == 200
    assert sign_in(world.staffordshire_gp).get("/").status_code == 200


def test_it_signs_out(world, db) -> None:
    """Signing out ends the session."""
    client = sign_in(world.brighton_school_nurse)
    client.post("/sign-out/")
    assert client.get("/").status_code == 302


def test_it_stores_passwords_with_argon2(world, db) -> None:
    """Passwords are hashed with Argon2."""
    with schema_context(world.brighton.schema_name):
        user = User.objects.get(email=world.brighton_school_nurse.email)
    assert user.password.startswith("argon2")


def test_it_sets_host_only_http_only_cookies(world, db) -> None:
    """The session cookie has no Domain (so it is never sent to another council)."""
    client = sign_in(world.brighton_school_nurse)
    cookie = client.cookies["patchwork_session"]
    assert cookie["domain"] == ""
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
