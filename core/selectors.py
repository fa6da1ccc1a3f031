"""Reads inside one council, with the access rules. Every rule about who may see a person,
their network or a sensitive involvement lives here, and views and the API go through it.

- Practitioners (and managers) search; administrators and IG officers manage but do not
  read records.
- Search needs enough to identify one person: an NHS number, or surname and date of birth,
  or surname, first name and postcode. It is audited, always.
- A shielded person is found only by their own team, or by a child-protection practitioner
  who searches with break-glass (reviewed later). A search never confirms they exist.
- A person's current team sees their record. Anyone else who found them by search states a
  reason first; the opening is audited and the lead professional is told.
- A sensitive involvement is shown in full only to its own organisation; to others as
  "a sensitive service is involved – request contact", after the rest of the team, and
  known to them only by a contact reference made for that viewer and that person. Its
  staff's views of the record are not named to others."""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import jellyfish
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import User
from core.audit import audit_record, audit_record_many
from core.identifiers import name_key, nhs_number_clean, nhs_number_is_valid, postcode_key
from core.models import (
    AuditEvent,
    ContactRequest,
    FamilyRelationship,
    ImportRun,
    Involvement,
    InvolvementRole,
    Notification,
    Organisation,
    Person,
    PersonName,
    Practitioner,
    RecordOpening,
    SourceSystem,
)
from tenants.db import model_builder, models_from_sql, prepared_cursor

# How long a stated reason keeps a record open for the person who stated it, and how long
# after a search its results may be opened.
OPENING_VALID = timedelta(hours=settings.RECORD_OPENING_HOURS)
SEARCH_VALID = timedelta(hours=1)
READER_ROLES = {User.Role.PRACTITIONER, User.Role.MANAGER}
PRACTITIONER_MEMO = "_patchwork_practitioner"


def organisations_list() -> QuerySet[Organisation]:
    return Organisation.objects.order_by("name")


def organisation_for_admin(organisation_id: int) -> Organisation:
    """The organisation with this id in the current council, or 404."""
    organisation = Organisation.objects.filter(pk=organisation_id).first()
    if organisation is None:
        raise Http404("No organisation with that id here")
    return organisation


def practitioner_of(user: User) -> Practitioner | None:
    """The user's working profile, if their role reads records. Kept on the user object for
    the rest of the request (`practitioner_profile_set` forgets it)."""
    if not user.is_authenticated or user.role not in READER_ROLES:
        return None
    if PRACTITIONER_MEMO not in user.__dict__:
        found = models_from_sql(Practitioner, PRACTITIONER_SQL, [user.pk], related=["organisation"])
        user.__dict__[PRACTITIONER_MEMO] = found[0] if found else None
    return user.__dict__[PRACTITIONER_MEMO]


# Read on every page a practitioner opens: a plain statement, not the ORM's join.
PRACTITIONER_SQL = """
SELECT pr.*, o.id AS organisation__id, o.name AS organisation__name,
       o.agency_type AS organisation__agency_type,
       o.sensitive_service AS organisation__sensitive_service, o.phone AS organisation__phone,
       o.secure_email AS organisation__secure_email
FROM core_practitioner pr JOIN core_organisation o ON o.id = pr.organisation_id
WHERE pr.user_id = %s
"""


def can_read_records(user: User) -> bool:
    return practitioner_of(user) is not None


# --- Search ---------------------------------------------------------------------------


class SearchRefused(Exception):
    """The query is too broad or malformed; the message says what to add or fix."""


@dataclass(frozen=True)
class SearchQuery:
    nhs_number: str = ""
    family_name: str = ""
    given_name: str = ""
    date_of_birth: date | None = None
    postcode: str = ""

    def mode(self) -> str:
        if self.nhs_number:
            if not nhs_number_is_valid(self.nhs_number):
                raise SearchRefused(
                    "That is not a valid NHS number: check the 10 digits and try again"
                )
            return "nhs_number"
        if not name_key(self.family_name):
            raise SearchRefused(
                "Enter an NHS number, or a surname with a date of birth, "
                "or a surname, first name and postcode"
            )
        if self.date_of_birth:
            return "surname_dob"
        if name_key(self.given_name) and len(postcode_key(self.postcode)) >= 5:
            return "names_postcode"
        raise SearchRefused(
            "Add a date of birth, or a first name and a full postcode, to search by surname: "
            "Patchwork only finds a person you can already identify"
        )


@dataclass(frozen=True)
class SearchResult:
    person_id: int
    name: str
    date_of_birth: date | None
    sex: str
    postcode_area: str
    on_team: bool
    shielded: bool


def _names_match(query_key: str, candidate_key: str) -> bool:
    """Tolerant of one typo (a letter wrong, missing, extra or swapped) and of sound-alike
    spellings; names are already folded for case, accents and hyphens."""
    if not query_key:
        return True
    if query_key == candidate_key:
        return True
    if (
        len(query_key) >= 4
        and jellyfish.damerau_levenshtein_distance(query_key, candidate_key) <= 1
    ):
        return True
    return len(query_key) >= 3 and jellyfish.metaphone(query_key) == jellyfish.metaphone(
        candidate_key
    )


def team_person_ids(user: User, person_ids: list[int]) -> set[int]:
    """Which of `person_ids` the user is on the team of now (a current involvement)."""
    return set(
        Involvement.objects.filter(
            person_id__in=person_ids, practitioner__user=user, end_date__isnull=True
        ).values_list("person_id", flat=True)
    )


def person_search(
    *, user: User, query: SearchQuery, break_glass: bool = False
) -> list[SearchResult]:
    """Find the people matching an identifying query. Refused (SearchRefused) when too broad.
    The search is audited whatever it finds, including the ids it returned."""
    practitioner = practitioner_of(user)
    if practitioner is None:
        raise PermissionDenied("Only practitioners can search for people")
    if break_glass and not practitioner.child_protection:
        raise PermissionDenied("Only child-protection practitioners can search with break-glass")
    mode = query.mode()
    candidates = people_matching(query)
    team = team_person_ids(user, [p.pk for p in candidates])
    visible = [p for p in candidates if not p.shielded or p.pk in team or break_glass]
    visible.sort(key=lambda p: (p.family_name, p.given_name, p.pk))
    _search_audit(
        user,
        action="search_break_glass" if break_glass else "search",
        mode=mode,
        query=query,
        shown=visible,
    )
    return [_result(p, team) for p in visible]


def people_matching(query: SearchQuery, *, archived: bool = False) -> list[Person]:
    """Everyone (shielded or not) the query identifies, by the search's rules; SearchRefused
    when it is too broad. `archived` includes records archived but not yet purged (a subject
    access request covers them). Callers apply who may see whom, and audit."""
    mode = query.mode()
    if mode == "nhs_number":
        people = _searchable(archived=archived)
        return list(people.filter(nhs_number=nhs_number_clean(query.nhs_number)))
    return _name_matches(query, mode, archived=archived)


def _searchable(*, archived: bool = False) -> QuerySet[Person]:
    people = Person.objects.filter(merged_into__isnull=True)
    return people if archived else people.filter(archived_at__isnull=True)


def _name_matches(query: SearchQuery, mode: str, *, archived: bool = False) -> list[Person]:
    """People whose current, previous or other names match, among those with the query's
    date of birth (mode surname_dob) or postcode (mode names_postcode)."""
    people = _searchable(archived=archived)
    if mode == "surname_dob":
        narrowed = people.filter(date_of_birth=query.date_of_birth)
    else:
        narrowed = people.filter(postcode_key=postcode_key(query.postcode))
    family, given = name_key(query.family_name), name_key(query.given_name)
    names = PersonName.objects.filter(person__in=narrowed).select_related("person")
    matched: dict[int, Person] = {}
    for name in names:
        if _names_match(family, name.family_key) and _names_match(given, name.given_key):
            matched[name.person_id] = name.person
    return list(matched.values())


def _search_audit(
    user: User, *, action: str, mode: str, query: SearchQuery, shown: list[Person]
) -> None:
    """Record a search with the ids it showed: that is what lets them be opened."""
    terms = {
        "nhs_number": nhs_number_clean(query.nhs_number),
        "family_name": query.family_name,
        "given_name": query.given_name,
        "date_of_birth": query.date_of_birth.isoformat() if query.date_of_birth else "",
        "postcode": postcode_key(query.postcode),
    }
    audit_record(
        actor=user,
        action=action,
        detail={
            "mode": mode,
            "terms": {k: v for k, v in terms.items() if v},
            "result_ids": [p.pk for p in shown],
        },
    )


def _result(person: Person, team: set[int]) -> SearchResult:
    return SearchResult(
        person_id=person.pk,
        name=person.full_name,
        date_of_birth=person.date_of_birth,
        sex=person.get_sex_display(),
        postcode_area=person.postcode_key[:-3] if len(person.postcode_key) >= 5 else "",
        on_team=person.pk in team,
        shielded=person.shielded,
    )


@dataclass(frozen=True)
class LikelyMatches:
    """What a practitioner about to add a person is told already exists.

    `same_nhs_number` is the record holding the NHS number, when the caller may know it;
    `nhs_number_taken` is true whenever a record holds it (shielded from the caller or not:
    a second record with the number cannot be made, so that much cannot be hidden).
    `candidates` are those found by surname and date of birth or by names and postcode,
    as the ordinary search finds them: a shielded person outside the caller's team is left
    out, never hinted at."""

    same_nhs_number: SearchResult | None
    nhs_number_taken: bool
    candidates: list[SearchResult]

    @property
    def any(self) -> bool:
        return self.nhs_number_taken or bool(self.candidates)


def person_likely_matches(
    *,
    user: User,
    given_name: str,
    family_name: str,
    date_of_birth: date | None = None,
    nhs_number: str = "",
    postcode: str = "",
) -> LikelyMatches:
    """The people a new record for these details would likely duplicate, by the search's
    own rules: the same NHS number; the same surname and date of birth; or the same
    surname, first name and postcode. Audited as a search, so the candidates shown can be
    opened (with a reason) like search results."""
    if practitioner_of(user) is None:
        raise PermissionDenied("Only practitioners can add people")
    query = SearchQuery(
        nhs_number=nhs_number,
        family_name=family_name,
        given_name=given_name,
        date_of_birth=date_of_birth,
        postcode=postcode,
    )
    holder = None
    if nhs_number_is_valid(nhs_number):
        # Archived records too: the number stays theirs.
        holder = Person.objects.filter(nhs_number=nhs_number_clean(nhs_number)).first()
    found: dict[int, Person] = {}
    if name_key(family_name):
        if date_of_birth is not None:
            # The surname and date of birth alone: a first name spelled another way (or a
            # nickname) must not hide the record it duplicates.
            by_birth = SearchQuery(family_name=family_name, date_of_birth=date_of_birth)
            found.update((p.pk, p) for p in _name_matches(by_birth, "surname_dob"))
        if name_key(given_name) and len(postcode_key(postcode)) >= 5:
            found.update((p.pk, p) for p in _name_matches(query, "names_postcode"))
    if holder is not None:
        found.pop(holder.pk, None)
    team = team_person_ids(user, [*found, *([holder.pk] if holder else [])])
    holder_visible = (
        holder is not None
        and holder.archived_at is None
        and (not holder.shielded or holder.pk in team)
    )
    visible = sorted(
        (p for p in found.values() if not p.shielded or p.pk in team),
        key=lambda p: (p.family_name, p.given_name, p.pk),
    )
    shown = [*([holder] if holder_visible and holder else []), *visible]
    _search_audit(user, action="search", mode="likely_matches", query=query, shown=shown)
    return LikelyMatches(
        same_nhs_number=_result(holder, team) if holder_visible and holder else None,
        nhs_number_taken=holder is not None,
        candidates=[_result(p, team) for p in visible],
    )


# --- Access to one person ---------------------------------------------------------------


class Access(enum.Enum):
    TEAM = "team"  # currently involved: sees the network
    OPENED = "opened"  # stated a reason recently: sees the network
    CREATED = "created"  # added the record recently: sees it, to record their involvement
    NEEDS_REASON = "needs_reason"  # found them by search: must state a reason first


@dataclass(frozen=True)
class PersonAccess:
    person: Person
    access: Access
    break_glass: bool = False

    @property
    def can_see_network(self) -> bool:
        return self.access in {Access.TEAM, Access.OPENED, Access.CREATED}

    @property
    def may_edit(self) -> bool:
        """Change details, record a death or a relative: the person's team, and whoever
        added the record while they record their involvement; a shielded person's only
        their team. Someone who opened the record with a reason reads it and joins the
        team (records their involvement) before changing it."""
        if self.person.shielded:
            return self.access == Access.TEAM
        return self.access in {Access.TEAM, Access.CREATED}


def _found_by_search(user: User, person: Person, *, break_glass: bool) -> bool:
    actions = ["search_break_glass"] if break_glass else ["search", "search_break_glass"]
    return AuditEvent.objects.filter(
        actor_id=user.pk,
        action__in=actions,
        at__gte=timezone.now() - SEARCH_VALID,
        detail__result_ids__contains=[person.pk],
    ).exists()


def _created_recently(user: User, person: Person) -> bool:
    """The user added this record within the search window: they may see it, to record
    their own involvement, without stating a reason for a record they have just made."""
    return AuditEvent.objects.filter(
        actor_id=user.pk,
        action="person_created",
        person_id=person.pk,
        at__gte=timezone.now() - SEARCH_VALID,
    ).exists()


# Asked on every view of a record: the person, whether the viewer is on their team now, and
# whether any records were merged into theirs.
PERSON_COLUMNS = """p.*, EXISTS (
    SELECT 1 FROM core_involvement i JOIN core_practitioner t ON t.id = i.practitioner_id
    WHERE i.person_id = p.id AND t.user_id = %(user)s AND i.end_date IS NULL
) AS viewer_on_team,
EXISTS (SELECT 1 FROM core_person m WHERE m.merged_into_id = p.id) AS records_merged_in"""
PERSON_SHOWN = "p.id = %(person)s AND p.archived_at IS NULL AND p.merged_into_id IS NULL"
PERSON_WITH_TEAM_SQL = f"SELECT {PERSON_COLUMNS} FROM core_person p WHERE {PERSON_SHOWN}"  # noqa: S608 (fixed text)


def _person_and_viewer(user: User, person_id: int) -> Person | None:
    """The person (as PERSON_WITH_TEAM_SQL reads them) and, in the same statement, the
    viewer's practitioner profile, kept as `practitioner_of` keeps it: the first read of a
    record view needs both. None if either is missing (both mean 404)."""
    with prepared_cursor() as cursor:
        cursor.execute(_person_and_viewer_sql(), {"user": user.pk, "person": person_id})
        names = [column.name for column in cursor.description or []]
        row = cursor.fetchone()
    if row is None:
        return None
    parts: dict[str, list[int]] = {"": [], "viewer__": [], "viewer_organisation__": []}
    for index, name in enumerate(names):
        prefix = next((p for p in ("viewer__", "viewer_organisation__") if name.startswith(p)), "")
        parts[prefix].append(index)

    def built(model: type[Any], prefix: str) -> Any:
        columns = parts[prefix]
        return model_builder(model, [names[i][len(prefix) :] for i in columns])(
            [row[i] for i in columns]
        )

    practitioner = built(Practitioner, "viewer__")
    Practitioner._meta.get_field("organisation").set_cached_value(
        practitioner, built(Organisation, "viewer_organisation__")
    )
    user.__dict__[PRACTITIONER_MEMO] = practitioner
    return built(Person, "")


@cache
def _person_and_viewer_sql() -> str:
    def columns(alias: str, model: type[Any], prefix: str) -> str:
        return ", ".join(
            f'{alias}."{f.column}" AS "{prefix}{f.column}"' for f in model._meta.concrete_fields
        )

    return f"""
SELECT {PERSON_COLUMNS},
{columns("pr", Practitioner, "viewer__")},
{columns("o", Organisation, "viewer_organisation__")}
FROM core_person p
JOIN core_practitioner pr ON pr.user_id = %(user)s
JOIN core_organisation o ON o.id = pr.organisation_id
WHERE {PERSON_SHOWN}
"""  # noqa: S608 (column names from the models)


def person_access(user: User, person_id: int) -> PersonAccess:
    """How `user` may see person `person_id`; Http404 when they may not know it exists
    (which looks exactly like a person who does not exist)."""
    if not user.is_authenticated or user.role not in READER_ROLES:
        raise Http404("No such person")
    if PRACTITIONER_MEMO in user.__dict__:
        if practitioner_of(user) is None:
            raise Http404("No such person")
        found = models_from_sql(
            Person, PERSON_WITH_TEAM_SQL, {"user": user.pk, "person": person_id}
        )
        person = next(iter(found), None)
    else:
        # The first read of the request: the viewer's profile comes with the person.
        person = _person_and_viewer(user, person_id)
    if person is None:
        raise Http404("No such person")
    if person.viewer_on_team:  # type: ignore[attr-defined]
        return PersonAccess(person, Access.TEAM)
    opening = (
        RecordOpening.objects.filter(
            user=user, person=person, opened_at__gte=timezone.now() - OPENING_VALID
        )
        .order_by("-opened_at")
        .first()
    )
    # A shielded record is opened only with break-glass: an ordinary opening made before it
    # was shielded (or of a record merged into a shielded one) no longer counts.
    if opening is not None and (opening.break_glass or not person.shielded):
        return PersonAccess(person, Access.OPENED, break_glass=opening.break_glass)
    if _created_recently(user, person):
        return PersonAccess(person, Access.CREATED)
    if person.shielded:
        if _found_by_search(user, person, break_glass=True):
            return PersonAccess(person, Access.NEEDS_REASON, break_glass=True)
        raise Http404("No such person")
    if _found_by_search(user, person, break_glass=False):
        return PersonAccess(person, Access.NEEDS_REASON)
    raise Http404("No such person")


def person_viewable(user: User, person_id: int) -> PersonAccess:
    """Like person_access, but only for someone who may see the network now."""
    access = person_access(user, person_id)
    if not access.can_see_network:
        raise PermissionDenied("State a reason before opening this record")
    return access


def person_editable(user: User, person_id: int) -> PersonAccess:
    """Who may change a person's details, record a death or a family relationship: their
    team, and its creator for a while; a shielded person's record only their own team.
    Http404 as person_access."""
    access = person_access(user, person_id)
    if not access.can_see_network:
        raise PermissionDenied("State a reason before opening this record")
    if not access.may_edit:
        if access.person.shielded:
            raise PermissionDenied("Only the person's own team can change a shielded record")
        raise PermissionDenied(
            "Only the person's team can change their record: record your involvement first"
        )
    return access


def person_read(user: User, person_id: int) -> PersonAccess:
    """The person's own record (not their network) for someone who may see it, audited as a
    view of the record."""
    access = person_viewable(user, person_id)
    audit_record(
        actor=user,
        action="person_viewed",
        person_id=person_id,
        detail={"access": access.access.value, "break_glass": access.break_glass},
    )
    return access


# --- The network picture ----------------------------------------------------------------


@dataclass(frozen=True)
class TeamMember:
    involvement_id: int | None
    practitioner_name: str
    job_title: str
    role: str
    organisation: str
    agency_type: str
    agency_label: str
    phone: str
    email: str
    start_date: date | None
    end_date: date | None
    end_reason: str
    last_contact_date: date | None
    last_confirmed_at: object
    lead_professional: bool
    child_protection: bool
    is_me: bool
    # A sensitive involvement seen from outside its service: every other field is blank,
    # and the service is known only by `contact_reference` (see `contact_reference`).
    masked: bool = False
    contact_reference: str = ""

    @property
    def last_contact_days(self) -> int | None:
        if self.last_contact_date is None:
            return None
        return (timezone.localdate() - self.last_contact_date).days


@dataclass
class Network:
    person: Person
    current: list[TeamMember]
    history: list[TeamMember]
    family: list[tuple[FamilyRelationship, Person, list[TeamMember]]] = field(default_factory=list)

    def current_by_agency(self) -> list[tuple[str, list[TeamMember]]]:
        groups: dict[str, list[TeamMember]] = defaultdict(list)
        for member in self.current:
            groups["A sensitive service" if member.masked else member.agency_label].append(member)
        return sorted(groups.items())

    @property
    def lead(self) -> TeamMember | None:
        return next((m for m in self.current if m.lead_professional), None)


AGENCY_LABELS = dict(Organisation.AgencyType.choices)


# The whole network in one plain statement: the person's involvements (current and past),
# their current family relationships, each relative's current involvements, and for a
# shielded relative whether the viewer is on their team. It is read on every view of a
# record, so it is written once here rather than built by the ORM (five queries, model
# instances for every row); tests/bench/bench_network.py measures it against the floor.
NETWORK_SQL = """
WITH relations AS (
    SELECT r.id, r.person_id, r.relative_id, r.kind, r.start_date, r.end_date,
           CASE WHEN r.person_id = %(pid)s THEN r.relative_id ELSE r.person_id END AS subject_id
    FROM core_familyrelationship r
    WHERE (r.person_id = %(pid)s OR r.relative_id = %(pid)s) AND r.end_date IS NULL
), subjects AS (
    SELECT %(pid)s::bigint AS subject_id, NULL::bigint AS relation_id
    UNION ALL
    SELECT subject_id, id FROM relations
)
SELECT s.subject_id, s.relation_id, rl.person_id, rl.relative_id, rl.kind, rl.start_date,
       p.given_name, p.family_name, p.date_of_birth, p.shielded,
       p.shielded AND s.relation_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM core_involvement vi
           JOIN core_practitioner vp ON vp.id = vi.practitioner_id
           WHERE vi.person_id = s.subject_id AND vp.user_id = %(viewer)s AND vi.end_date IS NULL
       ),
       i.id, i.organisation_id, i.start_date, i.end_date, i.end_reason, i.last_contact_date,
       i.last_confirmed_at, i.sensitive, i.lead_professional, ro.name, ro.child_protection,
       o.name, o.agency_type, o.phone, pr.job_title, pr.work_phone, pr.secure_email,
       pr.user_id, u.full_name, u.email
FROM subjects s
JOIN core_person p ON p.id = s.subject_id AND p.archived_at IS NULL AND p.merged_into_id IS NULL
LEFT JOIN relations rl ON rl.id = s.relation_id
LEFT JOIN core_involvement i
       ON i.person_id = s.subject_id AND (s.relation_id IS NULL OR i.end_date IS NULL)
LEFT JOIN core_involvementrole ro ON ro.id = i.role_id
LEFT JOIN core_organisation o ON o.id = i.organisation_id
LEFT JOIN core_practitioner pr ON pr.id = i.practitioner_id
LEFT JOIN accounts_user u ON u.id = pr.user_id
ORDER BY s.relation_id NULLS FIRST,
         CASE WHEN s.relation_id IS NULL THEN i.lead_professional END DESC NULLS LAST,
         CASE WHEN s.relation_id IS NULL THEN o.agency_type END,
         CASE WHEN s.relation_id IS NULL THEN i.start_date END,
         i.start_date DESC, i.id
"""
END_REASONS = dict(Involvement.EndReason.choices)


def contact_reference(*, user_id: int, person_id: int, organisation_id: int) -> str:
    """How a sensitive service involved with a person is known to one viewer: a keyed hash
    of (person, viewer, service) that means nothing outside the brokered-contact flow. It
    carries no id (a signed id can be read by anyone holding the link), differs from person
    to person and from viewer to viewer (so two links cannot be compared to tell that the
    same service works with two children), and only `sensitive_service_for_contact` turns
    it back into the service, for the same viewer and person, while it is still involved."""
    return salted_hmac(
        "patchwork.contact-reference",
        f"{person_id}:{user_id}:{organisation_id}",
        algorithm="sha256",
    ).hexdigest()[:32]


def _member_from_row(row: tuple[Any, ...], viewer: Practitioner) -> TeamMember:
    (
        involvement_id,
        organisation_id,
        start_date,
        end_date,
        end_reason,
        last_contact_date,
        last_confirmed_at,
        sensitive,
        lead_professional,
        role,
        child_protection,
        organisation,
        agency_type,
        organisation_phone,
        job_title,
        work_phone,
        secure_email,
        user_id,
        full_name,
        email,
    ) = row[11:]
    if sensitive and organisation_id != viewer.organisation_id:
        return TeamMember(
            involvement_id=None,
            practitioner_name="",
            job_title="",
            role="",
            organisation="",
            agency_type="",
            agency_label="",
            phone="",
            email="",
            start_date=None,
            end_date=end_date,
            end_reason="",
            last_contact_date=None,
            last_confirmed_at=None,
            lead_professional=False,
            child_protection=False,
            is_me=False,
            masked=True,
            contact_reference=contact_reference(
                user_id=viewer.user_id, person_id=row[0], organisation_id=organisation_id
            ),
        )
    return TeamMember(
        involvement_id=involvement_id,
        practitioner_name=full_name,
        job_title=job_title,
        role=role,
        organisation=organisation,
        agency_type=agency_type,
        agency_label=AGENCY_LABELS.get(agency_type, ""),
        phone=work_phone or organisation_phone,
        email=secure_email or email,
        start_date=start_date,
        end_date=end_date,
        end_reason=END_REASONS.get(end_reason, "") if end_reason else "",
        last_contact_date=last_contact_date,
        last_confirmed_at=last_confirmed_at,
        lead_professional=lead_professional,
        child_protection=child_protection,
        is_me=user_id == viewer.user_id,
    )


def _one_line_per_sensitive_service(members: list[TeamMember]) -> list[TeamMember]:
    """One masked line per sensitive service, however many of its staff are involved, after
    everyone else. The statement orders the team by lead professional, agency type and start
    date; a masked line left where that order put it would tell which kind of service it
    is, or that it leads. Masked lines are ordered by their reference: by nothing at all."""
    named = [m for m in members if not m.masked]
    masked = {m.contact_reference: m for m in members if m.masked}
    return named + [masked[reference] for reference in sorted(masked)]


def person_network(
    *,
    user: User,
    person_id: int,
    audit: bool = True,
    access: PersonAccess | None = None,
    family_shown: bool = True,
) -> Network:
    """The team around a person: current members by agency, history, and family members with
    their own teams. Only for someone who may see it (team member or reason stated).

    The view is audited (with `audit`) for the person and, when the caller shows the
    family's teams (`family_shown`), for every relative whose team it shows: each of them
    gets a view "through the family" in the same transaction, so their own team sees it.

    `access` is the caller's own PersonAccess for this person from `person_access` in this
    request, saving the check a second time; anything else is worked out again."""
    if access is None or access.person.pk != person_id or not access.can_see_network:
        access = person_viewable(user, person_id)
    viewer = practitioner_of(user)
    assert viewer is not None
    person = access.person
    with prepared_cursor() as cursor:
        cursor.execute(NETWORK_SQL, {"pid": person.pk, "viewer": user.pk})
        rows = cursor.fetchall()
    own: list[TeamMember] = []
    relatives: dict[int, tuple[FamilyRelationship, Person, list[TeamMember]]] = {}
    for row in rows:
        subject_id, relation_id = row[0], row[1]
        has_involvement = row[11] is not None
        if relation_id is None:
            if has_involvement:
                own.append(_member_from_row(row, viewer))
            continue
        shielded, viewer_on_team = row[9], row[10]
        if shielded and not viewer_on_team:
            # A shielded relative is left out entirely unless the viewer is on their team.
            continue
        if subject_id not in relatives:
            relationship = FamilyRelationship(
                id=relation_id, person_id=row[2], relative_id=row[3], kind=row[4], start_date=row[5]
            )
            relative = Person(
                id=subject_id,
                given_name=row[6],
                family_name=row[7],
                date_of_birth=row[8],
                shielded=shielded,
            )
            relatives[subject_id] = (relationship, relative, [])
        elif relatives[subject_id][0].pk != relation_id:
            continue  # a second relationship to the same relative: shown once
        if has_involvement:
            relatives[subject_id][2].append(_member_from_row(row, viewer))
    current = _one_line_per_sensitive_service([m for m in own if m.end_date is None])
    history = [
        m
        for m in _one_line_per_sensitive_service([m for m in own if m.end_date is not None])
        if not m.masked
    ]
    family = [
        (relationship, relative, _one_line_per_sensitive_service(members))
        for relationship, relative, members in relatives.values()
    ]
    if audit:
        detail = {"access": access.access.value, "break_glass": access.break_glass}
        views: list[tuple[str, int | None, dict[str, Any]]] = [("person_viewed", person.pk, detail)]
        if family_shown:
            views += [
                (VIEWED_THROUGH_FAMILY, relative.pk, {"through_person_id": person.pk, **detail})
                for _, relative, _ in family
            ]
        audit_record_many(actor=user, events=views)
    return Network(person=person, current=current, history=history, family=family)


def relationship_label(relationship: FamilyRelationship, person: Person) -> str:
    """How the relative stands to `person`, in words: 'Parent', 'Child', 'Sibling'…"""
    if relationship.person_id == person.pk:
        return relationship.get_kind_display()
    inverse = {
        FamilyRelationship.Kind.PARENT: "Child",
        FamilyRelationship.Kind.CARER: "Cared-for person",
    }
    return inverse.get(relationship.kind, relationship.get_kind_display())  # type: ignore[call-overload]


def my_involvements(user: User) -> QuerySet[Involvement]:
    return (
        Involvement.objects.filter(practitioner__user=user)
        .select_related("person", "role", "organisation")
        .order_by("end_date", "person__family_name")
    )


def involvement_for_actor(user: User, involvement_id: int) -> Involvement:
    """An involvement the user may change (their own, or their staff's), or 404."""
    involvement = (
        Involvement.objects.select_related("practitioner__user", "person", "role", "organisation")
        .filter(pk=involvement_id)
        .first()
    )
    viewer = practitioner_of(user)
    if involvement is None or viewer is None:
        raise Http404("No such involvement")
    if involvement.practitioner.user_id == user.pk:
        return involvement
    if user.role == User.Role.MANAGER and involvement.organisation_id == viewer.organisation_id:
        return involvement
    raise Http404("No such involvement")


def notifications_for(user: User) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient=user).select_related("person")


# --- Reads for the pages ------------------------------------------------------------------


def notifications_unread_count(user: User) -> int:
    if not user.is_authenticated:
        return 0
    with prepared_cursor() as cursor:  # on every page: a plain statement
        cursor.execute(
            "SELECT count(*) FROM core_notification WHERE recipient_id = %s AND read_at IS NULL",
            [user.pk],
        )
        return int(cursor.fetchone()[0])


def roles_active() -> QuerySet[InvolvementRole]:
    return InvolvementRole.objects.filter(active=True).order_by("name")


def roles_list() -> QuerySet[InvolvementRole]:
    return InvolvementRole.objects.order_by("name")


def role_for_admin(role_id: int) -> InvolvementRole:
    """The role with this id in the current council, or 404."""
    role = InvolvementRole.objects.filter(pk=role_id).first()
    if role is None:
        raise Http404("No role with that id here")
    return role


def organisations_open() -> QuerySet[Organisation]:
    """Organisations that have not closed: those offered to choose."""
    return Organisation.objects.filter(closed_on__isnull=True).order_by("name")


def practitioners_actor_may_act_for(user: User) -> list[Practitioner]:
    """Whose involvement `user` may record: their own, and a manager's organisation's staff
    (the same rule `core.services` applies when the involvement is added)."""
    own = practitioner_of(user)
    if own is None:
        return []
    if user.role != User.Role.MANAGER:
        return [own]
    staff = (
        Practitioner.objects.filter(organisation=own.organisation, user__is_active=True)
        .exclude(pk=own.pk)
        .select_related("user", "organisation")
    )
    return [own, *staff]


def staff_involvements(user: User) -> QuerySet[Involvement]:
    """A manager's staff's current involvements (not their own); nothing for anyone else."""
    own = practitioner_of(user)
    if own is None or user.role != User.Role.MANAGER:
        return Involvement.objects.none()
    return (
        Involvement.objects.filter(organisation=own.organisation, end_date__isnull=True)
        .exclude(practitioner=own)
        .select_related("person", "role", "practitioner__user")
        .order_by("practitioner__user__full_name", "person__family_name")
    )


def sensitive_services_for_contact(user: User, person: Person) -> list[tuple[str, Organisation]]:
    """The sensitive services currently involved with `person` that `user` reaches only by a
    brokered request (not their own), each with its `contact_reference` for this user, in
    the order of those references: an order that says nothing about the services."""
    own = practitioner_of(user)
    involved = Involvement.objects.filter(person=person, end_date__isnull=True, sensitive=True)
    if own is not None:
        involved = involved.exclude(organisation_id=own.organisation_id)
    ids = set(involved.values_list("organisation_id", flat=True))
    services = [
        (contact_reference(user_id=user.pk, person_id=person.pk, organisation_id=o.pk), o)
        for o in Organisation.objects.filter(pk__in=ids)
    ]
    return sorted(services, key=lambda pair: pair[0])


def sensitive_service_for_contact(user: User, person_id: int, reference: str) -> Organisation:
    """The sensitive service a contact reference stands for: one currently involved with a
    person the user may see, through a sensitive involvement; 404 for anything else (a
    reference made for another person or viewer, or for a service no longer involved)."""
    access = person_viewable(user, person_id)
    for candidate, organisation in sensitive_services_for_contact(user, access.person):
        if constant_time_compare(candidate, reference):
            return organisation
    raise Http404("No such service")


def contact_requests_for_service(user: User) -> QuerySet[ContactRequest]:
    """Requests to the user's own service, waiting ones first."""
    own = practitioner_of(user)
    if own is None:
        return ContactRequest.objects.none()
    return (
        ContactRequest.objects.filter(organisation=own.organisation)
        .select_related("person", "requested_by", "decided_by")
        .order_by("-status", "-created_at")  # descending: "pending" before the answered ones
    )


def contact_request_for_decider(user: User, request_id: int) -> ContactRequest:
    """A request to the user's own service, or 404."""
    request = contact_requests_for_service(user).filter(pk=request_id).first()
    if request is None:
        raise Http404("No such request")
    return request


@dataclass(frozen=True)
class SentContactRequest:
    """A request as its sender sees it: the service's reply, and who answered with their
    contact details only once the service accepted (a refusal names nobody, and the
    service's name is never shown)."""

    pk: int
    person: Person
    created_at: datetime
    status: str
    status_label: str
    decided_at: datetime | None
    reply: str
    answered_by: str
    contact: str


# The user's own requests on every view of a record (usually none): one plain statement
# with the person and, for an accepted one, who answered and how to reach them.
CONTACT_REQUESTS_SENT_SQL = """
SELECT cr.*, p.id AS person__id, p.given_name AS person__given_name,
       p.family_name AS person__family_name,
       u.full_name AS decider_name, u.email AS decider_email, o.name AS decider_organisation,
       pr.work_phone AS decider_phone, pr.secure_email AS decider_secure_email
FROM core_contactrequest cr
JOIN core_person p ON p.id = cr.person_id
LEFT JOIN accounts_user u ON u.id = cr.decided_by_id
LEFT JOIN core_practitioner pr ON pr.user_id = u.id
LEFT JOIN core_organisation o ON o.id = pr.organisation_id
WHERE cr.requested_by_id = %(user)s {person}
ORDER BY cr.created_at DESC
LIMIT %(limit)s
"""


def contact_requests_sent(
    user: User, *, person_id: int | None = None, limit: int = 200
) -> list[SentContactRequest]:
    """The user's own requests (about one person, if given), newest first. (A merge moves a
    request to the kept record, so one person's are found by their id alone.)"""
    sql = CONTACT_REQUESTS_SENT_SQL.format(
        person="" if person_id is None else "AND cr.person_id = %(person)s"
    )
    found = models_from_sql(
        ContactRequest,
        sql,
        {"user": user.pk, "person": person_id, "limit": limit},
        related=["person"],
    )
    sent = []
    for request in found:
        answered_by = contact = ""
        row: Any = request  # the decider's columns are attributes of the instance
        if request.status == ContactRequest.Status.ACCEPTED and request.decided_by_id is not None:
            answered_by = row.decider_name or row.decider_email
            if row.decider_organisation is not None:
                answered_by += f", {row.decider_organisation}"
                contact = row.decider_phone or row.decider_secure_email
            contact = contact or row.decider_email
        sent.append(
            SentContactRequest(
                pk=request.pk,
                person=request.person,
                created_at=request.created_at,
                status=request.status,
                status_label=request.get_status_display(),
                decided_at=request.decided_at,
                reply=request.response,
                answered_by=answered_by,
                contact=contact,
            )
        )
    return sent


@dataclass(frozen=True)
class Viewing:
    at: object
    name: str
    organisation: str
    what: str
    reason: str


# A relative's page showed this person's team (decision 0022).
VIEWED_THROUGH_FAMILY = "person_viewed_through_family"
VIEWING_WORDS = {
    "person_viewed": "Viewed the record",
    VIEWED_THROUGH_FAMILY: "Viewed through the family",
    "record_opened": "Opened the record, stating a reason",
    "record_break_glass": "Break-glass opening (will be reviewed)",
}


# The latest few first (backwards along the audit_person_latest index), then their names.
VIEWINGS_SQL = """
SELECT e.at, e.actor_email, e.action, e.detail ->> 'reason', u.full_name, o.name,
       o.id, o.sensitive_service, (e.detail ->> 'through_person_id')::bigint,
       EXISTS (
           SELECT 1 FROM core_involvement si
           WHERE si.person_id = ANY(%(ids)s) AND si.sensitive AND si.practitioner_id = pr.id
       )
FROM (
    SELECT id, at, actor_id, actor_email, action, detail FROM core_auditevent
    WHERE person_id = %(pid)s AND action = ANY(%(actions)s)
    ORDER BY id DESC LIMIT %(limit)s
) e
LEFT JOIN core_practitioner pr ON pr.user_id = e.actor_id
LEFT JOIN accounts_user u ON u.id = pr.user_id
LEFT JOIN core_organisation o ON o.id = pr.organisation_id
ORDER BY e.id DESC
"""


def person_viewings(
    *,
    user: User,
    person_id: int,
    limit: int = 50,
    access: PersonAccess | None = None,
    audit: bool = False,
) -> list[Viewing]:
    """The latest views of a record, with names and organisations: for the team only.
    `audit` records the listing itself (the page of them; the person page's own view is
    already recorded)."""
    if access is None or access.person.pk != person_id:
        access = person_access(user, person_id)
    if access.access != Access.TEAM:
        raise PermissionDenied("Only the person's team sees who has viewed the record")
    if audit:
        audit_record(actor=user, action="record_views_listed", person_id=person_id)
    # Views of records merged into this one are its history too (decision 0010). Whether
    # any were is read with the access (almost never): the walk runs only when some were.
    merged_in = getattr(access.person, "records_merged_in", True)
    ids = person_ids_merged_into(person_id) if merged_in else [person_id]
    params = {"pid": person_id, "ids": ids, "actions": list(VIEWING_WORDS), "limit": limit}
    with prepared_cursor() as cursor:
        if len(ids) == 1:
            cursor.execute(VIEWINGS_SQL, params)
        else:
            sql = VIEWINGS_SQL.replace("person_id = %(pid)s", "person_id = ANY(%(ids)s)")
            cursor.execute(sql, params)
        rows = cursor.fetchall()
    reasons = dict(RecordOpening.Reason.choices)
    # A view by someone whose part in this person's life is sensitive would name them (and
    # their service) to the team: outside their own service it reads "a sensitive service".
    own = practitioner_of(user)
    own_organisation = own.organisation_id if own is not None else None
    through_names = _relatives_named_to(
        user, person_ids=ids, relative_ids={row[8] for row in rows if row[8] is not None}
    )
    viewings = []
    for row in rows:
        at, actor_email, action, reason, full_name, organisation = row[:6]
        organisation_id, sensitive_service, through_id, sensitive_involvement = row[6:]
        hidden = (sensitive_service or sensitive_involvement) and (
            organisation_id is None or organisation_id != own_organisation
        )
        what = VIEWING_WORDS.get(action, action)
        # Naming the child would tie a sensitive service to them: a hidden viewer's view
        # through the family names nobody.
        if through_id in through_names and not hidden:
            what = f"Viewed through {through_names[through_id]}’s family"
        viewings.append(
            Viewing(
                at=at,
                name=SENSITIVE_VIEWER if hidden else full_name or actor_email,
                organisation="" if hidden else organisation or "",
                what=what,
                reason=reasons.get(reason or "", ""),
            )
        )
    return viewings


SENSITIVE_VIEWER = "Someone from a sensitive service"


def _relatives_named_to(
    user: User, *, person_ids: list[int], relative_ids: set[int]
) -> dict[int, str]:
    """Of `relative_ids`, those `user` sees by name in this person's family on the person
    page (a current relationship, a record not archived or merged, and, when shielded, only
    to their own team), with their names. A view through anyone else's family is shown
    without naming them: the list must not tell the reader of a relative they may not see."""
    if not relative_ids:
        return {}
    related = set(
        FamilyRelationship.objects.filter(
            person_id__in=person_ids, relative_id__in=relative_ids, end_date__isnull=True
        ).values_list("relative_id", flat=True)
    ) | set(
        FamilyRelationship.objects.filter(
            relative_id__in=person_ids, person_id__in=relative_ids, end_date__isnull=True
        ).values_list("person_id", flat=True)
    )
    on_team = team_person_ids(user, list(related))
    return {
        relative.pk: relative.full_name
        for relative in Person.objects.filter(
            pk__in=related, archived_at__isnull=True, merged_into__isnull=True
        )
        if not relative.shielded or relative.pk in on_team
    }


def person_ids_merged_into(person_id: int) -> list[int]:
    """The record's own id and every id merged into it (through standing merges, at any
    depth): the ids its audit history is written under."""
    with prepared_cursor() as cursor:
        cursor.execute(MERGED_INTO_SQL, {"pid": person_id})
        return [person_id] + [row[0] for row in cursor.fetchall()]


# Read on every view of a record by its team (almost always no rows): one plain statement.
# UNION (not UNION ALL) ends the walk even if the merges ever made a circle.
MERGED_INTO_SQL = """
WITH RECURSIVE merged(id) AS (
    SELECT id FROM core_person WHERE merged_into_id = %(pid)s
    UNION
    SELECT p.id FROM core_person p JOIN merged m ON p.merged_into_id = m.id
)
SELECT id FROM merged WHERE id <> %(pid)s ORDER BY id
"""


def audit_events_count() -> int:
    return AuditEvent.objects.count()


def import_runs_recent(limit: int = 20) -> list[ImportRun]:
    """The council's latest imports from source systems, for its administrators."""
    return list(ImportRun.objects.select_related("source_system", "requested_by")[:limit])


def source_system_get(source_id: int) -> SourceSystem:
    """One of the council's source systems, or 404."""
    source = SourceSystem.objects.filter(pk=source_id).first()
    if source is None:
        raise Http404("No such system")
    return source


def import_run_get(run_id: int, *, source_system_id: int | None = None) -> ImportRun:
    """One import, or 404; with `source_system_id`, only that system's own (the API)."""
    runs = ImportRun.objects.select_related("source_system")
    if source_system_id is not None:
        runs = runs.filter(source_system_id=source_system_id)
    run = runs.filter(pk=run_id).first()
    if run is None:
        raise Http404("No such import")
    return run
