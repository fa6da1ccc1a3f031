"""In a real browser (Playwright driving Debian's Chromium against a live server on
127.0.0.1), at the production limits: past the address's allowance, signing in -- even with
the right password -- shows the GOV.UK "Too many attempts" page, and nothing else happens."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.browser import chromium, live_server

pytestmark = pytest.mark.browser


def test_a_limited_person_sees_how_long_to_wait(world, db, production_limits) -> None:
    persona = world.brighton_school_nurse
    # Twenty failures from the same address (the browser connects from 127.0.0.1 too).
    client = Client(HTTP_HOST=persona.host, REMOTE_ADDR="127.0.0.1")
    for n in range(20):
        client.post("/sign-in/", {"email": f"b{n}@brighton.test", "password": "wrong-password-1"})
    from playwright.sync_api import expect

    with live_server(persona.host) as base_url, chromium() as browser:
        page = browser.new_context().new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{base_url}/sign-in/")
        page.get_by_label("Email address").fill(persona.email)
        page.get_by_label("Password").fill(persona.password)
        answer = None

        def remember(response) -> None:  # type: ignore[no-untyped-def]
            nonlocal answer
            if response.request.method == "POST":
                answer = response

        page.on("response", remember)
        page.get_by_role("button", name="Continue").click()
        expect(page.get_by_role("heading", name="Too many attempts to sign in")).to_be_visible()
        expect(page.get_by_text("then try again")).to_be_visible()
        expect(page.locator("header.govuk-header, .govuk-header").first).to_be_visible()
        assert answer is not None and answer.status == 429
        assert int(answer.headers["retry-after"]) >= 1
        assert page.url == f"{base_url}/sign-in/"
        page.get_by_role("link", name="Back to sign in").click()
        expect(page.get_by_label("Email address")).to_be_visible()
