"""Organisations from the public registers (GIAS schools, ODS GP practices and trusts):
the council's area only, idempotent re-imports, renames and closures, and bad files refused
whole with the missing columns named."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from core.forms import ProfileForm
from core.models import AuditEvent, Organisation
from core.registers import (
    local_authority_codes_clean,
    postcode_districts_clean,
    register_import,
)
from core.services import involvement_add, practitioner_profile_set
from tests.factories import PersonFactory, RoleFactory, UserFactory

SAMPLES = Path(__file__).resolve().parents[2] / "core" / "registers_samples"
GIAS = SAMPLES / "gias_edubasealldata.csv"
EPRACCUR = SAMPLES / "ods_epraccur.csv"
ETR = SAMPLES / "ods_etr.csv"
Register = Organisation.Register


def _gias_rows() -> tuple[list[str], list[dict[str, str]]]:
    with GIAS.open(encoding="cp1252", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _gias_file(rows: list[dict[str, str]], columns: list[str] | None = None) -> io.BytesIO:
    header = columns or _gias_rows()[0]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return io.BytesIO(out.getvalue().encode("cp1252"))


def _import(world, register: str, binary, area: list[str], **kwargs):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return register_import(register=register, binary=binary, area=area, actor=None, **kwargs)


def _brighton(world, fn):  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        return fn()


def _registered(world, register: str) -> dict[str, Organisation]:
    return _brighton(
        world, lambda: {o.register_code: o for o in Organisation.objects.filter(register=register)}
    )


def test_it_imports_the_councils_open_schools_only(world, db) -> None:
    """Brighton and Hove (LA 846) gets its six open schools; the closed one is not added
    and West Sussex's five are left out."""
    with GIAS.open("rb") as binary:
        report = _import(world, Register.GIAS, binary, ["846"])
    assert report.counts == {
        "created": 6,
        "updated": 0,
        "closed": 0,
        "unchanged": 0,
        "skipped": 1,
        "rejected": 0,
    }
    assert report.outside_area == 5
    schools = _registered(world, Register.GIAS)
    assert set(schools) == {"990101", "990102", "990103", "990104", "990106", "990107"}
    nursery = schools["990104"]
    assert nursery.agency_type == Organisation.AgencyType.EARLY_YEARS
    assert nursery.register_description == "Local authority nursery school, Nursery"
    assert schools["990101"].postcode == "BN1 9ZA" and schools["990101"].is_open
    assert schools["990106"].register_description == "Community special school"


def test_a_second_import_of_the_same_extract_changes_nothing(world, db) -> None:
    """Idempotent: every row unchanged, no duplicates, one audit event per run."""
    before = _brighton(world, lambda: AuditEvent.objects.order_by("id").last())
    with GIAS.open("rb") as binary:
        _import(world, Register.GIAS, binary, ["846"])
    with GIAS.open("rb") as binary:
        again = _import(world, Register.GIAS, binary, ["846"])
    assert again.counts["unchanged"] == 6 and again.count("created") == 0
    assert again.count("skipped") == 1 and not again.count("closed")
    assert _brighton(world, lambda: Organisation.objects.filter(register="gias").count()) == 6
    events = _brighton(
        world,
        lambda: list(
            AuditEvent.objects.filter(action="register_imported", id__gt=before.pk if before else 0)
        ),
    )
    assert len(events) == 2
    assert events[1].detail["unchanged"] == 6 and events[1].detail["register"] == "gias"


def test_a_newer_extract_renames_and_closes_schools(world, db) -> None:
    """Renamed schools are renamed, schools marked Closed are closed on their close date,
    and a school missing from a full extract is closed; none is deleted or duplicated."""
    with GIAS.open("rb") as binary:
        _import(world, Register.GIAS, binary, ["846"])
    _, rows = _gias_rows()
    newer = []
    for row in rows:
        if row["URN"] == "990101":
            row = {**row, "EstablishmentName": "Seagull Lane Primary Academy"}
        if row["URN"] == "990102":
            row = {**row, "EstablishmentStatus (name)": "Closed", "CloseDate": "31-08-2026"}
        if row["URN"] != "990103":
            newer.append(row)
    report = _import(world, Register.GIAS, _gias_file(newer), ["846"])
    assert report.counts["updated"] == 1 and report.counts["closed"] == 2
    schools = _registered(world, Register.GIAS)
    assert len(schools) == 6
    assert schools["990101"].name == "Seagull Lane Primary Academy"
    assert str(schools["990102"].closed_on) == "2026-08-31"
    assert schools["990103"].closed_on is not None
    reasons = {line.code: line.reason for line in report.changes}
    assert reasons["990101"] == "Renamed from Seagull Lane Primary School"
    assert reasons["990103"] == "No longer in the register's extract"


def test_a_partial_extract_closes_nothing_that_is_missing(world, db) -> None:
    """Only the rows in a partial file are applied."""
    with GIAS.open("rb") as binary:
        _import(world, Register.GIAS, binary, ["846"])
    _, rows = _gias_rows()
    one = [row for row in rows if row["URN"] == "990101"]
    report = _import(world, Register.GIAS, _gias_file(one), ["846"], full_extract=False)
    assert report.counts["unchanged"] == 1 and report.counts["closed"] == 0
    assert all(s.is_open for s in _registered(world, Register.GIAS).values())


def test_schools_in_two_local_authorities_are_imported_together(world, db) -> None:
    """A council may have more than one local authority code."""
    with GIAS.open("rb") as binary:
        report = _import(world, Register.GIAS, binary, ["846", "938"])
    assert report.count("created") == 10 and report.outside_area == 0


def test_a_file_without_the_columns_is_refused_whole(world, db) -> None:
    """The message names each missing column, and nothing is imported or audited."""
    header, rows = _gias_rows()
    columns = [c for c in header if c not in ("LA (code)", "Postcode")]
    events_before = _brighton(world, lambda: AuditEvent.objects.count())
    with pytest.raises(ValidationError) as refused:
        _import(world, Register.GIAS, _gias_file(rows, columns), ["846"])
    message = " ".join(refused.value.messages)
    assert "no columns called Postcode, LA (code)" in message
    assert "Nothing was imported" in message
    assert not _registered(world, Register.GIAS)
    assert _brighton(world, lambda: AuditEvent.objects.count()) == events_before


def test_a_gias_file_given_as_an_ods_file_is_refused(world, db) -> None:
    """The GIAS header row is too short to be an ODS row... or rather has its columns in
    the wrong places: it is refused without a change."""
    short = io.BytesIO(b'"Z99001","THE SURGERY","Y59"\n')
    with pytest.raises(ValidationError) as refused:
        _import(world, Register.ODS_GP, short, ["BN1"])
    assert "has 3 columns, so it has no column 10 (postcode)" in refused.value.messages[0]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"URN": "12ab"}, "Its URN 12ab is not a number of 5 to 7 digits"),
        ({"Postcode": "NOT A CODE"}, "NOT A CODE is not a real postcode"),
        ({"EstablishmentName": ""}, "It has no name"),
        ({"EstablishmentStatus (name)": "Mothballed"}, "Its status Mothballed is not one"),
        (
            {"EstablishmentStatus (name)": "Closed", "CloseDate": "31st August"},
            "Its close date 31st August is not a date",
        ),
    ],
)
def test_a_bad_row_is_rejected_with_its_reason_and_the_rest_imported(
    world, db, change, reason
) -> None:
    """The rejected row changes nothing; the others go in."""
    _, rows = _gias_rows()
    rows = [row for row in rows if row["LA (code)"] == "846"]
    rows[0] = {**rows[0], **change}
    report = _import(world, Register.GIAS, _gias_file(rows), ["846"])
    (rejected,) = [line for line in report.lines if line.outcome == "rejected"]
    assert rejected.line == 2 and reason in rejected.reason
    assert report.count("created") == 5
    assert "990101" not in _registered(world, Register.GIAS)


def test_a_code_twice_in_one_file_is_imported_once(world, db) -> None:
    """The second row with the same URN is rejected, naming the line of the first."""
    _, rows = _gias_rows()
    rows = [row for row in rows if row["LA (code)"] == "846"]
    rows.append({**rows[0], "EstablishmentName": "Another name"})
    report = _import(world, Register.GIAS, _gias_file(rows), ["846"])
    (rejected,) = [line for line in report.lines if line.outcome == "rejected"]
    assert rejected.reason == "Its URN 990101 is also on line 2"
    assert _registered(world, Register.GIAS)["990101"].name == "Seagull Lane Primary School"


def test_a_file_with_nothing_in_the_area_is_refused(world, db) -> None:
    """A mistyped local authority code would otherwise close every school: refused."""
    with GIAS.open("rb") as binary:
        _import(world, Register.GIAS, binary, ["846"])
    with GIAS.open("rb") as binary, pytest.raises(ValidationError) as refused:
        _import(world, Register.GIAS, binary, ["847"])
    assert "No school in the file is in local authority 847" in refused.value.messages[0]
    assert all(s.is_open for s in _registered(world, Register.GIAS).values())


def test_a_windows_1252_name_is_read(world, db) -> None:
    """GIAS publishes in Windows-1252: an accented name comes through whole."""
    _, rows = _gias_rows()
    rows = [{**rows[0], "EstablishmentName": "École Côte Primary School"}]
    report = _import(world, Register.GIAS, _gias_file(rows), ["846"], full_extract=False)
    assert report.lines[0].name == "École Côte Primary School"


def test_it_imports_gp_practices_in_the_councils_postcode_districts(world, db) -> None:
    """Open practices in BN1–BN3 are added with readable names; the closed one is not
    added; Staffordshire's practice is outside the area."""
    with EPRACCUR.open("rb") as binary:
        report = _import(world, Register.ODS_GP, binary, ["BN1", "BN2", "BN3"])
    assert report.count("created") == 3 and report.count("skipped") == 1
    assert report.outside_area == 1
    practices = _registered(world, Register.ODS_GP)
    assert practices["Z99004"].name == "St Anne's Well Surgery"
    assert practices["Z99001"].agency_type == Organisation.AgencyType.GP
    with EPRACCUR.open("rb") as binary:
        again = _import(world, Register.ODS_GP, binary, ["BN1", "BN2", "BN3"])
    assert again.count("unchanged") == 3 and again.count("created") == 0


def test_a_practice_with_a_close_date_is_closed(world, db) -> None:
    """An ODS close date closes the practice on that date."""
    with EPRACCUR.open("rb") as binary:
        _import(world, Register.ODS_GP, binary, ["BN1", "BN2", "BN3"])
    text = EPRACCUR.read_text().replace(
        '"BN1 9ZP","19740401",""', '"BN1 9ZP","19740401","20260930"'
    )
    report = _import(world, Register.ODS_GP, io.BytesIO(text.encode()), ["BN1", "BN2", "BN3"])
    assert report.count("closed") == 1
    assert str(_registered(world, Register.ODS_GP)["Z99002"].closed_on) == "2026-09-30"


def test_it_imports_nhs_trusts(world, db) -> None:
    """Both synthetic trusts are in Brighton's districts; NHS stays in capitals."""
    with ETR.open("rb") as binary:
        report = _import(world, Register.ODS_TRUST, binary, ["BN1", "BN2"])
    assert report.count("created") == 2
    trust = _registered(world, Register.ODS_TRUST)["R9A"]
    assert trust.name == "Downland University Hospitals NHS Trust"
    assert trust.agency_type == Organisation.AgencyType.HOSPITAL


@pytest.mark.parametrize(
    ("clean", "text", "message"),
    [
        (local_authority_codes_clean, "", "Enter your council's local authority code"),
        (local_authority_codes_clean, "846 E06000043", "E06000043 is not a local authority"),
        (postcode_districts_clean, "", "Enter the postcode districts"),
        (postcode_districts_clean, "BN1 1AA", "1AA is not a postcode district"),
    ],
)
def test_a_bad_area_is_refused_in_words(clean, text, message) -> None:
    """The area is checked before any file is read."""
    with pytest.raises(ValidationError) as refused:
        clean(text)
    assert message in refused.value.messages[0]


def test_area_codes_are_cleaned() -> None:
    """Commas, spaces and lower case are all accepted."""
    assert local_authority_codes_clean("846, 938 846") == ["846", "938"]
    assert postcode_districts_clean("bn1,BN41 bn2") == ["BN1", "BN2", "BN41"]


def test_closed_organisations_are_not_offered_for_profiles(world, db) -> None:
    """A closed school is not in the profile's list and cannot be chosen, except by the
    practitioner who works there already, who cannot add involvements from it."""
    with GIAS.open("rb") as binary:
        _import(world, Register.GIAS, binary, ["846"])

    def check() -> None:
        closed = Organisation.objects.get(register_code="990103")
        closed.closed_on = closed.created_at.date()
        closed.save()
        offered = ProfileForm().fields["organisation"].queryset  # type: ignore[attr-defined]
        assert closed not in offered
        assert Organisation.objects.get(register_code="990101") in offered
        newcomer = UserFactory()
        with pytest.raises(ValidationError) as refused:
            practitioner_profile_set(user=newcomer, organisation=closed, job_title="Teacher")
        assert "has closed" in str(refused.value)
        stayer = UserFactory()
        practitioner_profile_set(
            user=stayer,
            organisation=Organisation.objects.get(register_code="990101"),
            job_title="Teacher",
        )
        stayer_school = Organisation.objects.get(register_code="990101")
        stayer_school.closed_on = stayer_school.created_at.date()
        stayer_school.save()
        form = ProfileForm(initial={"organisation": stayer_school.pk})
        assert stayer_school in form.fields["organisation"].queryset  # type: ignore[attr-defined]
        practitioner = practitioner_profile_set(
            user=stayer, organisation=stayer_school, job_title="Head"
        )
        with pytest.raises(ValidationError) as no_involvement:
            involvement_add(
                actor=stayer,
                person=PersonFactory(),
                practitioner=practitioner,
                role=RoleFactory(name="Class teacher"),
            )
        assert "Seagull Lane Primary School has closed" in str(no_involvement.value)

    _brighton(world, check)


def test_the_command_prints_the_report(world, db) -> None:
    """`patchwork import_register` imports and says what it did; a bad council is refused."""
    out = io.StringIO()
    call_command("import_register", council="E06000043", gias=str(GIAS), la_code="846", stdout=out)
    text = out.getvalue()
    assert "6 created" in text and "1 skipped" in text and "5 outside the area" in text
    assert "Palmeira Gardens Infant School" in text
    with pytest.raises(CommandError, match="No council with the code"):
        call_command("import_register", council="E06999999", gias=str(GIAS), la_code="846")
    with pytest.raises(CommandError, match="Enter the postcode districts"):
        call_command("import_register", council="E06000043", ods_gp=str(EPRACCUR))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'"' + b"x" * 200_000 + b'"\n', "is not a CSV file Patchwork can read"),
        (b"\x81\x8d\x8f\x90\x9d", "is not text Patchwork can read"),
        (b"", "it has no columns called URN"),
    ],
)
def test_a_file_that_is_not_csv_text_is_refused(world, db, content, message) -> None:
    """Binary or broken files are refused whole, in words, never with an error page."""
    with pytest.raises(ValidationError) as refused:
        _import(world, Register.GIAS, io.BytesIO(content), ["846"])
    assert message in refused.value.messages[0]
