"""Merging two records of one person and reversing the merge: what moves, what is refused,
what the audit shows, and that a reversal puts back exactly what was there."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from django_tenants.utils import schema_context

from core.audit import audit_record, audit_verify
from core.merges import (
    person_merge,
    person_merge_reverse,
    person_merged_into,
)
from core.models import (
    AuditEvent,
    FamilyRelationship,
    FeedRecord,
    Involvement,
    Person,
    PersonMerge,
    PersonName,
    RecordOpening,
    SourceSystem,
)
from core.selectors import (
    SearchQuery,
    person_access,
    person_ids_merged_into,
    person_network,
    person_search,
    person_viewings,
)
from core.services import record_open
from teamwork.models import Task
from tests.factories import InvolvementFactory, PersonFactory, RoleFactory


@pytest.fixture
def brighton(scenario, world):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        yield scenario


def _duplicate_of_ava(scenario, **fields: Any) -> Person:  # type: ignore[no-untyped-def]
    """A second record of Ava, made by the school under her old surname, without an NHS
    number, with the school nurse's lead involvement, a family link and a task."""
    details = {
        "given_name": "Ava",
        "family_name": "Smith",
        "date_of_birth": date(2015, 3, 14),
        "nhs_number": None,
        "postcode": "BN3 7BQ",
        "local_identifiers": {"UPN": "A123456789012"},
    }
    duplicate = PersonFactory(**{**details, **fields})
    InvolvementFactory(
        person=duplicate,
        practitioner=scenario.teacher.practitioner,
        role=RoleFactory(name="Class teacher"),
        lead_professional=True,
    )
    return duplicate


def _snapshot(*people: Person) -> dict[str, Any]:
    """Everything a merge may touch, for the records given, as plain values."""
    ids = [p.pk for p in people]
    return {
        "people": list(
            Person.objects.filter(pk__in=ids)
            .order_by("pk")
            .values(
                "pk",
                "nhs_number",
                "date_of_birth",
                "address",
                "postcode",
                "shielded",
                "local_identifiers",
                "merged_into",
            )
        ),
        "names": list(
            PersonName.objects.filter(person__in=ids).order_by("pk").values("pk", "person", "kind")
        ),
        "involvements": list(
            Involvement.objects.filter(person__in=ids)
            .order_by("pk")
            .values("pk", "person", "lead_professional")
        ),
        "links": list(
            FamilyRelationship.objects.filter(Q(person__in=ids) | Q(relative__in=ids))
            .order_by("pk")
            .values("pk", "person", "relative", "kind")
        ),
        "openings": list(
            RecordOpening.objects.filter(person__in=ids).order_by("pk").values("pk", "person")
        ),
        "tasks": list(Task.objects.filter(person__in=ids).order_by("pk").values("pk", "person")),
    }


def test_it_moves_everything_to_the_kept_record_and_audits_it(brighton) -> None:
    """Ava's duplicate brings its teacher, its mother, its old name, its UPN and its task;
    the teacher stops being lead because Ava already has one; the duplicate is hidden."""
    s = brighton
    duplicate = _duplicate_of_ava(s)
    mother = PersonFactory(given_name="Mia", family_name="Smith", nhs_number=None)
    FamilyRelationship.objects.create(person=duplicate, relative=mother, kind="parent")
    FamilyRelationship.objects.create(person=s.ava, relative=duplicate, kind="sibling")
    task = Task.objects.create(
        person=duplicate,
        text="Send the school report",
        assignee=s.teacher.practitioner,
        created_by=s.teacher,
        due_date=date.today(),
    )

    merge = person_merge(actor=s.admin, keep=s.ava, absorb=duplicate)

    duplicate.refresh_from_db()
    s.ava.refresh_from_db()
    assert duplicate.merged_into_id == s.ava.pk
    teacher = Involvement.objects.get(practitioner=s.teacher.practitioner)
    assert teacher.person_id == s.ava.pk and not teacher.lead_professional
    assert Involvement.objects.get(person=s.ava, lead_professional=True).practitioner.user == (
        s.social_worker
    )
    assert FamilyRelationship.objects.filter(person=s.ava, relative=mother).exists()
    # The link between the two records would join Ava to herself: it stays where it was.
    assert FamilyRelationship.objects.filter(person=s.ava, relative=duplicate).exists()
    network = person_network(user=s.social_worker, person_id=s.ava.pk, audit=False)
    assert [relative.pk for _, relative, _ in network.family] == [mother.pk]
    assert ("Ava", "Smith", "alias") in PersonName.objects.filter(person=s.ava).values_list(
        "given_name", "family_name", "kind"
    )
    assert s.ava.local_identifiers == {"UPN": "A123456789012"}
    assert Task.objects.get(pk=task.pk).person_id == s.ava.pk
    assert merge.moved["teamwork.Task.person"] == [task.pk]
    event = AuditEvent.objects.get(action="person_merged")
    assert event.person_id == s.ava.pk and event.actor_id == s.admin.pk
    assert event.detail["absorbed_id"] == duplicate.pk
    assert AuditEvent.objects.filter(action="person_merged_away", person_id=duplicate.pk).exists()
    assert person_merged_into(duplicate.pk) == s.ava.pk
    assert person_ids_merged_into(s.ava.pk) == [s.ava.pk, duplicate.pk]
    found = person_search(
        user=s.teacher, query=SearchQuery(family_name="Smith", date_of_birth=date(2015, 3, 14))
    )
    assert [r.person_id for r in found] == [s.ava.pk]
    assert audit_verify().intact


def test_the_nhs_number_moves_when_the_kept_record_has_none(brighton) -> None:
    """Keeping the school's record, it takes Ava's NHS number; the old one holds none."""
    s = brighton
    duplicate = _duplicate_of_ava(s)
    person_merge(actor=s.admin, keep=duplicate, absorb=s.ava)
    duplicate.refresh_from_db()
    s.ava.refresh_from_db()
    assert duplicate.nhs_number == "9434765919"
    assert s.ava.nhs_number is None


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("same", "same record"),
        ("different_nhs", "different NHS numbers"),
        ("already_merged", "already been merged"),
    ],
)
def test_it_refuses_a_merge_that_cannot_be_right_and_changes_nothing(brighton, case, message):  # type: ignore[no-untyped-def]
    """Each refusal says why in the administrator's words; nothing moves."""
    s = brighton
    duplicate = _duplicate_of_ava(s, nhs_number="4010232137" if case == "different_nhs" else None)
    if case == "already_merged":
        other = PersonFactory(nhs_number=None)
        person_merge(actor=s.admin, keep=other, absorb=duplicate)
        duplicate.refresh_from_db()
    before = _snapshot(s.ava, duplicate)
    merges = PersonMerge.objects.count()
    with pytest.raises(ValidationError, match=message):
        person_merge(actor=s.admin, keep=s.ava, absorb=s.ava if case == "same" else duplicate)
    assert _snapshot(s.ava, duplicate) == before
    assert PersonMerge.objects.count() == merges


def test_only_an_administrator_merges_or_reverses(brighton) -> None:
    """A practitioner on Ava's team cannot merge her records, nor undo a merge."""
    s = brighton
    duplicate = _duplicate_of_ava(s)
    with pytest.raises(PermissionDenied):
        person_merge(actor=s.social_worker, keep=s.ava, absorb=duplicate)
    merge = person_merge(actor=s.admin, keep=s.ava, absorb=duplicate)
    with pytest.raises(PermissionDenied):
        person_merge_reverse(actor=s.social_worker, merge=merge)


def test_a_reversal_puts_back_exactly_what_was_there(brighton) -> None:
    """Merge the NHS-numbered record into the school's, then reverse: every row and value is
    as before, the audit log only grew, and reversing twice is refused."""
    s = brighton
    duplicate = _duplicate_of_ava(s, address="1 Church Road")
    mother = PersonFactory(given_name="Mia", family_name="Smith", nhs_number=None)
    FamilyRelationship.objects.create(person=mother, relative=s.ava, kind="parent")
    FamilyRelationship.objects.create(person=duplicate, relative=mother, kind="parent")
    record_open(user=s.teacher, person=s.ava, reason="new_referral", note="A referral today")
    before = _snapshot(s.ava, duplicate, mother)
    events = AuditEvent.objects.count()

    merge = person_merge(actor=s.admin, keep=duplicate, absorb=s.ava)
    assert _snapshot(s.ava, duplicate, mother) != before
    person_merge_reverse(actor=s.admin, merge=merge)

    assert _snapshot(s.ava, duplicate, mother) == before
    merge.refresh_from_db()
    assert merge.reversed_by == s.admin and merge.reversed_at is not None
    reversed_events = AuditEvent.objects.filter(action="person_merge_reversed")
    assert set(reversed_events.values_list("person_id", flat=True)) == {s.ava.pk, duplicate.pk}
    assert AuditEvent.objects.count() == events + 4  # merged, merged away, reversed twice
    assert audit_verify().intact
    with pytest.raises(ValidationError, match="already been reversed"):
        person_merge_reverse(actor=s.admin, merge=merge)


def test_merging_with_a_shielded_record_shields_the_result(brighton) -> None:
    """Zed is shielded: Zed's unshielded duplicate merged into him leaves Zed shielded, and
    an ordinary opening of the duplicate gives its reader no way into Zed's record."""
    s = brighton
    duplicate = PersonFactory(given_name="Zed", family_name="Hollis", nhs_number=None)
    s.zed.refresh_from_db()
    InvolvementFactory(
        person=duplicate, practitioner=s.teacher.practitioner, role=RoleFactory(name="Tutor")
    )
    outsider = s.school_nurse
    query = SearchQuery(family_name="Hollis", date_of_birth=duplicate.date_of_birth)
    person_search(user=outsider, query=query)
    record_open(user=outsider, person=duplicate, reason="new_referral", note="A referral today")
    person_merge(actor=s.admin, keep=duplicate, absorb=s.zed)
    duplicate.refresh_from_db()
    assert duplicate.shielded
    with pytest.raises(Http404):
        person_access(outsider, duplicate.pk)


# Moved by core.merges itself, with rules of their own.
MOVED_BY_THE_MERGE = {
    "core.Involvement.person",
    "core.PersonName.person",
    "core.FamilyRelationship.person",
    "core.FamilyRelationship.relative",
}
# Left on the absorbed record on purpose: the merge's own bookkeeping; match keys, which are
# worked out again from the records; and the federation's record of what was exchanged and
# queued about that record, which is history, like the audit log.
LEFT_ON_PURPOSE = {
    "core.Person.merged_into",
    "core.PersonMerge.keep",
    "core.PersonMerge.absorbed",
    "federation.MatchKey.person",
    "federation.Exchange.person",
    "federation.OutboxMessage.person",
}


def test_every_table_that_points_at_a_person_is_carried_or_left_on_purpose() -> None:
    """A new table holding a person's id must be registered with the merge (or added to
    the list above with its reason): otherwise a merge would leave its rows behind."""
    from core.extensions import PERSON_MERGE_CARRIED

    pointing = {
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model is Person
    }
    carried = {f"{label}.{field}" for label, field in PERSON_MERGE_CARRIED}
    assert pointing == carried | MOVED_BY_THE_MERGE | LEFT_ON_PURPOSE


def test_the_team_sees_who_viewed_either_record(brighton) -> None:
    """A view of the duplicate before the merge shows in Ava's "who has viewed" list: the
    audit event keeps the duplicate's id and is read through the merge."""
    s = brighton
    duplicate = _duplicate_of_ava(s)
    viewed = audit_record(actor=s.teacher, action="person_viewed", person_id=duplicate.pk)
    person_merge(actor=s.admin, keep=s.ava, absorb=duplicate)
    viewings = person_viewings(user=s.social_worker, person_id=s.ava.pk)
    assert [v.at for v in viewings if v.name == s.teacher.full_name] == [viewed.at]
    assert AuditEvent.objects.get(pk=viewed.pk).person_id == duplicate.pk


def test_a_reversal_does_not_make_two_leads(brighton) -> None:
    """The duplicate's lead (the teacher) is stood down by the merge; afterwards its mentor
    takes the lead of the merged record. Reversing gives the duplicate one lead: the mentor,
    and the teacher stays an ordinary member."""
    s = brighton
    duplicate = _duplicate_of_ava(s)
    mentor = InvolvementFactory(
        person=duplicate, practitioner=s.mash_worker.practitioner, role=RoleFactory(name="Mentor")
    )
    merge = person_merge(actor=s.admin, keep=s.ava, absorb=duplicate)
    Involvement.objects.filter(person=s.ava, lead_professional=True).update(lead_professional=False)
    mentor.refresh_from_db()
    mentor.lead_professional = True
    mentor.save()
    person_merge_reverse(actor=s.admin, merge=merge)
    leads = Involvement.objects.filter(person=duplicate, lead_professional=True)
    assert list(leads) == [mentor]


def test_a_source_systems_key_follows_the_merge_and_its_reversal(brighton) -> None:
    """A feed's id for the absorbed record points at the kept one after the merge (the next
    import updates it, not a new duplicate), and back after the reversal."""
    s = brighton
    duplicate = _duplicate_of_ava(s)
    system = SourceSystem.objects.create(name="Schools MIS")
    key = FeedRecord.objects.create(
        source_system=system,
        kind=FeedRecord.Kind.PERSON,
        source_id="UPN-A123",
        local_id=duplicate.pk,
        digest="0" * 32,
    )
    other = FeedRecord.objects.create(
        source_system=system,
        kind=FeedRecord.Kind.INVOLVEMENT,
        source_id="I-1",
        local_id=duplicate.pk,  # an involvement's id that happens to equal the person's
        digest="0" * 32,
    )

    merge = person_merge(actor=s.admin, keep=s.ava, absorb=duplicate)
    key.refresh_from_db()
    other.refresh_from_db()
    assert key.local_id == s.ava.pk
    assert other.local_id == duplicate.pk

    person_merge_reverse(actor=s.admin, merge=merge)
    key.refresh_from_db()
    assert key.local_id == duplicate.pk
