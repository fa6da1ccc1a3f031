"""Two deployments over real HTTP (two databases, two gunicorn servers, as in `make
federation-demo`): a child recorded in Kent with an NHS number mistyped as that of another
child in Devon comes back as a possible mismatch, never as a match, in what the Kent
practitioner sees on the command line and on the page, with none of the Devon child's
contacts; the child who really moved is a confirmed match (decision 0013)."""

from __future__ import annotations

import os
import re

import httpx
from django.conf import settings
from django.db import connections
from django_otp.oath import TOTP
from patchwork_demo.federation import (
    ASKER_EMAIL,
    ASKER_PASSWORD,
    ASKER_TOTP_KEY,
    KENT,
    asker_sign_in_set,
    deployments,
    exchange,
    mistyped_lookup,
)

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
OTHER_CHILDS = ("Crediton", "01363", "Oliver", "Pike")


def _signed_in(base: str, host: str) -> httpx.Client:
    """The Kent practitioner, signed in over HTTP with password and authenticator code."""
    browser = httpx.Client(base_url=base, headers={"Host": host}, timeout=30)
    token = TOKEN.search(browser.get("/sign-in/").text)
    assert token, "no sign-in form"
    response = browser.post(
        "/sign-in/",
        data={
            "email": ASKER_EMAIL,
            "password": ASKER_PASSWORD,
            "csrfmiddlewaretoken": token.group(1),
        },
    )
    assert response.status_code == 302, response.text
    form = browser.get("/sign-in/code/").text
    code = f"{TOTP(bytes.fromhex(ASKER_TOTP_KEY)).token():06d}"
    response = browser.post(
        "/sign-in/code/",
        data={"code": code, "csrfmiddlewaretoken": TOKEN.search(form).group(1)},  # type: ignore[union-attr]
    )
    assert response.status_code == 302, response.text
    return browser


def test_a_mistyped_nhs_number_is_a_possible_mismatch_across_deployments(django_db_setup) -> None:  # type: ignore[no-untyped-def]
    """Mia's NHS number was typed as Oliver's (Devon): "possible mismatch" with the duty
    team, never "Known to Devon", and nothing of Oliver's; Amelia, who moved, is confirmed."""
    template = connections["default"].settings_dict["NAME"]
    connections.close_all()
    env = {**os.environ, "PATCHWORK_ENV": "test"}
    env.pop("TEST_DATABASE_NAME", None)
    with deployments(settings.DATABASE_URL, template=template, base_env=env) as (a, b):
        moved = exchange(a, b, say=lambda _: None)
        mia, seen = mistyped_lookup(a, b, say=lambda _: None)
        asker_sign_in_set(a)
        page = _signed_in(f"http://127.0.0.1:{a.port}", f"{KENT['slug']}.{a.domain}:{a.port}")
        try:
            url = f"/federation/people/{mia}/other-councils/"
            token = TOKEN.search(page.get(url).text)
            assert token
            checked = page.post(
                url, data={"purpose": "safeguarding", "csrfmiddlewaretoken": token.group(1)}
            )
            assert checked.status_code == 200
            shown = checked.text
            again = page.get(url).text
        finally:
            page.close()
    # The child who moved: a plain, confirmed match, with the school nurse.
    assert moved[0] == "Known to Devon"
    assert "  NHS number, name and date of birth match" in moved
    # The mistyped number, on the command line.
    assert seen[0] == "Devon: possible mismatch"
    assert (
        "  NHS number matches but the date of birth does not: check with Devon before acting"
        in seen
    )
    assert "  duty team: Devon children's duty team, 01392 000000" in seen
    assert not any("Known to" in line for line in seen)
    assert not any(word in line for line in seen for word in OTHER_CHILDS)
    # And on the page, just checked and as last recorded.
    for html in (shown, again):
        assert "govuk-warning-text" in html
        assert "Devon: possible mismatch" in html
        assert (
            "NHS number matches but the date of birth does not: check with Devon before acting"
            in html
        )
        assert "Devon children&#x27;s duty team, 01392 000000" in html
        assert "Known to Devon" not in html
        assert not any(word in html for word in OTHER_CHILDS)
        assert "Safeguarding a child (Devon)" in html
