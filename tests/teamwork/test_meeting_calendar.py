"""A meeting's calendar file (issue 15): downloaded from the meeting's page or attached to the
invitation email, built by one function, valid RFC 5545 (read back by `icalendar` and by the
strict `ical` parser, plus our own checks of what RFC 5545 requires), with the VTIMEZONE
its times refer to, the organiser and the attendees, and no name of the child anywhere."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import icalendar
import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_tenants.utils import schema_context
from ical.calendar_stream import IcsCalendarStream

from core.models import AuditEvent, EmailOutbox, PersonName
from teamwork.meetings import NEUTRAL_SUMMARY, meeting_change, meeting_ics, meeting_schedule
from teamwork.models import Meeting
from tests.personas import client_for

pytestmark = pytest.mark.django_db


def rfc5545_problems(text: str) -> list[str]:
    """What RFC 5545 requires of a calendar like ours, checked on the file itself: CRLF
    lines of at most 75 octets; VERSION and PRODID; in each VEVENT a UID, a UTC DTSTAMP and
    a DTSTART; every TZID a time refers to defined by a VTIMEZONE with its rules."""
    problems = []
    if not text.endswith("\r\n") or "\n" in text.replace("\r\n", ""):
        problems.append("lines must end in CRLF")
    problems += [
        f"line longer than 75 octets: {line[:30]}…"
        for line in text.split("\r\n")
        if len(line.encode()) > 75
    ]
    calendar = icalendar.Calendar.from_ical(text)
    if str(calendar.get("VERSION")) != "2.0" or not calendar.get("PRODID"):
        problems.append("VERSION:2.0 and PRODID are required")
    defined = {str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")}
    for zone in calendar.walk("VTIMEZONE"):
        rules = zone.walk("STANDARD") + zone.walk("DAYLIGHT")
        if not rules or any(
            not all(rule.get(p) for p in ("DTSTART", "TZOFFSETFROM", "TZOFFSETTO"))
            for rule in rules
        ):
            problems.append(f"VTIMEZONE {zone['TZID']} lacks its rules")
    events = calendar.walk("VEVENT")
    if not events:
        problems.append("no VEVENT")
    for event in events:
        for required in ("UID", "DTSTAMP", "DTSTART"):
            if event.get(required) is None:
                problems.append(f"VEVENT without {required}")
        stamp = event.get("DTSTAMP")
        if stamp is not None and not stamp.to_ical().endswith(b"Z"):
            problems.append("DTSTAMP must be in UTC")
        for name in ("DTSTART", "DTEND"):
            tzid = event[name].params.get("TZID") if event.get(name) is not None else None
            if tzid is not None and tzid not in defined:
                problems.append(f"{name} refers to TZID {tzid} with no VTIMEZONE")
    return problems


def _names_in(text: str, person) -> list[str]:  # type: ignore[no-untyped-def]
    unfolded = text.replace("\r\n ", "")
    names = {person.given_name, person.family_name, person.full_name}
    names |= {
        n
        for pn in PersonName.objects.filter(person=person)
        for n in (pn.given_name, pn.family_name)
    }
    return [n for n in names if n and re.search(re.escape(n), unfolded, flags=re.IGNORECASE)]


def _schedule(scenario, *, title: str, place: str, starts: datetime) -> Meeting:  # type: ignore[no-untyped-def]
    return meeting_schedule(
        organiser=scenario.social_worker,
        person=scenario.ava,
        title=title,
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
        place=place,
        invitee_ids=[scenario.school_nurse.pk],
    )


def _summer_morning() -> datetime:
    """10:00 London time on a day in British Summer Time at least a week ahead."""
    london = timezone.get_current_timezone()
    day = timezone.localdate() + timedelta(days=7)
    while timezone.make_aware(datetime(day.year, day.month, day.day, 10), london).utcoffset() != (
        timedelta(hours=1)
    ):
        day += timedelta(days=7)
    return timezone.make_aware(datetime(day.year, day.month, day.day, 10), london)


def test_the_meeting_page_offers_a_valid_calendar_file_without_the_childs_name(
    world, scenario
) -> None:
    """The organiser's 'Add to calendar' file: RFC 5545-valid, Europe/London with its
    VTIMEZONE, organiser and attendees, the right instant in summer time, the meeting's page
    linked, the child named nowhere although the title names her; the download is audited."""
    starts = _summer_morning()
    with schema_context(world.brighton.schema_name):
        meeting = _schedule(
            scenario, title="Core group for Ava", place="Hove Town Hall, room 2", starts=starts
        )
    client = client_for(world, scenario.social_worker)
    page = client.get(f"/meetings/{meeting.pk}/").content.decode()
    assert f'href="/meetings/{meeting.pk}/calendar.ics"' in page
    assert "Add to calendar" in page
    response = client.get(f"/meetings/{meeting.pk}/calendar.ics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    download = client.get(f"/meetings/{meeting.pk}/calendar.ics?download=1")
    assert download["Content-Disposition"].startswith("attachment;")
    text = response.content.decode()

    assert rfc5545_problems(text) == []
    strict = IcsCalendarStream.calendar_from_ics(text)  # raises on anything invalid
    assert [tz.tz_id for tz in strict.timezones] == ["Europe/London"]
    calendar = icalendar.Calendar.from_ical(text)
    assert calendar.get("METHOD") is None  # a plain event for one's own calendar
    (event,) = calendar.walk("VEVENT")
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event["DTEND"].params["TZID"] == "Europe/London"
    assert "DTSTART;TZID=Europe/London:" in text and "T100000" in text
    assert event.decoded("DTSTART") == starts
    assert str(event["UID"]) == meeting.uid
    assert str(event["SUMMARY"]) == NEUTRAL_SUMMARY
    assert str(event["LOCATION"]) == "Hove Town Hall, room 2"
    assert str(event["URL"]).endswith(f"/meetings/{meeting.pk}/")
    assert f"/meetings/{meeting.pk}/" in str(event["DESCRIPTION"])
    assert str(event["ORGANIZER"]) == f"mailto:{scenario.social_worker.email}"
    assert event["ORGANIZER"].params["CN"] == scenario.social_worker.full_name
    attendees = event.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees]
    assert [str(a) for a in attendees] == [f"mailto:{scenario.school_nurse.email}"]
    with schema_context(world.brighton.schema_name):
        assert _names_in(text, scenario.ava) == []
        assert (
            AuditEvent.objects.filter(
                action="meeting_calendar_downloaded",
                actor_id=scenario.social_worker.pk,
                detail__meeting_id=meeting.pk,
            ).count()
            == 2
        )


def test_the_invitation_email_carries_the_same_calendar(world, scenario) -> None:
    """The invitee's emailed .ics comes from the same builder: valid, with METHOD:REQUEST,
    the VTIMEZONE and no name of the child, also for a place typed before the rule."""
    starts = _summer_morning()
    with schema_context(world.brighton.schema_name):
        PersonName.objects.create(
            person=scenario.ava, kind="alias", given_name="Avie", family_name="Smith"
        )
        meeting = _schedule(scenario, title="Core group", place="Hove Town Hall", starts=starts)
        # A place written before names were refused there: it never reaches a calendar.
        Meeting.objects.filter(pk=meeting.pk).update(place="Avie's nan's house")
        resent = meeting_ics(Meeting.objects.get(pk=meeting.pk))
        row = EmailOutbox.objects.get(kind="meeting", to_email=scenario.school_nurse.email)
        for text in (row.ics, resent):
            assert rfc5545_problems(text) == []
            IcsCalendarStream.calendar_from_ics(text)
            assert str(icalendar.Calendar.from_ical(text)["METHOD"]) == "REQUEST"
            assert _names_in(text, scenario.ava) == []
        assert "LOCATION:See the meeting page in Patchwork" in resent


def test_a_place_naming_the_child_is_refused_in_words_and_nothing_is_set(world, scenario) -> None:
    """Setting or moving a meeting to a place that names the child is refused, saying why;
    no meeting, invitation or email is made, and a change leaves the meeting as it was."""
    starts = _summer_morning()
    with schema_context(world.brighton.schema_name):
        with pytest.raises(ValidationError) as refused:
            _schedule(scenario, title="Core group", place="ava's school", starts=starts)
        assert refused.value.message_dict["place"] == [
            "Leave the child's name out of the place: it goes into colleagues' calendars "
            "outside Patchwork"
        ]
        assert not Meeting.objects.filter(person=scenario.ava).exists()
        assert not EmailOutbox.objects.filter(
            kind="meeting", to_email=scenario.school_nurse.email
        ).exists()
        meeting = _schedule(scenario, title="Core group", place="Hove Town Hall", starts=starts)
        with pytest.raises(ValidationError):
            meeting_change(
                actor=scenario.social_worker,
                meeting=meeting,
                title="Core group",
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                place="The O'Brien-Smith home",
            )
        meeting.refresh_from_db()
        assert meeting.place == "Hove Town Hall" and meeting.sequence == 0


def test_only_the_organiser_and_invitees_get_the_file(world, scenario) -> None:
    """Someone else on the child's team (not invited) gets a 404, as for the page."""
    with schema_context(world.brighton.schema_name):
        meeting = _schedule(
            scenario, title="Core group", place="Hove Town Hall", starts=_summer_morning()
        )
    nurse = client_for(world, scenario.school_nurse)
    assert nurse.get(f"/meetings/{meeting.pk}/calendar.ics").status_code == 200
    camhs = client_for(world, scenario.camhs_worker)
    assert camhs.get(f"/meetings/{meeting.pk}/calendar.ics").status_code == 404
