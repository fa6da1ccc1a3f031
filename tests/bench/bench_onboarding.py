"""Benchmark: how long onboarding one council takes as the deployment grows.

Run on demand (not part of `make test`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python tests/bench/bench_onboarding.py [--counts 1,50,200] [--samples 5]

It creates a scratch database `patchwork_bench_onboarding` next to the one named in
DATABASE_URL (or uses the embedded PostgreSQL), migrates it, then onboards councils until
each count is reached, timing `council_onboard` for a few more councils at each count. The
floor is the bare schema clone (`clone_schema` in SQL) measured at the same count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
BENCH_DB = "patchwork_bench_onboarding"


def _prepare_database() -> None:
    import psycopg

    base = os.environ.get("DATABASE_URL", "")
    if not base:
        from deploy.embedded_pg import start_unless_configured

        os.environ.setdefault("PATCHWORK_ENV", "development")
        start_unless_configured()  # the bench runs in the embedded server's database
        return
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = base.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,50,200")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--stock-up-to", type=int, default=50, help="measure the stock clone")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    _prepare_database()
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import logging

    import django

    django.setup()
    logging.getLogger("tenants").setLevel(logging.WARNING)
    from django.core.management import call_command
    from django.db import connection, transaction
    from django_tenants.clone import CloneSchema
    from django_tenants.utils import get_tenant_base_schema

    from tenants.cloning import schema_clone
    from tenants.models import Council
    from tenants.services import council_onboard

    call_command("migrate_platform", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    serial = 0

    def onboard() -> float:
        nonlocal serial
        serial += 1
        started = time.perf_counter()
        council_onboard(
            name=f"Bench Council {serial}",
            code=f"E99{serial:06d}",
            admin_email=f"admin{serial}@bench.test",
        )
        return time.perf_counter() - started

    def bare_clone(stock: bool = False) -> float:
        """The schema copy alone (our catalog clone), or django-tenants' clone_schema."""
        started = time.perf_counter()
        with transaction.atomic():
            if stock:
                CloneSchema().clone_schema(get_tenant_base_schema(), "bench_floor", "DATA")
            else:
                schema_clone(get_tenant_base_schema(), "bench_floor")
        elapsed = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA bench_floor CASCADE")
        return elapsed

    print(
        f"{'existing councils':>18} {'onboard p50 (s)':>16} {'onboard max (s)':>16} "
        f"{'schema copy p50 (s)':>20} {'django-tenants clone_schema (s)':>32}"
    )
    rows = []
    for count in counts:
        while Council.objects.exclude(schema_name="public").count() < count:
            onboard()
        samples = []
        for _ in range(args.samples):
            samples.append(onboard())
        floors = [bare_clone() for _ in range(args.samples)]
        # The stock clone is measured once, and only while it still takes under a minute.
        stock = bare_clone(stock=True) if count <= args.stock_up_to else float("nan")
        existing = Council.objects.exclude(schema_name="public").count() - args.samples
        row = (existing, statistics.median(samples), max(samples), statistics.median(floors))
        rows.append(row)
        print(f"{row[0]:>18} {row[1]:>16.3f} {row[2]:>16.3f} {row[3]:>20.3f} {stock:>32.3f}")
    print(
        "onboarding per council stays flat"
        if rows[-1][1] < 2 * rows[0][1] + 0.2
        else "onboarding grows with the count"
    )


if __name__ == "__main__":
    main()
