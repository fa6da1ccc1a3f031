"""Lockouts and second factors in a real browser (decision 0019): the warning before the
last attempt and an administrator's unlock; an administrator's reset of an authenticator
and the practitioner setting up a new one; signing in with a recovery code. Data is
committed for the live server (see test_browser.py) and removed afterwards; the audit
events stay, being append-only."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from axes.models import AccessAttempt
from django_otp.oath import TOTP
from django_tenants.utils import schema_context

from accounts.factors import recovery_codes_issue
from accounts.models import User
from core.models import EmailOutbox
from tests.browser import chromium, committed, live_server, sign_in_page
from tests.personas import Persona, World, make_persona

pytestmark = pytest.mark.browser

WRONG = "not the password at all"


@dataclass
class Cast:
    base_url: str
    admin: Persona
    practitioner: Persona
    practitioner_name: str


def _cast(world: World, tag: str) -> tuple[Persona, Persona]:
    admin = make_persona(
        world.brighton, f"adm-{tag}@brighton.test", f"Ada Admin {tag}", User.Role.COUNCIL_ADMIN
    )
    practitioner = make_persona(
        world.brighton, f"pra-{tag}@brighton.test", f"Pat O'Neill {tag}", User.Role.PRACTITIONER
    )
    return admin, practitioner


def _remove(world: World, *personas: Persona) -> None:
    with schema_context(world.brighton.schema_name):
        emails = [persona.email for persona in personas]
        AccessAttempt.objects.filter(username__in=emails).delete()
        EmailOutbox.objects.filter(to_email__in=emails).delete()
        User.objects.filter(email__in=emails).delete()


@pytest.fixture
def cast(world: World, db: None) -> Iterator[Cast]:
    host = world.brighton.get_primary_domain().domain
    tag = secrets.token_hex(3)
    admin, practitioner = committed(lambda: _cast(world, tag))  # type: ignore[misc]
    try:
        with live_server(host) as base_url:
            yield Cast(base_url, admin, practitioner, f"Pat O'Neill {tag}")
    finally:
        committed(lambda: _remove(world, admin, practitioner))


def _password(page, base_url: str, persona: Persona, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base_url}/sign-in/")
    page.get_by_label("Email address").fill(persona.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()


def test_a_practitioner_is_warned_locked_out_and_unlocked_by_an_administrator(cast) -> None:
    """Four wrong passwords warn, the fifth locks for 30 minutes; the administrator finds the
    account among the locked ones and unlocks it; the practitioner signs in."""
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_context().new_page()
        page.set_default_timeout(10_000)
        for _ in range(3):
            _password(page, cast.base_url, cast.practitioner, WRONG)
            expect(page.locator(".govuk-error-summary")).to_contain_text("is not right")
            expect(page.get_by_test_id("last-attempt-warning")).to_have_count(0)
        _password(page, cast.base_url, cast.practitioner, WRONG)
        expect(page.get_by_test_id("last-attempt-warning")).to_contain_text(
            "You have 1 more attempt before your account is locked for 30 minutes."
        )
        _password(page, cast.base_url, cast.practitioner, WRONG)
        expect(page.get_by_role("heading", name="This account is locked")).to_be_visible()
        expect(page.locator("main")).to_contain_text("Try again in 30 minutes")

        admin = browser.new_context().new_page()
        sign_in_page(admin, cast.base_url, cast.admin)
        admin.goto(f"{cast.base_url}/admin/users/")
        admin.get_by_role("link", name="Locked accounts").click()
        row = admin.locator("tr", has_text=cast.practitioner.email)
        expect(row).to_contain_text(cast.practitioner_name)
        row.get_by_role("button", name="Unlock").click()
        expect(admin.locator(".govuk-notification-banner")).to_contain_text("is unlocked")
        expect(admin.get_by_test_id("none-locked")).to_be_visible()

        sign_in_page(page, cast.base_url, cast.practitioner)


def test_an_administrator_resets_a_second_factor_and_the_practitioner_sets_up_again(
    world: World, cast
) -> None:
    """The reset is confirmed, emailed through the outbox; at the next sign-in, after the
    password, the practitioner scans a new key, enters its code and sees recovery codes."""
    from playwright.sync_api import expect

    with chromium() as browser:
        admin = browser.new_context().new_page()
        sign_in_page(admin, cast.base_url, cast.admin)
        admin.goto(f"{cast.base_url}/admin/users/")
        admin.get_by_role("link", name="Second factors").click()
        row = admin.locator("tr", has_text=cast.practitioner.email)
        row.get_by_role("link", name="Reset").click()
        admin.get_by_role("button", name="Reset authenticator app").click()
        expect(admin.locator(".govuk-notification-banner")).to_contain_text(
            "authenticator app is reset"
        )
        row = admin.locator("tr", has_text=cast.practitioner.email)
        expect(row).to_contain_text("Reset: to set up at next sign-in")

        def emailed() -> int:
            with schema_context(world.brighton.schema_name):
                return EmailOutbox.objects.filter(to_email=cast.practitioner.email).count()

        assert committed(emailed) == 1

        page = browser.new_context().new_page()
        page.set_default_timeout(10_000)
        _password(page, cast.base_url, cast.practitioner, cast.practitioner.password)
        expect(
            page.get_by_role("heading", name="Set up your authenticator app again")
        ).to_be_visible()
        secret = page.get_by_test_id("totp-secret").inner_text().strip()
        code = f"{TOTP(base64.b32decode(secret)).token():06d}"
        page.get_by_label("Code from your authenticator app").fill(code)
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="Your authenticator app is set up")).to_be_visible()
        expect(page.get_by_test_id("recovery-codes").locator("li")).to_have_count(10)
        page.get_by_role("link", name="I have saved my codes: continue").click()
        page.wait_for_url(f"{cast.base_url}/")


def test_a_practitioner_signs_in_with_a_recovery_code(world: World, cast) -> None:
    """Without the authenticator app: one of the saved codes, then the count left."""
    from playwright.sync_api import expect

    def issue() -> list[str]:
        with schema_context(world.brighton.schema_name):
            return recovery_codes_issue(user=User.objects.get(email=cast.practitioner.email))

    codes: list[str] = committed(issue)  # type: ignore[assignment]
    with chromium() as browser:
        page = browser.new_context().new_page()
        page.set_default_timeout(10_000)
        _password(page, cast.base_url, cast.practitioner, cast.practitioner.password)
        page.get_by_role("link", name="Use a recovery code").click()
        page.get_by_label("Recovery code").fill(codes[3])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{cast.base_url}/")
        expect(page.locator(".govuk-notification-banner")).to_contain_text(
            "You have 9 recovery codes left."
        )
