"""Every CSV Patchwork writes keeps a cell that a spreadsheet would run as a formula as text
(issue 14, point 8): the audit export, an import's report and the subject access CSV, each
downloaded through its own page, and the one writer they share."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import User
from accounts.spreadsheets import csv_writer
from core.feeds import CSV_COLUMNS
from core.models import InvolvementRole, PersonName, SourceSystem
from core.services import practitioner_profile_set
from tests.personas import PASSWORD, Persona, sign_in

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_EMAIL = "=2+5@brighton.test"


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _no_formula(rows: list[list[str]]) -> None:
    cells = [cell for row in rows for cell in row]
    assert cells and not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]


def test_it_keeps_an_invited_email_that_looks_like_a_formula_as_text_in_the_audit_export(
    world, scenario
) -> None:
    """An administrator invites "=2+5@…" (a valid address); once that user has searched, the
    audit export names them as the actor, and the cell opens as text."""
    admin = sign_in(world.brighton_admin)
    invited = admin.post(
        "/admin/users/",
        {"email": FORMULA_EMAIL, "full_name": "Eve Formula", "role": User.Role.PRACTITIONER},
    )
    assert invited.status_code == 200 and b"Eve Formula is invited" in invited.content
    with schema_context(world.brighton.schema_name):
        # What accepting the invitation does: a password and a confirmed authenticator.
        user = User.objects.get(email=FORMULA_EMAIL)
        user.set_password(PASSWORD)
        user.save()
        device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
        practitioner_profile_set(user=user, organisation=scenario.school, job_title="Teacher")
    eve = sign_in(
        Persona(
            email=FORMULA_EMAIL,
            schema_name=world.brighton.schema_name,
            host=world.brighton.get_primary_domain().domain,
            device_key=device.key,
        )
    )
    assert eve.post("/search/", {"nhs_number": "943 476 5919"}).status_code == 200

    export = admin.get("/admin/audit/export.csv")
    assert export.status_code == 200
    rows = _rows(b"".join(export.streaming_content).decode())  # type: ignore[attr-defined]
    # Other tests' committed events may be in the log too: look for this one's.
    assert f"'{FORMULA_EMAIL}" in {row[3] for row in rows if row[4] == "search"}
    _no_formula(rows)


def test_it_keeps_a_source_id_that_looks_like_a_formula_as_text_in_an_import_report(
    world, scenario, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    """A source system's ids are written back in the report the administrator downloads."""
    settings.DATA_DIR = tmp_path
    admin = sign_in(world.brighton_admin)
    admin.post("/admin/imports/systems/new/", {"name": "Liquidlogic LCS"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for source_id in ("=HYPERLINK(1)", "@SUM(1)", "+1+1", "-1+1"):
        writer.writerow({"record": "person", "source_id": source_id, "given_name": "No surname"})
    upload = SimpleUploadedFile("feed.csv", out.getvalue().encode(), content_type="text/csv")
    with schema_context(world.brighton.schema_name):
        source = SourceSystem.objects.get(name="Liquidlogic LCS")
    with django_capture_on_commit_callbacks(execute=True):
        checked = admin.post(
            "/admin/imports/", {"source": source.pk, "file_format": "csv", "file": upload}
        )
    assert checked.status_code == 302
    run_id = checked["Location"].rstrip("/").rsplit("/", 1)[1]
    report = admin.get(f"/admin/imports/{run_id}/report.csv")
    rows = _rows(b"".join(report.streaming_content).decode())  # type: ignore[attr-defined]
    assert {row[2] for row in rows[1:]} == {"'=HYPERLINK(1)", "'@SUM(1)", "'+1+1", "'-1+1"}
    _no_formula(rows)


def test_it_keeps_every_part_of_the_subject_access_csv_as_text(world, scenario) -> None:
    """A name and a role's name typed as formulas, in the CSV the IG officer downloads."""
    with schema_context(world.brighton.schema_name):
        PersonName.objects.create(
            person=scenario.ava, kind="alias", given_name="@SUM(1)", family_name="x"
        )
        InvolvementRole.objects.filter(name="School nurse").update(name="-1+School nurse")
        ig = User.objects.create_user(
            "ife.ig@brighton.test", password=PASSWORD, full_name="Ife IG", role=User.Role.IG_OFFICER
        )
        device = TOTPDevice.objects.create(user=ig, name="app", confirmed=True)
    officer = sign_in(
        Persona(
            email=ig.email,
            schema_name=world.brighton.schema_name,
            host=world.brighton.get_primary_domain().domain,
            device_key=device.key,
        )
    )
    download = officer.get(f"/admin/people/{scenario.ava.pk}/subject-access.csv")
    rows = _rows(download.content.decode())
    values = {cell for row in rows for cell in row}
    assert "'@SUM(1) x" in values and any(v.startswith("'-1+School nurse") for v in values)
    _no_formula(rows)


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_the_shared_writer_defuses_each_start_of_a_formula(start) -> None:
    """OWASP's list: = + - @ tab and carriage return, each prefixed with a single quote;
    other text and numbers are written as they are."""
    out = io.StringIO()
    csv_writer(out).writerow([f"{start}cmd", "plain", -3, "a=b"])
    assert _rows(out.getvalue()) == [[f"'{start}cmd", "plain", "-3", "a=b"]]


@pytest.mark.parametrize("start", FORMULA_STARTS)
@pytest.mark.parametrize("column", [0, 1, 2])
def test_many_rows_at_once_are_defused_wherever_the_formula_is(start, column) -> None:
    """`writerows` writes a batch whole when no cell can begin a formula, and row by row
    otherwise: a formula in any cell of any row, quoted or not, is still defused, and the
    rows around it are written as they are."""
    batch = [[n, "person", f"P{n}", "unchanged", "The date, as given"] for n in range(50)]
    batch[17][column + 2] = f"{start}HYPERLINK(1)"
    out = io.StringIO()
    csv_writer(out).writerows(batch)
    rows = _rows(out.getvalue())
    assert rows[17][column + 2] == f"'{start}HYPERLINK(1)"
    assert rows[16] == ["16", "person", "P16", "unchanged", "The date, as given"]
    assert len(rows) == 50
    _no_formula(rows)
