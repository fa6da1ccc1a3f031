"""Shared pieces of the browser tests: Debian's Chromium, a live server on 127.0.0.1 for a
council's host, committed test data and the two-step sign-in."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.db import connections

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.personas import Persona

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "chromium", "committed", "live_server", "sign_in_page"]


def committed(work: Callable[[], object]) -> object:
    """Run `work` on a connection of its own, so what it writes is committed at once (the
    live server's threads have their own connections and see only committed rows)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextmanager
def live_server(host: str) -> Iterator[str]:
    """Serve Patchwork on 127.0.0.1 (a free port) in threads; yield the base URL for `host`
    (`*.localhost` resolves to loopback in Chromium)."""
    from deploy.wsgi import application

    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=True)
    server.set_app(application)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def sign_in_page(page: Any, base_url: str, persona: Persona) -> None:
    """Sign in through both steps of the real form: password, then the authenticator code."""
    page.set_default_timeout(10_000)
    page.goto(f"{base_url}/sign-in/")
    page.get_by_label("Email address").fill(persona.email)
    page.get_by_label("Password").fill(persona.password)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code from your authenticator app").fill(persona.code())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")


# Reports each Content-Security-Policy violation, as the page's own event describes it.
_LISTEN_FOR_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportPolicyViolation(
    `${event.effectiveDirective} blocked ${event.blockedURI || "inline"} on ${location.pathname}`
  );
});
"""


class PolicyWatchedBrowser:
    """A Playwright browser whose every context reports the Content-Security-Policy
    violations of its pages into `violations`."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser
        self.violations: list[str] = []

    def new_context(self, **options: Any) -> Any:
        context = self._browser.new_context(**options)
        context.expose_function(
            "reportPolicyViolation", lambda text: self.violations.append(str(text))
        )
        context.add_init_script(_LISTEN_FOR_VIOLATIONS)
        return context

    def new_page(self, **options: Any) -> Any:
        return self.new_context(**options).new_page()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, closed afterwards; the test is skipped, saying
    why, when Chromium cannot start here. A test whose pages violated the Content-Security-
    Policy fails, naming each violation (`browser.violations`; a test that provokes some on
    purpose empties the list)."""
    import pytest
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            reason = f"Chromium could not start ({CHROMIUM}): {exc.message.splitlines()[0]}"
            print(reason)
            pytest.skip(reason)
        watched = PolicyWatchedBrowser(browser)
        try:
            yield watched
        finally:
            browser.close()
        assert watched.violations == [], (
            f"the pages violated the Content-Security-Policy: {watched.violations}"
        )
    finally:
        playwright.stop()
