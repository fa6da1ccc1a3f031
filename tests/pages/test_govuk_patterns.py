"""The GOV.UK Design System's patterns, as the pages answer: messages by level, the error
summary linked to the fields with "Error: " in the title, one date input for every date, the
"or" option for the whole team, and the service navigation on error pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from core.network_svg import network_svg
from core.selectors import TeamMember
from teamwork.models import Task
from tests.personas import client_for


def _title(html: str) -> str:
    match = re.search(r"<title>(.*?)</title>", html, re.S)
    assert match
    return match.group(1).strip()


def test_it_shows_an_error_as_an_error_summary_not_a_success_banner(world, scenario) -> None:  # type: ignore[no-untyped-def]
    """A contact dated in the future is refused: an error summary and "Error: " in the
    title, no green banner; nothing is recorded."""
    client = client_for(world, scenario.school_nurse)
    tomorrow = timezone.localdate() + timedelta(days=1)
    page = client.post(
        f"/people/{scenario.ava.pk}/contacts/",
        {
            "kind": "saw",
            "contact_date_day": str(tomorrow.day),
            "contact_date_month": str(tomorrow.month),
            "contact_date_year": str(tomorrow.year),
        },
        follow=True,
    ).content.decode()
    assert "govuk-error-summary" in page and "must be today or in the past" in page
    assert "govuk-notification-banner--success" not in page
    assert _title(page).startswith("Error: ")


def test_it_shows_a_success_as_a_success_banner(world, scenario) -> None:  # type: ignore[no-untyped-def]
    """A contact recorded today: the success banner, titled "Success", and a plain title."""
    client = client_for(world, scenario.school_nurse)
    page = client.post(
        f"/people/{scenario.ava.pk}/contacts/", {"kind": "spoke"}, follow=True
    ).content.decode()
    assert "govuk-notification-banner--success" in page and ">Success</h2>" in page
    assert "Contact recorded" in page and not _title(page).startswith("Error")


def test_it_links_a_form_wide_error_to_the_first_field_and_shows_it_there(world, db) -> None:  # type: ignore[no-untyped-def]
    """A wrong password is the form's error, not a field's: the summary links to the email
    field, the error is shown beside it, and the title starts "Error: "."""
    client = Client(HTTP_HOST=world.brighton_social_worker.host)
    page = client.post(
        "/sign-in/", {"email": world.brighton_social_worker.email, "password": "not it"}
    ).content.decode()
    assert '<a href="#id_email">The email address or password is not right</a>' in page
    assert 'id="id_email-error"' in page and 'aria-describedby="id_email-error"' in page
    assert _title(page).startswith("Error: ")


def test_it_takes_a_due_date_as_day_month_and_year_and_refuses_iso_text(world, scenario) -> None:  # type: ignore[no-untyped-def]
    """The task form draws the GOV.UK date input; the boxes set the task, an ISO date typed
    into one field does not."""
    client = client_for(world, scenario.social_worker)
    form = client.get(f"/people/{scenario.ava.pk}/tasks/new/").content.decode()
    assert 'name="due_date_day"' in form and 'type="date"' not in form
    assert '<textarea class="govuk-textarea"' in form  # what needs doing: several lines
    due = timezone.localdate() + timedelta(days=3)
    assignee = scenario.school_nurse.pk
    refused = client.post(
        f"/people/{scenario.ava.pk}/tasks/new/",
        {"text": "Ring the school", "assignee": assignee, "due_date": due.isoformat()},
    )
    assert refused.status_code == 200 and "Enter the due date" in refused.content.decode()
    client.post(
        f"/people/{scenario.ava.pk}/tasks/new/",
        {
            "text": "Ring the school",
            "assignee": assignee,
            "due_date_day": str(due.day),
            "due_date_month": str(due.month),
            "due_date_year": str(due.year),
        },
    )
    with schema_context(world.brighton.schema_name):
        assert Task.objects.get(text="Ring the school").due_date == due


def test_it_offers_the_whole_team_as_an_or_option(world, scenario) -> None:  # type: ignore[no-untyped-def]
    """Names first, then "or", then "The whole team", which unticks the names (exclusive)."""
    page = client_for(world, scenario.social_worker).get(f"/people/{scenario.ava.pk}/messages/new/")
    html = page.content.decode()
    divider = html.index('<div class="govuk-checkboxes__divider">or</div>')
    assert html.index('name="recipients"') < divider < html.index('id="whole_team"')
    assert 'data-behaviour="exclusive"' in html


def test_error_pages_keep_the_service_navigation_inside_the_header(world, scenario) -> None:  # type: ignore[no-untyped-def]
    """A page that is not there, on a council's host: the council's navigation, and the
    phase banner inside the header landmark."""
    page = client_for(world, scenario.social_worker).get("/no-such-page/")
    html = page.content.decode()
    assert page.status_code == 404 and "Page not found" in html
    header = html[html.index('<header class="pw-masthead">') : html.index("</header>")]
    assert "govuk-service-navigation__list" in header and "Search" in header
    assert "govuk-phase-banner" in header


def _member(**changes: object) -> TeamMember:
    fields: dict[str, object] = {
        "involvement_id": 1,
        "practitioner_name": "Nia Nightingale-Ferguson",
        "job_title": "",
        "role": "School nurse",
        "organisation": "Brighton and Hove School Nursing Service for Children and Young People",
        "agency_type": "school_nursing",
        "agency_label": "School nursing",
        "phone": "",
        "email": "",
        "start_date": None,
        "end_date": None,
        "end_reason": "",
        "last_contact_date": None,
        "last_confirmed_at": None,
        "lead_professional": False,
        "child_protection": False,
        "is_me": False,
    }
    return TeamMember(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("narrow", [False, True])
def test_the_picture_wraps_long_labels_and_never_cuts_them_short(narrow: bool) -> None:
    """Every word of a long organisation's name is in the picture, on lines of their own,
    in the ring and in the phone's column; nothing ends in "…"."""
    svg = network_svg(
        svg_id="t",
        centre_name="Maisie Fitzgerald-Oyelaran",
        centre_caption="Born 14 Mar 2014",
        members=[_member(), _member(involvement_id=2, lead_professional=True)],
        narrow=narrow,
    )
    assert "…" not in svg
    lines = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "Brighton and Hove School" in lines and "Nursing Service for Children" in lines
    assert "and Young People" in lines
    assert "Fitzgerald-" in lines and "Oyelaran" in lines
    assert f'class="{"pw-network-narrow" if narrow else "pw-network"}"' in svg
