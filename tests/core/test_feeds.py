"""Feeds from source systems: the CSV template and FHIR Bundles, idempotent re-imports, each
rejection in plain words (touching nothing), dry runs, and the full-snapshot ending rule."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django_tenants.utils import schema_context

from core.feeds import (
    CSV_COLUMNS,
    feed_import,
    import_run_start,
    source_system_by_token,
    source_system_create,
)
from core.models import (
    AuditEvent,
    FamilyRelationship,
    ImportRun,
    Involvement,
    Organisation,
    Person,
    SourceSystem,
)
from tests.factories import OrganisationFactory

SAMPLES = Path(__file__).resolve().parents[2] / "core" / "feeds_samples"
NURSE = "nia.nurse@brighton.test"


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def person(source_id: str, **values: str) -> dict[str, str]:
    return {
        "record": "person",
        "source_id": source_id,
        "given_name": "Lily",
        "family_name": "Marsh",
        "date_of_birth": "2016-04-02",
        "sex": "female",
        "postcode": "BN3 7BQ",
        **values,
    }


def involvement(source_id: str, person_id: str, **values: str) -> dict[str, str]:
    return {
        "record": "involvement",
        "source_id": source_id,
        "person_source_id": person_id,
        "organisation_code": "Hove Park School",
        "role": "School nurse",
        "practitioner_email": NURSE,
        "start_date": "2024-09-01",
        **values,
    }


def relationship(source_id: str, person_id: str, relative_id: str, **values: str) -> dict[str, str]:
    return {
        "record": "relationship",
        "source_id": source_id,
        "person_source_id": person_id,
        "relative_source_id": relative_id,
        "relationship": "parent",
        **values,
    }


def _run(
    data: bytes, *, file_format: str = "csv", source: str = "Liquidlogic", **options: Any
) -> tuple[ImportRun, list[dict[str, str]]]:
    system, _ = SourceSystem.objects.get_or_create(name=source)
    run = import_run_start(
        source=system,
        file_format=file_format,
        binary=io.BytesIO(data),
        full_snapshot=options.get("full_snapshot", False),
        dry_run=options.get("dry_run", False),
    )
    run = feed_import(run=run)
    with open(run.report_path, encoding="utf-8") as report:
        return run, list(csv.DictReader(report))


def _reason(report: list[dict[str, str]], source_id: str) -> str:
    (line,) = [r for r in report if r["source_id"] == source_id]
    assert line["outcome"] == "rejected", line
    return line["reason"]


@pytest.fixture
def brighton(world, scenario, settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.DATA_DIR = tmp_path
    with schema_context(world.brighton.schema_name):
        yield scenario


def test_it_creates_people_relationships_and_involvements(brighton) -> None:  # type: ignore[no-untyped-def]
    """A first import creates each record, links them, and writes one audit event."""
    events = AuditEvent.objects.count()
    run, report = _run(
        _csv(
            [
                person("P1", nhs_number="401 023 2137"),
                person("P2", given_name="Ruth", date_of_birth="1988-01-20"),
                relationship("R1", "P1", "P2"),
                involvement("I1", "P1"),
            ]
        )
    )
    assert run.status == ImportRun.Status.DONE
    assert run.counts["created"] == 4 and run.counts["rejected"] == 0
    assert [r["outcome"] for r in report] == ["created"] * 4
    lily = Person.objects.get(nhs_number="4010232137")
    assert lily.names.get().family_key == "marsh"
    assert lily.postcode_key == "BN37BQ"
    assert FamilyRelationship.objects.get(person=lily).relative.given_name == "Ruth"
    inv = Involvement.objects.get(person=lily)
    assert inv.organisation == brighton.school and inv.role.name == "School nurse"
    assert inv.practitioner.user.email == NURSE and inv.end_date is None
    assert list(AuditEvent.objects.filter(pk__gt=0).values_list("action", flat=True))[events:] == [
        "feed_imported"
    ]


def test_importing_the_same_file_twice_changes_nothing(brighton) -> None:  # type: ignore[no-untyped-def]
    """The second run reports every row unchanged, adds no record and one audit event."""
    data = _csv([person("P1"), person("P2", given_name="Ruth"), relationship("R1", "P1", "P2")])
    data += _csv([involvement("I1", "P1")]).split(b"\n", 1)[1]
    _run(data)
    people, involvements = Person.objects.count(), Involvement.objects.count()
    events = AuditEvent.objects.count()
    run, report = _run(data)
    assert run.counts["unchanged"] == 4 and run.counts["created"] == run.counts["updated"] == 0
    assert {r["outcome"] for r in report} == {"unchanged"}
    assert (Person.objects.count(), Involvement.objects.count()) == (people, involvements)
    assert AuditEvent.objects.count() == events + 1


def test_a_changed_row_updates_its_record(brighton) -> None:  # type: ignore[no-untyped-def]
    """A new surname in the source renames the person (and their searchable name)."""
    _run(_csv([person("P1")]))
    run, _ = _run(_csv([person("P1", family_name="Marsh-Hale")]))
    assert run.counts["updated"] == 1
    lily = Person.objects.get(given_name="Lily")
    assert lily.family_name == "Marsh-Hale"
    assert lily.names.get().family_key == "marshhale"


def test_a_feed_never_unshields_a_person(brighton) -> None:  # type: ignore[no-untyped-def]
    """Shielding is a practitioner's judgement: the feed saying 'no' leaves it on."""
    _run(_csv([person("P1")]))
    Person.objects.filter(given_name="Lily").update(shielded=True)
    _run(_csv([person("P1", family_name="Marsh-Hale", shielded="no")]))
    assert Person.objects.get(given_name="Lily").shielded


def test_a_feed_links_a_person_already_in_patchwork_by_nhs_number(brighton) -> None:  # type: ignore[no-untyped-def]
    """Ava, added by a practitioner, is not duplicated: the source's row speaks for her."""
    run, _ = _run(
        _csv([person("P9", given_name="Ava", family_name="O'Brien-Smith", nhs_number="9434765919")])
    )
    assert run.counts["updated"] == 1
    assert Person.objects.filter(nhs_number="9434765919").count() == 1


@pytest.mark.parametrize(
    ("rows", "source_id", "reason"),
    [
        ([person("P1", nhs_number="943 476 5918")], "P1", "The NHS number '943 476 5918' is not"),
        (
            [person("P1"), involvement("I1", "P1", organisation_code="999999")],
            "I1",
            "No organisation has the code or name '999999'",
        ),
        (
            [person("P1"), involvement("I1", "P1", role="Wizard")],
            "I1",
            "The role 'Wizard' is not one of the council's roles",
        ),
        (
            [person("P1"), relationship("R1", "P1", "P404")],
            "R1",
            "The relative P404 is not in this file",
        ),
        (
            [person("P1"), involvement("I1", "P404")],
            "I1",
            "The person P404 is not in this file",
        ),
        (
            [person("P1"), involvement("I1", "P1", practitioner_email="who@nowhere.test")],
            "I1",
            "No practitioner with the email 'who@nowhere.test'",
        ),
        (
            [person("P1"), involvement("I1", "P1", start_date="2999-01-01")],
            "I1",
            "The start date is in the future",
        ),
        ([person("P1", date_of_birth="31/02/2016")], "P1", "is not a date like 2015-03-14"),
    ],
    ids=[
        "bad NHS number",
        "unknown organisation code",
        "unknown role",
        "relationship to an unknown person",
        "involvement of an unknown person",
        "unknown practitioner",
        "start in the future",
        "impossible date",
    ],
)
def test_a_bad_row_is_rejected_with_its_reason_and_touches_nothing(  # type: ignore[no-untyped-def]
    brighton, rows, source_id, reason
) -> None:
    """The rest of the file is imported; the rejected row adds nothing at all."""
    people, involvements = Person.objects.count(), Involvement.objects.count()
    relationships = FamilyRelationship.objects.count()
    run, report = _run(_csv(rows))
    assert reason in _reason(report, source_id)
    assert run.counts["rejected"] == 1
    written = len(rows) - 1
    assert (
        Person.objects.count() + Involvement.objects.count() + (FamilyRelationship.objects.count())
        == people + involvements + relationships + written
    )


def test_a_source_id_twice_in_one_file_is_rejected_the_second_time(brighton) -> None:  # type: ignore[no-untyped-def]
    """The first row is imported; the second, with the same id, is rejected whole."""
    run, report = _run(_csv([person("P1"), person("P1", given_name="Other")]))
    assert [r["outcome"] for r in report] == ["created", "rejected"]
    assert "appears more than once in this file" in report[1]["reason"]
    assert not Person.objects.filter(given_name="Other").exists()


def test_a_child_protection_role_at_a_sensitive_service_is_rejected(brighton) -> None:  # type: ignore[no-untyped-def]
    """The sensitive-service rule holds for feeds: the row is refused, not made visible."""
    _, report = _run(
        _csv(
            [
                person("P1"),
                involvement(
                    "I1",
                    "P1",
                    organisation_code="Sussex CAMHS",
                    role="Child protection social worker",
                ),
            ]
        )
    )
    assert "is a sensitive service" in _reason(report, "I1")


def test_a_sensitive_service_involvement_is_sensitive(brighton) -> None:  # type: ignore[no-untyped-def]
    _run(
        _csv(
            [
                person("P1"),
                involvement(
                    "I1", "P1", organisation_code="Sussex CAMHS", role="CAMHS practitioner"
                ),
            ]
        )
    )
    assert Involvement.objects.get(person__given_name="Lily").sensitive


def test_an_organisation_is_found_by_its_register_code(brighton) -> None:  # type: ignore[no-untyped-def]
    school = OrganisationFactory(
        name="Patcham Junior", agency_type="school", register="gias", register_code="990123"
    )
    _run(_csv([person("P1"), involvement("I1", "P1", organisation_code="990123")]))
    assert Involvement.objects.get(person__given_name="Lily").organisation == school


def test_a_full_snapshot_ends_involvements_no_longer_in_it(brighton) -> None:  # type: ignore[no-untyped-def]
    """I2 is missing from the second, full file: it ends, 'ended in source system'."""
    _run(
        _csv([person("P1"), involvement("I1", "P1"), involvement("I2", "P1", role="Class teacher")])
    )
    _run(
        _csv([person("P1"), involvement("I1", "P1")]),
    )
    assert Involvement.objects.filter(person__given_name="Lily", end_date__isnull=True).count() == 2
    run, report = _run(_csv([person("P1"), involvement("I1", "P1")]), full_snapshot=True)
    assert run.counts["ended"] == 1
    (ended,) = [r for r in report if r["outcome"] == "ended"]
    assert ended["source_id"] == "I2" and "ended in source system" in ended["reason"]
    gone = Involvement.objects.get(person__given_name="Lily", role__name="Class teacher")
    assert gone.end_date == date.today()
    assert gone.end_reason == Involvement.EndReason.SOURCE_ENDED
    assert Involvement.objects.get(person__given_name="Lily", role__name="School nurse").is_current


def test_a_full_snapshot_does_not_end_a_row_it_rejected(brighton) -> None:  # type: ignore[no-untyped-def]
    """A row still in the source but rejected this time (a typo) is not taken as gone."""
    _run(_csv([person("P1"), involvement("I1", "P1")]))
    run, _ = _run(_csv([person("P1"), involvement("I1", "P1", role="Wizard")]), full_snapshot=True)
    assert run.counts["ended"] == 0
    assert Involvement.objects.get(person__given_name="Lily").is_current


def test_a_dry_run_reports_and_changes_nothing(brighton) -> None:  # type: ignore[no-untyped-def]
    """Every row is judged as the real run would judge it (P1's involvement finds P1, which
    the dry run did not write), and nothing is written but the run and one audit event."""
    people = Person.objects.count()
    run, report = _run(
        _csv([person("P1"), involvement("I1", "P1"), involvement("I2", "P404")]), dry_run=True
    )
    assert [r["outcome"] for r in report] == ["created", "created", "rejected"]
    assert Person.objects.count() == people
    assert AuditEvent.objects.latest("id").action == "feed_checked"


def test_the_sample_csv_imports_cleanly(brighton) -> None:  # type: ignore[no-untyped-def]
    run, report = _run((SAMPLES / "feed.csv").read_bytes())
    assert run.counts["rejected"] == 0, [r for r in report if r["outcome"] == "rejected"]
    assert run.counts["created"] == len(report)


def _bundle(*resources: dict[str, Any]) -> bytes:
    entries = [{"resource": r} for r in resources]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


ROLE = {
    "resourceType": "PractitionerRole",
    "id": "PR1",
    "code": [{"text": "School nurse"}],
    "organization": {"reference": "Organization/O1"},
    "telecom": [{"system": "email", "value": NURSE}],
}
ORGANISATION = {"resourceType": "Organization", "id": "O1", "name": "Hove Park School"}
PATIENT = {
    "resourceType": "Patient",
    "id": "P1",
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "4010232137"}],
    "name": [{"use": "official", "given": ["Lily"], "family": "Marsh"}],
    "birthDate": "2016-04-02",
    "gender": "female",
}


def test_a_fhir_bundle_imports_people_relationships_and_involvements(brighton) -> None:  # type: ignore[no-untyped-def]
    mother = {
        **PATIENT,
        "id": "P2",
        "identifier": [],
        "name": [{"given": ["Ruth"], "family": "Marsh"}],
    }
    related = {
        "resourceType": "RelatedPerson",
        "id": "R1",
        "patient": {"reference": "Patient/P1"},
        "identifier": [{"system": "urn:patchwork:relative-patient", "value": "P2"}],
        "relationship": [{"coding": [{"code": "MTH"}]}],
    }
    episode = {
        "resourceType": "EpisodeOfCare",
        "id": "E1",
        "patient": {"reference": "Patient/P1"},
        "careManager": {"reference": "PractitionerRole/PR1"},
        "period": {"start": "2024-09-01"},
    }
    team = {
        "resourceType": "CareTeam",
        "id": "CT1",
        "subject": {"reference": "Patient/P2"},
        "participant": [{"member": {"reference": "PractitionerRole/PR1"}}],
        "period": {"start": "2023-01-01"},
    }
    data = _bundle(ORGANISATION, ROLE, PATIENT, mother, related, episode, team)
    run, report = _run(data, file_format="fhir")
    assert run.counts["created"] == 5, report
    lily = Person.objects.get(nhs_number="4010232137")
    assert FamilyRelationship.objects.get(person=lily).kind == "parent"
    assert Involvement.objects.get(person=lily).organisation == brighton.school
    assert Involvement.objects.get(person__given_name="Ruth").start_date == date(2023, 1, 1)
    again, _ = _run(data, file_format="fhir")
    assert again.counts["unchanged"] == 5


def test_malformed_fhir_is_refused_or_rejected_with_the_reason(brighton) -> None:  # type: ignore[no-untyped-def]
    """Broken JSON or a file that is not a Bundle fails the run, naming why; a resource
    missing what it needs is one rejected row."""
    broken, _ = _run(
        b'{"resourceType": "Bundle", "entry": [{"resource": {"id": ', file_format="fhir"
    )
    assert broken.status == ImportRun.Status.FAILED and "not valid JSON" in broken.error
    patient, _ = _run(json.dumps(PATIENT).encode(), file_format="fhir")
    assert patient.status == ImportRun.Status.FAILED and "not a FHIR Bundle" in patient.error
    no_role = {
        "resourceType": "EpisodeOfCare",
        "id": "E1",
        "patient": {"reference": "Patient/P1"},
        "careManager": {"reference": "PractitionerRole/PR9"},
    }
    run, report = _run(_bundle(PATIENT, no_role), file_format="fhir")
    assert "PractitionerRole/PR9, not given earlier in the Bundle" in _reason(report, "E1")
    assert run.counts["created"] == 1


def test_a_file_breaking_off_after_whole_batches_keeps_them_and_fails_the_run(brighton) -> None:  # type: ignore[no-untyped-def]
    """Rows are read on a thread ahead of the writer: a file that breaks off part way fails
    the run with the reason, in its place in the file, after the whole batches before it
    were imported (the batch it broke in is not); the reading thread is gone and the
    process's cycle collector, paused for the run, is running again."""
    import gc
    import threading

    from core.feeds import BATCH_SIZE

    # Two whole batches, then a few hundred rows of a third and bytes that are not UTF-8.
    people = [person(f"P{n}", nhs_number="") for n in range(BATCH_SIZE * 2 + 300)]
    data = _csv(people) + b"person,P-broken,\xff\xfe\n"
    run, report = _run(data)
    assert run.status == ImportRun.Status.FAILED and "cannot be read after line" in run.error
    assert run.counts["created"] == BATCH_SIZE * 2
    assert Person.objects.filter(given_name="Lily").count() == BATCH_SIZE * 2
    assert gc.isenabled()
    assert not [t for t in threading.enumerate() if t.name == "feed-reader"]


def test_the_command_imports_and_prints_the_summary(
    world, scenario, settings, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_DIR = tmp_path
    path = tmp_path / "feed.csv"
    path.write_bytes(_csv([person("P1"), involvement("I1", "P1")]))
    call_command("import", str(path), council="E06000043", source="Capita One", dry_run=True)
    out = capsys.readouterr().out
    assert "Dry run (nothing changed) from Capita One, 2 rows" in out
    assert "created: 2" in out


def test_an_import_token_finds_its_own_source_system_only(brighton) -> None:  # type: ignore[no-untyped-def]
    """Kept as a hash; a wrong or switched-off token finds nothing."""
    source, token = source_system_create(actor=brighton.admin, name="EMIS Web")
    assert source_system_by_token(token) == source
    assert token not in source.token_hash
    assert source_system_by_token(token + "x") is None
    SourceSystem.objects.filter(pk=source.pk).update(active=False)
    assert source_system_by_token(token) is None


def test_only_an_administrator_creates_a_source_system(brighton) -> None:  # type: ignore[no-untyped-def]
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        source_system_create(actor=brighton.social_worker, name="EMIS Web")


def test_organisation_rows_are_untouched(brighton) -> None:  # type: ignore[no-untyped-def]
    """Feeds name organisations; they never add them."""
    before = Organisation.objects.count()
    _run(_csv([person("P1"), involvement("I1", "P1", organisation_code="New Org")]))
    assert Organisation.objects.count() == before


def test_an_involvement_already_recorded_is_taken_over_not_duplicated(brighton) -> None:  # type: ignore[no-untyped-def]
    """Nia already records herself as Ava's school nurse: the feed's row becomes that one."""
    ava = brighton.ava
    before = Involvement.objects.filter(person=ava).count()
    run, _ = _run(
        _csv(
            [
                person(
                    "P9", given_name="Ava", family_name="O'Brien-Smith", nhs_number="9434765919"
                ),
                involvement("I9", "P9", start_date="2023-09-01"),
            ]
        )
    )
    assert run.counts["rejected"] == 0
    assert Involvement.objects.filter(person=ava).count() == before
    nurse = Involvement.objects.get(person=ava, role__name="School nurse")
    assert nurse.start_date == date(2023, 9, 1)


def test_an_involvement_past_retention_is_not_imported(brighton) -> None:  # type: ignore[no-untyped-def]
    """Retention holds for feeds: what the policy would purge is never brought back."""
    _, report = _run(
        _csv(
            [person("P1"), involvement("I1", "P1", start_date="2001-01-01", end_date="2002-01-01")]
        )
    )
    assert "past the council's retention period" in _reason(report, "I1")


def test_the_purge_forgets_the_keys_of_what_it_deleted(brighton) -> None:  # type: ignore[no-untyped-def]
    """Keys never point at a purged record; the same row later creates the record afresh."""
    from datetime import timedelta

    from django.utils import timezone

    from core.models import FeedRecord
    from core.retention import retention_purge

    _run(_csv([person("P1")]))
    lily = Person.objects.get(given_name="Lily")
    Person.objects.filter(pk=lily.pk).update(archived_at=timezone.now() - timedelta(days=400))
    retention_purge(today=date.today())
    assert not FeedRecord.objects.filter(kind="person", local_id=lily.pk).exists()
    run, _ = _run(_csv([person("P1")]))
    assert run.counts["created"] == 1


def test_a_key_whose_record_is_gone_is_rewritten_not_duplicated(brighton) -> None:  # type: ignore[no-untyped-def]
    """A key left pointing at a record that is no longer there (removed outside the import)
    counts as no key: the row creates the record afresh and the key follows it, in a run
    that also creates new records of the same kind (written the fast way, with COPY)."""
    from core.models import FeedRecord

    _run(_csv([person("P1"), involvement("I1", "P1")]))
    lily = Person.objects.get(given_name="Lily")
    Involvement.objects.filter(person=lily).delete()
    run, report = _run(
        _csv([person("P1"), involvement("I1", "P1"), person("P2", given_name="Ava")])
        + _csv([involvement("I2", "P2")]).split(b"\n", 1)[1]
    )
    assert run.counts == {**run.counts, "created": 3, "unchanged": 1, "rejected": 0}, report
    key = FeedRecord.objects.get(kind="involvement", source_id="I1")
    assert Involvement.objects.get(pk=key.local_id).person == lily
    assert FeedRecord.objects.filter(kind="involvement").count() == 2


def test_one_nhs_number_for_two_people_is_refused_in_a_file_and_across_runs(brighton) -> None:  # type: ignore[no-untyped-def]
    """Within a file the second person is rejected; in a later file too, naming the first."""
    _, report = _run(
        _csv([person("P1", nhs_number="4010232137"), person("P2", nhs_number="4010232137")])
    )
    assert "given to another person earlier in this file" in _reason(report, "P2")
    _, later = _run(_csv([person("P3", nhs_number="4010232137")]))
    assert "belongs to the person P1 from this source system" in _reason(later, "P3")
    assert Person.objects.filter(nhs_number="4010232137").count() == 1


def test_a_current_involvement_brings_an_archived_person_back(brighton) -> None:  # type: ignore[no-untyped-def]
    """Retention archived Lily; the source is working with her again, so the purge must not
    take her: she is back in search with her new involvement."""
    from django.utils import timezone

    _run(_csv([person("P1")]))
    Person.objects.filter(given_name="Lily").update(archived_at=timezone.now())
    _run(_csv([involvement("I1", "P1")]))
    assert Person.objects.get(given_name="Lily").archived_at is None


def test_a_dry_run_of_a_full_snapshot_reports_what_would_end_and_ends_nothing(brighton) -> None:  # type: ignore[no-untyped-def]
    _run(
        _csv([person("P1"), involvement("I1", "P1"), involvement("I2", "P1", role="Class teacher")])
    )
    run, report = _run(
        _csv([person("P1"), involvement("I1", "P1")]), full_snapshot=True, dry_run=True
    )
    assert run.counts["ended"] == 1 and report[-1]["source_id"] == "I2"
    assert Involvement.objects.filter(person__given_name="Lily", end_date__isnull=True).count() == 2


def test_a_partial_feed_never_ends_anything(brighton) -> None:  # type: ignore[no-untyped-def]
    _run(
        _csv([person("P1"), involvement("I1", "P1"), involvement("I2", "P1", role="Class teacher")])
    )
    run, _ = _run(_csv([person("P1")]))
    assert run.counts["ended"] == 0
    assert Involvement.objects.filter(person__given_name="Lily", end_date__isnull=True).count() == 2


def test_the_files_of_an_old_run_are_deleted_and_the_run_kept(brighton) -> None:  # type: ignore[no-untyped-def]
    """Thirty days (IMPORT_FILES_KEEP_DAYS) after a run finished, the nightly retention task
    deletes the file imported and its report — both name people — and keeps the run with its
    counts. A dry run's file that a newer run imported is kept for that run; a forgotten
    report says so, and a forgotten check cannot be imported."""
    from datetime import timedelta

    from django.core.exceptions import ValidationError
    from django.http import Http404
    from django.utils import timezone

    from core.feeds import import_files_forget, import_report_response, import_run_apply
    from core.tasks import retention_run

    old, _ = _run(_csv([person("P1")]))
    checked, _ = _run(_csv([person("P2", given_name="Ava")]), dry_run=True)
    applied = ImportRun.objects.create(
        source_system=checked.source_system,
        format=checked.format,
        dry_run=False,
        file_path=checked.file_path,
        finished_at=timezone.now(),
    )
    month_ago = timezone.now() - timedelta(days=31)
    ImportRun.objects.filter(pk__in=[old.pk, checked.pk]).update(finished_at=month_ago)
    files = [Path(old.file_path), Path(old.report_path), Path(checked.report_path)]
    assert all(f.exists() for f in files) and Path(checked.file_path).exists()

    assert retention_run()["import_files_deleted"] == 3
    assert not any(f.exists() for f in files)
    assert Path(applied.file_path).exists()  # the newer run still reads it
    old.refresh_from_db()
    assert (old.file_path, old.report_path) == ("", "")
    assert old.counts["created"] == 1 and old.status == ImportRun.Status.DONE
    with pytest.raises(Http404, match="no longer kept"):
        import_report_response(old)
    checked.refresh_from_db()
    ImportRun.objects.filter(pk=applied.pk).update(finished_at=month_ago)
    assert import_files_forget() == 1  # now the dry run's file goes too
    checked.refresh_from_db()
    with pytest.raises(ValidationError, match="no longer kept"):
        import_run_apply(run=checked, actor=None)
