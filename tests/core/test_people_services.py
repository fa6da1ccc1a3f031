"""Adding a person, looking for likely duplicates first, changing their details, recording
a death and a family relationship: the rules, the refusals and the audit trail."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from core.models import AuditEvent, FamilyRelationship, Person, PersonName
from core.selectors import (
    Access,
    SearchQuery,
    person_access,
    person_editable,
    person_likely_matches,
    person_search,
)
from core.services import (
    person_create,
    person_death_record,
    person_update,
    record_open,
    relationship_add,
)
from tests.factories import PersonFactory, valid_nhs_number

TOMORROW = date.today() + timedelta(days=1)


def _last(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-id").first()  # type: ignore[return-value]


def _new(user, **fields):  # type: ignore[no-untyped-def]
    details = {"given_name": "Rosa", "family_name": "Penhaligon", "date_of_birth": date(2019, 1, 2)}
    return person_create(actor=user, **{**details, **fields})


# --- Adding a person ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"nhs_number": "943 476 5918"}, "nhs_number", "Enter a valid NHS number"),
        ({"nhs_number": "12345"}, "nhs_number", "Enter a valid NHS number"),
        ({"date_of_birth": TOMORROW}, "date_of_birth", "must be today or in the past"),
        ({"given_name": "  "}, "given_name", "Enter the first name"),
        ({"family_name": ""}, "family_name", "Enter the surname"),
        ({"postcode": "BN1"}, "postcode", "Enter a real postcode"),
        ({"sex": "dragon"}, "sex", "Choose female, male, other or not known"),
    ],
)
def test_it_refuses_a_person_with_wrong_details(scenario, fields, field, message) -> None:
    """Each refusal names the field in the user's words, and nothing is created."""
    before = Person.objects.count()
    with pytest.raises(ValidationError) as refused:
        _new(scenario.teacher, **fields)
    assert message in " ".join(refused.value.message_dict[field])
    assert Person.objects.count() == before


def test_it_refuses_a_second_record_with_the_same_nhs_number(scenario) -> None:
    """Ava holds 943 476 5919: a new record with it is refused, whatever the spacing."""
    with pytest.raises(ValidationError) as refused:
        _new(scenario.teacher, nhs_number="943-476-5919")
    assert refused.value.message_dict["nhs_number"] == [
        "A record with this NHS number already exists"
    ]


def test_only_practitioners_add_people(scenario) -> None:
    """An administrator manages Patchwork but does not add records."""
    with pytest.raises(PermissionDenied):
        _new(scenario.admin)


def test_it_adds_a_person_audited_and_searchable_and_open_to_its_creator(scenario) -> None:
    """Names tidied, postcode written the usual way, the creation audited; the creator may
    see the record (to add their involvement); anyone else finds it by search as usual."""
    person = _new(
        scenario.teacher,
        given_name=" Rosa ",
        family_name="Penhaligon",
        nhs_number=valid_nhs_number(),
        postcode="bn3 7bq",
    )
    assert (person.given_name, person.postcode) == ("Rosa", "BN3 7BQ")
    assert _last("person_created").person_id == person.pk
    assert _last("person_created").actor_id == scenario.teacher.pk
    assert person_access(scenario.teacher, person.pk).access == Access.CREATED
    assert person_access(scenario.teacher, person.pk).can_see_network
    with pytest.raises(Http404):
        person_access(scenario.school_nurse, person.pk)
    found = person_search(
        user=scenario.school_nurse,
        query=SearchQuery(family_name="penhaligon", date_of_birth=date(2019, 1, 2)),
    )
    assert [r.person_id for r in found] == [person.pk]


# --- Likely duplicates -----------------------------------------------------------------


def test_the_same_nhs_number_is_the_existing_record(scenario) -> None:
    """The record holding the number comes back, and the check is audited as a search, so
    the practitioner may open it (stating a reason) like a search result."""
    matches = person_likely_matches(
        user=scenario.teacher, given_name="A", family_name="B", nhs_number="9434765919"
    )
    assert matches.nhs_number_taken
    assert matches.same_nhs_number is not None
    assert matches.same_nhs_number.person_id == scenario.ava.pk
    assert _last("search").detail["mode"] == "likely_matches"
    assert person_access(scenario.teacher, scenario.ava.pk).access == Access.NEEDS_REASON


@pytest.mark.parametrize(
    "details",
    [
        {"family_name": "OBrien Smith", "date_of_birth": date(2015, 3, 14)},
        {"family_name": "O'Brien-Smyth", "given_name": "Ava", "postcode": "bn37bq"},
    ],
)
def test_likely_matches_by_surname_and_birth_or_names_and_postcode(scenario, details) -> None:
    """The search's own rules, with its tolerance of spelling, offer Ava as a candidate."""
    matches = person_likely_matches(user=scenario.teacher, **{"given_name": "", **details})
    assert not matches.nhs_number_taken
    assert [c.person_id for c in matches.candidates] == [scenario.ava.pk]


def test_nothing_alike_is_no_match(scenario) -> None:
    """A new child with no namesake: nothing to ask about."""
    matches = person_likely_matches(
        user=scenario.teacher,
        given_name="Rosa",
        family_name="Penhaligon",
        date_of_birth=date(2019, 1, 2),
        nhs_number=valid_nhs_number(),
    )
    assert not matches.any


def test_a_shielded_person_is_never_offered_outside_their_team(scenario) -> None:
    """Zed is shielded: the teacher is not shown him by name and birth; his own social
    worker is. By NHS number the teacher learns only that a record holds it."""
    by_name = {"given_name": "Zed", "family_name": "Hollis", "date_of_birth": date(2016, 5, 2)}
    assert person_likely_matches(user=scenario.teacher, **by_name).candidates == []
    assert _last("search").detail["result_ids"] == []
    on_team = person_likely_matches(user=scenario.social_worker, **by_name)
    assert [c.person_id for c in on_team.candidates] == [scenario.zed.pk]
    zed_nhs = Person.objects.get(pk=scenario.zed.pk).nhs_number
    by_number = person_likely_matches(
        user=scenario.teacher, given_name="Z", family_name="H", nhs_number=zed_nhs
    )
    assert by_number.nhs_number_taken and by_number.same_nhs_number is None
    assert by_number.candidates == []


# --- Changing details --------------------------------------------------------------------


def test_an_edit_audits_only_the_changed_fields_before_and_after(scenario) -> None:
    """Unchanged fields sent along are not logged; the old surname stays searchable."""
    ava = scenario.ava
    person_update(
        actor=scenario.school_nurse,
        person=ava,
        changes={"given_name": "Ava", "family_name": "Okonjo", "postcode": "bn1 1aa"},
    )
    event = _last("person_updated")
    assert event.person_id == ava.pk and event.actor_id == scenario.school_nurse.pk
    assert event.detail == {
        "changed": {
            "family_name": {"before": "O'Brien-Smith", "after": "Okonjo"},
            "postcode": {"before": "BN3 7BQ", "after": "BN1 1AA"},
        }
    }
    kinds = set(PersonName.objects.filter(person=ava).values_list("kind", "family_name"))
    assert kinds == {("current", "Okonjo"), ("previous", "O'Brien-Smith")}
    found = person_search(
        user=scenario.school_nurse,
        query=SearchQuery(family_name="O'Brien-Smith", date_of_birth=date(2015, 3, 14)),
    )
    assert [r.person_id for r in found] == [ava.pk]


def test_an_edit_that_changes_nothing_writes_nothing(scenario) -> None:
    before = AuditEvent.objects.filter(action="person_updated").count()
    person_update(actor=scenario.school_nurse, person=scenario.ava, changes={"given_name": "Ava"})
    assert AuditEvent.objects.filter(action="person_updated").count() == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"nhs_number": "9434765918"}, "nhs_number"),
        ({"date_of_birth": TOMORROW}, "date_of_birth"),
        ({"family_name": " "}, "family_name"),
    ],
)
def test_an_edit_is_refused_for_wrong_details(scenario, changes, field) -> None:
    with pytest.raises(ValidationError) as refused:
        person_update(actor=scenario.school_nurse, person=scenario.ava, changes=changes)
    assert field in refused.value.message_dict
    assert Person.objects.get(pk=scenario.ava.pk).family_name == "O'Brien-Smith"


def test_an_edit_cannot_take_another_records_nhs_number(scenario) -> None:
    """The nurse's new record cannot be given Ava's NHS number afterwards either."""
    other = _new(scenario.school_nurse)
    with pytest.raises(ValidationError) as refused:
        person_update(
            actor=scenario.school_nurse, person=other, changes={"nhs_number": "9434765919"}
        )
    assert "already exists" in refused.value.message_dict["nhs_number"][0]


@pytest.mark.parametrize(
    ("who", "person", "opened", "expected"),
    [
        ("school_nurse", "ava", False, None),  # on Ava's team
        ("teacher", "ava", False, Http404),  # has not found her
        ("teacher", "ava", True, PermissionDenied),  # stated a reason: reads, not changes
        ("social_worker", "zed", False, None),  # on shielded Zed's team
        ("mash_worker", "zed", True, PermissionDenied),  # break-glass opening: not the team
        ("admin", "ava", False, Http404),
    ],
)
def test_who_may_change_a_record(scenario, who, person, opened, expected) -> None:
    """A table of (who, whose record, expected): a shielded record only by its team."""
    user, subject = getattr(scenario, who), getattr(scenario, person)
    if opened:
        person_search(
            user=user,
            query=SearchQuery(nhs_number=Person.objects.get(pk=subject.pk).nhs_number),
            break_glass=subject.shielded,
        )
        record_open(
            user=user,
            person=subject,
            reason="starting_work",
            note="Starting work with the family next week.",
            break_glass=subject.shielded,
        )
    if expected is None:
        assert person_editable(user, subject.pk).person.pk == subject.pk
        person_update(actor=user, person=subject, changes={"address": "1 New Road"})
    else:
        with pytest.raises(expected):
            person_update(actor=user, person=subject, changes={"address": "1 New Road"})


def test_only_the_team_shields_a_record(scenario) -> None:
    """Someone who stated a reason may correct details, but not hide the record."""
    person_search(user=scenario.teacher, query=SearchQuery(nhs_number="9434765919"))
    record_open(
        user=scenario.teacher, person=scenario.ava, reason="new_referral", note="A new referral."
    )
    with pytest.raises(PermissionDenied):
        person_update(actor=scenario.teacher, person=scenario.ava, changes={"shielded": True})
    person_update(actor=scenario.social_worker, person=scenario.ava, changes={"shielded": True})
    assert _last("person_updated").detail == {
        "changed": {"shielded": {"before": False, "after": True}}
    }


# --- A death ---------------------------------------------------------------------------


def test_a_death_is_recorded_and_audited_before_and_after(scenario) -> None:
    person_death_record(
        actor=scenario.school_nurse, person=scenario.ava, date_of_death=date(2025, 1, 5)
    )
    assert Person.objects.get(pk=scenario.ava.pk).date_of_death == date(2025, 1, 5)
    assert _last("person_death_recorded").detail == {
        "changed": {"date_of_death": {"before": None, "after": "2025-01-05"}}
    }


@pytest.mark.parametrize(
    ("day", "message"),
    [
        (TOMORROW, "must be today or in the past"),
        (date(2015, 3, 13), "on or after the date of birth"),
    ],
)
def test_a_death_date_must_be_possible(scenario, day, message) -> None:
    with pytest.raises(ValidationError) as refused:
        person_death_record(actor=scenario.school_nurse, person=scenario.ava, date_of_death=day)
    assert message in refused.value.message_dict["date_of_death"][0]
    assert Person.objects.get(pk=scenario.ava.pk).date_of_death is None


def test_a_death_on_a_record_one_cannot_see_is_refused(scenario) -> None:
    with pytest.raises(Http404):
        person_death_record(
            actor=scenario.teacher, person=scenario.ava, date_of_death=date(2025, 1, 5)
        )


# --- Family ---------------------------------------------------------------------------


def test_a_relative_found_by_search_is_recorded_once(scenario) -> None:
    """Ava's team adds her mother, found by search; a second time is refused."""
    mother = PersonFactory(family_name="Okafor", date_of_birth=date(1988, 4, 1))
    person_search(
        user=scenario.school_nurse,
        query=SearchQuery(family_name="Okafor", date_of_birth=date(1988, 4, 1)),
    )
    relationship_add(
        actor=scenario.school_nurse, person=scenario.ava, relative=mother, kind="parent"
    )
    assert FamilyRelationship.objects.filter(person=scenario.ava, relative=mother).count() == 1
    assert _last("relationship_added").detail == {"relative_id": mother.pk, "kind": "parent"}
    with pytest.raises(ValidationError):
        relationship_add(
            actor=scenario.school_nurse, person=scenario.ava, relative=mother, kind="parent"
        )


def test_a_relative_one_has_not_found_cannot_be_linked(scenario) -> None:
    """Linking a person by id without having found them would reveal them: 404."""
    stranger = PersonFactory()
    with pytest.raises(Http404):
        relationship_add(
            actor=scenario.school_nurse, person=scenario.ava, relative=stranger, kind="sibling"
        )


def test_a_shielded_relative_is_linked_only_by_someone_who_may_change_a_record(scenario) -> None:
    """Both must be known, and one record changeable: the MASH worker who broke glass into
    shielded Zed's record, and never found Ava, can link neither way."""
    person_search(
        user=scenario.mash_worker,
        query=SearchQuery(family_name="Hollis", date_of_birth=date(2016, 5, 2)),
        break_glass=True,
    )
    record_open(
        user=scenario.mash_worker,
        person=scenario.zed,
        reason="section_47",
        note="Section 47 enquiry opened today.",
        break_glass=True,
    )
    person_search(user=scenario.mash_worker, query=SearchQuery(nhs_number="9434765919"))
    with pytest.raises(PermissionDenied):
        relationship_add(
            actor=scenario.mash_worker, person=scenario.zed, relative=scenario.ava, kind="sibling"
        )
    relationship_add(
        actor=scenario.social_worker, person=scenario.zed, relative=scenario.ava, kind="sibling"
    )
