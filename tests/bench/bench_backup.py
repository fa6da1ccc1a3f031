"""Benchmark: the nightly backup and a full restore of a deployment of many empty councils,
on the server's own `max_locks_per_transaction` (PostgreSQL's default is 64).

Run on demand (not part of `make test`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_backup \
        .venv/bin/python tests/bench/bench_backup.py [--councils 1000] [--prepare-only]

It migrates the benchmark's own database (created if missing, kept between runs) and
onboards councils until there are `--councils` of them (in this process, as
bench_onboarding.py does: several minutes at 1,000). It then times `patchwork backup`,
drops every tenth council (schema and platform rows), times `patchwork restore --confirm`
(which drops and remakes every other council), and compares every table of every schema
(row count and checksum) with what it held before the backup.
`--prepare-only` stops after onboarding, so the councils can be made ahead of time.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import benchmark_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--councils", type=int, default=1000)
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--drop-every", type=int, default=10, help="councils lost before restoring")
    parser.add_argument("--output", type=Path, default=Path("/tmp/patchwork-bench-backup"))
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = benchmark_database("patchwork_bench_backup")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import logging

    import django

    django.setup()
    logging.getLogger("tenants").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.db import connection
    from django_tenants.utils import get_tenant_base_schema

    from tenants.backups import deployment_backup, deployment_restore
    from tenants.models import Council
    from tenants.services import council_onboard
    from tests.operations.council_data import council_drop, fingerprints

    call_command("migrate_platform", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    started = time.perf_counter()
    existing = Council.objects.exclude(schema_name="public").count()
    for serial in range(existing + 1, args.councils + 1):
        council_onboard(
            name=f"Bench Council {serial}",
            code=f"E98{serial:06d}",
            admin_email=f"admin{serial}@bench.test",
        )
        if serial % 100 == 0:
            print(f"onboarded {serial} councils ({time.perf_counter() - started:.0f}s)")
    if args.prepare_only:
        return

    with connection.cursor() as cursor:
        cursor.execute("SHOW max_locks_per_transaction")
        max_locks = cursor.fetchone()[0]
        cursor.execute("SHOW max_connections")
        max_connections = cursor.fetchone()[0]
    councils = list(Council.objects.exclude(schema_name="public"))
    schemas = ["public", get_tenant_base_schema(), *(c.schema_name for c in councils)]
    print(
        f"{len(councils)} councils, {len(schemas)} schemas; "
        f"max_locks_per_transaction={max_locks}, max_connections={max_connections}"
    )
    before = {schema: fingerprints(schema) for schema in schemas}

    # The most locks any one session of the benchmark's database held, sampled while the
    # backup runs (a single-transaction backup would climb to every table of every schema).
    peak = {"locks": 0}
    stop = threading.Event()

    def sample_locks() -> None:
        import psycopg

        url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://")
        with psycopg.connect(url, autocommit=True) as watcher:
            while not stop.is_set():
                row = watcher.execute(
                    "SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.datname = "
                    "current_database() AND a.pid <> pg_backend_pid() GROUP BY l.pid) s"
                ).fetchone()
                peak["locks"] = max(peak["locks"], row[0] if row else 0)
                stop.wait(0.2)

    watcher = threading.Thread(target=sample_locks, daemon=True)
    watcher.start()
    backup = deployment_backup(directory=args.output)
    stop.set()
    watcher.join()
    size = backup.path.stat().st_size
    print(
        f"backup: {backup.schemas} schemas, {backup.tables} tables, {backup.rows} rows, "
        f"{size / 1e6:.1f} MB in {backup.seconds:.1f}s "
        f"(most locks held by one session: {peak['locks']})"
    )

    # A tenth of the councils lost altogether (schema and platform rows); the rest are
    # dropped and made again by the restore itself, each in its own transaction.
    for council in councils[:: args.drop_every]:
        council_drop(council)
    restored = deployment_restore(path=backup.path)
    print(
        f"restore: {len(restored.schemas)} schemas, {restored.rows} rows in {restored.seconds:.1f}s"
    )

    after = {schema: fingerprints(schema) for schema in schemas}
    differing = [s for s in schemas if after[s] != before[s]]
    print(
        "every table of every schema matches row for row"
        if not differing
        else f"{len(differing)} schemas differ, e.g. {differing[:3]}"
    )
    backup.path.unlink()
    if differing:
        sys.exit(1)


if __name__ == "__main__":
    main()
