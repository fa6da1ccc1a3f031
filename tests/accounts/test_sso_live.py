"""Single sign-on end to end: Patchwork served by gunicorn on loopback, a real OpenID Connect
provider in its own process (tests/accounts/oidc_provider.py), and an HTTP client following
every redirect between them, as a browser would. Two freshly onboarded councils, each with
its own realm at the provider; what the server writes is committed, so the fixture leaves
the database as it found it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.utils.html import escape
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context
from faker import Faker

from accounts.models import SingleSignOnIdentity, User
from accounts.services import user_invite
from accounts.sso import sso_configure
from core.models import AuditEvent
from core.services import audit_export
from tenants.models import Council
from tenants.selectors import council_host
from tenants.services import council_onboard
from tests.federation.live import (
    committed_restore,
    committed_snapshot,
    free_port,
    live_env,
    server_start,
    server_stop,
)

PROVIDER = Path(__file__).with_name("oidc_provider.py")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
fake = Faker("en_GB")
# An `acr` the councils name as "a second factor was checked" (Entra ID sends this one).
ACR_MFA = "http://schemas.microsoft.com/claims/multipleauthn"


class LoopbackTransport(httpx.HTTPTransport):
    """Sends requests for `*.localhost` to 127.0.0.1, keeping their Host header (and so
    their cookies), as browsers do; Python's resolver does not know `.localhost` names."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".localhost") or request.url.host == "localhost":
            request = httpx.Request(
                request.method,
                request.url.copy_with(host="127.0.0.1"),
                headers=request.headers,
                stream=request.stream,
                extensions=request.extensions,
            )
        return super().handle_request(request)


def browser(*, follow: bool = True) -> httpx.Client:
    """A cookie-keeping client; each connection closed after its answer, so that stopping
    gunicorn does not wait for idle keep-alive connections."""
    return httpx.Client(
        transport=LoopbackTransport(),
        timeout=30,
        follow_redirects=follow,
        headers={"Connection": "close"},
    )


@dataclass
class Side:
    council: Council
    host: str
    realm: str
    client_id: str
    admin: User

    def url(self, port: int, path: str) -> str:
        return f"http://{self.host}:{port}{path}"


@dataclass
class Live:
    port: int
    provider: str
    adur: Side
    arun: Side

    def control(self, realm: str, **body: Any) -> None:
        httpx.post(f"{self.provider}/control/{realm}", json=body, timeout=10).raise_for_status()

    def person(self, side: Side, email: str, **claims: Any) -> None:
        """The person the side's realm signs in next (and no misbehaviour unless asked)."""
        tamper = claims.pop("tamper", {})
        person = {
            "sub": f"sub-{email}",
            "email": email,
            "email_verified": True,
            "name": fake.name(),
            "amr": ["pwd", "mfa"],
            **claims,
        }
        self.control(side.realm, person=person, tamper=tamper)

    def sso(self, side: Side, client: httpx.Client | None = None) -> httpx.Response:
        client = client or browser()
        return client.get(side.url(self.port, "/sign-in/sso/"))


def _start_provider() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(PROVIDER)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("PORT "), line
    return process, f"http://127.0.0.1:{int(line.split()[1])}"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The provider's base address; each realm under it is one issuer."""
    process, url = _start_provider()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def live(world, provider: str, django_db_blocker) -> Iterator[Live]:  # type: ignore[no-untyped-def]
    port = free_port()
    server = None
    with django_db_blocker.unblock():
        snapshot = committed_snapshot()
        try:
            sides = {}
            for name, code in (("Adur", "E07000223"), ("Arun", "E07000224")):
                onboarded = council_onboard(
                    name=name, code=code, admin_email=f"admin@{name.lower()}.test"
                )
                council = onboarded.council
                host = council_host(council)
                realm, client_id = name.lower(), f"patchwork-{name.lower()}"
                secret = f"secret-of-{realm}-{fake.password(length=20)}"
                callback = f"http://{host}:{port}/sign-in/sso/callback/"
                httpx.post(
                    f"{provider}/control/{realm}",
                    json={"clients": {client_id: {"secret": secret, "redirect_uris": [callback]}}},
                    timeout=10,
                ).raise_for_status()
                with schema_context(council.schema_name):
                    admin = User.objects.get(role=User.Role.COUNCIL_ADMIN)
                    sso_configure(
                        name=f"{name} Council account",
                        issuer=f"{provider}/{realm}",
                        client_id=client_id,
                        client_secret=secret,
                        email_domains=[f"{realm}.gov.uk"],
                        email_claim="email",
                        mfa_acr_values=[ACR_MFA],
                        password_sign_in_for_practitioners=True,
                        enabled=True,
                        configured_by=admin,
                    )
                sides[realm] = Side(council, host, realm, client_id, admin)
            server = server_start(live_env(port), port, workers=1)
            yield Live(port=port, provider=provider, adur=sides["adur"], arun=sides["arun"])
        finally:
            if server is not None:
                server_stop(server)
            committed_restore(snapshot)


def _in(side: Side, django_db_blocker, read):  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock(), schema_context(side.council.schema_name):
        return read()


def _last_refusal(side: Side, django_db_blocker) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    event = _in(
        side,
        django_db_blocker,
        lambda: AuditEvent.objects.filter(action="sso_refused").order_by("-id").first(),
    )
    assert event is not None
    return dict(event.detail)


def _invite(side: Side, django_db_blocker, email: str) -> User:  # type: ignore[no-untyped-def]
    return _in(
        side,
        django_db_blocker,
        lambda: user_invite(email=email, full_name=fake.name(), role=User.Role.PRACTITIONER)[0],
    )


def _signed_in_home(response: httpx.Response, host: str) -> None:
    assert response.status_code == 200, response.text[:400]
    assert response.url.host == host and response.url.path == "/", response.url
    assert "Sign out" in response.text


def test_it_signs_in_an_invited_person_whose_provider_checked_a_second_factor(
    live: Live, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """Invited, verified email, `amr` has mfa: straight in, linked to their subject, and
    the sign-in is in the council's audit export."""
    email = f"{fake.user_name()}@partner-agency.test"
    invited = _invite(live.adur, django_db_blocker, email)
    live.person(live.adur, email)
    response = live.sso(live.adur)
    _signed_in_home(response, live.adur.host)
    identity = _in(
        live.adur,
        django_db_blocker,
        lambda: SingleSignOnIdentity.objects.get(user__email=email),
    )
    assert identity.user_id == invited.pk and identity.subject == f"sub-{email}"
    rows = _in(live.adur, django_db_blocker, lambda: list(audit_export(actor=live.adur.admin)))
    actions = [row[4] for row in rows]
    assert "sso_configured" in actions and "sso_signed_in" in actions
    signed_in = next(row for row in reversed(rows) if row[4] == "sso_signed_in")
    assert email in signed_in[6] and '"provider_second_factor": true' in signed_in[6]


def test_it_asks_for_patchwork_code_when_the_provider_checked_no_second_factor(
    live: Live, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """`amr` only pwd: the person lands on Patchwork's code step, and is in after it."""
    email = f"{fake.user_name()}@adur.gov.uk"
    user = _invite(live.adur, django_db_blocker, email)
    device = _in(
        live.adur,
        django_db_blocker,
        lambda: TOTPDevice.objects.create(user=user, name="app", confirmed=True),
    )
    live.person(live.adur, email, amr=["pwd"])
    client = browser()
    response = live.sso(live.adur, client)
    assert response.url.path == "/sign-in/code/", response.url
    assert client.get(live.adur.url(live.port, "/")).url.path == "/sign-in/"
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    token = CSRF.search(response.text)
    assert token
    answer = client.post(
        live.adur.url(live.port, "/sign-in/code/"),
        data={"code": f"{totp.token():06d}", "csrfmiddlewaretoken": token[1]},
        headers={"Referer": live.adur.url(live.port, "/sign-in/code/")},
    )
    _signed_in_home(answer, live.adur.host)


def test_after_an_administrators_reset_the_person_sets_up_a_new_authenticator(
    live: Live, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """No second factor at the provider and the authenticator reset by an administrator
    (decision 0019): single sign-on leads to setting up a new one, as a password would."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import SecondFactorReset

    email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@adur.gov.uk"
    user = _invite(live.adur, django_db_blocker, email)
    _in(
        live.adur,
        django_db_blocker,
        lambda: SecondFactorReset.objects.create(
            user=user, reset_by=live.adur.admin, expires_at=timezone.now() + timedelta(days=1)
        ),
    )
    live.person(live.adur, email, amr=["pwd"])
    response = live.sso(live.adur)
    assert response.status_code == 200
    assert response.url.path == "/sign-in/new-authenticator/", response.url


def test_it_accepts_the_providers_second_factor_by_an_acr_the_council_named(
    live: Live, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """`amr` only pwd, but `acr` is one the council configured: straight in, no code step;
    an `acr` the council did not name counts for nothing."""
    email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@adur.gov.uk"
    live.person(live.adur, email, amr=["pwd"], acr=ACR_MFA)
    _signed_in_home(live.sso(live.adur), live.adur.host)
    other = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@adur.gov.uk"
    live.person(live.adur, other, amr=["pwd"], acr="urn:example:password-only")
    assert live.sso(live.adur).status_code == 403
    assert _last_refusal(live.adur, django_db_blocker)["reason"] == "no_second_factor"


def test_it_refuses_a_switched_off_account_and_a_reused_address(
    live: Live, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """A leaver (account switched off) is refused; so is a second person at the provider
    (another subject) who now holds the address of someone already linked."""
    email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@adur.gov.uk"
    live.person(live.adur, email)
    _signed_in_home(live.sso(live.adur), live.adur.host)
    live.person(live.adur, email, sub="someone-else")
    assert live.sso(live.adur).status_code == 403
    assert _last_refusal(live.adur, django_db_blocker)["reason"] == "subject_mismatch"
    _in(
        live.adur,
        django_db_blocker,
        lambda: User.objects.filter(email=email).update(is_active=False),
    )
    live.person(live.adur, email)
    response = live.sso(live.adur)
    assert response.status_code == 403 and "switched off" in response.text
    assert _last_refusal(live.adur, django_db_blocker)["reason"] == "inactive"


def test_it_creates_a_practitioner_from_an_allowed_domain_and_signs_them_out(
    live: Live, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """Not invited, verified email in the council's domain: created as a practitioner with
    no profile yet, audited; signing out ends the Patchwork session."""
    email = f"{fake.user_name()}.{fake.random_int(100, 999)}@arun.gov.uk"
    live.person(live.arun, email, name="Siân O'Connor")
    client = browser()
    response = live.sso(live.arun, client)
    _signed_in_home(response, live.arun.host)
    user = _in(live.arun, django_db_blocker, lambda: User.objects.get(email=email))
    assert user.role == User.Role.PRACTITIONER and user.full_name == "Siân O'Connor"
    assert escape("Siân O'Connor") in response.text
    assert not _in(live.arun, django_db_blocker, lambda: hasattr(user, "practitioner"))
    assert _in(
        live.arun,
        django_db_blocker,
        lambda: AuditEvent.objects.filter(action="sso_user_created", actor_id=user.pk).exists(),
    )
    token = CSRF.search(response.text)
    assert token
    out = client.post(
        live.arun.url(live.port, "/sign-out/"),
        data={"csrfmiddlewaretoken": token[1]},
        headers={"Referer": live.arun.url(live.port, "/")},
    )
    assert out.url.path == "/sign-in/"
    assert client.get(live.arun.url(live.port, "/")).url.path == "/sign-in/"


def test_in_a_browser_the_button_signs_an_invited_person_in(live: Live, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    """Chromium: the sign-in page's button, the provider, back to the council's home page,
    with no Content-Security-Policy violation on the way; then sign out."""
    from tests.browser import chromium

    email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@partner-agency.test"
    _invite(live.adur, django_db_blocker, email)
    live.person(live.adur, email)
    base = f"http://{live.adur.host}:{live.port}"
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{base}/sign-in/")
        page.get_by_role("button", name="Sign in with Adur Council account").click()
        page.wait_for_url(f"{base}/")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{base}/sign-in/")
    signed_in = _in(
        live.adur,
        django_db_blocker,
        lambda: AuditEvent.objects.filter(action="sso_signed_in").order_by("-id").first(),
    )
    assert signed_in is not None and signed_in.detail["email"] == email


REFUSALS = {
    # case: (claims for the person at the provider, audited reason, words the person reads)
    "wrong issuer": ({"tamper": {"iss": "https://login.example.test/other"}}, "issuer", None),
    "wrong audience": ({"tamper": {"aud": "someone-elses-client"}}, "audience", None),
    "bad signature": ({"tamper": {"rogue_key": True}}, "signature", "not signed"),
    "expired token": ({"tamper": {"expired": True}}, "expired", "expired"),
    "unverified email": ({"email_verified": False}, "email_unverified", "has not verified"),
    "domain not allowed": ({}, "domain_not_allowed", "has not been invited"),
    "no second factor anywhere": ({"amr": ["pwd"]}, "no_second_factor", "second factor"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_it_refuses_and_creates_nothing(live: Live, django_db_blocker, case: str) -> None:  # type: ignore[no-untyped-def]
    """Each refusal: a page saying so, an audit event with the reason, no user, no link."""
    claims, reason, words = REFUSALS[case]
    domain = "elsewhere.test" if case == "domain not allowed" else "adur.gov.uk"
    email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@{domain}"
    live.person(live.adur, email, **claims)
    users_before = _in(live.adur, django_db_blocker, lambda: User.objects.count())
    response = live.sso(live.adur)
    assert response.status_code == 403, response.text[:400]
    assert "You are not signed in" in response.text
    assert words is None or words in response.text
    assert _last_refusal(live.adur, django_db_blocker)["reason"] == reason
    assert _in(live.adur, django_db_blocker, lambda: User.objects.count()) == users_before
    assert not _in(
        live.adur,
        django_db_blocker,
        lambda: SingleSignOnIdentity.objects.filter(subject=f"sub-{email}").exists(),
    )
    assert "Sign out" not in response.text


def test_it_refuses_a_replayed_nonce(live: Live, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    """A token carrying the nonce of an earlier sign-in is refused, even for an invited
    person whose sign-in would otherwise succeed."""
    email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@adur.gov.uk"
    _invite(live.adur, django_db_blocker, email)
    live.person(live.adur, email)
    _signed_in_home(live.sso(live.adur), live.adur.host)
    earlier = httpx.get(f"{live.provider}/adur/state", timeout=10).json()["nonces"][-1]
    live.person(live.adur, email, tamper={"nonce": earlier})
    response = live.sso(live.adur)
    assert response.status_code == 403
    assert _last_refusal(live.adur, django_db_blocker)["reason"] == "nonce"


def test_it_refuses_a_person_of_another_councils_provider(live: Live, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    """Someone Arun's provider knows, bringing Arun's answer (code and state) to Adur, or
    Adur's own state with a code Arun's provider issued: refused, nothing created in Adur."""
    email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@arun.gov.uk"
    live.person(live.arun, email)
    # A code and state from Arun's flow, stopped before Arun's callback.
    arun = browser(follow=False)
    to_provider = arun.get(live.arun.url(live.port, "/sign-in/sso/"))
    back = httpx.get(to_provider.headers["location"], timeout=10)
    query = httpx.URL(back.headers["location"]).query.decode()
    # 1. Presented as is at Adur's callback: Adur's session never started that flow.
    adur = browser()
    answer = adur.get(live.adur.url(live.port, f"/sign-in/sso/callback/?{query}"))
    assert answer.status_code == 403
    assert _last_refusal(live.adur, django_db_blocker)["reason"] == "state"
    # 2. With a state Adur did start: Adur's provider does not know Arun's code.
    adur = browser(follow=False)
    started = adur.get(live.adur.url(live.port, "/sign-in/sso/"))
    state = httpx.URL(started.headers["location"]).params["state"]
    code = httpx.URL(back.headers["location"]).params["code"]
    answer = adur.get(
        live.adur.url(live.port, "/sign-in/sso/callback/"), params={"code": code, "state": state}
    )
    assert answer.status_code == 403
    assert _last_refusal(live.adur, django_db_blocker)["reason"] == "token_refused"
    assert not _in(live.adur, django_db_blocker, lambda: User.objects.filter(email=email).exists())


def test_a_councils_provider_never_signs_anyone_into_another_council_or_the_console(
    live: Live, django_db_blocker
) -> None:  # type: ignore[no-untyped-def]
    """Both ways between the councils, and the console: a finished flow's callback (valid
    code, valid state) replayed at the other council's host or the console's gets nobody
    in there; the console has no single sign-on at all."""
    for home, other in ((live.adur, live.arun), (live.arun, live.adur)):
        email = f"{fake.user_name()}.{fake.random_int(1000, 9999)}@{home.realm}.gov.uk"
        live.person(home, email)
        client = browser(follow=False)
        to_provider = client.get(home.url(live.port, "/sign-in/sso/"))
        back = httpx.get(to_provider.headers["location"], timeout=10)
        query = httpx.URL(back.headers["location"]).query.decode()
        # The same browser carries the answer to the other council: its session cookie is
        # the home council's (host-only), so the other council sees no flow of its own.
        elsewhere = client.get(other.url(live.port, f"/sign-in/sso/callback/?{query}"))
        assert elsewhere.status_code == 403
        assert _last_refusal(other, django_db_blocker)["reason"] == "state"
        console = client.get(f"http://localhost:{live.port}/sign-in/sso/callback/?{query}")
        assert console.status_code == 404
        for side in (home, other):
            assert not _in(
                side, django_db_blocker, lambda e=email: User.objects.filter(email=e).exists()
            )
        with django_db_blocker.unblock():
            assert not User.objects.filter(email=email).exists()  # the public schema
    console = browser()
    assert console.get(f"http://localhost:{live.port}/sign-in/sso/").status_code == 404
    sign_in = console.get(f"http://localhost:{live.port}/sign-in/")
    assert sign_in.status_code == 200 and "Sign in with" not in sign_in.text
    assert (
        "Sign in with Adur Council account"
        in browser().get(live.adur.url(live.port, "/sign-in/")).text
    )


# --- The administrator's settings (in-process, against the same real provider) ----------------


def _settings_form(provider: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Brighton and Hove account",
        "issuer": f"{provider}/brighton",
        "client_id": "patchwork-brighton",
        "client_secret": "brighton-secret-never-shown",
        "email_domains": "brighton-hove.gov.uk, @Brighton.test",
        "email_claim": "email",
        "mfa_acr_values": "",
        "password_sign_in_for_practitioners": "on",
        "enabled": "on",
        **changes,
    }


def test_an_administrator_sets_up_single_sign_on(world, provider: str, db) -> None:  # type: ignore[no-untyped-def]
    """Bad settings get a clear error and save nothing; good ones are saved with the secret
    sealed (bound to this council), audited without it; a change keeps the secret."""
    from cryptography.exceptions import InvalidTag
    from django.db import connection

    from accounts.models import SingleSignOn
    from accounts.sealing import unseal
    from accounts.sso import client_secret
    from tests.personas import sign_in

    httpx.post(
        f"{provider}/control/brighton",
        json={"clients": {"patchwork-brighton": {"secret": "x", "redirect_uris": []}}},
        timeout=10,
    ).raise_for_status()
    assert sign_in(world.brighton_school_nurse).get("/admin/single-sign-on/").status_code == 403
    admin = sign_in(world.brighton_admin)
    page = admin.get("/admin/single-sign-on/")
    assert page.status_code == 200
    assert b"/sign-in/sso/callback/" in page.content
    for changes, words in (
        ({"issuer": "http://login.example.test/tenant"}, "The issuer must be an https address"),
        ({"issuer": f"{provider}/nowhere"}, "did not answer"),
        ({"client_secret": ""}, "Enter the client secret"),
        ({"email_domains": "not a domain!"}, "is not an email domain"),
    ):
        answer = admin.post("/admin/single-sign-on/", _settings_form(provider, **changes))
        assert answer.status_code == 200 and words in answer.content.decode(), words
        with schema_context(world.brighton.schema_name):
            assert not SingleSignOn.objects.exists()
    answer = admin.post("/admin/single-sign-on/", _settings_form(provider))
    assert answer.status_code == 302
    with schema_context(world.brighton.schema_name):
        sso = SingleSignOn.objects.get()
        assert sso.email_domains == ["brighton-hove.gov.uk", "brighton.test"]
        assert b"brighton-secret-never-shown" not in bytes(sso.sealed_client_secret)
        assert client_secret(sso) == "brighton-secret-never-shown"
        configured = AuditEvent.objects.get(action="sso_configured")
        assert "brighton-secret-never-shown" not in str(configured.detail)
        assert configured.actor_email == world.brighton_admin.email
    # The sealed secret opens only for this council.
    with pytest.raises(InvalidTag):
        unseal(bytes(sso.sealed_client_secret), context="patchwork:sso-client-secret:council_x")
    answer = admin.post(
        "/admin/single-sign-on/",
        _settings_form(provider, client_secret="", password_sign_in_for_practitioners=""),
    )
    assert answer.status_code == 302
    with schema_context(world.brighton.schema_name):
        assert connection.schema_name == world.brighton.schema_name
        assert client_secret(SingleSignOn.objects.get()) == "brighton-secret-never-shown"
        changed = AuditEvent.objects.get(action="sso_changed")
        assert changed.detail["changed"] == ["password_sign_in_for_practitioners"]
        SingleSignOnIdentity.objects.create(
            user=User.objects.get(email=world.brighton_school_nurse.email),
            issuer=f"{provider}/brighton",
            subject="nurse-at-the-old-tenant",
        )
    # Another issuer (the council moved tenant): the old links go, so nobody is refused as
    # "linked to another person" by subjects of the old one.
    httpx.post(f"{provider}/control/brighton-new", json={}, timeout=10).raise_for_status()
    answer = admin.post(
        "/admin/single-sign-on/",
        _settings_form(provider, client_secret="", issuer=f"{provider}/brighton-new"),
    )
    assert answer.status_code == 302
    with schema_context(world.brighton.schema_name):
        assert not SingleSignOnIdentity.objects.exists()
        moved = AuditEvent.objects.filter(action="sso_changed").order_by("-id").first()
        assert moved is not None and moved.detail["identities_unlinked"] == 1


def test_practitioners_password_sign_in_can_be_switched_off(world, provider: str, db) -> None:  # type: ignore[no-untyped-def]
    """With passwords off for practitioners: a practitioner's right password is refused
    with a pointer to the council's sign-in; an administrator still signs in; a
    practitioner cannot reach the settings page."""
    from django.test import Client

    from tests.personas import sign_in

    httpx.post(
        f"{provider}/control/brighton",
        json={"clients": {"patchwork-brighton": {"secret": "x", "redirect_uris": []}}},
        timeout=10,
    ).raise_for_status()
    with schema_context(world.brighton.schema_name):
        admin = User.objects.get(email=world.brighton_admin.email)
        sso_configure(
            configured_by=admin,
            **{
                **_settings_form(provider),
                "email_domains": [],
                "mfa_acr_values": [],
                "password_sign_in_for_practitioners": False,
                "enabled": True,
            },
        )
    persona = world.brighton_social_worker
    client = Client(HTTP_HOST=persona.host)
    page = client.get("/sign-in/")
    assert "Sign in with Brighton and Hove account" in page.content.decode()
    refused = client.post("/sign-in/", {"email": persona.email, "password": persona.password})
    assert refused.status_code == 200
    assert "signs practitioners in with its own account" in refused.content.decode()
    assert sign_in(world.brighton_admin).get("/admin/single-sign-on/").status_code == 200


def test_a_council_brought_back_from_an_archive_forgets_its_single_sign_on(
    world, provider: str, db
) -> None:  # type: ignore[no-untyped-def]
    """`council_credentials_forget` (sent by council_import) switches single sign-on off and
    drops the secret: no button, and the settings ask for the secret again."""
    from django.test import Client

    from accounts.models import SingleSignOn
    from tenants.signals import council_credentials_forget

    httpx.post(
        f"{provider}/control/brighton",
        json={"clients": {"patchwork-brighton": {"secret": "x", "redirect_uris": []}}},
        timeout=10,
    ).raise_for_status()
    settings = {
        **_settings_form(provider),
        "email_domains": [],
        "mfa_acr_values": [],
        "password_sign_in_for_practitioners": True,
        "enabled": True,
    }
    with schema_context(world.brighton.schema_name):
        admin = User.objects.get(email=world.brighton_admin.email)
        sso_configure(configured_by=admin, **settings)
        council_credentials_forget.send(sender=Council, council=world.brighton)
        sso = SingleSignOn.objects.get()
        assert not sso.enabled and bytes(sso.sealed_client_secret) == b""
        with pytest.raises(ValidationError, match="Enter the client secret"):
            sso_configure(configured_by=admin, **{**settings, "client_secret": ""})
    page = Client(HTTP_HOST=world.brighton_admin.host).get("/sign-in/")
    assert "Sign in with" not in page.content.decode()


def test_forged_answers_count_as_failed_sign_ins_from_the_address(
    world, provider: str, db, settings
) -> None:  # type: ignore[no-untyped-def]
    """Answers that fail the checks are limited per address like wrong passwords: past
    the limit the next one is a 429 saying how long to wait, before any check is made."""
    from django.test import Client

    from tests.ratelimits.fixtures import counters_clear

    settings.RATE_LIMIT_SIGN_IN_ADDRESS = "2/10m"
    counters_clear()
    httpx.post(
        f"{provider}/control/brighton",
        json={"clients": {"patchwork-brighton": {"secret": "x", "redirect_uris": []}}},
        timeout=10,
    ).raise_for_status()
    with schema_context(world.brighton.schema_name):
        admin = User.objects.get(email=world.brighton_admin.email)
        sso_configure(
            configured_by=admin,
            **{
                **_settings_form(provider),
                "email_domains": [],
                "mfa_acr_values": [],
                "password_sign_in_for_practitioners": True,
                "enabled": True,
            },
        )
    client = Client(HTTP_HOST=world.brighton_admin.host)
    try:
        for _ in range(2):
            forged = client.get("/sign-in/sso/callback/", {"code": "x", "state": "forged"})
            assert forged.status_code == 403
        limited = client.get("/sign-in/sso/callback/", {"code": "x", "state": "forged"})
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        with schema_context(world.brighton.schema_name):
            assert AuditEvent.objects.filter(action="sso_refused").count() == 2
    finally:
        counters_clear()
