"""The administrator's import pages: adding a system shows its token once, a file is always
checked first (a dry run, then "Import this file"), the run page follows progress, and the
report downloads. Practitioners cannot reach any of it."""

from __future__ import annotations

import csv
import io
import re

from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from core.feeds import CSV_COLUMNS
from core.models import ImportRun, Person, SourceSystem
from tests.personas import sign_in


def _file() -> SimpleUploadedFile:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerow(
        {
            "record": "person",
            "source_id": "LCS-1",
            "given_name": "Ottilie",
            "family_name": "Page",
            "date_of_birth": "2017-05-05",
        }
    )
    writer.writerow({"record": "person", "source_id": "LCS-2", "given_name": "No surname"})
    return SimpleUploadedFile("feed.csv", out.getvalue().encode(), content_type="text/csv")


def test_an_administrator_checks_a_file_then_imports_it(  # type: ignore[no-untyped-def]
    world, scenario, settings, tmp_path, django_capture_on_commit_callbacks
) -> None:
    settings.DATA_DIR = tmp_path
    admin = sign_in(world.brighton_admin)
    added = admin.post("/admin/imports/systems/new/", {"name": "Liquidlogic LCS"})
    token = re.search(r'<code id="token">([^<]+)</code>', added.content.decode())
    assert token is not None and token.group(1).startswith("pwi_")
    with schema_context(world.brighton.schema_name):
        source = SourceSystem.objects.get(name="Liquidlogic LCS")
        assert token.group(1) not in source.token_hash
    with django_capture_on_commit_callbacks(execute=True):
        checked = admin.post(
            "/admin/imports/",
            {"source": source.pk, "file_format": "csv", "file": _file()},
        )
    assert checked.status_code == 302
    page = admin.get(checked["Location"]).content.decode()
    assert "Nothing has changed yet" in page
    assert re.search(r"Would be added</dt><dd[^>]*>1<", page)
    assert re.search(r"could not be used</dt><dd[^>]*>1<", page)
    with schema_context(world.brighton.schema_name):
        assert not Person.objects.filter(given_name="Ottilie").exists()
        dry = ImportRun.objects.get(dry_run=True)
    report = admin.get(f"/admin/imports/{dry.pk}/report.csv")
    text = b"".join(report.streaming_content).decode()  # type: ignore[attr-defined]
    assert "LCS-2,rejected,The surname is missing" in text
    with django_capture_on_commit_callbacks(execute=True):
        applied = admin.post(f"/admin/imports/{dry.pk}/apply/")
    page = admin.get(applied["Location"]).content.decode()
    assert "The import is finished" in page
    with schema_context(world.brighton.schema_name):
        assert Person.objects.filter(given_name="Ottilie").exists()


def test_a_running_import_page_refreshes_itself_and_shows_progress(  # type: ignore[no-untyped-def]
    world, scenario
) -> None:
    with schema_context(world.brighton.schema_name):
        source = SourceSystem.objects.create(name="SystmOne")
        run = ImportRun.objects.create(
            source_system=source, format="csv", status="running", rows_read=5000, file_path="x"
        )
    page = sign_in(world.brighton_admin).get(f"/admin/imports/{run.pk}/").content.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert "5000 rows read so far" in page


def test_a_practitioner_cannot_reach_the_import_pages(world, scenario) -> None:  # type: ignore[no-untyped-def]
    with schema_context(world.brighton.schema_name):
        source = SourceSystem.objects.create(name="SystmOne")
        run = ImportRun.objects.create(source_system=source, format="csv", file_path="x")
    nurse = sign_in(world.brighton_school_nurse)
    for url in ("/admin/imports/", "/admin/imports/systems/new/", f"/admin/imports/{run.pk}/"):
        assert nurse.get(url).status_code == 403
