"""The federation's pages for a council's people (issue 15): in the navigation for whoever may
open them, partners by council name and purposes in words, never `council:E…` or codes; the
"other councils" pages with an h1."""

from __future__ import annotations

import re

import pytest
from django.utils.html import escape

from accounts.models import User
from tests.federation.agreement import make_agreement
from tests.personas import client_for, make_persona, sign_in

pytestmark = pytest.mark.django_db


def _nav(page: str) -> str:
    start = page.index('class="govuk-service-navigation__list"')
    return page[start : page.index("</ul>", start)]


def _main(page: str) -> str:
    return page[page.index("<main") : page.index("</main>")]


def _without_document(page: str) -> str:
    """The page less the signed document itself (shown as it was signed, codes and all)."""
    return re.sub(r"<pre.*?</pre>", "", _main(page), flags=re.DOTALL)


def test_agreements_name_the_partner_council_and_say_the_purposes_in_words(world, db) -> None:
    """An IG officer finds 'Data-sharing agreements' in the navigation; the list and the
    agreement's page say 'Staffordshire' and 'Early help and family support'."""
    proposed, _ = make_agreement(
        world.brighton, world.staffordshire, purposes=["safeguarding", "early_help"]
    )
    ig = sign_in(
        make_persona(world.brighton, "ig.words@brighton.test", "Ife Words", User.Role.IG_OFFICER)
    )
    listing = ig.get("/federation/agreements/").content.decode()
    nav = _nav(listing)
    assert 'href="/federation/agreements/"' in nav
    assert (
        "govuk-service-navigation__item--active" in nav.split("Data-sharing agreements")[0][-300:]
    )
    assert "Other councils" not in nav
    main = _main(listing)
    assert "Staffordshire" in main
    assert "Safeguarding a child, Early help and family support" in main
    assert "council:" not in main and "early_help" not in main

    detail = ig.get(f"/federation/agreements/{proposed.agreement_id}/").content.decode()
    assert '<h1 class="govuk-heading-l">Agreement with Staffordshire</h1>' in detail
    shown = _without_document(detail)
    assert "Brighton and Hove, Staffordshire" in shown  # signed by
    assert "council:" not in shown and "early_help" not in shown
    assert 'href="/federation/agreements/"' in _nav(detail)
    proposing = ig.get("/federation/agreements/new/").content.decode()
    assert "Staffordshire (ONS code E10000028)" in proposing
    assert ">council:" not in proposing


def test_practitioners_find_other_councils_in_the_navigation_with_what_they_may_ask(
    world, scenario
) -> None:
    """The nurse's navigation has 'Other councils': a page with an h1 listing each purpose in
    words with the councils' names; a child's own "other councils" page has an h1 too."""
    make_agreement(world.brighton, world.staffordshire, purposes=["early_help"])
    nurse = client_for(world, scenario.school_nurse)
    page = nurse.get("/federation/councils/").content.decode()
    nav = _nav(page)
    assert 'href="/federation/councils/"' in nav and "Data-sharing agreements" not in nav
    main = _main(page)
    assert '<h1 class="govuk-heading-l">Other councils</h1>' in main
    assert "Early help and family support" in main and "Staffordshire" in main
    assert "council:" not in main and "early_help" not in main

    child = nurse.get(f"/federation/people/{scenario.ava.pk}/other-councils/").content.decode()
    assert re.search(r"<h1 [^>]*>Other councils</h1>", child)
    assert escape(scenario.ava.full_name) in _main(child)
    assert "Early help and family support (Staffordshire)" in child
    assert "govuk-service-navigation__item--active" in _nav(child).split("Other councils")[0][-300:]


@pytest.mark.parametrize(
    ("role", "path", "expected"),
    [
        (User.Role.IG_OFFICER, "/federation/councils/", 403),
        (User.Role.COUNCIL_ADMIN, "/federation/councils/", 403),
        (User.Role.PRACTITIONER, "/federation/councils/", 200),
        (User.Role.MANAGER, "/federation/councils/", 200),
    ],
)
def test_who_may_open_the_other_councils_page(world, db, role, path, expected) -> None:  # type: ignore[no-untyped-def]
    """The list of what a practitioner may ask is for practitioners and their managers."""
    persona = make_persona(world.brighton, f"{role}.words@brighton.test", "Someone", role)
    assert sign_in(persona).get(path).status_code == expected
