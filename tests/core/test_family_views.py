"""Views through the family (issue 15, decision 0022): a child's page shows each relative's
team, so each relative shown gets an audit event of their own, written with the page's own
view, and their team sees it in "who has viewed", naming the child it was seen through only
to a reader who sees that child in the family on the page."""

from __future__ import annotations

import html
import uuid

import pytest
from django.db import DatabaseError, connection
from django_tenants.utils import schema_context

from core.audit import audit_verify
from core.models import AuditEvent, FamilyRelationship, Involvement, Person
from core.selectors import VIEWED_THROUGH_FAMILY, person_network
from tests.browser import committed
from tests.factories import (
    InvolvementFactory,
    OrganisationFactory,
    PersonFactory,
    PractitionerFactory,
    RoleFactory,
)
from tests.personas import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def ben(world, scenario) -> Person:  # type: ignore[no-untyped-def]
    """Ava's brother, and the shielded Zed's: his class teacher is on his team only."""
    with schema_context(world.brighton.schema_name):
        ben = PersonFactory(given_name="Ben", family_name="Oakes")
        InvolvementFactory(
            person=ben,
            practitioner=scenario.teacher.practitioner,
            role=RoleFactory(name="Class teacher"),
        )
        FamilyRelationship.objects.create(person=scenario.ava, relative=ben, kind="sibling")
        FamilyRelationship.objects.create(person=ben, relative=scenario.zed, kind="sibling")
        return ben


def _events(action: str, person: Person) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, person_id=person.pk).order_by("id"))


def test_opening_a_child_records_a_view_of_each_relative_shown(world, scenario, ben) -> None:
    """Ava's page and her family page each record Ava's view and Ben's view through her
    family, one after the other in the chain, which still verifies."""
    lead = client_for(world, scenario.social_worker)
    assert lead.get(f"/people/{scenario.ava.pk}/").status_code == 200
    assert lead.get(f"/people/{scenario.ava.pk}/family/").status_code == 200
    with schema_context(world.brighton.schema_name):
        own = _events("person_viewed", scenario.ava)
        through = _events(VIEWED_THROUGH_FAMILY, ben)
        assert len(own) == 2 and len(through) == 2
        for page_view, relative_view in zip(own, through, strict=True):
            assert relative_view.pk == page_view.pk + 1
            assert relative_view.at == page_view.at
            assert relative_view.actor_id == scenario.social_worker.pk
            assert relative_view.detail["through_person_id"] == scenario.ava.pk
        assert audit_verify().intact


def _refuse_and_view(schema: str) -> tuple[str, int]:
    """On a connection of its own, in autocommit as the pages run: a committed child with a
    committed sister, and a trigger that refuses the sister's event; open the child's
    network and count what stayed written of the child's own view. Everything made is
    removed again but the audit events (append-only), for the tests that count rows."""
    tag = uuid.uuid4().hex[:8]
    with schema_context(schema):
        role = RoleFactory(name=f"Social worker {tag}")
        lead = PractitionerFactory(
            organisation=OrganisationFactory(
                name=f"Children's Services {tag}", agency_type="social_care"
            )
        )
        child, sister = PersonFactory(), PersonFactory()
        FamilyRelationship.objects.create(person=child, relative=sister, kind="sibling")
        InvolvementFactory(person=child, practitioner=lead, role=role)
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION refuse_family_view() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_family_view BEFORE INSERT ON core_auditevent "
                f"FOR EACH ROW WHEN (NEW.action = '{VIEWED_THROUGH_FAMILY}' "
                f"AND NEW.person_id = {sister.pk}) EXECUTE FUNCTION refuse_family_view()"
            )
        try:
            person_network(user=lead.user, person_id=child.pk)
        except DatabaseError as exc:
            outcome = type(exc).__name__
        else:
            outcome = "written"
        finally:
            with connection.cursor() as cursor:
                cursor.execute("DROP TRIGGER refuse_family_view ON core_auditevent")
                cursor.execute("DROP FUNCTION refuse_family_view()")
        written = AuditEvent.objects.filter(person_id=child.pk).count()
        Involvement.objects.filter(person=child).delete()
        Person.objects.filter(pk__in=[child.pk, sister.pk]).delete()
        organisation, user = lead.organisation, lead.user
        lead.delete()
        user.delete()
        organisation.delete()
        role.delete()
        return outcome, written


def test_the_relatives_views_are_written_with_the_pages_own_or_not_at_all(world, db) -> None:
    """When the database refuses the relative's event, the page's own view is not written
    either: they are one transaction (committed rows, as the live pages write them)."""
    outcome, written = committed(lambda: _refuse_and_view(world.brighton.schema_name))  # type: ignore[misc]
    assert outcome != "written"
    assert written == 0


def test_the_relatives_team_sees_the_view_through_a_family_it_can_see(world, scenario, ben) -> None:
    """Ben's teacher reads that Sam viewed Ben through Ava's family (Ava is in Ben's family
    on his page); a view through the shielded Zed's family is shown without naming Zed."""
    lead = client_for(world, scenario.social_worker)
    lead.get(f"/people/{scenario.ava.pk}/")
    lead.get(f"/people/{scenario.zed.pk}/")
    teacher = client_for(world, scenario.teacher)
    page = teacher.get(f"/people/{ben.pk}/").content.decode()
    # The page's text as a browser reads it, whichever escaping wrote it.
    viewed = html.unescape(page[page.index("Who has viewed this record") :])
    assert f"Viewed through {scenario.ava.full_name}’s family" in viewed
    assert "Viewed through the family" in viewed
    assert viewed.count(scenario.social_worker.full_name) == 2
    assert scenario.zed.given_name not in page and scenario.zed.family_name not in page
    listed = html.unescape(teacher.get(f"/people/{ben.pk}/views/").content.decode())
    assert f"Viewed through {scenario.ava.full_name}’s family" in listed
    assert scenario.zed.family_name not in listed
    with schema_context(world.brighton.schema_name):
        # The teacher saw Ava's team on Ben's page, and never the shielded Zed's.
        assert [e.actor_id for e in _events(VIEWED_THROUGH_FAMILY, scenario.ava)] == [
            scenario.teacher.pk
        ]
        assert not AuditEvent.objects.filter(
            action=VIEWED_THROUGH_FAMILY, person_id=scenario.zed.pk, actor_id=scenario.teacher.pk
        ).exists()


def test_a_sensitive_services_view_through_the_family_names_no_child(world, scenario, ben) -> None:
    """The CAMHS worker opens Ava's page: Ben's teacher reads that someone from a sensitive
    service viewed Ben through the family, with neither the worker's name nor Ava's."""
    client_for(world, scenario.camhs_worker).get(f"/people/{scenario.ava.pk}/")
    page = client_for(world, scenario.teacher).get(f"/people/{ben.pk}/").content.decode()
    viewed = html.unescape(page[page.index("Who has viewed this record") :])
    row = viewed[viewed.index("Someone from a sensitive service") :]
    row = row[: row.index("</tr>")]
    assert "Viewed through the family" in row
    assert scenario.ava.full_name not in viewed
    assert scenario.camhs_worker.full_name not in viewed


def test_the_fhir_care_team_shows_no_relative_and_records_no_view_of_one(
    world, scenario, ben
) -> None:
    """A care team read through the API holds Ava's own team only: Ben gets no event."""
    with schema_context(world.brighton.schema_name):
        person_network(user=scenario.social_worker, person_id=scenario.ava.pk, family_shown=False)
        assert _events("person_viewed", scenario.ava)
        assert not _events(VIEWED_THROUGH_FAMILY, ben)
