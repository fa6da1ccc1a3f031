"""Two records of one person made one, and made two again (decision 0010).

`person_merge` moves everything that points at the absorbed record to the kept one —
involvements, family links, names, and the tables apps register in
`core.extensions.PERSON_MERGE_CARRIED` — and writes down in a `PersonMerge` row exactly
which rows moved and which values changed, so `person_merge_reverse` puts them back. The
audit log is never edited: events keep the absorbed record's id, and whoever reads a
person's history reads the ids merged into it (`core.selectors.person_ids_merged_into`).

Only council administrators merge and reverse: it changes records practitioners rely on,
and the administrator is the one who manages, not reads, records."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Field, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from core.audit import audit_record
from core.extensions import PERSON_MERGE_CARRIED
from core.models import (
    FamilyRelationship,
    FeedRecord,
    Involvement,
    Person,
    PersonMerge,
    PersonName,
)
from core.selectors import SearchQuery, people_matching

# Details the kept record takes from the absorbed one where its own are blank.
FILLED_FROM_ABSORBED = ("date_of_birth", "date_of_death", "address", "postcode", "sex")


def _administrator(actor: User) -> None:
    if actor.role != User.Role.COUNCIL_ADMIN:
        raise PermissionDenied("Only a council administrator can merge records")


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _field(name: str) -> Field[Any, Any]:
    field = Person._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def _from_json(field: str, value: Any) -> Any:
    return _field(field).to_python(value)


def _locked(*people: Person) -> list[Person]:
    """The people again, locked in the order of their ids so two merges never deadlock."""
    ids = sorted({p.pk for p in people})
    locked = {p.pk: p for p in Person.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    return [locked[p.pk] for p in people]


def merge_problems(keep: Person, absorb: Person) -> list[str]:
    """Why these two records cannot be merged, in the administrator's words (none: they can)."""
    if keep.pk == absorb.pk:
        return ["These are the same record: choose two different records"]
    problems = []
    for person in (keep, absorb):
        if person.merged_into_id is not None:
            problems.append(f"{person} (record {person.pk}) has already been merged into another")
        if person.archived_at is not None:
            problems.append(f"{person} (record {person.pk}) has been archived")
    if keep.nhs_number and absorb.nhs_number and keep.nhs_number != absorb.nhs_number:
        problems.append(
            f"The records have different NHS numbers ({keep.nhs_number} and "
            f"{absorb.nhs_number}): they may be two people. Correct the wrong number first."
        )
    return problems


def _leads(person: Person) -> QuerySet[Involvement]:
    return Involvement.objects.filter(person=person, end_date__isnull=True, lead_professional=True)


def merge_preview(*, actor: User, keep: Person, absorb: Person) -> dict[str, Any]:
    """What a merge would do, for the check-your-answers page. The page shows both records'
    details to an administrator, so it is audited as a comparison of the two."""
    _administrator(actor)
    audit_record(
        actor=actor, action="merge_compared", person_id=keep.pk, detail={"other_id": absorb.pk}
    )
    return {
        "problems": merge_problems(keep, absorb),
        "shielded": keep.shielded or absorb.shielded,
        "newly_shielded": keep.shielded != absorb.shielded,
        "involvements": Involvement.objects.filter(person=absorb).count(),
        "lead_dropped": _leads(keep).exists() and _leads(absorb).exists(),
        "filled": [
            str(_field(f).verbose_name)
            for f in FILLED_FROM_ABSORBED
            if _blank(keep, f) and not _blank(absorb, f)
        ],
    }


def _blank(person: Person, field: str) -> bool:
    value = getattr(person, field)
    return value in (None, "") or (field == "sex" and value == Person.Sex.UNKNOWN)


@transaction.atomic
def person_merge(*, actor: User, keep: Person, absorb: Person) -> PersonMerge:
    """Merge `absorb` into `keep` (administrators only). Refused, changing nothing, for the
    same record, a record already merged or archived, or two different NHS numbers.

    - Involvements move; if both records have a lead professional, the kept record's stays
      lead and the other becomes an ordinary member of the team.
    - Family links move, except a link between the two records (it would join the person to
      themselves) or one the kept record already has: those stay on the absorbed record.
    - Names the kept record lacks move (the absorbed record's current name as "also known
      as"); local identifiers are added (one the kept record holds under the same label with
      another value is kept as "<label> (record <id>)"); blank details are filled in; the
      NHS number moves when the kept record has none.
    - The result is shielded if either record was.
    - The absorbed record is marked merged: gone from search, its page leads to the kept one."""
    _administrator(actor)
    keep, absorb = _locked(keep, absorb)
    problems = merge_problems(keep, absorb)
    if problems:
        raise ValidationError(problems)
    moved: dict[str, list[int]] = {}
    changed: dict[str, Any] = {"keep": {}, "absorbed": {}, "names": {}, "lead_cleared": []}

    keep_has_lead = _leads(keep).exists()
    for involvement in Involvement.objects.filter(person=absorb).order_by("pk"):
        involvement.person = keep
        fields = ["person"]
        if keep_has_lead and involvement.lead_professional and involvement.end_date is None:
            involvement.lead_professional = False
            fields.append("lead_professional")
            changed["lead_cleared"].append(involvement.pk)
        involvement.save(update_fields=fields)  # peers that matched the person hear of it
        moved.setdefault("core.Involvement.person", []).append(involvement.pk)

    known = set(PersonName.objects.filter(person=keep).values_list("given_key", "family_key"))
    for name in PersonName.objects.filter(person=absorb).order_by("pk"):
        if (name.given_key, name.family_key) in known:
            continue  # the kept record already has this name: no second copy
        known.add((name.given_key, name.family_key))
        if name.kind == PersonName.Kind.CURRENT:
            changed["names"][str(name.pk)] = name.kind
            name.kind = PersonName.Kind.ALIAS
        name.person = keep
        name.save()  # refreshes the kept record's match keys
        moved.setdefault("core.PersonName.person", []).append(name.pk)

    for link in FamilyRelationship.objects.filter(person=absorb).union(
        FamilyRelationship.objects.filter(relative=absorb)
    ):
        side = "person" if link.person_id == absorb.pk else "relative"
        person_id = keep.pk if side == "person" else link.person_id
        relative_id = keep.pk if side == "relative" else link.relative_id
        if person_id == relative_id:
            continue
        if (
            link.end_date is None
            and FamilyRelationship.objects.filter(
                person_id=person_id, relative_id=relative_id, kind=link.kind, end_date__isnull=True
            ).exists()
        ):
            continue
        FamilyRelationship.objects.filter(pk=link.pk).update(**{side: keep})
        moved.setdefault(f"core.FamilyRelationship.{side}", []).append(link.pk)

    for label, field in PERSON_MERGE_CARRIED:
        model = apps.get_model(label)
        rows = model.objects.filter(**{field: absorb})
        ids = sorted(rows.values_list("pk", flat=True))
        if ids:
            model.objects.filter(pk__in=ids).update(**{field: keep})
            moved[f"{label}.{field}"] = ids

    # A source system's id for the absorbed record now stands for the kept one: the next
    # import updates the kept record instead of making the duplicate again.
    feed_keys = sorted(
        FeedRecord.objects.filter(kind=FeedRecord.Kind.PERSON, local_id=absorb.pk).values_list(
            "pk", flat=True
        )
    )
    if feed_keys:
        FeedRecord.objects.filter(pk__in=feed_keys).update(local_id=keep.pk)
        moved["core.FeedRecord.local_id"] = feed_keys

    wanted: dict[str, Any] = {}
    for field in FILLED_FROM_ABSORBED:
        if _blank(keep, field) and not _blank(absorb, field):
            wanted[field] = getattr(absorb, field)
    if absorb.shielded and not keep.shielded:
        wanted["shielded"] = True
    identifiers = dict(keep.local_identifiers)
    for label, value in absorb.local_identifiers.items():
        if label not in identifiers:
            identifiers[label] = value
        elif identifiers[label] != value:
            identifiers[f"{label} (record {absorb.pk})"] = value
    if identifiers != keep.local_identifiers:
        wanted["local_identifiers"] = identifiers
    if absorb.nhs_number and not keep.nhs_number:
        wanted["nhs_number"] = absorb.nhs_number
        changed["absorbed"]["nhs_number"] = absorb.nhs_number
        absorb.nhs_number = None  # one record holds a number: free it first
    for field, value in wanted.items():
        changed["keep"][field] = {
            "before": _json(getattr(keep, field)),
            "after": _json(value),
        }
        setattr(keep, field, value)
    absorb.merged_into = keep
    absorb.save()  # its match keys go: a merged-away record is never matched
    keep.save()  # the kept record's match keys now cover both records' identifiers

    merge = PersonMerge.objects.create(
        keep=keep, absorbed=absorb, merged_by=actor, moved=moved, changed=changed
    )
    counts = {key: len(ids) for key, ids in moved.items()}
    audit_record(
        actor=actor,
        action="person_merged",
        person_id=keep.pk,
        detail={"merge_id": merge.pk, "absorbed_id": absorb.pk, "moved": counts},
    )
    audit_record(
        actor=actor,
        action="person_merged_away",
        person_id=absorb.pk,
        detail={"merge_id": merge.pk, "keep_id": keep.pk},
    )
    return merge


@transaction.atomic
def person_merge_reverse(*, actor: User, merge: PersonMerge) -> PersonMerge:
    """Put back what a merge moved and changed (administrators only). Rows added to the kept
    record since stay with it; a detail changed on it since is left as it is now. Refused
    if the merge is already reversed, or the kept record has since been merged itself."""
    _administrator(actor)
    merge = PersonMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.is_reversed:
        raise ValidationError("This merge has already been reversed")
    keep, absorb = _locked(merge.keep, merge.absorbed)
    if keep.merged_into_id is not None:
        raise ValidationError(
            f"Record {keep.pk} has since been merged into record {keep.merged_into_id}: "
            "reverse that merge first"
        )
    restored_nhs = merge.changed.get("absorbed", {}).get("nhs_number")
    for field, values in merge.changed.get("keep", {}).items():
        if _json(getattr(keep, field)) == values["after"]:
            setattr(keep, field, _from_json(field, values["before"]))
    if restored_nhs and keep.nhs_number == restored_nhs:
        keep.nhs_number = None
    keep.save()  # frees the NHS number before the absorbed record takes it back

    for key, ids in merge.moved.items():
        label, field = key.rsplit(".", 1)
        if label == "core.Involvement":
            for involvement in Involvement.objects.filter(pk__in=ids, person=keep):
                involvement.person = absorb
                involvement.save(update_fields=["person"])
        elif label == "core.PersonName":
            kinds = merge.changed.get("names", {})
            for name in PersonName.objects.filter(pk__in=ids, person=keep):
                name.person = absorb
                name.kind = kinds.get(str(name.pk), name.kind)
                name.save()
        elif label == "core.FeedRecord":
            FeedRecord.objects.filter(pk__in=ids, local_id=keep.pk).update(local_id=absorb.pk)
        else:
            model = apps.get_model(label)
            model.objects.filter(pk__in=ids, **{field: keep}).update(**{field: absorb})

    # A lead professional the merge stood down leads again, unless one of the involvements
    # that went back has become the lead since.
    for involvement in Involvement.objects.filter(
        pk__in=merge.changed.get("lead_cleared", []), person=absorb, end_date__isnull=True
    ):
        if not _leads(absorb).exists():
            involvement.lead_professional = True
            involvement.save(update_fields=["lead_professional"])

    absorb.merged_into = None
    if restored_nhs and not Person.objects.filter(nhs_number=restored_nhs).exists():
        absorb.nhs_number = restored_nhs
    absorb.save()
    keep.save()  # again, now its names have gone back: its match keys lose theirs
    merge.reversed_at = timezone.now()
    merge.reversed_by = actor
    merge.save(update_fields=["reversed_at", "reversed_by"])
    for person_id, other in ((keep.pk, absorb.pk), (absorb.pk, keep.pk)):
        audit_record(
            actor=actor,
            action="person_merge_reversed",
            person_id=person_id,
            detail={"merge_id": merge.pk, "other_id": other},
        )
    return merge


# --- Reads --------------------------------------------------------------------------------


def merges_list() -> QuerySet[PersonMerge]:
    return PersonMerge.objects.select_related("keep", "absorbed", "merged_by", "reversed_by")


def merge_for_admin(merge_id: int) -> PersonMerge:
    """The merge with this id in the current council, or 404."""
    merge = merges_list().filter(pk=merge_id).first()
    if merge is None:
        raise Http404("No merge with that id here")
    return merge


def person_for_admin(person_id: int) -> Person:
    """A record an administrator may merge: any not merged away or archived, or 404."""
    person = Person.objects.filter(
        pk=person_id, merged_into__isnull=True, archived_at__isnull=True
    ).first()
    if person is None:
        raise Http404("No such person")
    return person


def merge_search(*, user: User, query: SearchQuery) -> list[Person]:
    """Records an administrator may choose to merge, found by the search's own rules (an
    identifying query, never a browse), shielded ones included; audited as a search."""
    _administrator(user)
    found = sorted(people_matching(query), key=lambda p: (p.family_name, p.given_name, p.pk))
    audit_record(
        actor=user,
        action="search_for_merge",
        detail={"mode": query.mode(), "result_ids": [p.pk for p in found]},
    )
    return found


def person_merged_into(person_id: int) -> int | None:
    """The record a merged-away record now lives in (following later merges), if any."""
    seen: set[int] = set()
    current = person_id
    while True:
        target = Person.objects.filter(pk=current).values_list("merged_into_id", flat=True).first()
        if target is None or target in seen:
            return None if current == person_id else current
        seen.add(current)
        current = target
