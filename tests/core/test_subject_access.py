"""The subject access document: what it holds for a person with a sensitive service
involved, how it marks what needs review, its CSV, its audit event, and who may produce it."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import User
from core.audit import audit_record
from core.merges import person_merge
from core.models import AuditEvent, FamilyRelationship, Involvement, PersonName
from core.selectors import SearchQuery, person_search
from core.services import involvement_end, record_open
from core.subject_access import (
    CSV_COLUMNS,
    SENSITIVE,
    SHIELDED_RELATIVE,
    subject_access_document,
    subject_access_rows,
    subject_access_search,
)
from tests.factories import PersonFactory, UserFactory
from tests.personas import client_for


@pytest.fixture
def brighton(scenario, world):  # type: ignore[no-untyped-def]
    """Ava's scenario, with an IG officer, a past involvement, a shielded brother (Zed), an
    opening by the teacher and a view by the CAMHS colleague."""
    with schema_context(world.brighton.schema_name):
        s = scenario
        s.ig = UserFactory(full_name="Ife Governance", role=User.Role.IG_OFFICER)
        nurse = Involvement.objects.get(person=s.ava, practitioner__user=s.school_nurse)
        involvement_end(actor=s.school_nurse, involvement=nurse, reason="case_closed")
        FamilyRelationship.objects.create(person=s.ava, relative=s.zed, kind="sibling")
        record_open(user=s.teacher, person=s.ava, reason="new_referral", note="A referral today")
        audit_record(actor=s.camhs_colleague, action="person_viewed", person_id=s.ava.pk)
        yield s


def _values(lines) -> str:  # type: ignore[no-untyped-def]
    return " | ".join(f"{line.item}: {line.value} [{line.marking}]" for line in lines)


def test_it_holds_everything_and_marks_the_sensitive_service(brighton) -> None:
    """The IG officer sees all of Ava: the CAMHS involvement in full, marked for review; the
    ended school nurse under "before"; Zed marked shielded; the teacher's opening; and the
    CAMHS colleague's view marked, since it reveals the service."""
    s = brighton
    document = subject_access_document(user=s.ig, person_id=s.ava.pk, fmt="html")
    details = {line.item: line.value for line in document.details}
    assert details["NHS number"] == "9434765919"
    assert details["Date of birth"] == "14 March 2015"
    camhs = [line for line in document.current if "Sussex CAMHS" in line.value]
    assert len(camhs) == 1 and camhs[0].marking == SENSITIVE
    assert "CAMHS practitioner" in camhs[0].value
    social = [line for line in document.current if "Brighton Children's Services" in line.value]
    assert social[0].marking == "" and "(lead professional)" in social[0].value
    assert [line.item for line in document.past] == ["School"]
    assert "ended: Work finished" in document.past[0].value
    assert document.family[0].marking == SHIELDED_RELATIVE
    assert "Zed Hollis" in document.family[0].value
    viewings = _values(document.viewings)
    assert "Opened the record, stating a reason (new referral)" in viewings
    camhs_view = [line for line in document.viewings if "Sussex CAMHS" in line.item]
    assert camhs_view and camhs_view[0].marking == SENSITIVE
    assert document.marked >= 3


def test_the_document_carries_the_history_of_a_record_merged_into_it(brighton) -> None:
    """Views of a duplicate merged into Ava are Ava's history too (by reference: the audit
    events keep the duplicate's id)."""
    s = brighton
    duplicate = PersonFactory(given_name="Ava", family_name="Smith", nhs_number=None)
    audit_record(actor=s.teacher, action="person_viewed", person_id=duplicate.pk)
    person_merge(actor=s.admin, keep=s.ava, absorb=duplicate)
    document = subject_access_document(user=s.ig, person_id=s.ava.pk, fmt="html")
    assert document.merged_ids == [s.ava.pk, duplicate.pk]
    assert sum(1 for line in document.viewings if line.value == "Viewed the record") == 2
    assert AuditEvent.objects.get(action="person_viewed", person_id=duplicate.pk)


def test_the_csv_has_its_columns_and_one_row_per_entry(brighton) -> None:
    """Section, item, value, dates and marking: the document's lines, one row each."""
    s = brighton
    document = subject_access_document(user=s.ig, person_id=s.ava.pk, fmt="csv")
    rows = list(subject_access_rows(document))
    assert rows[0] == CSV_COLUMNS == ["section", "item", "value", "from", "to", "marking"]
    assert len(rows) == 1 + len(list(document.lines()))
    camhs = [row for row in rows if "Sussex CAMHS" in row[2] and row[0] == "Involved now"]
    assert camhs[0][5] == SENSITIVE
    started = Involvement.objects.get(person=s.ava, organisation=s.camhs).start_date
    assert (camhs[0][3], camhs[0][4]) == (started.isoformat(), "")


def test_each_export_is_audited_with_its_format(brighton) -> None:
    """Who, which person, which format; the time is the event's own."""
    s = brighton
    subject_access_document(user=s.ig, person_id=s.ava.pk, fmt="csv")
    event = AuditEvent.objects.filter(action="subject_access_exported").latest("id")
    assert (event.actor_id, event.person_id, event.detail) == (s.ig.pk, s.ava.pk, {"format": "csv"})


@pytest.mark.parametrize("who", ["admin", "social_worker", "camhs_worker"])
def test_no_one_but_an_ig_officer_produces_it(brighton, who) -> None:  # type: ignore[no-untyped-def]
    """Not the administrator, not Ava's lead professional, not her CAMHS worker."""
    s = brighton
    with pytest.raises(PermissionDenied):
        subject_access_document(user=getattr(s, who), person_id=s.ava.pk, fmt="html")
    assert not AuditEvent.objects.filter(action="subject_access_exported").exists()


def test_the_pages_give_the_document_and_the_csv_to_the_ig_officer_only(world, brighton) -> None:
    """The printable page names the council and who produced it; the CSV downloads; others
    get a 403."""
    s = brighton
    ig = client_for(world, s.ig)
    page = ig.get(f"/admin/people/{s.ava.pk}/subject-access/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Brighton and Hove" in text and "Produced by Ife Governance" in text
    assert "Sensitive service: review for exemption before disclosure" in text
    download = ig.get(f"/admin/people/{s.ava.pk}/subject-access.csv")
    assert download["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert rows[0] == CSV_COLUMNS
    found = ig.get("/admin/people/subject-access/", {"nhs_number": "9434765919"})
    assert f"/admin/people/{s.ava.pk}/subject-access/" in found.content.decode()
    for user in (s.admin, s.social_worker):
        client = client_for(world, user)
        assert client.get(f"/admin/people/{s.ava.pk}/subject-access/").status_code == 403
        assert client.get(f"/admin/people/{s.ava.pk}/subject-access.csv").status_code == 403


def test_an_archived_record_is_found_and_covered(brighton) -> None:
    """Archived but not yet purged, the record is still held: the IG officer finds it (the
    practitioners' search does not) and produces its document."""
    s = brighton
    s.ava.archived_at = timezone.now()
    s.ava.save()
    query = SearchQuery(nhs_number="9434765919")
    assert [p.pk for p in subject_access_search(user=s.ig, query=query)] == [s.ava.pk]
    assert person_search(user=s.social_worker, query=query) == []
    search = AuditEvent.objects.filter(action="search_for_subject_access").latest("id")
    assert search.detail["result_ids"] == [s.ava.pk]
    document = subject_access_document(user=s.ig, person_id=s.ava.pk, fmt="html")
    assert document.current


def test_a_name_that_looks_like_a_formula_stays_text_in_the_csv(world, brighton) -> None:
    """A previous name typed as a spreadsheet formula is written with a leading apostrophe."""
    s = brighton
    PersonName.objects.create(
        person=s.ava, kind="alias", given_name="=HYPERLINK(1)", family_name="x"
    )
    download = client_for(world, s.ig).get(f"/admin/people/{s.ava.pk}/subject-access.csv")
    values = [row[2] for row in csv.reader(io.StringIO(download.content.decode()))]
    assert "'=HYPERLINK(1) x" in values
    assert not any(value.startswith("=") for value in values)
