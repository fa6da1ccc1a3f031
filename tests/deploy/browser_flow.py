"""Debian's Chromium, driven by Playwright, signing in to a deployed Patchwork over HTTPS.

Run by the deployment test inside the controller's network namespace (the containers are
reachable only there), so it is a program of its own rather than a fixture:

    ip netns exec pwdt-ctl python tests/deploy/browser_flow.py '{"address": ..., ...}'

It takes one JSON argument and prints one JSON object: what each page showed. The host
names resolve to the deployment's address through Chromium's own resolver rules, and the
deployment's certificate is the test's own (accepted, not trusted system-wide).
"""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import Any

from django_otp.oath import totp
from playwright.sync_api import Page, sync_playwright

from tests.chromium import CHROMIUM, CHROMIUM_ARGS

STEP = 30


def code(secret: str, *, after: int = -1) -> tuple[str, int]:
    """The authenticator app's code for `secret` (base32, as the page shows it), from a time
    step later than `after`: a code once used is refused for the rest of its step."""
    while int(time.time()) // STEP <= after:
        time.sleep(0.5)
    step = int(time.time()) // STEP
    return f"{totp(base64.b32decode(secret), step=STEP):06d}", step


def heading(page: Page) -> str:
    return page.locator("h1").first.inner_text().strip()


def accept_invitation(page: Page, url: str, password: str) -> dict[str, Any]:
    """Open an invitation link, choose a password and enrol the authenticator app."""
    page.goto(url)
    setup_heading = heading(page)
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    page.get_by_label("Create a password").fill(password)
    page.get_by_label("Type the password again").fill(password)
    one_time, step = code(secret)
    page.get_by_label("Code from your authenticator app").fill(one_time)
    page.get_by_role("button", name="Create account").click()
    return {
        "setup_heading": setup_heading,
        "done_heading": heading(page),
        "secret": secret,
        "step": step,
    }


def sign_in(page: Page, base: str, email: str, password: str, secret: str, used_step: int) -> dict:
    """The two-step sign-in: password, then a fresh code."""
    page.goto(f"{base}/sign-in/")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Continue").click()
    one_time, _ = code(secret, after=used_step)
    page.get_by_label("Code from your authenticator app").fill(one_time)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")
    stylesheet = page.evaluate(
        "() => [...document.styleSheets].some(s => (s.href || '').includes('govuk-frontend'))"
    )
    return {
        "url": page.url,
        "heading": heading(page),
        "title": page.title(),
        "stylesheet_loaded": stylesheet,
        "service_name_font": page.evaluate("() => getComputedStyle(document.body).fontFamily"),
    }


def main(arguments: dict[str, Any]) -> dict[str, Any]:
    rules = ", ".join(f"MAP {host} {arguments['address']}" for host in arguments["hosts"])
    results: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules={rules}"],
        )
        try:
            for flow in arguments["flows"]:
                context = browser.new_context(ignore_https_errors=True)
                page = context.new_page()
                page.set_default_timeout(30_000)
                responses: list[int] = []
                page.on("response", lambda response, seen=responses: seen.append(response.status))
                outcome = accept_invitation(page, flow["invitation"], flow["password"])
                if flow.get("sign_in"):
                    outcome["sign_in"] = sign_in(
                        page,
                        flow["base"],
                        flow["email"],
                        flow["password"],
                        outcome["secret"],
                        outcome["step"],
                    )
                outcome["server_errors"] = [status for status in responses if status >= 500]
                outcome.pop("secret")
                results[flow["name"]] = outcome
                context.close()
        finally:
            browser.close()
    return results


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
