"""The security headers Patchwork itself sends, over real HTTP from a live server: a person's
page, search, sign-in, an error page and the API are never stored by a browser or a proxy,
carry a strict Content-Security-Policy and a Permissions-Policy, and each header comes once.
(nginx's part is tested in tests/operations/test_nginx_proxy.py.)"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import httpx
import pytest

from tests.browser import committed, live_server
from tests.pages.test_browser import LiveCouncil, _Made, _make, _remove
from tests.personas import Persona, World

# What every answer of the app carries, whoever asks.
ONCE_EACH = (
    "Content-Security-Policy",
    "Permissions-Policy",
    "Cache-Control",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
)


@dataclass
class Live:
    council: LiveCouncil
    port: int
    host: str

    def client(self) -> httpx.Client:
        """A client for the council's host on the live server's loopback port."""
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", headers={"Host": self.host}, timeout=10
        )

    def signed_in(self, persona: Persona) -> httpx.Client:
        """A client signed in through both steps of the real form."""
        client = self.client()
        step = client.post(
            "/sign-in/",
            data={
                "csrfmiddlewaretoken": _csrf_token(client.get("/sign-in/").text),
                "email": persona.email,
                "password": persona.password,
            },
        )
        assert step.status_code == 302, step.text
        step = client.post(
            "/sign-in/code/",
            data={
                "csrfmiddlewaretoken": _csrf_token(client.get("/sign-in/code/").text),
                "code": persona.code(),
            },
        )
        assert step.status_code == 302 and step.headers["Location"] == "/", step.text
        return client


def _csrf_token(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


@pytest.fixture
def live(world: World, db: None) -> Iterator[Live]:
    """Brighton on a live server, with a child and their team (committed, removed after)."""
    host = world.brighton.get_primary_domain().domain
    made: _Made = committed(lambda: _make(world, host, secrets.token_hex(3)))  # type: ignore[assignment]
    try:
        with live_server(host) as base_url:
            made.live.base_url = base_url
            yield Live(council=made.live, port=int(base_url.rsplit(":", 1)[1]), host=host)
    finally:
        committed(lambda: _remove(world, made))


def assert_private_and_locked_down(response: httpx.Response) -> None:
    """The headers every page of the app must carry, each exactly once."""
    for name in ONCE_EACH:
        assert len(response.headers.get_list(name)) == 1, (name, response.headers.get_list(name))
    assert response.headers["Cache-Control"] == "no-store"
    directives = {
        part.split()[0]: part.split()[1:]
        for part in response.headers["Content-Security-Policy"].split(";")
        if part.strip()
    }
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]  # no nonce unless a page asks for one
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'self'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]
    assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
    features = dict(
        item.strip().split("=", 1) for item in response.headers["Permissions-Policy"].split(",")
    )
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert features[feature] == "()", feature
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_it_keeps_a_person_page_out_of_every_cache(live: Live) -> None:
    """The lead professional's view of a child's record: no-store, CSP, Permissions-Policy."""
    with closing(live.signed_in(live.council.lead)) as client:
        page = client.get(f"/people/{live.council.child.pk}/")

    assert page.status_code == 200
    assert live.council.child.family_name in page.text
    assert 'class="pw-network"' in page.text
    assert_private_and_locked_down(page)


def test_it_keeps_search_and_its_results_out_of_every_cache(live: Live) -> None:
    """The search form and a search that finds the child."""
    with closing(live.signed_in(live.council.newcomer)) as client:
        form = client.get("/search/")
        dob = live.council.child_dob
        results = client.post(
            "/search/",
            data={
                "csrfmiddlewaretoken": _csrf_token(form.text),
                "family_name": live.council.child.family_name,
                "date_of_birth_day": str(dob.day),
                "date_of_birth_month": str(dob.month),
                "date_of_birth_year": str(dob.year),
            },
        )

    assert form.status_code == 200
    assert_private_and_locked_down(form)
    assert results.status_code == 200
    assert live.council.child.full_name in results.text
    assert_private_and_locked_down(results)


def test_it_keeps_the_sign_in_page_out_of_every_cache(live: Live) -> None:
    """Signed out too: the sign-in form holds a CSRF token and, after a mistake, an email."""
    with live.client() as client:
        page = client.get("/sign-in/")
        refused = client.post(
            "/sign-in/",
            data={
                "csrfmiddlewaretoken": _csrf_token(page.text),
                "email": live.council.lead.email,
                "password": "not the password",
            },
        )

    assert page.status_code == 200
    assert_private_and_locked_down(page)
    assert refused.status_code == 200
    assert live.council.lead.email in refused.text
    assert_private_and_locked_down(refused)


def test_it_sends_the_headers_on_error_pages(live: Live) -> None:
    """A record that is not there (404), a page the user may not see (403), and a host the
    platform does not know."""
    with closing(live.signed_in(live.council.newcomer)) as client:
        missing = client.get("/people/987654321/")
        forbidden = client.get("/admin/users/")
    with httpx.Client(base_url=f"http://127.0.0.1:{live.port}", timeout=10) as stranger:
        unknown_host = stranger.get("/", headers={"Host": "nowhere.localhost"})

    assert missing.status_code == 404
    assert_private_and_locked_down(missing)
    assert forbidden.status_code == 403
    assert_private_and_locked_down(forbidden)
    assert unknown_host.status_code in {400, 404}
    assert_private_and_locked_down(unknown_host)


def test_a_refused_form_gets_a_page_the_policy_allows(live: Live) -> None:
    """A form sent without its CSRF token is refused with the service's own page (Django's
    default styles itself inline, which the policy would block), saying nothing changed."""
    with live.client() as client:
        refused = client.post(
            "/sign-in/", data={"email": live.council.lead.email, "password": "anything"}
        )

    assert refused.status_code == 403
    assert "This form could not be sent" in refused.text
    assert "Nothing was changed" in refused.text
    assert "<style" not in refused.text and "style=" not in refused.text
    assert_private_and_locked_down(refused)


def test_it_keeps_api_answers_out_of_every_cache(live: Live) -> None:
    """The REST API and FHIR, signed in and not."""
    with closing(live.signed_in(live.council.lead)) as client:
        record = client.get(f"/api/v1/people/{live.council.child.pk}")
        fhir = client.get("/fhir/metadata")
    with live.client() as anonymous:
        refused = anonymous.get(f"/api/v1/people/{live.council.child.pk}")

    assert record.status_code == 200
    assert record.json()["family_name"] == live.council.child.family_name
    for response in (record, fhir, refused):
        assert response.headers.get_list("Cache-Control") == ["no-store"], response.url
        assert len(response.headers.get_list("Content-Security-Policy")) == 1
    assert refused.status_code == 401


def test_a_view_that_says_it_may_be_cached_keeps_its_own_cache_control(live: Live) -> None:
    """The council's published keys are public and cacheable for an hour, as their view says."""
    with live.client() as client:
        keys = client.get("/.well-known/patchwork/keys")

    assert keys.status_code == 200
    assert keys.headers.get_list("Cache-Control") == ["public, max-age=3600"]
