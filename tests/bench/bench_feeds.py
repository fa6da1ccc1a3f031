"""Benchmark: a county's feed imported with `patchwork import` (decision 0009).

Run on demand (not part of `make test`), against a database of its own:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_feeds \\
        .venv/bin/python tests/bench/bench_feeds.py [--involvements 1000000] [--format both]

It migrates that database, onboards Feedshire (E10000099) with a school, a GP practice, two
roles and 50 practitioners if it is not there yet, and writes a synthetic feed in the shape
of a county's (about two involvements per person, as in the councils' own systems): N
involvements, N/2 people, a sibling relationship for every fourth person. The same people
are written as the CSV template and as a FHIR R4 Bundle (Organization, PractitionerRole,
Patient, RelatedPerson, EpisodeOfCare). For each format it times three runs of the command
in a child process (its start-up included): the first import into an emptied council, the
same file again (unchanged), and a dry run of it; and reads each child's peak resident set
size and CPU time (PostgreSQL's is not in it). The floor, measured in the same run, is
reading the file into rows and nothing more. `--profile` runs one first import in this
process under cProfile instead, `--cpu` without it, printing its backend's CPU too."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.common import ROOT, benchmark_database  # noqa: E402

CODE = "E10000099"
PRACTITIONERS = 50
SCHOOL, PRACTICE = "990999", "Y99999"
ROLES = ("School nurse", "Health visitor")
# GNU time's format: peak resident set size in KB, then elapsed seconds.
TIME = "/usr/bin/time"


def _nhs(n: int) -> str:
    from core.identifiers import nhs_number_check_digit

    while True:
        nine = f"99{n:07d}"
        check = nhs_number_check_digit(nine)
        if check is not None:
            return nine + str(check)
        n += 5_000_000


def _person(i: int) -> dict[str, str]:
    return {
        "source_id": f"P{i}",
        "given_name": f"Child{i % 997}",
        "family_name": f"Family{i // 3}",
        "date_of_birth": f"{2008 + i % 16}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "sex": "female" if i % 2 else "male",
        "nhs_number": _nhs(i) if i % 5 else "",
        "postcode": "BN3 7BQ",
    }


def _involvements(i: int) -> list[dict[str, str]]:
    """A person's two involvements: the school nurse and the practice's health visitor."""
    return [
        {
            "source_id": f"I{i}-{n}",
            "person_source_id": f"P{i}",
            "organisation_code": (SCHOOL, PRACTICE)[n],
            "role": ROLES[n],
            "practitioner_email": f"nurse{(i + n) % PRACTITIONERS}@feedshire.example",
            "start_date": "2024-09-01",
        }
        for n in range(2)
    ]


def write_csv(path: Path, people: int) -> int:
    from core.feeds import CSV_COLUMNS

    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for i in range(people):
            writer.writerow({"record": "person", **_person(i)})
            for involvement in _involvements(i):
                writer.writerow({"record": "involvement", **involvement})
            rows += 3
            if i % 4 == 3:
                writer.writerow(
                    {
                        "record": "relationship",
                        "source_id": f"R{i}",
                        "person_source_id": f"P{i}",
                        "relative_source_id": f"P{i - 1}",
                        "relationship": "sibling",
                    }
                )
                rows += 1
    return rows


def _entry(out: IO[str], resource: dict, first: list[bool]) -> None:
    out.write(("" if first[0] else ",\n") + json.dumps({"resource": resource}))
    first[0] = False


def write_fhir(path: Path, people: int) -> int:
    """The same people as a Bundle; returns the number of rows it stands for."""
    rows = 0
    first = [True]
    with path.open("w") as out:
        out.write('{"resourceType": "Bundle", "type": "collection", "entry": [\n')
        for code, system in [
            (SCHOOL, "urn:gias:urn"),
            (PRACTICE, "https://fhir.nhs.uk/Id/ods-organization-code"),
        ]:
            org = {"resourceType": "Organization", "id": code, "identifier": []}
            org["identifier"].append({"system": system, "value": code})
            _entry(out, org, first)
        for p in range(PRACTITIONERS):
            for n, role in enumerate(ROLES):
                _entry(
                    out,
                    {
                        "resourceType": "PractitionerRole",
                        "id": f"nurse{p}-{n}",
                        "code": [{"text": role}],
                        "organization": {"reference": f"Organization/{(SCHOOL, PRACTICE)[n]}"},
                        "telecom": [{"system": "email", "value": f"nurse{p}@feedshire.example"}],
                    },
                    first,
                )
        for i in range(people):
            person = _person(i)
            patient: dict = {
                "resourceType": "Patient",
                "id": person["source_id"],
                "name": [
                    {"use": "official", "family": person["family_name"]}
                    | {"given": [person["given_name"]]}
                ],
                "birthDate": person["date_of_birth"],
                "gender": person["sex"],
                "address": [{"postalCode": person["postcode"]}],
            }
            if person["nhs_number"]:
                patient["identifier"] = [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": person["nhs_number"]}
                ]
            _entry(out, patient, first)
            for n, involvement in enumerate(_involvements(i)):
                practitioner = (i + n) % PRACTITIONERS
                _entry(
                    out,
                    {
                        "resourceType": "EpisodeOfCare",
                        "id": involvement["source_id"],
                        "status": "active",
                        "patient": {"reference": f"Patient/P{i}"},
                        "careManager": {"reference": f"PractitionerRole/nurse{practitioner}-{n}"},
                        "period": {"start": involvement["start_date"]},
                    },
                    first,
                )
            rows += 3
            if i % 4 == 3:
                _entry(
                    out,
                    {
                        "resourceType": "RelatedPerson",
                        "id": f"R{i}",
                        "patient": {"reference": f"Patient/P{i}"},
                        "identifier": [
                            {"system": "urn:patchwork:relative-patient", "value": f"P{i - 1}"}
                        ],
                        "relationship": [{"coding": [{"code": "SIB"}]}],
                    },
                    first,
                )
                rows += 1
        out.write("\n]}\n")
    return rows


def council_ready() -> str:
    """Feedshire with its organisations, roles and practitioners, and no people."""
    from django.core.management import call_command
    from django_tenants.utils import schema_context

    from accounts.models import User
    from core.models import InvolvementRole, Organisation, Practitioner
    from tenants.selectors import council_by_code
    from tenants.services import council_onboard

    call_command("migrate_platform", verbosity=0)
    council = council_by_code(CODE)
    if council is None:
        council = council_onboard(
            name="Feedshire", code=CODE, admin_email="admin@feedshire.example"
        ).council
    with schema_context(council.schema_name):
        orgs = [
            Organisation.objects.get_or_create(
                register=register,
                register_code=code,
                defaults={"name": name, "agency_type": agency},
            )[0]
            for register, code, name, agency in [
                ("gias", SCHOOL, "Feedshire Academy", "school"),
                ("ods_gp", PRACTICE, "Feedshire Surgery", "gp"),
            ]
        ]
        for role in ROLES:
            InvolvementRole.objects.get_or_create(name=role)
        for n in range(PRACTITIONERS):
            user, _ = User.objects.get_or_create(
                email=f"nurse{n}@feedshire.example",
                defaults={"full_name": f"Nurse {n}", "role": User.Role.PRACTITIONER},
            )
            Practitioner.objects.get_or_create(
                user=user, defaults={"organisation": orgs[n % 2], "job_title": "Nurse"}
            )
    return council.schema_name


def council_empty(schema: str) -> None:
    from django.db import connection
    from django_tenants.utils import schema_context

    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE core_feedrecord, core_importrun, core_personname, "
            "core_familyrelationship, core_involvement, core_person CASCADE"
        )
        cursor.execute("VACUUM ANALYZE")


def run_command(
    feed: Path, fmt: str, source: str, extra: list[str]
) -> tuple[float, float, float, str]:
    """Seconds, peak RSS in MB, CPU seconds, and the summary of one `patchwork import` run in
    a child process (PostgreSQL's own CPU is not in it)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [TIME, "-f", "%M %U %S", sys.executable, str(ROOT / "manage.py"), "import", str(feed)]
        + ["--council", CODE, "--source", source, "--format", fmt, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    peak_kb, user, system = done.stderr.strip().splitlines()[-1].split()
    summary = " ".join(done.stdout.split("\n")[-7:-1]).replace("  ", " ")
    return seconds, int(peak_kb) / 1024, float(user) + float(system), summary


def read_floor(feed: Path, fmt: str) -> float:
    """Seconds to read the file into rows and nothing else (the CSV reader, or ijson over
    the Bundle): the part of an import no change to the checks or the writing can remove."""
    from core.feeds import csv_rows
    from core.fhir_feeds import fhir_rows

    t0 = time.perf_counter()
    with feed.open("rb") as binary:
        for _ in csv_rows(binary) if fmt == "csv" else fhir_rows(binary):
            pass
    return time.perf_counter() - t0


def profile(feed: Path, fmt: str, schema: str, *, functions: bool = True) -> None:
    import cProfile
    import pstats

    from django_tenants.utils import schema_context

    from core.feeds import feed_import, import_run_start
    from core.models import SourceSystem

    with schema_context(schema):
        source, _ = SourceSystem.objects.get_or_create(name=f"Profile {time.time():.0f}")
        with feed.open("rb") as binary:
            run = import_run_start(
                source=source, file_format=fmt, binary=binary, full_snapshot=False, dry_run=False
            )
        from collections import Counter

        from django.db import connection

        spent: Counter[str] = Counter()

        def timed(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                spent[" ".join(str(sql).split())[:90]] += time.perf_counter() - t

        def backend_cpu() -> float:
            pid = connection.connection.info.backend_pid
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        connection.ensure_connection()
        cpu0, db0 = time.process_time(), backend_cpu()
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        if functions:
            profiler.enable()
            with connection.execute_wrapper(timed):
                run = feed_import(run=run)
            profiler.disable()
        else:
            run = feed_import(run=run)
        print(
            f"CPU: this process {time.process_time() - cpu0:.1f}s"
            f"{' (under the profiler)' if functions else ''}, "
            f"its PostgreSQL backend {backend_cpu() - db0:.1f}s"
        )
        for sql, seconds in spent.most_common(15):
            print(f"{seconds:7.2f}s  {sql}")
        print(f"{fmt} first import in process: {time.perf_counter() - t0:.1f}s {run.counts}")
        if not functions:
            return
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(r"/work/main/(core|federation|tenants)", 30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--involvements", type=int, default=100_000)
    parser.add_argument("--format", choices=["csv", "fhir", "both"], default="both")
    parser.add_argument(
        "--profile", action="store_true", help="one first import in process, under cProfile"
    )
    parser.add_argument(
        "--cpu", action="store_true", help="one first import in process: its CPU and its backend's"
    )
    args = parser.parse_args()
    benchmark_database("patchwork_bench_feeds")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    os.environ.pop("REDIS_URL", None)
    # As in production: with DEBUG on, Django keeps the text of the last 9,000 statements.
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
    schema = council_ready()
    people = args.involvements // 2
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    for fmt in ["csv", "fhir"] if args.format == "both" else [args.format]:
        feed = folder / f"bench-feed-{args.involvements}.{'json' if fmt == 'fhir' else 'csv'}"
        rows = (write_csv if fmt == "csv" else write_fhir)(feed, people)
        print(f"{feed}: {rows:,} rows, {people:,} people ({feed.stat().st_size / 1e6:.0f} MB)")
        council_empty(schema)
        if args.profile or args.cpu:
            profile(feed, fmt, schema, functions=args.profile)
            continue
        print(f"{fmt} floor, reading the file alone: {read_floor(feed, fmt):.1f}s", flush=True)
        source = f"Bench {fmt} {time.time():.0f}"
        for label, extra in [
            ("first import", []),
            ("same file again (unchanged)", []),
            ("dry run of the same file", ["--dry-run"]),
        ]:
            seconds, peak, cpu, summary = run_command(feed, fmt, source, extra)
            print(
                f"{fmt} {label}: {seconds:.1f}s, {rows / seconds:,.0f} rows/s, "
                f"CPU {cpu:.1f}s, peak RSS {peak:.0f} MB — {summary}",
                flush=True,
            )


if __name__ == "__main__":
    main()
