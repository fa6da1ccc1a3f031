"""Sign-in and second factor are rate limited per client address and per account, at the
production limits, and a limited attempt never reaches Argon2 (decision 0011)."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.personas import Persona

WRONG = "not-the-password-at-all"


def attempt(persona_host: str, email: str, password: str, **client_kwargs: str):  # type: ignore[no-untyped-def]
    return Client(HTTP_HOST=persona_host, **client_kwargs).post(
        "/sign-in/", {"email": email, "password": password}
    )


def assert_limited(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429, response.content[:300]
    assert int(response["Retry-After"]) >= 1
    body = response.content.decode()
    assert "Too many attempts to sign in" in body
    assert "govuk-heading-l" in body


def test_it_limits_many_accounts_tried_from_one_address(
    world, db, production_limits, argon2_runs
) -> None:
    """An attacker at one address sprays 30 made-up Brighton accounts: the first 20 failures
    are answered as usual, the rest get 429 without a single password hashed -- even with a
    different X-Forwarded-For each time, which is not trusted from a client's own address."""
    host = world.brighton_school_nurse.host
    answers = []
    for n in range(30):
        before = argon2_runs.runs
        response = attempt(
            host,
            f"someone{n}@brighton.test",
            WRONG,
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        )
        answers.append((response.status_code, argon2_runs.runs - before))
    assert answers[:20] == [(200, 1)] * 20
    assert answers[20:] == [(429, 0)] * 10
    assert_limited(attempt(host, "more@brighton.test", WRONG, REMOTE_ADDR="198.51.100.7"))


def test_the_limit_holds_across_councils_and_the_operator_console(
    world, db, production_limits
) -> None:
    """The address's failures count everywhere on the deployment: ten at Brighton and ten at
    Staffordshire, then even the operator console refuses it."""
    for n in range(10):
        attempt(
            world.brighton_school_nurse.host,
            f"b{n}@brighton.test",
            WRONG,
            REMOTE_ADDR="198.51.100.8",
        )
        attempt(world.staffordshire_gp.host, f"s{n}@staffs.test", WRONG, REMOTE_ADDR="198.51.100.8")
    assert_limited(
        attempt(world.operator.host, world.operator.email, WRONG, REMOTE_ADDR="198.51.100.8")
    )


def test_a_limited_address_does_not_limit_another_behind_the_same_proxy(
    world, db, production_limits
) -> None:
    """Behind nginx (a trusted proxy, 127.0.0.1), each client is its X-Forwarded-For: one
    office's failures do not stop another office, nor its own staff's right password."""
    host = world.brighton_school_nurse.host
    for n in range(20):
        attempt(
            host,
            f"x{n}@brighton.test",
            WRONG,
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR="192.0.2.10",
        )
    assert_limited(
        attempt(
            host,
            "y@brighton.test",
            WRONG,
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR="192.0.2.10",
        )
    )
    persona = world.brighton_school_nurse
    other = attempt(
        host,
        persona.email,
        persona.password,
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="192.0.2.11",
    )
    assert other.status_code == 302


def test_it_limits_one_account_tried_from_many_addresses(
    world, db, production_limits, argon2_runs
) -> None:
    """Ten attempts at one account (here all with the right password, from ten addresses)
    are let through; the eleventh is refused with 429 and hashes nothing."""
    persona = world.brighton_social_worker
    for n in range(10):
        response = attempt(
            persona.host, persona.email, persona.password, REMOTE_ADDR=f"198.51.100.{20 + n}"
        )
        assert response.status_code == 302
    before = argon2_runs.runs
    assert_limited(
        attempt(persona.host, persona.email, persona.password, REMOTE_ADDR="198.51.100.99")
    )
    assert argon2_runs.runs == before
    # Another account at the same council is not affected.
    nurse = world.brighton_school_nurse
    assert (
        attempt(nurse.host, nurse.email, nurse.password, REMOTE_ADDR="198.51.100.99").status_code
        == 302
    )


@override_settings(AXES_FAILURE_LIMIT=100)
def test_it_limits_guesses_at_the_second_factor(world, db, production_limits) -> None:
    """After the right password, nine wrong codes: the next code -- even the right one -- is
    refused with 429 (the account's limit counts both steps), and the person is not in."""
    persona: Persona = world.brighton_admin
    client = Client(HTTP_HOST=persona.host, REMOTE_ADDR="198.51.100.50")
    assert (
        client.post("/sign-in/", {"email": persona.email, "password": persona.password}).status_code
        == 302
    )
    wrong = "000000" if persona.code() != "000000" else "111111"
    for _ in range(9):
        response = client.post("/sign-in/code/", {"code": wrong})
        assert response.status_code == 200
        assert b"The code is not right" in response.content
    assert_limited(client.post("/sign-in/code/", {"code": persona.code()}))
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("forwarded", ["", "not-an-address", "127.0.0.1"])
def test_a_client_at_the_proxy_itself_is_counted_as_the_proxy(
    world, db, production_limits, forwarded
) -> None:
    """Nothing usable in X-Forwarded-For: the connection's own address is counted."""
    host = world.brighton_school_nurse.host
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    for n in range(20):
        attempt(host, f"p{n}@brighton.test", WRONG, REMOTE_ADDR="127.0.0.1", **extra)
    assert_limited(attempt(host, "q@brighton.test", WRONG, REMOTE_ADDR="127.0.0.1"))
