"""Organisations from the public registers, in the layouts the registers publish:

- schools from the Department for Education's Get Information About Schools (GIAS)
  "edubasealldata" extract: a CSV with a header row, read by column name;
- GP practices (epraccur) and NHS trusts (etr) from the NHS Organisation Data Service (ODS):
  headerless CSVs, read by position — 1 organisation code, 2 name, 3 national grouping,
  4 high level health geography, 5–9 address lines, 10 postcode, 11 open date, 12 close
  date (dates as YYYYMMDD).

Files are read row by row and only the council's area is kept (GIAS by local authority
code, ODS by postcode district), so a national extract never sits in memory. An import is
keyed by register and code: running it again changes nothing, a newer extract renames and
closes, and nothing is ever duplicated (decision 0007). Nothing is downloaded: an
administrator uploads the file, or an operator passes it to `patchwork import_register`."""

from __future__ import annotations

import codecs
import csv
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.identifiers import POSTCODE, postcode_display, postcode_key
from core.models import CouncilPolicy, Organisation

Register = Organisation.Register

GIAS_COLUMNS = (
    "URN",
    "EstablishmentName",
    "TypeOfEstablishment (name)",
    "PhaseOfEducation (name)",
    "Postcode",
    "LA (code)",
    "EstablishmentStatus (name)",
)
GIAS_CLOSE_DATE = "CloseDate"  # dd-mm-yyyy; used when present
GIAS_OPEN_STATUSES = {"Open", "Open, but proposed to close", "Proposed to open"}
GIAS_CLOSED_STATUS = "Closed"

# ODS columns (0-based) and their names for messages.
ODS_CODE, ODS_NAME, ODS_POSTCODE, ODS_OPEN_DATE, ODS_CLOSE_DATE = 0, 1, 9, 10, 11
ODS_COLUMN_NAMES = {
    ODS_CODE: "organisation code",
    ODS_NAME: "name",
    ODS_POSTCODE: "postcode",
    ODS_OPEN_DATE: "open date",
    ODS_CLOSE_DATE: "close date",
}

REGISTER_WORDS = {
    Register.GIAS: ("school", "URN", "a Get Information About Schools extract (edubasealldata)"),
    Register.ODS_GP: ("GP practice", "ODS code", "an NHS ODS GP practices file (epraccur)"),
    Register.ODS_TRUST: ("NHS trust", "ODS code", "an NHS ODS trusts file (etr)"),
}

LA_CODE = re.compile(r"^[0-9]{3}$")
POSTCODE_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")


@dataclass(frozen=True)
class RegisterRow:
    """One organisation as a register file gives it; `problem` says why it cannot be used."""

    line: int
    code: str
    name: str
    postcode: str = ""
    description: str = ""
    local_authority_code: str = ""
    closed_on: date | None = None
    problem: str = ""

    @property
    def closed(self) -> bool:
        return self.closed_on is not None

    @property
    def district(self) -> str:
        key = postcode_key(self.postcode)
        return key[:-3] if len(key) >= 5 else ""


@dataclass(frozen=True)
class ReportLine:
    line: int
    code: str
    name: str
    outcome: str  # created, updated, closed, unchanged, skipped, rejected
    reason: str = ""


@dataclass
class ImportReport:
    """What an import did, row by row, and the counts an administrator reads first."""

    register: str
    area: list[str]
    lines: list[ReportLine] = field(default_factory=list)
    outside_area: int = 0

    OUTCOMES = ("created", "updated", "closed", "unchanged", "skipped", "rejected")

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.lines if line.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {outcome: self.count(outcome) for outcome in self.OUTCOMES}

    @property
    def changes(self) -> list[ReportLine]:
        """Every line but the unchanged ones: what the administrator needs to read."""
        return [line for line in self.lines if line.outcome != "unchanged"]

    @property
    def register_label(self) -> str:
        return Register(self.register).label


# --- Area ---------------------------------------------------------------------------------


def local_authority_codes_clean(text: str) -> list[str]:
    """'846, 845' -> ['845', '846'], or ValidationError in the administrator's words."""
    codes = sorted({part for part in re.split(r"[\s,;]+", text or "") if part})
    if not codes:
        raise ValidationError(
            "Enter your council's local authority code in Get Information About Schools, like 846"
        )
    wrong = [code for code in codes if not LA_CODE.match(code)]
    if wrong:
        raise ValidationError(
            f"{', '.join(wrong)} is not a local authority code: enter three digits, like 846"
        )
    return codes


def postcode_districts_clean(text: str) -> list[str]:
    """'bn1 BN2,bn41' -> ['BN1', 'BN2', 'BN41'], or ValidationError."""
    districts = sorted({part.upper() for part in re.split(r"[\s,;]+", text or "") if part})
    if not districts:
        raise ValidationError("Enter the postcode districts your council covers, like BN1 BN2 BN3")
    wrong = [d for d in districts if not POSTCODE_DISTRICT.match(d)]
    if wrong:
        raise ValidationError(
            f"{', '.join(wrong)} is not a postcode district: enter the first half of a "
            "postcode, like BN1 or BN41"
        )
    return districts


# --- Readers ------------------------------------------------------------------------------


def _text_lines(binary: IO[bytes], encoding: str) -> Iterator[str]:
    """The file's lines, decoded as they are read. The registers publish in Windows-1252
    or UTF-8 (with or without a byte-order mark)."""
    binary.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    pending = ""
    for chunk in iter(lambda: binary.read(64 * 1024), b""):
        pending += decoder.decode(chunk)
        *whole, pending = pending.split("\n")
        for line in whole:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _gias_date(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    for layout in ("%d-%m-%Y", "%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, layout).date()
        except ValueError:
            continue
    raise ValueError(value)


def _ods_date(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    return datetime.strptime(value, "%Y%m%d").date()


def _name_problem(name: str) -> str:
    if not name:
        return "It has no name"
    if len(name) > 200:
        return "Its name is longer than 200 characters"
    return ""


def _postcode_problem(postcode: str) -> str:
    if postcode and not POSTCODE.match(postcode_key(postcode)):
        return f"{postcode} is not a real postcode"
    return ""


def gias_rows(lines: Iterable[str]) -> Iterator[RegisterRow]:
    """Schools from a GIAS "edubasealldata" extract. Refuses the whole file (ValidationError)
    when a column Patchwork needs is missing."""
    reader = csv.DictReader(lines)
    columns = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in GIAS_COLUMNS if name not in columns]
    if missing:
        raise ValidationError(
            f"The file is not {REGISTER_WORDS[Register.GIAS][2]}: it has no "
            f"{'column' if len(missing) == 1 else 'columns'} called "
            f"{', '.join(missing)}. Nothing was imported."
        )
    reader.fieldnames = columns
    for row in reader:
        line = reader.line_num
        cell = {key: (value or "").strip() for key, value in row.items() if key is not None}
        code, name = cell["URN"], " ".join(cell["EstablishmentName"].split())
        la_code = cell["LA (code)"]
        status = cell["EstablishmentStatus (name)"]
        postcode = cell["Postcode"]
        description = ", ".join(
            part
            for part in (cell["TypeOfEstablishment (name)"], cell["PhaseOfEducation (name)"])
            if part and part != "Not applicable"
        )
        problem = ""
        closed_on: date | None = None
        if not re.fullmatch(r"[0-9]{5,7}", code):
            problem = f"Its URN {code or '(blank)'} is not a number of 5 to 7 digits"
        elif not LA_CODE.match(la_code):
            problem = f"Its local authority code {la_code or '(blank)'} is not three digits"
        elif status not in GIAS_OPEN_STATUSES and status != GIAS_CLOSED_STATUS:
            problem = f"Its status {status or '(blank)'} is not one Patchwork knows"
        else:
            problem = _name_problem(name) or _postcode_problem(postcode)
        if not problem and status == GIAS_CLOSED_STATUS:
            try:
                closed_on = _gias_date(cell.get(GIAS_CLOSE_DATE, "")) or timezone.localdate()
            except ValueError:
                problem = f"Its close date {cell[GIAS_CLOSE_DATE]} is not a date"
        yield RegisterRow(
            line=line,
            code=code,
            name=name,
            postcode=postcode_display(postcode) if postcode else "",
            description=description[:200],
            local_authority_code=la_code,
            closed_on=closed_on,
            problem=problem,
        )


def ods_rows(lines: Iterable[str], register: str) -> Iterator[RegisterRow]:
    """GP practices or NHS trusts from an ODS file (headerless; see the module's docstring).
    Refuses the whole file when its first row is too short to hold the columns needed."""
    reader = csv.reader(lines)
    first = True
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if first:
            first = False
            if len(cells) <= ODS_CLOSE_DATE:
                missing = [
                    f"{index + 1} ({name})"
                    for index, name in ODS_COLUMN_NAMES.items()
                    if index >= len(cells)
                ]
                raise ValidationError(
                    f"The file is not {REGISTER_WORDS[Register(register)][2]}: it has "
                    f"{len(cells)} columns, so it has no column {', '.join(missing)}. "
                    "Nothing was imported."
                )
            if cells[ODS_CODE].strip().upper().replace(" ", "") == "ORGANISATIONCODE":
                continue  # a header some tools add; the published files have none
        line = reader.line_num
        cells = [cell.strip() for cell in cells] + [""] * max(0, ODS_CLOSE_DATE + 1 - len(cells))
        code, name = cells[ODS_CODE].upper(), " ".join(cells[ODS_NAME].split())
        postcode = cells[ODS_POSTCODE]
        problem = ""
        closed_on: date | None = None
        if not re.fullmatch(r"[A-Z0-9]{3,6}", code):
            problem = f"Its ODS code {code or '(blank)'} is not 3 to 6 letters and digits"
        elif not postcode:
            problem = "It has no postcode, so Patchwork cannot tell whether it is in your area"
        else:
            problem = _name_problem(name) or _postcode_problem(postcode)
        if not problem:
            try:
                _ods_date(cells[ODS_OPEN_DATE])
                closed_on = _ods_date(cells[ODS_CLOSE_DATE])
            except ValueError:
                problem = "Its open or close date is not a date written as YYYYMMDD"
        yield RegisterRow(
            line=line,
            code=code,
            name=_ods_name(name),
            postcode=postcode_display(postcode) if postcode else "",
            closed_on=closed_on,
            problem=problem,
        )


KEPT_CAPITALS = {"NHS", "GP", "UK", "CAMHS", "PCN", "ICB"}


def _ods_name(name: str) -> str:
    """ODS names are in capitals: 'THE ELM TREE SURGERY' -> 'The Elm Tree Surgery'."""
    if not name.isupper():
        return name
    return " ".join(
        word if word in KEPT_CAPITALS else string.capwords(word) for word in name.split()
    )


def register_rows(binary: IO[bytes], register: str) -> list[RegisterRow]:
    """Every row of the file, read as UTF-8 or, failing that, as Windows-1252."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            lines = _text_lines(binary, encoding)
            if register == Register.GIAS:
                return list(gias_rows(lines))
            return list(ods_rows(lines, register))
        except UnicodeDecodeError:
            continue
        except csv.Error as exc:
            raise ValidationError(
                f"The file is not a CSV file Patchwork can read ({exc}). Nothing was imported."
            ) from exc
    raise ValidationError("The file is not text Patchwork can read. Nothing was imported.")


def _in_area(row: RegisterRow, register: str, area: set[str]) -> bool | None:
    """Whether a row is in the council's area; None when the row cannot say."""
    if register == Register.GIAS:
        return row.local_authority_code in area if LA_CODE.match(row.local_authority_code) else None
    return row.district in area if row.district else None


# --- The import ---------------------------------------------------------------------------

AGENCY_BY_REGISTER = {
    Register.ODS_GP: Organisation.AgencyType.GP,
    Register.ODS_TRUST: Organisation.AgencyType.HOSPITAL,
}


def _agency_type(register: str, row: RegisterRow) -> str:
    if register == Register.GIAS:
        nursery = "nursery" in row.description.lower()
        return Organisation.AgencyType.EARLY_YEARS if nursery else Organisation.AgencyType.SCHOOL
    return AGENCY_BY_REGISTER[Register(register)]


def _organisations_in_area(register: str, area: list[str]) -> Iterator[Organisation]:
    found = Organisation.objects.filter(register=register, closed_on__isnull=True)
    if register == Register.GIAS:
        yield from found.filter(local_authority_code__in=area)
        return
    for organisation in found:
        key = postcode_key(organisation.postcode)
        if key[:-3] in area:
            yield organisation


def _apply(register: str, row: RegisterRow, existing: Organisation | None) -> ReportLine:
    words = REGISTER_WORDS[Register(register)]
    if existing is None:
        if row.closed:
            return ReportLine(
                row.line,
                row.code,
                row.name,
                "skipped",
                f"The {words[0]} closed before it was ever imported",
            )
        Organisation.objects.create(
            name=row.name,
            agency_type=_agency_type(register, row),
            register=register,
            register_code=row.code,
            register_description=row.description,
            local_authority_code=row.local_authority_code,
            postcode=row.postcode,
        )
        return ReportLine(row.line, row.code, row.name, "created")
    wanted: dict[str, Any] = {
        "name": row.name,
        "register_description": row.description or existing.register_description,
        "local_authority_code": row.local_authority_code or existing.local_authority_code,
        "postcode": row.postcode or existing.postcode,
    }
    changed = [key for key, value in wanted.items() if getattr(existing, key) != value]
    reasons = []
    if "name" in changed:
        reasons.append(f"Renamed from {existing.name}")
    outcome = "updated" if changed else "unchanged"
    if row.closed and existing.closed_on is None:
        wanted["closed_on"] = row.closed_on
        changed.append("closed_on")
        outcome = "closed"
        reasons.append(f"Closed on {row.closed_on:%-d %B %Y}")
    elif not row.closed and existing.closed_on is not None:
        wanted["closed_on"] = None
        changed.append("closed_on")
        outcome = "updated"
        reasons.append("Open again")
    if changed:
        for key in changed:
            setattr(existing, key, wanted[key])
        existing.save(update_fields=changed)
    return ReportLine(row.line, row.code, row.name, outcome, "; ".join(reasons))


@transaction.atomic
def register_import(
    *,
    register: str,
    binary: IO[bytes],
    area: list[str],
    actor: Any | None,
    full_extract: bool = True,
) -> ImportReport:
    """Import one register file for the council's `area` (GIAS: local authority codes; ODS:
    postcode districts). Creates the organisations that are new, renames and closes the
    ones that changed, and — for a full extract — closes the ones in the area that are no
    longer in it. A row that cannot be used is rejected whole, with its reason; a file that
    is not in the register's layout, or has nothing in the area, is refused whole
    (ValidationError) and changes nothing. The run is one audit event."""
    if register not in REGISTER_WORDS:
        raise ValidationError("Choose which register the file comes from")
    words = REGISTER_WORDS[Register(register)]
    area_set = set(area)
    report = ImportReport(register=register, area=sorted(area_set))
    rows = register_rows(binary, register)
    first_line: dict[str, int] = {}
    usable: list[RegisterRow] = []
    for row in rows:
        in_area = _in_area(row, register, area_set)
        if in_area is False:
            report.outside_area += 1
            continue
        if row.problem:
            report.lines.append(ReportLine(row.line, row.code, row.name, "rejected", row.problem))
        elif row.code in first_line:
            report.lines.append(
                ReportLine(
                    row.line,
                    row.code,
                    row.name,
                    "rejected",
                    f"Its {words[1]} {row.code} is also on line {first_line[row.code]}",
                )
            )
        else:
            first_line[row.code] = row.line
            usable.append(row)
    if not first_line:
        where = "local authority" if register == Register.GIAS else "postcode district"
        raise ValidationError(
            f"No {words[0]} in the file is in {where} {', '.join(report.area)}: check the "
            f"{where} and the file. Nothing was imported."
        )
    existing = {
        organisation.register_code: organisation
        for organisation in Organisation.objects.filter(
            register=register, register_code__in=list(first_line)
        )
    }
    for row in usable:
        report.lines.append(_apply(register, row, existing.get(row.code)))
    if full_extract:
        seen = {line.code for line in report.lines}
        today = timezone.localdate()
        for organisation in _organisations_in_area(register, report.area):
            if organisation.register_code not in seen:
                organisation.closed_on = today
                organisation.save(update_fields=["closed_on"])
                report.lines.append(
                    ReportLine(
                        0,
                        organisation.register_code,
                        organisation.name,
                        "closed",
                        "No longer in the register's extract",
                    )
                )
    audit_record(
        actor=actor,
        action="register_imported",
        detail={
            "register": register,
            "area": report.area,
            "full_extract": full_extract,
            "outside_area": report.outside_area,
            **report.counts,
        },
    )
    return report


@transaction.atomic
def register_area_set(*, register: str, area: list[str]) -> CouncilPolicy:
    """Remember the council's area for this register, for the next import."""
    policy = CouncilPolicy.current()
    if register == Register.GIAS:
        policy.gias_local_authority_codes = " ".join(area)
        policy.save(update_fields=["gias_local_authority_codes"])
    else:
        policy.ods_postcode_districts = " ".join(area)
        policy.save(update_fields=["ods_postcode_districts"])
    return policy


def register_area_clean(register: str, text: str) -> list[str]:
    if register == Register.GIAS:
        return local_authority_codes_clean(text)
    return postcode_districts_clean(text)


def register_area_of(policy: CouncilPolicy, register: str) -> str:
    if register == Register.GIAS:
        return policy.gias_local_authority_codes
    return policy.ods_postcode_districts
