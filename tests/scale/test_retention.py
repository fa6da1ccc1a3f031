"""Retention: who is archived, when archived people are purged, and that the purge is audited."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from core.audit import audit_record, audit_verify
from core.models import (
    AuditEvent,
    CouncilPolicy,
    FamilyRelationship,
    Involvement,
    Person,
    PersonName,
)
from core.retention import retention_archive, retention_purge, years_before
from core.selectors import SearchQuery, person_search
from tests.factories import InvolvementFactory, PersonFactory, PractitionerFactory

TODAY = date.today()
LONG_AGO = years_before(TODAY, 7)  # past the default six years
RECENTLY = years_before(TODAY, 5)  # within them


def _ended(person: Person, end: date) -> Involvement:
    return InvolvementFactory(
        person=person,
        start_date=end - timedelta(days=400),
        end_date=end,
        end_reason=Involvement.EndReason.CASE_CLOSED,
    )


def _current(person: Person, since: date = LONG_AGO) -> Involvement:
    return InvolvementFactory(person=person, start_date=since)


def _link(child: Person, relative: Person, kind: str, ended: bool = False) -> None:
    FamilyRelationship.objects.create(
        person=child,
        relative=relative,
        kind=kind,
        end_date=LONG_AGO if ended else None,
    )


def _created_long_ago(person: Person) -> Person:
    Person.objects.filter(pk=person.pk).update(created_at=timezone.now() - timedelta(days=365 * 8))
    return person


def _ended_long_ago_only() -> Person:
    person = PersonFactory()
    _ended(person, LONG_AGO)
    return person


def _ended_recently() -> Person:
    person = PersonFactory()
    _ended(person, RECENTLY)
    return person


def _current_involvement() -> Person:
    person = PersonFactory()
    _ended(person, LONG_AGO)
    _current(person)
    return person


def _sibling_of_someone_with_a_team() -> Person:
    person = _ended_long_ago_only()
    sibling = PersonFactory()
    _current(sibling)
    _link(sibling, person, FamilyRelationship.Kind.SIBLING)
    return person


def _parent_of_a_child_with_a_team() -> Person:
    parent = _created_long_ago(PersonFactory())
    child = PersonFactory()
    _current(child)
    _link(child, parent, FamilyRelationship.Kind.PARENT)
    return parent


def _former_sibling_link() -> Person:
    person = _ended_long_ago_only()
    sibling = PersonFactory()
    _current(sibling)
    _link(person, sibling, FamilyRelationship.Kind.SIBLING, ended=True)
    return person


def _never_involved_long_ago() -> Person:
    return _created_long_ago(PersonFactory())


def _never_involved_recently() -> Person:
    return PersonFactory()


@pytest.mark.parametrize(
    ("who", "make", "archived"),
    [
        ("a child whose only involvement ended 7 years ago", _ended_long_ago_only, True),
        ("a child whose involvement ended 5 years ago", _ended_recently, False),
        ("a child with a current involvement", _current_involvement, False),
        ("a sibling of a child with a current team", _sibling_of_someone_with_a_team, False),
        ("a parent of a child with a current team", _parent_of_a_child_with_a_team, False),
        ("a child whose family link to a child with a team ended", _former_sibling_link, True),
        ("someone recorded 8 years ago and never involved", _never_involved_long_ago, True),
        ("someone recorded this year and never involved", _never_involved_recently, False),
    ],
)
def test_it_archives_only_people_past_retention(world, db, who, make, archived) -> None:
    """The retention rules, one person at a time: past retention archived, the rest kept."""
    with schema_context(world.brighton.schema_name):
        person = make()
        result = retention_archive(today=TODAY)
        person.refresh_from_db()
        assert (person.archived_at is not None) is archived, who
        assert (person.pk in result.person_ids) is archived, who


def test_it_follows_the_councils_own_retention_years(world, db) -> None:
    """A council that keeps records 8 years does not archive one ended 7 years ago."""
    with schema_context(world.brighton.schema_name):
        CouncilPolicy.objects.update_or_create(pk=1, defaults={"person_retention_years": 8})
        person = _ended_long_ago_only()
        retention_archive(today=TODAY)
        person.refresh_from_db()
        assert person.archived_at is None


def test_an_archived_child_is_no_longer_found_by_search(world, db) -> None:
    """Once archived, a search by NHS number finds nobody."""
    with schema_context(world.brighton.schema_name):
        person = _ended_long_ago_only()
        searcher = PractitionerFactory().user
        query = SearchQuery(nhs_number=person.nhs_number)
        assert [r.person_id for r in person_search(user=searcher, query=query)] == [person.pk]
        retention_archive(today=TODAY)
        assert person_search(user=searcher, query=query) == []


def _archived(days_ago: int) -> Person:
    """Archived `days_ago`; their involvement itself is not yet past retention and grace."""
    person = PersonFactory()
    _ended(person, years_before(timezone.localdate(), 6) - timedelta(days=10))
    PersonName.objects.create(
        person=person, kind=PersonName.Kind.PREVIOUS, given_name="Old", family_name="Name"
    )
    sibling = PersonFactory()
    _link(person, sibling, FamilyRelationship.Kind.SIBLING)
    Person.objects.filter(pk=person.pk).update(
        archived_at=timezone.now() - timedelta(days=days_ago)
    )
    return person


@pytest.mark.parametrize(
    ("archived_days_ago", "purged"),
    [(100, True), (91, True), (89, False), (10, False)],
)
def test_it_purges_only_after_the_grace_days(world, db, archived_days_ago, purged) -> None:
    """Archived people go 90 days later, with their names, involvements and family links."""
    with schema_context(world.brighton.schema_name):
        person = _archived(archived_days_ago)
        pk = person.pk
        retention_purge(today=timezone.localdate())
        assert Person.objects.filter(pk=pk).exists() is not purged
        assert PersonName.objects.filter(person_id=pk).exists() is not purged
        assert Involvement.objects.filter(person_id=pk).exists() is not purged
        assert FamilyRelationship.objects.filter(person_id=pk).exists() is not purged


def test_the_purge_is_audited_with_counts_and_ids(world, db) -> None:
    """One audit event per run names who was purged; events about them stay, chain intact."""
    with schema_context(world.brighton.schema_name):
        first, second = _archived(100), _archived(120)
        audit_record(actor=None, action="person_viewed", person_id=first.pk)
        before = AuditEvent.objects.filter(action="retention_purged").count()
        result = retention_purge(today=timezone.localdate())
        events = AuditEvent.objects.filter(action="retention_purged").order_by("-id")
        assert events.count() == before + 1
        event = events.first()
        assert sorted(event.detail["person_ids"]) == sorted([first.pk, second.pk])
        assert event.detail["people"] == 2
        assert event.detail["deleted"]["core.Person"] == 2
        assert event.detail["deleted"]["core.Involvement"] >= 2
        assert sorted(result.person_ids) == sorted([first.pk, second.pk])
        assert AuditEvent.objects.filter(action="person_viewed", person_id=first.pk).exists()
        assert audit_verify().intact


def test_it_purges_old_ended_involvements_of_people_it_keeps(world, db) -> None:
    """An involvement ended more than 6 years and 90 days ago goes; the person stays."""
    with schema_context(world.brighton.schema_name):
        person = PersonFactory()
        _current(person)
        old = _ended(person, years_before(timezone.localdate(), 6) - timedelta(days=120))
        newer = _ended(person, years_before(timezone.localdate(), 6) - timedelta(days=30))
        result = retention_purge(today=timezone.localdate())
        assert not Involvement.objects.filter(pk=old.pk).exists()
        assert Involvement.objects.filter(pk=newer.pk).exists()
        assert Person.objects.filter(pk=person.pk).exists()
        assert result.involvements == 1


def test_an_archived_persons_involvements_stay_whole_until_their_own_purge(world, db) -> None:
    """Within the grace period the archived record keeps its history, however old."""
    with schema_context(world.brighton.schema_name):
        person = _ended_long_ago_only()
        retention_archive(today=timezone.localdate())
        retention_purge(today=timezone.localdate())
        assert Involvement.objects.filter(person=person).count() == 1


def test_a_dry_run_changes_nothing(world, db) -> None:
    """The command's --dry-run reports what it would do and leaves every record alone."""
    from io import StringIO

    from django.core.management import call_command

    with schema_context(world.brighton.schema_name):
        waiting = _ended_long_ago_only()
        due = _archived(100)
    out = StringIO()
    call_command("purge_retention", "--council", world.brighton.code, "--dry-run", stdout=out)
    assert "would archive 1 people" in out.getvalue()
    assert "would purge 1 people" in out.getvalue()
    with schema_context(world.brighton.schema_name):
        assert Person.objects.get(pk=waiting.pk).archived_at is None
        assert Person.objects.filter(pk=due.pk).exists()
        assert not AuditEvent.objects.filter(action__startswith="retention_").exists()
