"""Retention: records are kept only as long as the council's policy says, then archived, then
purged. The purge is audited; audit events themselves are never purged.

- A person is archived (`archived_at` set: gone from search and pages) when they have no
  current involvement, no current family link to someone who has one, and their last
  involvement ended more than `person_retention_years` ago (a person who never had an
  involvement counts from when their record was made).
- An ended involvement reaches the end of its retention `involvement_retention_years` after
  it ended. Involvements carry no archived flag, so nothing is hidden or deleted then; they
  go at the purge, with their person or (for a person still kept) on their own.
- The purge, `purge_after_archive_days` later, deletes archived people with everything that
  hangs off them (names, involvements, family links, openings, contact requests,
  notifications) and ended involvements past retention plus the same grace period."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from core.audit import audit_record
from core.models import CouncilPolicy, FamilyRelationship, FeedRecord, Involvement, Person

# The ids of everyone archived or purged go into one audit event per run; past this many the
# event lists the first ones and says how many more there were.
MAX_IDS_IN_EVENT = 50_000


@dataclass(frozen=True)
class RetentionResult:
    """What a run archived or purged (or, on a dry run, would have)."""

    person_ids: list[int]
    involvements: int = 0
    deleted: dict[str, int] = field(default_factory=dict)


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def archive_candidates(*, today: date, policy: CouncilPolicy) -> QuerySet[Person]:
    """People whose retention period is over on `today` and who are not yet archived."""
    cutoff = years_before(today, policy.person_retention_years)
    recent = Involvement.objects.filter(person=OuterRef("pk")).filter(
        Q(end_date__isnull=True) | Q(end_date__gte=cutoff)
    )

    def has_current_involvement(person: str) -> Exists:
        return Exists(
            Involvement.objects.filter(
                person=OuterRef(person), end_date__isnull=True, person__archived_at__isnull=True
            )
        )

    # Correlated EXISTS both ways round (not `IN (subquery)`, which PostgreSQL rescans per
    # person): at county scale this is seconds rather than minutes.
    relative_with_team = FamilyRelationship.objects.filter(
        person=OuterRef("pk"), end_date__isnull=True
    ).filter(has_current_involvement("relative"))
    relative_of_someone_with_team = FamilyRelationship.objects.filter(
        relative=OuterRef("pk"), end_date__isnull=True
    ).filter(has_current_involvement("person"))
    any_involvement = Involvement.objects.filter(person=OuterRef("pk"))
    return (
        Person.objects.filter(archived_at__isnull=True)
        .exclude(Exists(recent))
        .exclude(Exists(relative_with_team))
        .exclude(Exists(relative_of_someone_with_team))
        .filter(Exists(any_involvement) | Q(created_at__lt=_start_of(cutoff)))
    )


def purge_candidates(*, today: date, policy: CouncilPolicy) -> QuerySet[Person]:
    """Archived people whose grace period is over on `today`."""
    cutoff = _start_of(today - timedelta(days=policy.purge_after_archive_days))
    return Person.objects.filter(archived_at__lt=cutoff)


def expired_involvements(*, today: date, policy: CouncilPolicy) -> QuerySet[Involvement]:
    """Ended involvements past their retention period and the grace period after it, of
    people still kept (an archived person's involvements stay whole until their own purge)."""
    cutoff = years_before(today, policy.involvement_retention_years) - timedelta(
        days=policy.purge_after_archive_days
    )
    return Involvement.objects.filter(end_date__lt=cutoff, person__archived_at__isnull=True)


def _ids_for_event(ids: list[int]) -> dict[str, object]:
    detail: dict[str, object] = {"person_ids": ids[:MAX_IDS_IN_EVENT]}
    if len(ids) > MAX_IDS_IN_EVENT:
        detail["more_person_ids_not_listed"] = len(ids) - MAX_IDS_IN_EVENT
    return detail


@transaction.atomic
def retention_archive(*, today: date, dry_run: bool = False) -> RetentionResult:
    """Archive everyone whose retention period is over (see the module's docstring), in the
    current council, following its policy. Audited as one event for the run."""
    policy = CouncilPolicy.current()
    candidates = archive_candidates(today=today, policy=policy)
    ids = sorted(candidates.values_list("pk", flat=True))
    past_retention = Involvement.objects.filter(
        end_date__lt=years_before(today, policy.involvement_retention_years)
    ).count()
    if dry_run or not ids:
        return RetentionResult(person_ids=ids, involvements=past_retention)
    Person.objects.filter(pk__in=ids).update(archived_at=timezone.now())
    audit_record(
        actor=None,
        action="retention_archived",
        detail={
            "today": today.isoformat(),
            "people": len(ids),
            "person_retention_years": policy.person_retention_years,
            **_ids_for_event(ids),
        },
    )
    return RetentionResult(person_ids=ids, involvements=past_retention)


FEED_TABLES: dict[str, str] = {
    FeedRecord.Kind.PERSON: "core_person",
    FeedRecord.Kind.RELATIONSHIP: "core_familyrelationship",
    FeedRecord.Kind.INVOLVEMENT: "core_involvement",
}


def _feed_keys_forget() -> None:
    """Source systems' keys to purged records go with them (decision 0009). A feed that
    sends such a record again creates it afresh, and it is under retention like any other:
    an involvement past its retention period is refused at import."""
    with connection.cursor() as cursor:
        for kind, table in FEED_TABLES.items():
            cursor.execute(
                "DELETE FROM core_feedrecord f WHERE f.kind = %s AND NOT EXISTS "  # noqa: S608
                f"(SELECT 1 FROM {table} r WHERE r.id = f.local_id)",
                [kind],
            )


@transaction.atomic
def retention_purge(*, today: date, dry_run: bool = False) -> RetentionResult:
    """Delete archived people whose grace period is over, with everything recorded about them,
    and ended involvements past retention and grace. One audit event lists what went."""
    policy = CouncilPolicy.current()
    ids = sorted(purge_candidates(today=today, policy=policy).values_list("pk", flat=True))
    involvements = expired_involvements(today=today, policy=policy)
    if dry_run:
        return RetentionResult(person_ids=ids, involvements=involvements.count())
    deleted: dict[str, int] = {}
    _, by_model = involvements.delete()
    expired = by_model.get("core.Involvement", 0)
    for label, count in by_model.items():
        deleted[label] = deleted.get(label, 0) + count
    if ids:
        _, by_model = Person.objects.filter(pk__in=ids).delete()
        for label, count in by_model.items():
            deleted[label] = deleted.get(label, 0) + count
    _feed_keys_forget()
    # Written on every run, even an empty one: the log shows the purge ran and found nothing.
    audit_record(
        actor=None,
        action="retention_purged",
        detail={
            "today": today.isoformat(),
            "people": len(ids),
            "expired_involvements": expired,
            "deleted": deleted,
            "purge_after_archive_days": policy.purge_after_archive_days,
            **_ids_for_event(ids),
        },
    )
    return RetentionResult(person_ids=ids, involvements=expired, deleted=deleted)
