"""Benchmark: a feed from a source system, imported with `patchwork import` (decision 0009).

Run on demand (not part of `make test`), against a database of its own:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_feeds \\
        .venv/bin/python tests/bench/bench_feeds.py [--people 25000]

It migrates that database, onboards Feedshire (E10000099) with one school, one role and 50
practitioners if it is not there yet, writes a synthetic CSV (each person with one
involvement, every fourth with a relationship to the person before), and times three runs of
the command in a child process: the first import, the same file again (unchanged), and a
dry run of it. Peak memory is the largest maximum resident set size of the children so far.
Each run empties the council's people first, so the first import creates everything."""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.common import ROOT, benchmark_database  # noqa: E402

CODE = "E10000099"
PRACTITIONERS = 50


def _nhs(n: int) -> str:
    from core.identifiers import nhs_number_check_digit

    while True:
        nine = f"99{n:07d}"
        check = nhs_number_check_digit(nine)
        if check is not None:
            return nine + str(check)
        n += 5_000_000


def write_feed(path: Path, people: int) -> int:
    from core.feeds import CSV_COLUMNS

    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for i in range(people):
            writer.writerow(
                {
                    "record": "person",
                    "source_id": f"P{i}",
                    "given_name": f"Child{i % 997}",
                    "family_name": f"Family{i // 3}",
                    "date_of_birth": f"{2008 + i % 16}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                    "sex": "female" if i % 2 else "male",
                    "nhs_number": _nhs(i) if i % 5 else "",
                    "postcode": "BN3 7BQ",
                }
            )
            writer.writerow(
                {
                    "record": "involvement",
                    "source_id": f"I{i}",
                    "person_source_id": f"P{i}",
                    "organisation_code": "990999",
                    "role": "School nurse",
                    "practitioner_email": f"nurse{i % PRACTITIONERS}@feedshire.example",
                    "start_date": "2024-09-01",
                }
            )
            rows += 2
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=25_000)
    args = parser.parse_args()
    benchmark_database("patchwork_bench_feeds")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    os.environ.pop("REDIS_URL", None)
    # As in production: with DEBUG on, Django keeps the text of the last 9,000 statements.
    os.environ["DEBUG"] = "false"
    import django

    django.setup()
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
        school, _ = Organisation.objects.get_or_create(
            register="gias",
            register_code="990999",
            defaults={"name": "Feedshire Academy", "agency_type": "school"},
        )
        InvolvementRole.objects.get_or_create(name="School nurse")
        for n in range(PRACTITIONERS):
            user, _ = User.objects.get_or_create(
                email=f"nurse{n}@feedshire.example",
                defaults={"full_name": f"Nurse {n}", "role": User.Role.PRACTITIONER},
            )
            Practitioner.objects.get_or_create(
                user=user, defaults={"organisation": school, "job_title": "School nurse"}
            )
        # Each run starts empty, so the first import creates everything.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE core_feedrecord, core_importrun, core_personname, "
                "core_familyrelationship, core_involvement, core_person CASCADE"
            )
    feed = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-feed-{args.people}.csv"
    rows = write_feed(feed, args.people)
    print(f"{feed}: {rows:,} rows ({feed.stat().st_size / 1e6:.1f} MB)")
    source = f"Bench {time.time():.0f}"
    for label, extra in [
        ("first import", []),
        ("same file again (unchanged)", []),
        ("dry run of the same file", ["--dry-run"]),
    ]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "import", str(feed)]
            + ["--council", CODE, "--source", source, *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        summary = " ".join(done.stdout.split("\n")[-7:-1]).replace("  ", " ")
        print(
            f"{label}: {seconds:.1f}s, {rows / seconds:,.0f} rows/s, "
            f"peak RSS {max(peak, before) / 1024:.0f} MB — {summary}",
            flush=True,
        )


if __name__ == "__main__":
    main()
