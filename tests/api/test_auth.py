"""Who can call the API: a session that passed the second factor, or a bearer token issued
to one, valid at its own council only."""

from __future__ import annotations

import time

import pytest
from django.core import signing
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from core.models import Organisation
from core.services import practitioner_profile_set
from tests.api.client import ApiClient, host_of, token_for
from tests.personas import sign_in


def test_an_anonymous_caller_is_challenged_for_a_token(scenario, world) -> None:
    """401 with a Bearer challenge, and no data."""
    response = Client(HTTP_HOST=host_of(world.brighton)).get(f"/api/v1/people/{scenario.ava.pk}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"Ava" not in response.content


def test_a_session_without_the_second_factor_is_not_enough(scenario, world) -> None:
    """Password alone signs nobody in to the API."""
    persona = world.brighton_social_worker
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert response.status_code == 302
    response = client.get(f"/api/v1/people/{scenario.ava.pk}")
    assert response.status_code == 401


def test_a_verified_session_reads_and_gets_a_token_that_works(scenario, world, audit) -> None:
    """The signed-in browser user calls the API and issues a token for a system client."""
    session = ApiClient(sign_in(world.brighton_social_worker))
    assert session.get(f"/api/v1/people/{scenario.ava.pk}").status_code == 200
    log = audit()
    issued = session.post("/api/v1/tokens/")
    assert issued.status_code == 201
    body = issued.json()
    assert body["token_type"] == "Bearer" and body["expires_at"]
    assert log.since() == [("api_token_issued", scenario.social_worker.pk, None)]
    system = Client(HTTP_HOST=host_of(world.brighton), HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    record = system.get(f"/api/v1/people/{scenario.ava.pk}")
    assert record.status_code == 200
    assert record.json()["given_name"] == "Ava"
    assert record["Cache-Control"] == "no-store"


def test_a_token_cannot_issue_another_token(scenario, api) -> None:
    """Tokens come only from a verified session, so a stolen one cannot renew itself."""
    response = api(scenario.social_worker).post("/api/v1/tokens/")
    assert response.status_code == 403


def test_an_administrator_gets_no_token(scenario, world) -> None:
    """Administrators manage but do not read records, through the API either."""
    response = ApiClient(sign_in(world.brighton_admin)).post("/api/v1/tokens/")
    assert response.status_code == 403
    assert "Only practitioners" in response.json()["detail"]


@pytest.fixture
def staffordshire_gp(world) -> User:  # type: ignore[no-untyped-def]
    with schema_context(world.staffordshire.schema_name):
        gp = User.objects.get(email=world.staffordshire_gp.email)
        surgery = Organisation.objects.create(name="Stafford Surgery", agency_type="gp")
        practitioner_profile_set(user=gp, organisation=surgery, job_title="GP")
        return gp


def test_a_brighton_token_is_refused_at_staffordshire(scenario, world, api) -> None:
    """Every council shares one secret key, but a token carries its council in its salt."""
    token = token_for(scenario.social_worker, world.brighton)
    at_home = api(scenario.social_worker, token=token)
    assert at_home.post("/api/v1/search", {"nhs_number": "9434765919"}).status_code == 200
    abroad = api(scenario.social_worker, council=world.staffordshire, token=token)
    response = abroad.post("/api/v1/search", {"nhs_number": "9434765919"})
    assert response.status_code == 401
    assert "not valid here" in response.json()["detail"]


def test_a_staffordshire_token_is_refused_at_brighton(scenario, world, api, staffordshire_gp):  # type: ignore[no-untyped-def]
    """User ids repeat across councils: a Staffordshire token must not become a Brighton user."""
    token = token_for(staffordshire_gp, world.staffordshire)
    at_home = api(staffordshire_gp, council=world.staffordshire, token=token)
    assert at_home.post("/api/v1/search", {"nhs_number": "9434765919"}).status_code == 200
    abroad = api(staffordshire_gp, council=world.brighton, token=token)
    assert abroad.get(f"/api/v1/people/{scenario.ava.pk}").status_code == 401
    assert abroad.post("/api/v1/search", {"nhs_number": "9434765919"}).status_code == 401


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Bearer", "Bearer a b", "Token abc"],
)
def test_a_malformed_or_forged_token_is_refused(scenario, world, authorization) -> None:
    """Anything but a token we signed is refused, with nothing read."""
    client = Client(HTTP_HOST=host_of(world.brighton), HTTP_AUTHORIZATION=authorization)
    response = client.get(f"/api/v1/people/{scenario.ava.pk}")
    assert response.status_code == 401


def test_a_token_expires(scenario, world, api, monkeypatch) -> None:
    """A token issued more than API_TOKEN_HOURS ago is refused."""
    nine_hours_ago = time.time() - 9 * 3600
    with monkeypatch.context() as m:
        m.setattr(signing.time, "time", lambda: nine_hours_ago)
        token = token_for(scenario.social_worker, world.brighton)
    response = api(scenario.social_worker, token=token).get(f"/api/v1/people/{scenario.ava.pk}")
    assert response.status_code == 401


def test_changing_the_password_revokes_tokens(scenario, world, api) -> None:
    """A token issued before a password change stops working."""
    token = token_for(scenario.school_nurse, world.brighton)
    scenario.school_nurse.set_password("a brand new long passphrase")
    scenario.school_nurse.save()
    response = api(scenario.school_nurse, token=token).get(f"/api/v1/people/{scenario.ava.pk}")
    assert response.status_code == 401


def test_a_deactivated_user_s_token_stops_working(scenario, world, api) -> None:
    """Switching an account off switches its tokens off."""
    token = token_for(scenario.school_nurse, world.brighton)
    User.objects.filter(pk=scenario.school_nurse.pk).update(is_active=False)
    response = api(scenario.school_nurse, token=token).get(f"/api/v1/people/{scenario.ava.pk}")
    assert response.status_code == 401


def test_a_session_write_needs_the_csrf_token(scenario, world) -> None:
    """A page on another site cannot make the signed-in browser search on its behalf."""
    signed_in = sign_in(world.brighton_social_worker)
    strict = Client(HTTP_HOST=world.brighton_social_worker.host, enforce_csrf_checks=True)
    strict.cookies = signed_in.cookies
    response = strict.post(
        "/api/v1/search", '{"nhs_number": "9434765919"}', content_type="application/json"
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_a_body_that_is_not_json_is_refused_in_plain_words(scenario, world, api) -> None:
    """400 saying to send JSON, rather than a parser's stack of jargon."""
    client = api(scenario.teacher)
    response = client.client.post(
        "/api/v1/search", "nhs_number=9434765919", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Send the request body as JSON")
