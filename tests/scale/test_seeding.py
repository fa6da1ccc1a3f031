"""seed_demo and demo_setup: valid, searchable synthetic people, and a demo that reruns."""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, F
from django_tenants.utils import schema_context
from patchwork_demo.seeding import demo_totp_key

from accounts.models import User
from core.identifiers import name_key, nhs_number_is_valid, postcode_key, validate_postcode
from core.models import (
    AuditEvent,
    FamilyRelationship,
    Involvement,
    Organisation,
    Person,
    PersonName,
    Practitioner,
)
from core.selectors import SearchQuery, person_search
from tests.personas import Persona, sign_in

CHILDREN = 120


@pytest.fixture
def seeded(world, db):  # type: ignore[no-untyped-def]
    out = StringIO()
    call_command(
        "seed_demo",
        "--council",
        world.brighton.code,
        "--children",
        str(CHILDREN),
        "--seed",
        "3",
        stdout=out,
    )
    return out.getvalue()


def test_it_seeds_the_number_of_children_asked_for_and_prints_timings(world, seeded) -> None:
    """120 children, about four involvements each, one practitioner per dozen; timed."""
    assert f"{CHILDREN:,} children" in seeded
    assert "timings:" in seeded
    with schema_context(world.brighton.schema_name):
        children = Person.objects.filter(relationships__kind="parent").distinct().count()
        assert children == CHILDREN
        involvements = Involvement.objects.count()
        assert 3 * CHILDREN <= involvements <= 6 * CHILDREN
        assert Practitioner.objects.count() >= CHILDREN // 12


def test_every_nhs_number_is_valid_and_unique(world, seeded) -> None:
    """Modulus-11 check digits hold, and no two people share a number."""
    with schema_context(world.brighton.schema_name):
        numbers = list(Person.objects.exclude(nhs_number=None).values_list("nhs_number", flat=True))
        assert len(numbers) > CHILDREN
        assert all(nhs_number_is_valid(n) for n in numbers)
        assert len(set(numbers)) == len(numbers)


def test_no_one_has_two_current_lead_professionals(world, seeded) -> None:
    """At most one current lead per person, and some children do have one."""
    with schema_context(world.brighton.schema_name):
        leads = Counter(
            Involvement.objects.filter(lead_professional=True, end_date__isnull=True).values_list(
                "person_id", flat=True
            )
        )
        assert leads
        assert max(leads.values()) == 1


def test_names_and_postcodes_carry_the_same_search_keys_as_a_saved_record(world, seeded) -> None:
    """Keys are computed as the models' save() does; postcodes are real-looking."""
    with schema_context(world.brighton.schema_name):
        for name in PersonName.objects.all():
            assert name.given_key == name_key(name.given_name)
            assert name.family_key == name_key(name.family_name)
        for person in Person.objects.all():
            assert person.postcode_key == postcode_key(person.postcode)
            validate_postcode(person.postcode)
        assert PersonName.objects.filter(kind=PersonName.Kind.PREVIOUS).exists() or (
            PersonName.objects.filter(kind=PersonName.Kind.ALIAS).exists()
        )


def test_a_seeded_practitioner_finds_a_seeded_child_by_surname_and_date_of_birth(
    world, seeded
) -> None:
    """The safe search finds seeded children by NHS number and by surname + date of birth."""
    with schema_context(world.brighton.schema_name):
        searcher = Practitioner.objects.select_related("user").first().user
        child = (
            Person.objects.filter(relationships__kind="parent", shielded=False)
            .exclude(nhs_number=None)
            .first()
        )
        by_nhs = person_search(user=searcher, query=SearchQuery(nhs_number=child.nhs_number))
        assert [r.person_id for r in by_nhs] == [child.pk]
        by_name = person_search(
            user=searcher,
            query=SearchQuery(
                family_name=child.family_name.upper(), date_of_birth=child.date_of_birth
            ),
        )
        assert child.pk in [r.person_id for r in by_name]


def test_it_makes_every_kind_of_agency_with_sensitive_services_flagged(world, seeded) -> None:
    """All agency types exist; only sensitive services' involvements are sensitive."""
    with schema_context(world.brighton.schema_name):
        types = set(Organisation.objects.values_list("agency_type", flat=True))
        assert types == set(Organisation.AgencyType.values)
        for organisation in Organisation.objects.all():
            assert organisation.sensitive_service == (
                organisation.agency_type in Organisation.SENSITIVE_BY_DEFAULT
            )
        assert Involvement.objects.filter(sensitive=True).exists()
        assert not Involvement.objects.filter(
            sensitive=True, organisation__sensitive_service=False
        ).exists()
        assert not Involvement.objects.filter(sensitive=True, role__child_protection=True).exists()
        mismatched = Involvement.objects.exclude(organisation=F("practitioner__organisation"))
        assert not mismatched.exists()


def test_it_makes_history_and_families(world, seeded) -> None:
    """Ended involvements with a reason, one or two parents per child, and siblings."""
    with schema_context(world.brighton.schema_name):
        ended = Involvement.objects.filter(end_date__isnull=False)
        assert ended.exists()
        assert not ended.filter(end_reason="").exists()
        assert FamilyRelationship.objects.filter(kind="sibling").exists()
        parents = (
            FamilyRelationship.objects.filter(kind="parent")
            .values("person_id")
            .annotate(n=Count("id"))
            .values_list("n", flat=True)
        )
        assert set(parents) == {1, 2}
        assert Involvement.objects.filter(
            end_date__isnull=True, last_contact_date__isnull=False
        ).exists()


def test_bulk_practitioners_cannot_sign_in_and_no_audit_event_per_row(world, db) -> None:
    """Seeded users have no usable password; one audit event records the whole load."""
    with schema_context(world.brighton.schema_name):
        # Other tests commit audit events (they cannot be deleted): count what seeding adds.
        events_before = AuditEvent.objects.count()
    call_command(
        "seed_demo",
        "--council",
        world.brighton.code,
        "--children",
        str(CHILDREN),
        "--seed",
        "3",
        stdout=StringIO(),
    )
    with schema_context(world.brighton.schema_name):
        users = User.objects.filter(practitioner__isnull=False)
        assert users.exists()
        assert not any(u.has_usable_password() for u in users)
        assert AuditEvent.objects.filter(action="synthetic_data_seeded").count() == 1
        assert AuditEvent.objects.count() == events_before + 1


def test_demo_setup_twice_reuses_the_councils_and_their_people(world, db) -> None:
    """The second run says it is reusing both councils and adds nobody."""
    first = StringIO()
    call_command("demo_setup", "--children", "30", stdout=first)
    with schema_context(world.brighton.schema_name):
        people = Person.objects.count()
        assert people > 30
        # The synthetic register samples: six open schools, three practices, two trusts.
        assert Organisation.objects.exclude(register="").count() == 11
    second = StringIO()
    call_command("demo_setup", "--children", "30", stdout=second)
    assert "Reusing Brighton and Hove (E06000043)" in second.getvalue()
    assert "Reusing Staffordshire (E10000028)" in second.getvalue()
    with schema_context(world.brighton.schema_name):
        assert Person.objects.count() == people
        assert Organisation.objects.exclude(register="").count() == 11
    printed = second.getvalue()
    assert "http://brighton-and-hove.localhost:8000/" in printed
    assert "http://staffordshire.localhost:8000/" in printed
    assert "social.worker@brighton-and-hove.example" in printed
    assert "NHS number" in printed


def test_the_demo_social_worker_signs_in_and_leads_some_children(world, db) -> None:
    """The printed password and TOTP key work; demo_code prints the current code."""
    call_command("demo_setup", "--children", "30", stdout=StringIO())
    email = "social.worker@brighton-and-hove.example"
    persona = Persona(
        email=email,
        schema_name=world.brighton.schema_name,
        host="brighton-and-hove.localhost",
        device_key=demo_totp_key(email),
        password="patchwork-demo-only",
    )
    code = StringIO()
    call_command("demo_code", email, "--council", "E06000043", stdout=code)
    assert code.getvalue().strip() == persona.code()
    client = sign_in(persona)
    assert client.get("/").status_code == 200
    with schema_context(world.brighton.schema_name):
        social = Practitioner.objects.get(user__email=email)
        assert social.child_protection
        assert (
            Involvement.objects.filter(
                practitioner=social, lead_professional=True, end_date__isnull=True
            ).count()
            >= 3
        )


def test_demo_setup_refuses_to_run_in_production(world, db, settings) -> None:
    """Published passwords never reach a production deployment."""
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="never in production"):
        call_command("demo_setup", stdout=StringIO())
