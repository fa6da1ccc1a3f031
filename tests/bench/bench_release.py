"""Benchmark: a release with one migration taken to every council by `migrate_platform`.

Run on demand (not part of `make test`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_release \
        .venv/bin/python tests/bench/bench_release.py [--councils 400] [--workers 2]

In its own database (created if missing, kept between runs), it onboards councils until
there are `--councils` of them (only the missing ones: the first run takes minutes), takes
the release of tests/operations/release (a nullable column on core_person, then its index
built CONCURRENTLY) back out of every schema if an earlier run applied it, then times:

- the release: `migrate_platform` applying both migrations to the public schema, the
  template and every council, in `--workers` processes;
- the same command again, with nothing to do;
- for comparison, the way it was done before (decision 0023): a new `migrate_schemas
  --schema=...` process per council, for `--compare` councils.

`--onboard-only` stops after onboarding (to prepare the councils ahead of a timed run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.common import ROOT, benchmark_database  # noqa: E402


def cpu() -> float:
    """CPU seconds of this process and its finished children (the pool's workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f}, {five:.1f}, {fifteen:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--councils", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--compare", type=int, default=5, help="councils migrated the old way")
    parser.add_argument("--onboard-only", action="store_true")
    args = parser.parse_args()

    url = benchmark_database("patchwork_bench_release")
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import logging

    import django

    django.setup()
    logging.getLogger("tenants").setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from tenants.models import Council
    from tenants.services import council_onboard
    from tests.operations.release import RELEASE, release_undo

    with connection.cursor() as cursor:
        release_undo(cursor)
    call_command("migrate_platform", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    have = Council.objects.exclude(schema_name="public").count()
    if have < args.councils:
        print(f"Onboarding {args.councils - have} councils ({have} there), {load()}")
        started = time.monotonic()
        for serial in range(have + 1, args.councils + 1):
            council_onboard(
                name=f"Release Bench Council {serial}",
                code=f"E98{serial:06d}",
                admin_email=f"admin{serial}@release-bench.test",
            )
            if serial % 50 == 0:
                print(f"  {serial} councils, {time.monotonic() - started:.0f} s")
        print(f"Onboarded in {time.monotonic() - started:.0f} s")
    councils = Council.objects.exclude(schema_name="public").count()
    if args.onboard_only:
        return

    settings.MIGRATION_MODULES = RELEASE
    summary = Path(tempfile.mkdtemp()) / "release.json"
    print(f"Release to {councils} councils with {args.workers} workers, {load()}")
    started, cpu_before = time.monotonic(), cpu()
    call_command("migrate_platform", parallel=args.workers, json=str(summary), stdout=sys.stdout)
    release_seconds = time.monotonic() - started
    release_cpu = cpu() - cpu_before
    after_load = load()
    rows = json.loads(summary.read_text())["councils"]
    seconds = sorted(row["seconds"] for row in rows if row["status"] == "migrated")
    migrated = len(seconds)
    failed = sum(row["status"] == "failed" for row in rows)

    started = time.monotonic()
    call_command("migrate_platform", stdout=open(os.devnull, "w"))  # noqa: SIM115
    noop_seconds = time.monotonic() - started

    old_way: list[float] = []
    old_cpu: list[float] = []
    if args.compare:
        # Take the release back out of a few councils, and migrate each in its own process.
        sample = list(
            Council.objects.exclude(schema_name="public")
            .order_by("schema_name")
            .values_list("schema_name", flat=True)[: args.compare]
        )
        names = ["9001_person_release_note", "9002_person_release_note_index"]
        with connection.cursor() as cursor:
            for schema in sample:
                cursor.execute(f'ALTER TABLE "{schema}".core_person DROP COLUMN release_note')
                cursor.execute(
                    f'DELETE FROM "{schema}".django_migrations '  # noqa: S608
                    "WHERE app = 'core' AND name = ANY(%s)",
                    [names],
                )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.operations.release.settings",
            "DATABASE_URL": url,
        }
        for schema in sample:
            began, cpu_began = time.monotonic(), cpu()
            subprocess.run(
                [sys.executable, "-m", "deploy.cli", "migrate_schemas", f"--schema={schema}"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            old_way.append(time.monotonic() - began)
            old_cpu.append(cpu() - cpu_began)

    print()
    print(f"councils                                  {councils}")
    print(f"workers                                   {args.workers}")
    print(f"release, whole run (s)                    {release_seconds:.1f}")
    print(f"release, CPU: command and workers (s)    {release_cpu:.1f}")
    print(f"councils migrated / failed                {migrated} / {failed}")
    if seconds:
        print(
            f"per council in its worker p50 / max (s)   {statistics.median(seconds):.3f} / "
            f"{seconds[-1]:.3f}"
        )
        print(f"per council, whole run / councils (s)     {release_seconds / migrated:.3f}")
    print(f"no-op run after it (s)                    {noop_seconds:.1f}")
    if old_way:
        print(
            f"old way: a process per council p50 (s)    {statistics.median(old_way):.2f} "
            f"(x {councils} councils = {statistics.median(old_way) * councils:.0f} s at "
            "--parallel 1)"
        )
        print(f"old way: CPU per council process p50 (s)  {statistics.median(old_cpu):.2f}")
    print(f"target: under 120 s for the release: {'met' if release_seconds < 120 else 'NOT met'}")
    print(f"load: before the release see above; after it {after_load}")
    with connection.cursor() as cursor:
        release_undo(cursor)


if __name__ == "__main__":
    main()
