"""People, relationships and involvements from a council's source systems (decision 0009).

One import path serves the upload page, `patchwork import` and the API's scheduled pushes:
`feed_import` reads a file row by row (the CSV template in docs/imports.md, or a FHIR R4
Bundle turned into the same rows by `core.fhir_feeds`), checks each row on its own, and
writes accepted rows in batches with plain SQL (decision 0004): one key lookup per batch,
COPY for new records, one UPDATE per batch for changed ones. Records are keyed by (source
system, kind, source id) in `FeedRecord`, with a digest of what the feed last said, so a
re-import of the same row is "unchanged" without reading the record and writes nothing.

Each row stands for exactly one record and is checked whole before anything is written, so a
rejected row never half-applies. A run writes one audit event, and a per-row report CSV."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import queue
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.http import FileResponse, Http404
from django.utils import timezone

from accounts.digits import ascii_digits
from accounts.models import User
from accounts.spreadsheets import csv_writer
from core.audit import audit_record
from core.fhir_feeds import fhir_rows
from core.identifiers import (
    POSTCODE,
    name_key,
    nhs_number_clean,
    nhs_number_is_valid,
    postcode_display,
    postcode_key,
)
from core.models import (
    CouncilPolicy,
    FamilyRelationship,
    FeedRecord,
    ImportRun,
    Involvement,
    InvolvementRole,
    Organisation,
    PersonName,
    Practitioner,
    SourceSystem,
)
from core.retention import years_before
from core.signals import records_imported

Kind = FeedRecord.Kind
# Looked up for every row: Django's `.values` builds its list afresh on each use.
KINDS = frozenset(Kind.values)
RELATIONSHIP_KINDS = frozenset(FamilyRelationship.Kind.values)

# The CSV template: one file, one record per row, its kind in the first column.
CSV_COLUMNS = (
    "record",
    "source_id",
    "given_name",
    "family_name",
    "date_of_birth",
    "sex",
    "nhs_number",
    "address",
    "postcode",
    "shielded",
    "person_source_id",
    "relative_source_id",
    "relationship",
    "organisation_code",
    "role",
    "practitioner_email",
    "start_date",
    "end_date",
)
REQUIRED_COLUMNS = ("record", "source_id")
BATCH_SIZE = 5000
NAME_MAX = 100
SOURCE_ID_MAX = 100
YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0", ""}
SEX_WORDS = {
    "female": "female",
    "f": "female",
    "male": "male",
    "m": "male",
    "other": "other",
    "unknown": "unknown",
    "not known": "unknown",
    "": "unknown",
}

CREATED, UPDATED, UNCHANGED, REJECTED, ENDED = (
    "created",
    "updated",
    "unchanged",
    "rejected",
    "ended",
)
OUTCOMES = (CREATED, UPDATED, UNCHANGED, REJECTED, ENDED)
REPORT_COLUMNS = ("line", "record", "source_id", "outcome", "reason")


COLUMN = {name: i for i, name in enumerate(CSV_COLUMNS)}
_BLANKS = ("",) * len(CSV_COLUMNS)
ID_SEPARATOR = "\x1f"
# Positions in FeedRow.fields, for the checks every row goes through.
(
    _RECORD,
    _SOURCE_ID,
    _GIVEN,
    _FAMILY,
    _BORN,
    _SEX,
    _NHS,
    _ADDRESS,
    _POSTCODE,
    _SHIELDED,
    _PERSON,
    _RELATIVE,
    _RELATIONSHIP,
    _ORGANISATION,
    _ROLE,
    _EMAIL,
    _START,
    _END,
) = range(len(CSV_COLUMNS))


class FeedRow:
    """One record as the feed gives it, whatever the format: the CSV template's columns, in
    the template's order, as given (blank for a column the file lacks). `problem` is set
    when the format's reader could not make the row at all."""

    __slots__ = ("digest", "facts", "fields", "kind", "line", "problem", "rejection", "source_id")

    def __init__(self, line: int, fields: tuple[str, ...] | list[str], problem: str = "") -> None:
        self.line = line
        self.fields = fields
        self.kind = fields[0].strip().lower()
        self.source_id = fields[1].strip()
        self.problem = problem
        self.digest = ""
        # Set as the row is read ahead (FeedImport._prepare): why it is rejected, or what
        # it says once checked.
        self.rejection = ""
        self.facts: Any = None

    @classmethod
    def from_values(cls, line: int, values: dict[str, str]) -> FeedRow:
        # values.get(column, "") for each column, in C: FHIR gives a million of these.
        fields = tuple(map(values.get, CSV_COLUMNS, _BLANKS))
        return cls(line, fields, values.get("_problem", ""))

    def get(self, column: str) -> str:
        return self.fields[COLUMN[column]].strip()


class Rejected(Exception):
    """A row that cannot be imported, with the reason in plain words."""


@dataclass
class RunSummary:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    rows: int = 0

    def as_dict(self) -> dict[str, int]:
        return {**self.counts, "rows": self.rows}


# --- Reading ------------------------------------------------------------------------------


def _text_lines(binary: IO[bytes]) -> Iterator[str]:
    yield from io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")


def csv_rows(binary: IO[bytes]) -> Iterator[FeedRow]:
    """The template's rows, one at a time. A file without the `record` and `source_id`
    columns is refused whole; columns it lacks otherwise read as blank."""
    reader = csv.reader(_text_lines(binary))
    try:
        header = [name.strip().lower() for name in next(reader, [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValidationError("The file is not UTF-8 text: save it as CSV UTF-8") from exc
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ValidationError(
            f"The file has no {' or '.join(missing)} column: use the template in "
            "docs/imports.md, with its header row"
        )
    # Each template column's position in this file's rows (the last, if a name repeats); a
    # column the file lacks points one past the end, at a blank added to each row.
    width = len(header)
    position = {name: i for i, name in enumerate(header)}
    pick = itemgetter(*[position.get(column, width) for column in CSV_COLUMNS])
    blanks = [""] * (width + 1)
    try:
        for values in reader:
            if not values:
                continue  # a blank line
            if len(values) != width:
                values = (values + blanks)[:width]  # a short row reads blank; extra cells go
            values.append("")
            yield FeedRow(reader.line_num, pick(values))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValidationError(
            f"The file cannot be read after line {reader.line_num}: {exc}"
        ) from exc


# --- Checking one row ---------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _date_value(value: str) -> date | None:
    """The date a feed's cell gives, or None when it is not one (a county's file repeats a
    few thousand dates a million times: each is parsed once)."""
    if len(value) == 10 and value[4] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    return None


def _date(value: str, label: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    parsed = _date_value(value)
    if parsed is None:
        raise Rejected(f"The {label} '{value}' is not a date like 2015-03-14")
    return parsed


def _name(value: str, label: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise Rejected(f"The {label} is missing")
    if len(value) > NAME_MAX:
        raise Rejected(f"The {label} is longer than {NAME_MAX} characters")
    return value


def _yes_no(value: str, label: str) -> bool:
    word = value.lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise Rejected(f"{label} must be yes or no, not '{value}'")


@dataclass(frozen=True)
class PersonFacts:
    given_name: str
    family_name: str
    date_of_birth: date | None
    sex: str
    nhs_number: str | None
    address: str
    postcode: str
    shielded: bool


def person_facts(row: FeedRow, today: date) -> PersonFacts:
    f = row.fields
    given = _name(f[_GIVEN], "first name")
    family = _name(f[_FAMILY], "surname")
    born = _date(f[_BORN], "date of birth")
    if born is not None and born > today:
        raise Rejected("The date of birth is in the future")
    sex = SEX_WORDS.get(f[_SEX].strip().lower())
    if sex is None:
        raise Rejected(f"The sex '{row.get('sex')}' is not female, male, other or not known")
    nhs = nhs_number_clean(f[_NHS]) or None
    if nhs is not None and not nhs_number_is_valid(nhs):
        raise Rejected(
            f"The NHS number '{row.get('nhs_number')}' is not valid: 10 digits, the last a "
            "check digit (check for a mistyped digit)"
        )
    postcode = f[_POSTCODE].strip()
    if postcode and not POSTCODE.match(postcode_key(postcode)):
        raise Rejected(f"The postcode '{postcode}' is not a real postcode, like BN1 1AA")
    return PersonFacts(
        given_name=given,
        family_name=family,
        date_of_birth=born,
        sex=sex,
        nhs_number=nhs,
        address=f[_ADDRESS].strip(),
        postcode=postcode_display(postcode) if postcode else "",
        shielded=_yes_no(f[_SHIELDED].strip(), "Shielded"),
    )


# --- The import ---------------------------------------------------------------------------


@dataclass
class _Reference:
    """A row of a relationship or involvement, checked, waiting for its people's ids."""

    row: FeedRow
    digest: str
    facts: dict[str, Any]


class FeedImport:
    """One run over one file. Memory holds the council's organisations, roles and
    practitioners, one batch of rows, and a 64-bit hash per source id seen (for duplicates
    and, in a full snapshot, for what is still in the source)."""

    def __init__(
        self,
        *,
        run: ImportRun,
        report: IO[str],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.run = run
        self.source_id = run.source_system_id
        self.dry_run = run.dry_run
        self.report = csv_writer(report)
        self.report.writerow(REPORT_COLUMNS)
        self.progress = progress
        self.summary = RunSummary()
        self.pending: list[tuple[int, str, str, str, str]] = []
        self.today = timezone.localdate()
        self.retention_years = CouncilPolicy.current().involvement_retention_years
        self.retention_cutoff = years_before(self.today, self.retention_years)
        self.seen: set[int] = set()
        # People accepted earlier in this file; in a dry run nothing is written, so later
        # rows find them here rather than in FeedRecord.
        self.accepted_people: set[int] = set()
        self.nhs_claimed: dict[int, int] = {}
        # The people this run wrote, by source id: the rows that name them later in the
        # file need no lookup (people it left unchanged are looked up when named).
        self.person_local: dict[str, int] = {}
        # The kinds this source has sent before: for the others (a first import), every row
        # is new, and its key is neither looked up nor can it clash when written.
        self.kinds_known = {
            kind
            for kind in KINDS
            if FeedRecord.objects.filter(source_system_id=self.source_id, kind=kind).exists()
        }
        # Per batch: keys whose record is gone (purged, merged away), rewritten in place.
        self.batch_stale: dict[str, set[str]] = {}
        self.written = self.written_at_analyze = self.created_before = 0
        self.batch_keys: dict[str, dict[str, tuple[int, str]]] = {}
        self.organisations = {
            org.register_code.upper(): org for org in Organisation.objects.exclude(register_code="")
        }
        for org in Organisation.objects.filter(register=""):
            self.organisations.setdefault(org.name.upper(), org)
        self.roles = {role.name.lower(): role for role in InvolvementRole.objects.all()}
        # What each (organisation, role, practitioner email) an involvement row gives comes
        # to: a county's file names a few thousand such triples a million times.
        self.holders: dict[tuple[str, ...], Any] = {}
        self.practitioners = {
            p.user.email.lower(): p for p in Practitioner.objects.select_related("user")
        }

    # Report and counts

    def _outcome(self, row: FeedRow, outcome: str, reason: str = "") -> None:
        self.summary.counts[outcome] += 1
        self.pending.append((row.line, row.kind, row.source_id, outcome, reason))

    def _report_flush(self) -> None:
        # A batch decides people before the rows that name them: the report keeps file order.
        self.pending.sort(key=lambda line: line[0])
        self.report.writerows(self.pending)
        self.pending = []

    # Whole file

    def feed(self, rows: Iterable[FeedRow]) -> RunSummary:
        # Python's cycle collector, left on, would walk every object the process holds
        # (the set of source ids seen among them) each time enough batches have come and
        # gone: at two million rows, a third of an unchanged re-import. An import makes
        # almost no reference cycles, so the collector rests until it ends.
        collecting = gc.isenabled()
        gc.disable()
        # When PostgreSQL answers, the writer waits for the reader to let go of the
        # interpreter, up to the switch interval (5 ms by default) each time: with a dozen
        # statements a batch, a third of an unchanged re-import went on that. The reader
        # is made to let go ten times as often while the two run.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, 0.0005))
        reader = _ReadAhead(rows, self._prepare)
        try:
            for batch in reader:
                self._batch(batch)
        finally:
            reader.stop()
            sys.setswitchinterval(interval)
            if collecting:
                gc.enable()
        if self.run.full_snapshot:
            self._end_missing()
            self._report_flush()
        return self.summary

    def _statistics_refresh(self) -> None:
        """ANALYZE the tables an import fills once they have grown by half since it last
        did: with statistics of an empty table, the planner would read the whole of
        core_person for every batch's key lookup (a first import would be quadratic).
        Autovacuum gets there too, but minutes later."""
        if self.dry_run or self.written < max(BATCH_SIZE * 4, self.written_at_analyze // 2):
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "ANALYZE core_feedrecord, core_person, core_personname, core_involvement, "
                "core_familyrelationship"
            )
        self.written_at_analyze += self.written
        self.written = 0

    def _batch(self, rows: list[FeedRow]) -> None:
        # One transaction per batch (a dry run writes nothing in it). Every statement of a
        # batch finds its rows by a key with an index; with a few thousand keys in an array
        # the planner prices a sequential scan of the whole table lower, and does it for
        # every batch: quadratic over a large file. Discouraged for this transaction only.
        with transaction.atomic():
            with connection.cursor() as cursor:
                # A batch lost in a crash is re-imported by the next run (it is idempotent),
                # so its commit need not wait for the disk either. One statement for both.
                cursor.execute(
                    "SELECT set_config('enable_seqscan', 'off', true), "
                    "set_config('synchronous_commit', 'off', true)"
                )
            self._batch_apply(rows)
        self._report_flush()
        self.summary.rows += len(rows)
        self.written += self.summary.counts[CREATED] - self.created_before
        self.created_before = self.summary.counts[CREATED]
        self._statistics_refresh()
        if self.progress is not None:
            self.progress(self.summary.rows)

    def _first_sight(self, row: FeedRow) -> None:
        kind, source_id = row.kind, row.source_id
        problem = row.problem
        if problem:
            # Still in the source, however malformed: a full snapshot must not end it.
            self.seen.add(hash((kind, source_id)))
            raise Rejected(problem)
        if kind not in KINDS:
            raise Rejected(
                f"The record '{row.fields[0].strip()}' is not person, relationship or involvement"
            )
        if not source_id:
            raise Rejected("The source id is missing")
        if len(source_id) > SOURCE_ID_MAX:
            raise Rejected(f"The source id is longer than {SOURCE_ID_MAX} characters")
        if not source_id.isprintable():
            raise Rejected("The source id has a control or invisible character in it")
        key = hash((kind, source_id))
        if key in self.seen:
            raise Rejected(f"The {kind} source id {source_id} appears more than once in this file")
        self.seen.add(key)
        # What the source says, as it says it: equal to the stored digest, the row is
        # unchanged and is not checked or written again (a nightly re-import is mostly that).
        text = "\x1f".join(row.fields[2:])
        row.digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    def _prepare(self, row: FeedRow) -> None:
        """What can be judged of a row from the row alone, done on the reading thread
        (`_ReadAhead`) while the batch before is written. A row of a kind this source has
        never sent is new for certain, so it is checked whole here too; the others are
        checked only if the source has changed them since last time."""
        try:
            self._first_sight(row)
            if row.kind not in self.kinds_known:
                if row.kind == Kind.PERSON:
                    row.facts = person_facts(row, self.today)
                else:
                    row.facts = self._reference_facts(row)[1]
        except Rejected as exc:
            row.rejection = str(exc)

    def _batch_apply(self, rows: list[FeedRow]) -> None:
        if not self.dry_run:
            # Written people are found in the database from the next batch on: only a dry
            # run, which writes nothing, must remember them for the whole file.
            self.nhs_claimed.clear()
        fresh: list[FeedRow] = []
        for row in rows:
            if row.rejection:
                self._outcome(row, REJECTED, row.rejection)
            else:
                fresh.append(row)
        self.batch_stale = {kind: set() for kind in KINDS}
        by_kind: dict[str, list[FeedRow]] = {kind: [] for kind in KINDS}
        for row in fresh:
            by_kind[row.kind].append(row)
        # For each kind the source has sent before: the rows it changed since (with their
        # records), and those it never sent (or whose record is gone); the rest are unchanged.
        self.batch_keys = {}
        absent: dict[str, set[str]] = {}
        for kind in KINDS:
            if kind in self.kinds_known:
                self.batch_keys[kind], absent[kind] = self._changes(kind, by_kind[kind])
            else:
                self.batch_keys[kind], absent[kind] = {}, set()
        people: list[tuple[FeedRow, PersonFacts]] = []
        others: list[FeedRow] = []
        for row in fresh:
            kind = row.kind
            if (
                kind in self.kinds_known
                and row.source_id not in self.batch_keys[kind]
                and row.source_id not in absent[kind]
            ):
                self._outcome(row, UNCHANGED)
                if kind == Kind.PERSON:
                    key = hash((Kind.PERSON, row.source_id))
                    if self.dry_run:
                        self.accepted_people.add(key)
                    nhs = row.fields[_NHS]
                    if nhs:
                        nhs = nhs_number_clean(nhs)
                        if ascii_digits(nhs):
                            self.nhs_claimed.setdefault(int(nhs), key)
                continue
            try:
                if row.kind == Kind.PERSON:
                    people.append((row, row.facts or person_facts(row, self.today)))
                else:
                    others.append(row)
            except Rejected as exc:
                self._outcome(row, REJECTED, str(exc))
        changed_people = self._people(people)
        refs = self._references(others)
        relationships = [r for r in refs if r.row.kind == Kind.RELATIONSHIP]
        involvements = [r for r in refs if r.row.kind == Kind.INVOLVEMENT]
        self._relationships(relationships)
        involved = self._involvements(involvements)
        changed_people = sorted(set(changed_people) | set(self._unarchive(involvements)))
        if not self.dry_run and (changed_people or involved):
            records_imported.send(
                sender=FeedImport, person_ids=changed_people, involvement_person_ids=involved
            )

    def _unarchive(self, involvements: list[_Reference]) -> list[int]:
        """A person archived by retention whom a source now sends a current involvement for
        is someone being worked with again: back in search, and kept from the purge."""
        current = sorted(
            {r.facts["person_id"] for r in involvements if r.facts["end"] is None} - {None}
        )
        if self.dry_run or not current:
            return []
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE core_person SET archived_at = NULL "
                "WHERE id = ANY(%s) AND archived_at IS NOT NULL RETURNING id",
                [current],
            )
            return [row[0] for row in cursor.fetchall()]

    # Keys

    # Where each kind's records live: a key whose record is gone (purged by retention,
    # merged away) counts as no key, and the row creates the record afresh.
    TABLES: dict[str, str] = {
        Kind.PERSON: "core_person",
        Kind.RELATIONSHIP: "core_familyrelationship",
        Kind.INVOLVEMENT: "core_involvement",
    }

    def _keys(self, kind: str, source_ids: list[str]) -> dict[str, tuple[int, str]]:
        """The records these source ids stand for, with what the feed last said of each; a
        key whose record is gone is left out."""
        if not source_ids:
            return {}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT f.source_id, f.local_id, f.digest FROM core_feedrecord f "  # noqa: S608
                f"JOIN {self.TABLES[kind]} r ON r.id = f.local_id "
                "WHERE f.source_system_id = %s AND f.kind = %s "
                "AND f.source_id = ANY(string_to_array(%s, E'\\x1f'))",
                # One string rather than an array of thousands (each element adapted in
                # Python): a source id never holds a control character (`_first_sight`).
                [self.source_id, kind, ID_SEPARATOR.join(source_ids)],
            )
            return {source_id: (local, digest) for source_id, local, digest in cursor.fetchall()}

    def _changes(
        self, kind: str, rows: list[FeedRow]
    ) -> tuple[dict[str, tuple[int, str]], set[str]]:
        """Of these rows, those whose record the source changed since it last sent it (with
        the record and what the source said then), and those it never sent or whose record
        is gone (noted in `batch_stale`). Every other row is unchanged: PostgreSQL compares
        the digests and sends back nothing for it, so a nightly re-import of an unchanged
        file reads no rows at all."""
        if not rows:
            return {}, set()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT v.s, f.local_id, f.digest, f.id IS NOT NULL AND r.id IS NULL "  # noqa: S608
                "FROM unnest(string_to_array(%s, E'\\x1f'), string_to_array(%s, E'\\x1f')) "
                "AS v(s, d) LEFT JOIN core_feedrecord f ON f.source_system_id = %s "
                "AND f.kind = %s AND f.source_id = v.s "
                f"LEFT JOIN {self.TABLES[kind]} r ON r.id = f.local_id "
                "WHERE f.id IS NULL OR r.id IS NULL OR f.digest <> v.d",
                [
                    ID_SEPARATOR.join([row.source_id for row in rows]),
                    ID_SEPARATOR.join([row.digest for row in rows]),
                    self.source_id,
                    kind,
                ],
            )
            changed: dict[str, tuple[int, str]] = {}
            absent: set[str] = set()
            stale = self.batch_stale.setdefault(kind, set())
            for source_id, local, digest, gone in cursor.fetchall():
                if local is None or gone:
                    absent.add(source_id)
                    if gone:
                        stale.add(source_id)
                else:
                    changed[source_id] = (local, digest)
            return changed, absent

    def _keys_create(self, kind: str, keyed: list[tuple[str, int, str]]) -> None:
        """Keys for records just created: written with COPY, except those replacing a key
        whose record had gone."""
        stale = self.batch_stale.get(kind) or set()
        again = [k for k in keyed if k[0] in stale]
        if again:
            self._keys_save(kind, again)
            keyed = [k for k in keyed if k[0] not in stale]
        if not keyed:
            return
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY core_feedrecord (source_system_id, kind, source_id, local_id, digest) "
                "FROM STDIN"
            ) as copy,
        ):
            source = self.source_id
            for source_id, local, digest in keyed:
                copy.write_row((source, kind, source_id, local, digest))

    def _keys_save(self, kind: str, keyed: list[tuple[str, int, str]]) -> None:
        if not keyed:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO core_feedrecord (source_system_id, kind, source_id, local_id, digest) "
                "SELECT %s, %s, s, l, d FROM unnest(%s::text[], %s::bigint[], %s::text[]) "
                "AS v(s, l, d) "
                "ON CONFLICT (source_system_id, kind, source_id) "
                "DO UPDATE SET local_id = EXCLUDED.local_id, digest = EXCLUDED.digest",
                [
                    self.source_id,
                    kind,
                    [k[0] for k in keyed],
                    [k[1] for k in keyed],
                    [k[2] for k in keyed],
                ],
            )

    def _new_ids(self, table: str, count: int) -> list[int]:
        if count == 0:
            return []
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return [row[0] for row in cursor.fetchall()]

    # People

    def _people(self, people: list[tuple[FeedRow, PersonFacts]]) -> list[int]:
        """Create, update or leave each person; returns the ids of people written."""
        keys = self.batch_keys[Kind.PERSON]
        nhs_numbers = [f.nhs_number for _, f in people if f.nhs_number]
        # Who holds each NHS number now, and which of this source's ids stands for them.
        holders: dict[str, tuple[int, str | None]] = {}
        if nhs_numbers:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT p.nhs_number, p.id, f.source_id FROM core_person p "
                    "LEFT JOIN core_feedrecord f ON f.kind = 'person' AND f.local_id = p.id "
                    "AND f.source_system_id = %s WHERE p.nhs_number = ANY(%s)",
                    [self.source_id, nhs_numbers],
                )
                holders = {nhs: (pk, source_id) for nhs, pk, source_id in cursor.fetchall()}
        creates: list[tuple[FeedRow, PersonFacts, str]] = []
        updates: list[tuple[FeedRow, PersonFacts, str, int]] = []
        for row, facts in people:
            digest = row.digest
            known = keys.get(row.source_id)
            key = hash((Kind.PERSON, row.source_id))
            try:
                if facts.nhs_number:
                    claimed = self.nhs_claimed.get(int(facts.nhs_number))
                    if claimed is not None and claimed != key:
                        raise Rejected(
                            f"The NHS number {facts.nhs_number} is given to another person "
                            "earlier in this file"
                        )
                    holder = holders.get(facts.nhs_number)
                    if known and holder and holder[0] != known[0]:
                        raise Rejected(
                            f"The NHS number {facts.nhs_number} belongs to another record in "
                            "Patchwork"
                        )
                    if not known and holder and holder[1] and holder[1] != row.source_id:
                        raise Rejected(
                            f"The NHS number {facts.nhs_number} belongs to the person "
                            f"{holder[1]} from this source system"
                        )
                    self.nhs_claimed[int(facts.nhs_number)] = key
            except Rejected as exc:
                self._outcome(row, REJECTED, str(exc))
                continue
            if self.dry_run:
                self.accepted_people.add(key)
            if known is None:
                holder = holders.get(facts.nhs_number or "")
                if holder is not None:
                    # Already in Patchwork (added by a practitioner or another feed): this
                    # source now speaks for that record too.
                    updates.append((row, facts, digest, holder[0]))
                else:
                    creates.append((row, facts, digest))
            elif known[1] == digest:
                self._outcome(row, UNCHANGED)
            else:
                updates.append((row, facts, digest, known[0]))
        for row, *_ in creates:
            self._outcome(row, CREATED)
        for row, *_ in updates:
            self._outcome(row, UPDATED)
        if self.dry_run:
            return []
        return self._people_insert(creates) + self._people_update(updates)

    def _people_insert(self, creates: list[tuple[FeedRow, PersonFacts, str]]) -> list[int]:
        ids = self._new_ids("core_person", len(creates))
        if not ids:
            return []
        now = timezone.now()
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY core_person (id, given_name, family_name, date_of_birth, sex, nhs_number, "
                "local_identifiers, address, postcode, postcode_key, shielded, created_at) "
                "FROM STDIN"
            ) as copy:
                for pk, (_, f, _) in zip(ids, creates, strict=True):
                    copy.write_row(
                        (
                            pk,
                            f.given_name,
                            f.family_name,
                            f.date_of_birth,
                            f.sex,
                            f.nhs_number,
                            "{}",
                            f.address,
                            f.postcode,
                            postcode_key(f.postcode),
                            f.shielded,
                            now,
                        )
                    )
            with cursor.copy(
                "COPY core_personname (person_id, kind, given_name, family_name, given_key, "
                "family_key) FROM STDIN"
            ) as copy:
                for pk, (_, f, _) in zip(ids, creates, strict=True):
                    copy.write_row(
                        (
                            pk,
                            PersonName.Kind.CURRENT,
                            f.given_name,
                            f.family_name,
                            name_key(f.given_name),
                            name_key(f.family_name),
                        )
                    )
        keyed = [
            (row.source_id, pk, digest) for pk, (row, _, digest) in zip(ids, creates, strict=True)
        ]
        self._keys_create(Kind.PERSON, keyed)
        self.person_local.update((source_id, pk) for source_id, pk, _ in keyed)
        return ids

    def _people_update(self, updates: list[tuple[FeedRow, PersonFacts, str, int]]) -> list[int]:
        if not updates:
            return []
        ids = [u[3] for u in updates]
        facts = [u[1] for u in updates]
        with connection.cursor() as cursor:
            # A feed may shield a person but never unshields one: shielding is a
            # practitioner's safeguarding judgement, undone in Patchwork, not by a feed.
            cursor.execute(
                "UPDATE core_person AS p SET given_name = v.g, family_name = v.f, "
                "date_of_birth = v.b, sex = v.s, nhs_number = v.n, address = v.a, "
                "postcode = v.pc, postcode_key = v.pk, shielded = p.shielded OR v.sh "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::date[], %s::text[], "
                "%s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[]) "
                "AS v(id, g, f, b, s, n, a, pc, pk, sh) WHERE p.id = v.id",
                [
                    ids,
                    [f.given_name for f in facts],
                    [f.family_name for f in facts],
                    [f.date_of_birth for f in facts],
                    [f.sex for f in facts],
                    [f.nhs_number for f in facts],
                    [f.address for f in facts],
                    [f.postcode for f in facts],
                    [postcode_key(f.postcode) for f in facts],
                    [f.shielded for f in facts],
                ],
            )
            # The current name follows; previous names and aliases are the council's own.
            cursor.execute(
                "UPDATE core_personname AS n SET given_name = v.g, family_name = v.f, "
                "given_key = v.gk, family_key = v.fk "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                "AS v(id, g, f, gk, fk) WHERE n.person_id = v.id AND n.kind = 'current'",
                [
                    ids,
                    [f.given_name for f in facts],
                    [f.family_name for f in facts],
                    [name_key(f.given_name) for f in facts],
                    [name_key(f.family_name) for f in facts],
                ],
            )
        self._keys_save(Kind.PERSON, [(u[0].source_id, u[3], u[2]) for u in updates])
        self.person_local.update((u[0].source_id, u[3]) for u in updates)
        return ids

    # Relationships and involvements

    def _reference_facts(self, row: FeedRow) -> tuple[str, dict[str, Any]]:
        f = row.fields
        start = _date(f[_START], "start date")
        end = _date(f[_END], "end date")
        if start is not None and start > self.today:
            raise Rejected("The start date is in the future")
        if start is not None and end is not None and end < start:
            raise Rejected("The end date is before the start date")
        person = f[_PERSON].strip()
        if not person:
            raise Rejected("The person_source_id is missing")
        if row.kind == Kind.RELATIONSHIP:
            relative = f[_RELATIVE].strip()
            if not relative:
                raise Rejected("The relative_source_id is missing")
            if relative == person:
                raise Rejected("A person cannot be their own relative")
            kind = f[_RELATIONSHIP].strip().lower()
            if kind not in RELATIONSHIP_KINDS:
                raise Rejected(
                    f"The relationship '{row.get('relationship')}' is not parent, carer, "
                    "sibling or household"
                )
            facts: dict[str, Any] = {"person": person, "relative": relative, "kind": kind}
            facts |= {"start": start, "end": end}
            return row.digest, facts
        who = (f[_ORGANISATION], f[_ROLE], f[_EMAIL])
        held = self.holders.get(who)
        if held is None:
            if len(self.holders) > 100_000:
                self.holders.clear()  # a file of endless variety: memory stays bounded
            try:
                held = self.holders[who] = self._holder(row)
            except Rejected as exc:
                held = self.holders[who] = str(exc)
        if isinstance(held, str):
            raise Rejected(held)
        organisation, role, practitioner = held
        if start is None:
            raise Rejected("The start date is missing")
        if end is not None and end < self.retention_cutoff:
            raise Rejected(
                f"The involvement ended more than {self.retention_years} years ago, past the "
                "council's retention period: it is not imported"
            )
        if end is None and organisation.closed_on is not None:
            raise Rejected(f"{organisation.name} has closed: a current involvement cannot be there")
        sensitive = organisation.sensitive_service
        if sensitive and role.child_protection:
            raise Rejected(
                f"{organisation.name} is a sensitive service and cannot hold the "
                f"child-protection role {role.name}"
            )
        facts = {
            "person": person,
            "organisation": organisation.pk,
            "role": role.pk,
            "practitioner": practitioner.pk,
            "start": start,
            "end": end,
            "sensitive": sensitive,
        }
        return row.digest, facts

    def _holder(self, row: FeedRow) -> tuple[Organisation, InvolvementRole, Practitioner]:
        """The organisation, role and practitioner an involvement row names, checked."""
        code = row.get("organisation_code")
        organisation = self.organisations.get(code.upper())
        if organisation is None:
            raise Rejected(
                f"No organisation has the code or name '{code}' in Patchwork: import the "
                "register, or add the organisation, first"
            )
        role = self.roles.get(row.get("role").lower())
        if role is None:
            raise Rejected(f"The role '{row.get('role')}' is not one of the council's roles")
        if not role.active:
            raise Rejected(f"The role '{role.name}' is no longer in use")
        practitioner = self.practitioners.get(row.get("practitioner_email").lower())
        if practitioner is None:
            raise Rejected(
                f"No practitioner with the email '{row.get('practitioner_email')}' has a "
                "profile in Patchwork"
            )
        return organisation, role, practitioner

    def _references(self, rows: list[FeedRow]) -> list[_Reference]:
        checked: list[_Reference] = []
        for row in rows:
            try:
                digest, facts = (row.digest, row.facts) if row.facts else self._reference_facts(row)
            except Rejected as exc:
                self._outcome(row, REJECTED, str(exc))
                continue
            checked.append(_Reference(row, digest, facts))
        wanted = {r.facts["person"] for r in checked} | {
            r.facts["relative"] for r in checked if "relative" in r.facts
        }
        people = self.person_local
        elsewhere = sorted(wanted - people.keys())
        if elsewhere:
            # Named here but not sent in this run: imported from this source before.
            people = {
                **{sid: local for sid, (local, _) in self._keys(Kind.PERSON, elsewhere).items()},
                **{sid: people[sid] for sid in wanted & people.keys()},
            }
        resolved: list[_Reference] = []
        for ref in checked:
            try:
                for column in ("person", "relative"):
                    source_id = ref.facts.get(column)
                    if source_id is None:
                        continue
                    if source_id in people:
                        ref.facts[f"{column}_id"] = people[source_id]
                    elif hash((Kind.PERSON, source_id)) in self.accepted_people:
                        ref.facts[f"{column}_id"] = None  # created by this dry run
                    else:
                        raise Rejected(
                            f"The {'relative' if column == 'relative' else 'person'} "
                            f"{source_id} is not in this file (before this row) nor imported "
                            "from this source system before"
                        )
            except Rejected as exc:
                self._outcome(ref.row, REJECTED, str(exc))
                continue
            resolved.append(ref)
        return resolved

    def _relationships(self, refs: list[_Reference]) -> None:
        keys = self.batch_keys[Kind.RELATIONSHIP]
        # A current relationship already recorded (by a practitioner, or another source) is
        # taken over, not duplicated: only one current link of a kind between two people.
        existing: dict[tuple[int, int, str], int] = {}
        person_ids = [
            r.facts["person_id"]
            for r in refs
            if r.facts["person_id"] is not None and r.row.source_id not in keys
        ]
        if person_ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT person_id, relative_id, kind, id FROM core_familyrelationship "
                    "WHERE end_date IS NULL AND person_id = ANY(%s)",
                    [person_ids],
                )
                existing = {(p, r, k): pk for p, r, k, pk in cursor.fetchall()}
        creates: list[_Reference] = []
        updates: list[tuple[_Reference, int]] = []
        batch_links: dict[tuple[Any, ...], str] = {}
        for ref in refs:
            f = ref.facts
            link = (f["person"], f["relative"], f["kind"])
            known = keys.get(ref.row.source_id)
            if f["end"] is None:
                other = batch_links.get(link)
                if other is not None:
                    self._outcome(
                        ref.row, REJECTED, f"The same relationship is given as {other} too"
                    )
                    continue
                batch_links[link] = ref.row.source_id
            taken_over = existing.get((f["person_id"], f["relative_id"], f["kind"]))
            if known is None and taken_over is not None and f["end"] is None:
                known = (taken_over, "")
            if known is None:
                creates.append(ref)
                self._outcome(ref.row, CREATED)
            elif known[1] == ref.digest:
                self._outcome(ref.row, UNCHANGED)
            else:
                updates.append((ref, known[0]))
                self._outcome(ref.row, UPDATED)
        if self.dry_run:
            return
        ids = self._new_ids("core_familyrelationship", len(creates))
        if ids:
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    "COPY core_familyrelationship (id, person_id, relative_id, kind, start_date, "
                    "end_date) FROM STDIN"
                ) as copy,
            ):
                for pk, ref in zip(ids, creates, strict=True):
                    f = ref.facts
                    copy.write_row(
                        (pk, f["person_id"], f["relative_id"], f["kind"], f["start"], f["end"])
                    )
        if updates:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE core_familyrelationship AS r SET person_id = v.p, relative_id = v.r, "
                    "kind = v.k, start_date = v.s, end_date = v.e "
                    "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], "
                    "%s::date[], %s::date[]) AS v(id, p, r, k, s, e) WHERE r.id = v.id",
                    [
                        [pk for _, pk in updates],
                        [ref.facts["person_id"] for ref, _ in updates],
                        [ref.facts["relative_id"] for ref, _ in updates],
                        [ref.facts["kind"] for ref, _ in updates],
                        [ref.facts["start"] for ref, _ in updates],
                        [ref.facts["end"] for ref, _ in updates],
                    ],
                )
        self._keys_create(
            Kind.RELATIONSHIP,
            [(ref.row.source_id, pk, ref.digest) for pk, ref in zip(ids, creates, strict=True)],
        )
        self._keys_save(
            Kind.RELATIONSHIP, [(ref.row.source_id, pk, ref.digest) for ref, pk in updates]
        )

    def _involvements(self, refs: list[_Reference]) -> list[int]:
        """Create, update or leave each involvement; returns the ids of the people whose
        involvements were written."""
        keys = self.batch_keys[Kind.INVOLVEMENT]
        # As at a page, one current involvement per person, practitioner and role: one
        # recorded already (by the practitioner, or another source) is taken over.
        existing: dict[tuple[int, int, int], int] = {}
        person_ids = [
            r.facts["person_id"]
            for r in refs
            if r.facts["person_id"] is not None and r.row.source_id not in keys
        ]
        if person_ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT person_id, practitioner_id, role_id, id FROM core_involvement "
                    "WHERE end_date IS NULL AND person_id = ANY(%s)",
                    [person_ids],
                )
                existing = {(p, pr, r): pk for p, pr, r, pk in cursor.fetchall()}
        creates: list[_Reference] = []
        updates: list[tuple[_Reference, int]] = []
        batch_current: dict[tuple[Any, ...], str] = {}
        for ref in refs:
            f = ref.facts
            known = keys.get(ref.row.source_id)
            if f["end"] is None:
                same = (f["person"], f["practitioner"], f["role"])
                other = batch_current.get(same)
                if other is not None:
                    self._outcome(
                        ref.row,
                        REJECTED,
                        f"The same practitioner holds this role with this person in {other}",
                    )
                    continue
                batch_current[same] = ref.row.source_id
                taken_over = existing.get((f["person_id"], f["practitioner"], f["role"]))
                if known is None and taken_over is not None:
                    known = (taken_over, "")
            if known is None:
                creates.append(ref)
                self._outcome(ref.row, CREATED)
            elif known[1] == ref.digest:
                self._outcome(ref.row, UNCHANGED)
            else:
                updates.append((ref, known[0]))
                self._outcome(ref.row, UPDATED)
        if self.dry_run:
            return []
        now = timezone.now()
        ids = self._new_ids("core_involvement", len(creates))

        def end_reason(f: dict[str, Any]) -> str:
            return Involvement.EndReason.SOURCE_ENDED if f["end"] else ""

        if ids:
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    "COPY core_involvement (id, person_id, practitioner_id, organisation_id, "
                    "role_id, start_date, end_date, end_reason, last_confirmed_at, legal_basis, "
                    "sensitive, lead_professional, created_at) FROM STDIN"
                ) as copy,
            ):
                for pk, ref in zip(ids, creates, strict=True):
                    f = ref.facts
                    copy.write_row(
                        (
                            pk,
                            f["person_id"],
                            f["practitioner"],
                            f["organisation"],
                            f["role"],
                            f["start"],
                            f["end"],
                            end_reason(f),
                            now,
                            Involvement.LegalBasis.PUBLIC_TASK,
                            f["sensitive"],
                            False,
                            now,
                        )
                    )
        if updates:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE core_involvement AS i SET person_id = v.p, practitioner_id = v.pr, "
                    "organisation_id = v.o, role_id = v.r, start_date = v.s, end_date = v.e, "
                    "end_reason = v.er, sensitive = v.sen, "
                    "lead_professional = i.lead_professional AND v.e IS NULL AND NOT v.sen "
                    "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
                    "%s::bigint[], %s::date[], %s::date[], %s::text[], %s::boolean[]) "
                    "AS v(id, p, pr, o, r, s, e, er, sen) WHERE i.id = v.id",
                    [
                        [pk for _, pk in updates],
                        [ref.facts["person_id"] for ref, _ in updates],
                        [ref.facts["practitioner"] for ref, _ in updates],
                        [ref.facts["organisation"] for ref, _ in updates],
                        [ref.facts["role"] for ref, _ in updates],
                        [ref.facts["start"] for ref, _ in updates],
                        [ref.facts["end"] for ref, _ in updates],
                        [end_reason(ref.facts) for ref, _ in updates],
                        [ref.facts["sensitive"] for ref, _ in updates],
                    ],
                )
        self._keys_create(
            Kind.INVOLVEMENT,
            [(ref.row.source_id, pk, ref.digest) for pk, ref in zip(ids, creates, strict=True)],
        )
        self._keys_save(
            Kind.INVOLVEMENT, [(ref.row.source_id, pk, ref.digest) for ref, pk in updates]
        )
        return sorted(
            {ref.facts["person_id"] for ref in creates}
            | {ref.facts["person_id"] for ref, _ in updates}
        )

    # A full snapshot

    def _end_missing(self) -> None:
        """End this source's current involvements that the snapshot no longer holds."""
        missing: list[tuple[str, int]] = []
        records = FeedRecord.objects.filter(
            source_system_id=self.source_id, kind=Kind.INVOLVEMENT
        ).values_list("source_id", "local_id")
        for source_id, local_id in records.iterator(chunk_size=BATCH_SIZE):
            if hash((Kind.INVOLVEMENT, source_id)) not in self.seen:
                missing.append((source_id, local_id))
            if len(missing) >= BATCH_SIZE:
                self._end(missing)
                missing = []
        if missing:
            self._end(missing)

    def _end(self, missing: list[tuple[str, int]]) -> None:
        by_id = dict((local, source) for source, local in missing)
        reason = "No longer in the source system's full snapshot: ended in source system"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # as for a batch
            if self.dry_run:
                cursor.execute(
                    "SELECT id, person_id FROM core_involvement "
                    "WHERE id = ANY(%s) AND end_date IS NULL",
                    [list(by_id)],
                )
                ended = list(cursor.fetchall())
            else:
                cursor.execute(
                    "UPDATE core_involvement SET end_date = GREATEST(%s, start_date), "
                    "end_reason = %s, lead_professional = false "
                    "WHERE id = ANY(%s) AND end_date IS NULL RETURNING id, person_id",
                    [self.today, Involvement.EndReason.SOURCE_ENDED, list(by_id)],
                )
                ended = list(cursor.fetchall())
                if ended:
                    records_imported.send(
                        sender=FeedImport,
                        person_ids=[],
                        involvement_person_ids=sorted({person for _, person in ended}),
                    )
        for pk, _ in ended:
            row = FeedRow.from_values(0, {"record": Kind.INVOLVEMENT, "source_id": by_id[pk]})
            self._outcome(row, ENDED, reason)


class _ReadAhead:
    """The file's rows in batches, read and prepared on a thread of its own, a batch or two
    ahead of the one being written. Reading and checking rows is Python; writing a batch is
    mostly waiting for PostgreSQL, which releases the interpreter to the reader: on two cores
    the two overlap. The reader never touches the database. An error in reading (a file
    that breaks off) reaches the writer in its place in the file, after the batches before
    it; `stop` ends the reader early when the writer fails."""

    _END = object()

    def __init__(self, rows: Iterable[FeedRow], prepare: Callable[[FeedRow], None]) -> None:
        self.rows = rows
        self.prepare = prepare
        self.ready: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, name="feed-reader", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stopping.is_set():
            try:
                self.ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            batch: list[FeedRow] = []
            for row in self.rows:
                self.prepare(row)
                batch.append(row)
                if len(batch) >= BATCH_SIZE:
                    if not self._put(batch):
                        return
                    batch = []
            if batch and not self._put(batch):
                return
            self._put(self._END)
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(exc)

    def __iter__(self) -> Iterator[list[FeedRow]]:
        while True:
            item = self.ready.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()


def report_path_for(run: ImportRun) -> Path:
    schema = str(connection.schema_name)  # type: ignore[attr-defined]
    folder = Path(settings.DATA_DIR) / "imports" / schema
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"run-{run.pk}-report.csv"


def feed_rows(run: ImportRun, binary: IO[bytes]) -> Iterator[FeedRow]:
    if run.format == ImportRun.Format.FHIR:
        return (FeedRow.from_values(entry, values) for entry, values in fhir_rows(binary))
    return csv_rows(binary)


def feed_import_claim(*, run_id: int) -> bool:
    """Mark a queued run started, in one conditional UPDATE: of two workers given the same
    run (a late broker message and the sweep's), only the first runs it."""
    started = ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED).update(
        status=ImportRun.Status.RUNNING, started_at=timezone.now()
    )
    return started == 1


def feed_imports_waiting() -> list[int]:
    """Runs still queued SWEEP_AFTER_SECONDS after they were made: their task never reached
    a worker (the broker was down)."""
    since = timezone.now() - timedelta(seconds=settings.SWEEP_AFTER_SECONDS)
    waiting = ImportRun.objects.filter(status=ImportRun.Status.QUEUED, created_at__lte=since)
    return list(waiting.order_by("pk").values_list("pk", flat=True))


def feed_import(*, run: ImportRun, progress: Callable[[int], None] | None = None) -> ImportRun:
    """Run an import: read the run's file, apply (or, in a dry run, only judge) each row,
    write the per-row report and one audit event. A file that cannot be read at all marks
    the run failed with the reason and changes nothing after the batches already written."""
    run.status = ImportRun.Status.RUNNING
    run.started_at = timezone.now()
    run.save(update_fields=["status", "started_at"])
    report_path = report_path_for(run)

    saved_at = [0.0]

    def saved_progress(rows: int) -> None:
        # Shown by the page and the API as the run goes: once a second is often enough.
        if time.monotonic() - saved_at[0] >= 1:
            ImportRun.objects.filter(pk=run.pk).update(rows_read=rows)
            saved_at[0] = time.monotonic()
        if progress is not None:
            progress(rows)

    importer: FeedImport | None = None
    try:
        with (
            open(run.file_path, "rb") as binary,
            report_path.open("w", newline="", encoding="utf-8") as report,
        ):
            importer = FeedImport(run=run, report=report, progress=saved_progress)
            importer.feed(feed_rows(run, binary))
    except ValidationError as exc:
        run.status = ImportRun.Status.FAILED
        run.error = " ".join(exc.messages)[:500]
    except IntegrityError as exc:
        # A rule the rows' checks missed: that batch is rolled back whole, earlier ones stay
        # (a re-run finds them unchanged).
        run.status = ImportRun.Status.FAILED
        run.error = f"The import stopped: a batch broke a database rule ({exc})"[:500]
    except Exception:
        ImportRun.objects.filter(pk=run.pk).update(
            status=ImportRun.Status.FAILED,
            error="The import stopped unexpectedly: the error is in the server's log",
            finished_at=timezone.now(),
        )
        raise
    else:
        run.status = ImportRun.Status.DONE
    summary = importer.summary if importer else RunSummary()
    run.counts = summary.as_dict()
    run.rows_read = summary.rows
    run.report_path = str(report_path)
    run.finished_at = timezone.now()
    run.save()
    audit_record(
        actor=run.requested_by,
        action="feed_checked" if run.dry_run else "feed_imported",
        detail={
            "run_id": run.pk,
            "source_system": run.source_system.name,
            "format": run.format,
            "full_snapshot": run.full_snapshot,
            "status": run.status,
            **{k: int(v) for k, v in run.counts.items()},
        },
    )
    return run


# --- Source systems and their tokens ---------------------------------------------------------

TOKEN_PREFIX = "pwi_"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _administrator_only(actor: User | None) -> None:
    if actor is not None and actor.role != User.Role.COUNCIL_ADMIN:
        raise PermissionDenied("Only a council administrator manages source systems")


@transaction.atomic
def source_system_create(*, actor: User | None, name: str) -> tuple[SourceSystem, str]:
    """Register a source system and issue its import token, shown once: only its hash is
    kept. The token may start imports from that system and do nothing else."""
    _administrator_only(actor)
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Enter the source system's name"})
    if SourceSystem.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": f"There is already a source system called {name}"})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    source = SourceSystem.objects.create(
        name=name[:100], token_hash=_token_hash(token), created_by=actor
    )
    audit_record(actor=actor, action="source_system_created", detail={"name": source.name})
    return source, token


@transaction.atomic
def source_system_token_reset(*, actor: User | None, source: SourceSystem) -> str:
    """A new import token for the system; the old one stops working at once."""
    _administrator_only(actor)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    source.token_hash = _token_hash(token)
    source.save(update_fields=["token_hash"])
    audit_record(actor=actor, action="source_system_token_reset", detail={"name": source.name})
    return token


def source_system_by_token(token: str) -> SourceSystem | None:
    """The active source system this import token belongs to, in the current council."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return SourceSystem.objects.filter(token_hash=_token_hash(token), active=True).first()


def import_run_start(
    *,
    source: SourceSystem,
    file_format: str,
    binary: IO[bytes],
    full_snapshot: bool,
    dry_run: bool,
    actor: User | None = None,
) -> ImportRun:
    """Keep the file under the data directory, ready for `feed_import` (the command runs it
    there and then; the page and the API queue `core.tasks.feed_import_task`)."""
    _administrator_only(actor)
    if file_format not in ImportRun.Format.values:
        raise ValidationError({"format": "Choose CSV or FHIR"})
    run = ImportRun.objects.create(
        source_system=source,
        format=file_format,
        full_snapshot=full_snapshot,
        dry_run=dry_run,
        requested_by=actor,
        file_path="",
    )
    path = report_path_for(run).with_name(f"run-{run.pk}-input.{file_format}")
    with path.open("wb") as kept:
        shutil.copyfileobj(binary, kept, 1024 * 1024)
    run.file_path = str(path)
    run.save(update_fields=["file_path"])
    return run


def import_run_apply(*, run: ImportRun, actor: User | None) -> ImportRun:
    """After a dry run, the same file for real: a new run, keeping the dry run's report."""
    _administrator_only(actor)
    if not run.dry_run or run.status != ImportRun.Status.DONE:
        raise ValidationError("Only a finished dry run can be imported")
    if not run.source_system.active:
        raise ValidationError(f"The source system {run.source_system.name} is switched off")
    if not run.file_path:
        raise ValidationError(
            f"The file of this check is no longer kept (files are kept "
            f"{settings.IMPORT_FILES_KEEP_DAYS} days): upload it again"
        )
    return ImportRun.objects.create(
        source_system=run.source_system,
        format=run.format,
        full_snapshot=run.full_snapshot,
        dry_run=False,
        requested_by=actor,
        file_path=run.file_path,
    )


def import_files_forget(*, now: datetime | None = None) -> int:
    """Delete the files kept for runs that finished more than IMPORT_FILES_KEEP_DAYS ago —
    the file imported and its per-row report, which name people — and keep the run itself
    (who, when, the counts; its audit event stays too). A file a newer run still reads (a
    dry run's file, imported later) is kept until that run's time comes. Without this, a
    county's nightly file (hundreds of MB) and its report would fill the data directory
    within weeks. Returns how many files were deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.IMPORT_FILES_KEEP_DAYS)
    still_read = set(
        ImportRun.objects.exclude(finished_at__lt=cutoff).values_list("file_path", flat=True)
    )
    deleted: set[str] = set()  # a dry run and its import share one file
    old = ImportRun.objects.filter(finished_at__lt=cutoff).exclude(file_path="", report_path="")
    for run in old:
        if run.file_path and run.file_path not in still_read:
            Path(run.file_path).unlink(missing_ok=True)
            deleted.add(run.file_path)
            run.file_path = ""
        if run.report_path:
            Path(run.report_path).unlink(missing_ok=True)
            deleted.add(run.report_path)
            run.report_path = ""
        run.save(update_fields=["file_path", "report_path"])
    return len(deleted)


def import_report_response(run: ImportRun) -> FileResponse:
    """The run's per-row report as a CSV download (the page and the API alike); Http404 until
    the run has written it. Never cached: it names the people imported."""
    if not run.report_path:
        if run.finished_at is not None:
            raise Http404(
                f"The report is no longer kept (reports are kept "
                f"{settings.IMPORT_FILES_KEEP_DAYS} days after their run)"
            )
        raise Http404("The report is not ready yet")
    response = FileResponse(
        open(run.report_path, "rb"),  # noqa: SIM115 (FileResponse closes it)
        as_attachment=True,
        filename=f"import-{run.pk}-report.csv",
        content_type="text/csv",
    )
    response["Cache-Control"] = "no-store"
    return response
