"""A subject access response: what Patchwork holds about one person (decision 0010).

For an information-governance officer only. The document holds everything — details, every
name and identifier, involvements now and before, family links, and who viewed the record
when (from the audit log, under the record's own id and every id merged into it) — and
*marks*, never hides, what needs the officer's judgement before disclosure: involvements of
a sensitive service (and views by its staff, which reveal it), shielded relatives, and other
people's details. Masking would silently leave out data the person is entitled to; applying
an exemption is the officer's decision, not the software's. Producing it is audited."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.models import AuditEvent, FamilyRelationship, Involvement, Person, Practitioner
from core.selectors import (
    VIEWING_WORDS,
    SearchQuery,
    people_matching,
    person_ids_merged_into,
    relationship_label,
)

SENSITIVE = "Sensitive service: review for exemption before disclosure"
SHIELDED_RELATIVE = "Shielded person: review before disclosure"
THIRD_PARTY = "Another person's details: review before disclosure"
FORMATS = ("html", "csv")
CSV_COLUMNS = ["section", "item", "value", "from", "to", "marking"]


@dataclass(frozen=True)
class Line:
    """One thing held about the person, as the document and the CSV show it."""

    section: str
    item: str
    value: str
    start: date | datetime | None = None
    end: date | datetime | None = None
    marking: str = ""

    @property
    def start_text(self) -> str:
        return _text(self.start)

    @property
    def end_text(self) -> str:
        return _text(self.end)


@dataclass
class SubjectAccessDocument:
    person: Person
    produced_by: User
    produced_at: datetime
    merged_ids: list[int]
    details: list[Line] = field(default_factory=list)
    current: list[Line] = field(default_factory=list)
    past: list[Line] = field(default_factory=list)
    family: list[Line] = field(default_factory=list)
    viewings: list[Line] = field(default_factory=list)

    @property
    def marked(self) -> int:
        lines = [*self.current, *self.past, *self.family, *self.viewings]
        return sum(1 for line in lines if line.marking)

    def lines(self) -> Iterator[Line]:
        yield from self.details
        yield from self.current
        yield from self.past
        yield from self.family
        yield from self.viewings


def _may_produce(user: User) -> None:
    if user.role != User.Role.IG_OFFICER:
        raise PermissionDenied("Only an information-governance officer can produce this")


def person_for_subject_access(user: User, person_id: int) -> Person:
    """Any record of the council, shielded or archived too (not one merged away: its
    history is in the record it was merged into), for an IG officer; 404 otherwise."""
    _may_produce(user)
    person = Person.objects.filter(pk=person_id, merged_into__isnull=True).first()
    if person is None:
        raise Http404("No such person")
    return person


def subject_access_search(*, user: User, query: SearchQuery) -> list[Person]:
    """The records an identifying query finds (shielded and archived ones too: both are still
    held), for an IG officer answering a request; audited as a search."""
    _may_produce(user)
    found = sorted(
        people_matching(query, archived=True), key=lambda p: (p.family_name, p.given_name, p.pk)
    )
    audit_record(
        actor=user,
        action="search_for_subject_access",
        detail={"mode": query.mode(), "result_ids": [p.pk for p in found]},
    )
    return found


def _text(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%d %B %Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d %B %Y")
    return str(value)


def _details(person: Person, merged_ids: list[int]) -> list[Line]:
    section = "Details"
    lines = [
        Line(section, "Name", person.full_name),
        Line(section, "Date of birth", _text(person.date_of_birth)),
        Line(section, "Sex", person.get_sex_display()),
        Line(section, "NHS number", person.nhs_number or ""),
        Line(section, "Address", " ".join(person.address.split())),
        Line(section, "Postcode", person.postcode),
        Line(section, "Date of death", _text(person.date_of_death)),
        Line(section, "Hidden from search (shielded)", "Yes" if person.shielded else "No"),
        Line(section, "Record created", _text(person.created_at)),
    ]
    for name in person.names.order_by("pk"):
        if (name.given_name, name.family_name) != (person.given_name, person.family_name):
            lines.append(
                Line(section, name.get_kind_display(), f"{name.given_name} {name.family_name}")
            )
    for label, value in sorted(person.local_identifiers.items()):
        lines.append(Line(section, f"Local identifier: {label}", str(value)))
    others = [str(pk) for pk in merged_ids if pk != person.pk]
    if others:
        lines.append(Line(section, "Records merged into this one", ", ".join(others)))
    return [line for line in lines if line.value]


def _involvement(involvement: Involvement, section: str) -> Line:
    sensitive = involvement.sensitive or involvement.organisation.sensitive_service
    practitioner = involvement.practitioner
    value = (
        f"{involvement.role} – {practitioner.user.full_name}, {practitioner.job_title}, "
        f"{involvement.organisation}"
        + (" (lead professional)" if involvement.lead_professional else "")
        + f"; legal basis: {involvement.get_legal_basis_display()}"
        + (f"; ended: {involvement.get_end_reason_display()}" if involvement.end_reason else "")
    )
    return Line(
        section,
        involvement.organisation.get_agency_type_display(),
        value,
        involvement.start_date,
        involvement.end_date,
        SENSITIVE if sensitive else "",
    )


def _family(person: Person) -> list[Line]:
    lines = []
    links = FamilyRelationship.objects.filter(Q(person=person) | Q(relative=person))
    for link in links.select_related("person", "relative").order_by("pk"):
        other = link.relative if link.person_id == person.pk else link.person
        if other.merged_into_id is not None:
            continue  # a link to a record merged away (into this one or a duplicate link)
        lines.append(
            Line(
                "Family",
                relationship_label(link, person),
                f"{other.full_name} (born {_text(other.date_of_birth) or 'date not known'})",
                link.start_date,
                link.end_date,
                SHIELDED_RELATIVE if other.shielded else THIRD_PARTY,
            )
        )
    return lines


def _viewings(merged_ids: list[int]) -> list[Line]:
    events = AuditEvent.objects.filter(
        person_id__in=merged_ids, action__in=list(VIEWING_WORDS)
    ).order_by("id")
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    practitioners = {
        p.user_id: p
        for p in Practitioner.objects.filter(user_id__in=actor_ids).select_related(
            "user", "organisation"
        )
    }
    lines = []
    for event in events:
        practitioner = practitioners.get(event.actor_id or 0)
        who = event.actor_email
        marking = ""
        if practitioner is not None:
            who = f"{practitioner.user.full_name}, {practitioner.organisation}"
            if practitioner.organisation.sensitive_service:
                marking = SENSITIVE
        reason = event.detail.get("reason", "") if isinstance(event.detail, dict) else ""
        what = VIEWING_WORDS[event.action] + (f" ({reason.replace('_', ' ')})" if reason else "")
        lines.append(Line("Who viewed the record", who, what, event.at, None, marking))
    return lines


def subject_access_document(*, user: User, person_id: int, fmt: str) -> SubjectAccessDocument:
    """Everything held about the person, for an IG officer (403 for anyone else, 404 for no
    such person). Audited as produced, with the format, before anything is read."""
    person = person_for_subject_access(user, person_id)
    if fmt not in FORMATS:
        raise Http404("No such format")
    audit_record(
        actor=user,
        action="subject_access_exported",
        person_id=person.pk,
        detail={"format": fmt},
    )
    merged_ids = person_ids_merged_into(person.pk)
    document = SubjectAccessDocument(
        person=person,
        produced_by=user,
        produced_at=timezone.now(),
        merged_ids=merged_ids,
        details=_details(person, merged_ids),
    )
    involvements = (
        Involvement.objects.filter(person=person)
        .select_related("practitioner__user", "organisation", "role")
        .order_by("start_date", "pk")
    )
    for involvement in involvements:
        if involvement.end_date is None:
            document.current.append(_involvement(involvement, "Involved now"))
        else:
            document.past.append(_involvement(involvement, "Involved before"))
    document.family = _family(person)
    document.viewings = _viewings(merged_ids)
    return document


def subject_access_rows(document: SubjectAccessDocument) -> Iterator[list[str]]:
    """The document as CSV rows, header first (write them with accounts.spreadsheets'
    csv_writer, which keeps a name typed as "=HYPERLINK(...)" text)."""
    yield CSV_COLUMNS
    for line in document.lines():
        yield [
            line.section,
            line.item,
            line.value,
            _iso(line.start),
            _iso(line.end),
            line.marking,
        ]


def _iso(value: date | datetime | None) -> str:
    return "" if value is None else value.isoformat()
