"""The access rules, as a table of (who, what, expected), plus the flows between them."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from core.models import Notification
from core.selectors import (
    Access,
    SearchQuery,
    SearchRefused,
    person_access,
    person_network,
    person_search,
)
from core.services import record_open

BY_NHS = SearchQuery(nhs_number="943 476 5919")


def _search_ids(user, query, **kwargs):  # type: ignore[no-untyped-def]
    return [r.person_id for r in person_search(user=user, query=query, **kwargs)]


@pytest.mark.parametrize(
    ("who", "searched", "expected"),
    [
        ("social_worker", False, Access.TEAM),
        ("school_nurse", False, Access.TEAM),
        ("camhs_worker", False, Access.TEAM),
        ("teacher", False, Http404),
        ("teacher", True, Access.NEEDS_REASON),
        ("mash_worker", True, Access.NEEDS_REASON),
        ("camhs_colleague", False, Http404),
        ("admin", False, Http404),
    ],
)
def test_access_to_a_child_with_a_team(scenario, who, searched, expected) -> None:
    """Team members see the record; others only after finding the child by search."""
    user = getattr(scenario, who)
    if searched:
        assert scenario.ava.pk in _search_ids(user, BY_NHS)
    if expected is Http404:
        with pytest.raises(Http404):
            person_access(user, scenario.ava.pk)
    else:
        assert person_access(user, scenario.ava.pk).access == expected


@pytest.mark.parametrize(
    ("who", "break_glass", "found"),
    [
        ("social_worker", False, True),  # on Zed's team
        ("teacher", False, False),
        ("mash_worker", False, False),  # child-protection, but did not break glass
        ("mash_worker", True, True),
    ],
)
def test_a_shielded_child_is_found_only_by_their_team_or_break_glass(
    scenario, who, break_glass, found
) -> None:
    """Search never confirms a shielded child exists to anyone outside their team."""
    query = SearchQuery(family_name="Hollis", date_of_birth=date(2016, 5, 2))
    user = getattr(scenario, who)
    assert (scenario.zed.pk in _search_ids(user, query, break_glass=break_glass)) is found
    if not found:
        with pytest.raises(Http404):
            person_access(user, scenario.zed.pk)


@pytest.mark.parametrize("who", ["teacher", "school_nurse", "admin"])
def test_only_child_protection_practitioners_may_break_glass(scenario, who) -> None:
    """Break-glass search is refused to everyone else."""
    with pytest.raises(PermissionDenied):
        person_search(user=getattr(scenario, who), query=BY_NHS, break_glass=True)


def test_an_outsider_states_a_reason_and_the_lead_is_told(scenario) -> None:
    """The opening is audited, the lead professional notified, and the network then shows."""
    person_search(user=scenario.teacher, query=BY_NHS)
    record_open(
        user=scenario.teacher,
        person=scenario.ava,
        reason="safeguarding",
        note="Ava disclosed something worrying in class today.",
    )
    assert person_access(scenario.teacher, scenario.ava.pk).access == Access.OPENED
    told = Notification.objects.get(recipient=scenario.social_worker, kind="record_opened")
    assert "Safeguarding concern" in told.text
    assert not Notification.objects.filter(recipient=scenario.school_nurse).exists()
    network = person_network(user=scenario.teacher, person_id=scenario.ava.pk)
    assert {m.practitioner_name for m in network.current if not m.masked} == {
        scenario.social_worker.full_name,
        scenario.school_nurse.full_name,
    }


@pytest.mark.parametrize(
    ("who", "sees_camhs_in_full"),
    [("camhs_worker", True), ("school_nurse", False), ("social_worker", False)],
)
def test_a_sensitive_involvement_is_masked_outside_its_service(
    scenario, who, sees_camhs_in_full
) -> None:
    """Only the sensitive service itself sees who it is; others see the brokered notice."""
    network = person_network(user=getattr(scenario, who), person_id=scenario.ava.pk)
    masked = [m for m in network.current if m.masked]
    named = {m.organisation for m in network.current if not m.masked}
    if sees_camhs_in_full:
        assert "Sussex CAMHS" in named and not masked
    else:
        assert "Sussex CAMHS" not in named
        assert len(masked) == 1
        assert masked[0].practitioner_name == "" and masked[0].phone == ""


def test_child_protection_roles_are_always_visible(scenario) -> None:
    """Whoever may see the child sees the child-protection social worker."""
    network = person_network(user=scenario.camhs_worker, person_id=scenario.ava.pk)
    assert any(m.child_protection and m.lead_professional for m in network.current)


@pytest.mark.parametrize(
    ("query", "complaint"),
    [
        (SearchQuery(family_name="Smith"), "Add a date of birth"),
        (SearchQuery(family_name="Smith", given_name="Ava"), "Add a date of birth"),
        (SearchQuery(family_name="Smith", given_name="Ava", postcode="BN3"), "Add a date"),
        (SearchQuery(given_name="Ava", date_of_birth=date(2015, 3, 14)), "Enter an NHS number"),
        (SearchQuery(nhs_number="943 476 5918"), "not a valid NHS number"),
        (SearchQuery(), "Enter an NHS number"),
    ],
)
def test_too_broad_searches_are_refused_with_what_to_add(scenario, query, complaint) -> None:
    """Browsing is impossible: the message says what would make the search specific."""
    with pytest.raises(SearchRefused, match=complaint):
        person_search(user=scenario.teacher, query=query)


@pytest.mark.parametrize(
    "query",
    [
        SearchQuery(family_name="o'brien-smith", date_of_birth=date(2015, 3, 14)),
        SearchQuery(family_name="OBRIENSMITH", date_of_birth=date(2015, 3, 14)),
        SearchQuery(family_name="O'Brein-Smith", date_of_birth=date(2015, 3, 14)),  # swapped
        SearchQuery(family_name="O'Brien-Smth", date_of_birth=date(2015, 3, 14)),  # missing
        SearchQuery(family_name="Ó'Brien-Smith", date_of_birth=date(2015, 3, 14)),  # accent
        SearchQuery(family_name="O'Brien Smith", given_name="ava", postcode="bn37bq"),
        SearchQuery(nhs_number="9434765919"),
    ],
)
def test_search_tolerates_case_accents_hyphens_and_typos(scenario, query) -> None:
    """Small differences in how a name is typed still find the child."""
    assert scenario.ava.pk in _search_ids(scenario.school_nurse, query)


def test_search_finds_previous_names(scenario) -> None:
    """A child known by an earlier surname is found by it."""
    from core.models import PersonName

    PersonName.objects.create(
        person=scenario.ava, kind="previous", given_name="Ava", family_name="Kowalski"
    )
    query = SearchQuery(family_name="Kowalski", date_of_birth=date(2015, 3, 14))
    assert scenario.ava.pk in _search_ids(scenario.teacher, query)


def test_a_different_child_with_the_same_birthday_is_not_matched(scenario) -> None:
    """Tolerance has limits: a quite different surname is not a match."""
    query = SearchQuery(family_name="Brown", date_of_birth=date(2015, 3, 14))
    assert scenario.ava.pk not in _search_ids(scenario.teacher, query)


def test_the_first_read_of_a_record_brings_the_viewers_profile_with_it(scenario) -> None:
    """A record view's first statement reads the person and the viewer's practitioner
    profile together; the profile is the one `practitioner_of` would read, and a record
    the viewer may not know is a 404 as before."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from core.models import Practitioner
    from core.selectors import practitioner_of

    nurse = User.objects.get(pk=scenario.school_nurse.pk)  # nothing kept on it yet
    with CaptureQueriesContext(connection) as seen:
        access = person_access(nurse, scenario.ava.pk)
        profile = practitioner_of(nurse)
    assert len(seen.captured_queries) == 1
    assert access.person.pk == scenario.ava.pk and access.access == Access.TEAM
    expected = Practitioner.objects.select_related("organisation").get(user=nurse)
    assert profile is not None
    assert (profile.pk, profile.job_title, profile.organisation_id) == (
        expected.pk,
        expected.job_title,
        expected.organisation_id,
    )
    assert profile.organisation.name == expected.organisation.name
    teacher = User.objects.get(pk=scenario.teacher.pk)
    with pytest.raises(Http404):
        person_access(teacher, scenario.ava.pk)
    with pytest.raises(Http404):
        person_access(User.objects.get(pk=scenario.school_nurse.pk), 987_654_321)
