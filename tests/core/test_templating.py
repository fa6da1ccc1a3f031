"""The Jinja2 environment of the person page (decision 0027) writes what Django would."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.template import defaultfilters, engines

from core.templating import DATE_FORMATS, date

DAYS = [datetime.date(2026, month, day) for month in range(1, 13) for day in (1, 9, 28)]
MOMENTS = [
    datetime.datetime(2026, 3, 29, 0, 30, tzinfo=datetime.UTC),  # GMT
    datetime.datetime(2026, 3, 29, 1, 30, tzinfo=datetime.UTC),  # BST: 02:30 in London
    datetime.datetime(2026, 12, 31, 23, 59, tzinfo=ZoneInfo("Europe/London")),
]


@pytest.mark.parametrize("format_string", sorted(DATE_FORMATS))
def test_it_writes_dates_as_django_does(format_string: str) -> None:
    """Every date the pages show, in the short-cut formats, reads as Django's filter."""
    from django.utils.timezone import get_current_timezone, template_localtime

    values: list[object] = [*MOMENTS] if "H" in format_string else [*DAYS, *MOMENTS]
    for value in values:
        expected = defaultfilters.date(template_localtime(value), format_string)
        assert date(value, format_string) == expected, value
        # As a page writes it, with the current time zone read once for the page.
        zone = get_current_timezone()
        assert date(value, format_string, zone) == expected, value


def test_it_writes_no_date_as_nothing() -> None:
    """A missing date is an empty string, as with Django's filter."""
    assert date(None, "j M Y") == ""


def test_it_escapes_every_markup_character() -> None:
    """Text with markup characters is escaped (an apostrophe as markupsafe writes it), and
    text Django has marked safe is placed as it is, as in Django's own templates."""
    from django.utils.safestring import mark_safe

    text = """Ava O'Brien-Smith <b>&amp; "co"</b>"""
    page = engines["jinja2"].from_string("{{ text }}|{{ safe }}")
    written = page.render({"text": text, "safe": mark_safe("<b>Kept</b>")})
    assert written == "Ava O&#39;Brien-Smith &lt;b&gt;&amp;amp; &#34;co&#34;&lt;/b&gt;|<b>Kept</b>"


def test_url_writes_what_reverse_writes() -> None:
    """`url()` in the pages: ids filled into an address reversed once per page name, and
    anything that is not a plain id reversed as it is: always Django's own address."""
    from django.urls import NoReverseMatch, reverse

    from core.templating import url

    for name, args in [
        ("core:person", (7,)),
        ("core:person", (123456789,)),
        ("core:relative_add", (12, 3456)),
        ("core:search", ()),
        ("federation:agreement", ("agr-42",)),
        ("federation:agreement", (9,)),
    ]:
        assert url(name, *args) == reverse(name, args=args), (name, args)
    # What Django refuses, url() refuses too: a negative id matches no <int:> pattern.
    for refused in [("core:person", (-1,)), ("core:person", (1, 2))]:
        with pytest.raises(NoReverseMatch):
            reverse(refused[0], args=refused[1])
        with pytest.raises(NoReverseMatch):
            url(refused[0], *refused[1])


def test_days_ago_on_a_page_reads_as_without_one() -> None:
    """`days_ago` with the page's time zone and date given is what it is without them."""
    from django.utils import timezone

    from core.templating import days_ago

    zone = timezone.get_current_timezone()
    today = timezone.localdate()
    for value in [*DAYS, *MOMENTS, today, timezone.now(), None]:
        assert days_ago(value, zone=zone, today=today) == days_ago(value), value
    page = engines["jinja2"].from_string("{{ d|days_ago }} {{ d|date('j M Y') }}")
    assert (
        page.render({"d": today})
        == page.render({"d": today, "page_clock": (zone, today)})
        == f"today {today.day} {today:%b} {today.year}"
    )


def test_request_user_is_the_user_behind_every_stand_in() -> None:
    """django-otp's lazy stand-in wraps Django's, which wraps the user: both are undone."""
    from django.http import HttpRequest
    from django.utils.functional import SimpleLazyObject

    from core.templating import request_user

    user = object()
    request = HttpRequest()
    request.user = SimpleLazyObject(lambda: SimpleLazyObject(lambda: user))  # type: ignore[assignment]
    assert request_user(request) is user
    request.user = user  # type: ignore[assignment]
    assert request_user(request) is user
