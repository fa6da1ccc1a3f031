"""The Content-Security-Policy in force in a real browser: a practitioner signs in (after a
mistake), searches (after a too-broad search), states a reason, sees the network picture and
meets a missing record, and Chromium reports no violation of the policy on any page, while
GOV.UK Frontend's JavaScript still starts every component and the stylesheets still apply.

A script and a style attribute put into the last page on purpose are blocked and reported, so
the listener (tests/browser.py, which every browser test has) is known to hear violations."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import chromium, committed, live_server, sign_in_page
from tests.pages.test_browser import LiveCouncil, _Made, _make, _remove
from tests.personas import World

pytestmark = pytest.mark.browser


@pytest.fixture
def live(world: World, db: None) -> Iterator[LiveCouncil]:
    """Brighton on a live server, with a child and their team (committed, removed after)."""
    host = world.brighton.get_primary_domain().domain
    made: _Made = committed(lambda: _make(world, host, secrets.token_hex(3)))  # type: ignore[assignment]
    try:
        with live_server(host) as base_url:
            made.live.base_url = base_url
            yield made.live
    finally:
        committed(lambda: _remove(world, made))


def _initialised(page: Any, module: str) -> bool:
    """Whether GOV.UK Frontend started the component (it marks each with data-<module>-init)."""
    return bool(page.locator(f'[data-module="{module}"][data-{module}-init]').count())


def test_every_main_page_works_under_the_policy_with_no_violation(live: LiveCouncil) -> None:
    """Sign-in, search, the reason form, the person page with its picture, a form's errors
    and a 404: the policy arrives with each, nothing is blocked, and the scripts run."""
    from playwright.sync_api import expect

    console: list[str] = []
    policies: dict[str, str | None] = {}
    with chromium() as browser:
        violations: list[str] = browser.violations
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.on(
            "console",
            lambda message: (
                console.append(f"{message.type}: {message.text}")
                if message.type in {"error", "warning"}
                else None
            ),
        )
        page.on(
            "response",
            lambda response: (
                policies.__setitem__(response.url, response.headers.get("content-security-policy"))
                if response.request.resource_type == "document"
                else None
            ),
        )
        page.set_default_timeout(10_000)

        # A wrong password first: the error summary is started (and focused) by GOV.UK's JS.
        page.goto(f"{live.base_url}/sign-in/")
        page.get_by_label("Email address").fill(live.newcomer.email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="There is a problem")).to_be_visible()
        assert _initialised(page, "govuk-error-summary")
        assert page.evaluate("document.activeElement.classList.contains('govuk-error-summary')")
        assert _initialised(page, "govuk-skip-link")
        sign_in_page(page, live.base_url, live.newcomer)
        assert page.evaluate("document.body.classList.contains('govuk-frontend-supported')")
        assert _initialised(page, "govuk-service-navigation")
        # Patchwork's own stylesheet applies: its sign-out button looks like a link.
        assert page.locator(".pw-link-button").evaluate("e => getComputedStyle(e).cursor") == (
            "pointer"
        )

        # A search too broad to answer, then one that finds the child.
        page.get_by_role("link", name="Search", exact=True).click()
        page.get_by_label("Surname").fill(live.child.family_name)
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.get_by_role("heading", name="There is a problem")).to_be_visible()
        assert _initialised(page, "govuk-error-summary")
        page.get_by_label("Day").fill(str(live.child_dob.day))
        page.get_by_label("Month").fill(str(live.child_dob.month))
        page.get_by_label("Year").fill(str(live.child_dob.year))
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page.get_by_role("heading", name="1 person found")).to_be_visible()
        page.get_by_role("link", name=live.child.full_name).click()

        # The reason form (radios), first without a reason, then with one.
        page.get_by_role("button", name="Open the record").click()
        expect(page.get_by_role("heading", name="There is a problem")).to_be_visible()
        assert _initialised(page, "govuk-radios")
        page.get_by_label("About to start work with this person").check()
        page.get_by_label("Say in a sentence what this is about").fill(
            "I am the new school nurse and will see her weekly."
        )
        page.get_by_role("button", name="Open the record").click()

        # The network picture, drawn and styled (its border comes from patchwork.css).
        picture = page.locator("svg.pw-network")
        expect(picture).to_be_visible()
        expect(picture).to_contain_text(live.lead_name)
        assert picture.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
        person_url = page.url

        # A record that does not exist.
        missing = page.goto(f"{live.base_url}/people/987654321/")
        assert missing is not None and missing.status == 404

        assert violations == [], violations
        assert [line for line in console if "Policy" in line or "Refused" in line] == []

        # What the policy is for: an injected script does not run, an injected style does
        # not apply, and both are reported.
        page.goto(person_url)
        page.evaluate(
            """() => {
              const script = document.createElement("script");
              script.textContent = "window.injected = true";
              document.body.append(script);
              document.querySelector("h1").setAttribute("style", "color: rgb(255, 0, 0)");
            }"""
        )
        page.wait_for_timeout(200)
        assert page.evaluate("window.injected") is None
        assert page.locator("h1").evaluate("e => getComputedStyle(e).color") != "rgb(255, 0, 0)"
        context.close()
        assert sorted(v.split(" ")[0] for v in violations) == [
            "script-src-elem",
            "style-src-attr",
        ]
        violations.clear()  # provoked on purpose

    assert policies and all(policies.values()), policies
