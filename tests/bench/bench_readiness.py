"""Benchmark: readiness and connection memory as a deployment grows to hundreds of councils
(issue 18, points 5 and 6).

Run on demand (not part of `make test`):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_readiness \
        .venv/bin/python tests/bench/bench_readiness.py [--councils 400] [--probes 20]

It onboards councils into its own database until there are `--councils` (kept between
runs), then measures, in this process through the whole middleware stack (Django's test
client, no network):
- GET /readyz with every council up to date: the first probe of a new process, then the
  probes after it (councils remembered for READYZ_MIGRATIONS_CACHE_SECONDS);
- the same with one council behind and with all but one behind (a migration row removed,
  put back afterwards): ready throughout, the behind councils named in a warning;
- a page at a council that serves, and at one that is behind (503), while one is behind;
- the floor: GET /healthz through the same stack;
- one PostgreSQL connection's private memory (its server process's Private_Clean +
  Private_Dirty in /proc, as root on the same machine) after it has read a few tables in 1,
  100 and every council, and after it is replaced as DB_CONN_MAX_AGE replaces it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.common import benchmark_database  # noqa: E402


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms"


def _private_mb(pid: int) -> float:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--councils", type=int, default=400)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = benchmark_database("patchwork_bench_readiness")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DEBUG"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import logging

    import django

    django.setup()
    logging.getLogger("tenants").setLevel(logging.ERROR)
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django_tenants.utils import schema_context

    from core.models import AuditEvent, Involvement, Organisation, Person
    from deploy.health import redis_client
    from tenants.models import Council
    from tenants.selectors import council_host, councils_list, migration_memory_clear
    from tenants.services import council_onboard
    from tenants.tasks import HEARTBEAT_KEY

    call_command("migrate_platform", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    existing = councils_list().count()
    started = time.perf_counter()
    for serial in range(existing + 1, args.councils + 1):
        council_onboard(
            name=f"Bench Council {serial}",
            code=f"E98{serial:06d}",
            admin_email=f"admin{serial}@bench.test",
        )
    if existing < args.councils:
        print(
            f"onboarded {args.councils - existing} councils in "
            f"{time.perf_counter() - started:.0f} s"
        )
    councils = list(councils_list().order_by("id")[: args.councils])
    schemas = [c.schema_name for c in councils]
    platform = Client(HTTP_HOST="localhost")

    def probe() -> tuple[float, dict]:
        if settings.REDIS_URL:  # no worker here: the heartbeat a worker would write
            redis_client().set(HEARTBEAT_KEY, time.time())
        began = time.perf_counter()
        response = platform.get("/readyz")
        return time.perf_counter() - began, response.json()

    def probes(label: str) -> dict:
        migration_memory_clear()
        first, body = probe()
        rest = [probe()[0] for _ in range(args.probes)]
        # Past the memory's lifetime: what a probe costs every few seconds.
        migration_memory_clear()
        cold = [probe()[0] for _ in range(3)]
        print(
            f"{label:<38} status {body['status']:<7} first {first * 1000:7.1f} ms; "
            f"remembered {_ms(rest)}; re-read {statistics.median(cold) * 1000:7.1f} ms"
        )
        return body

    def behind(names: list[str]) -> None:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(
                    f"DELETE FROM {name}.django_migrations "  # noqa: S608 - our schema names
                    "WHERE app = 'core' AND name = '0001_initial'"
                )

    def caught_up(names: list[str]) -> None:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute(
                    f"INSERT INTO {name}.django_migrations (app, name, applied) "  # noqa: S608
                    "VALUES ('core', '0001_initial', now())"
                )

    print(f"{len(councils)} councils; {args.probes} probes each")
    platform.get("/healthz")
    floor = []
    for _ in range(args.probes):
        began = time.perf_counter()
        platform.get("/healthz")
        floor.append(time.perf_counter() - began)
    print(f"{'floor: GET /healthz':<38} {_ms(floor)}")
    probes("/readyz, every council up to date")
    behind(schemas[:1])
    try:
        body = probes("/readyz, one council behind")
        assert body["status"] == "ready", body
        serving = Client(HTTP_HOST=council_host(councils[-1]))
        stopped = Client(HTTP_HOST=council_host(councils[0]))
        migration_memory_clear()
        for label, client, expected in (
            ("sign-in page, a council that serves", serving, 200),
            ("sign-in page, the council behind", stopped, 503),
        ):
            client.get("/sign-in/")
            times = []
            for _ in range(args.probes):
                began = time.perf_counter()
                status = client.get("/sign-in/").status_code
                times.append(time.perf_counter() - began)
                assert status == expected, (label, status)
            print(f"{label:<38} {expected}  {_ms(times)}")
    finally:
        caught_up(schemas[:1])
    behind(schemas[1:])
    try:
        body = probes(f"/readyz, {len(schemas) - 1} councils behind")
        assert body["status"] == "ready", body
        print(f"    detail: {body['checks']['councils']['detail'][:150]}...")
    finally:
        caught_up(schemas[1:])
    migration_memory_clear()

    # One connection's memory as it touches more councils.
    connection.close()

    def touch(council: Council) -> None:
        with schema_context(council.schema_name):
            Person.objects.filter(pk=0).exists()
            Involvement.objects.select_related("practitioner", "person").filter(pk=0).exists()
            Organisation.objects.filter(pk=0).exists()
            AuditEvent.objects.order_by("-pk").first()

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    print(f"{'connection, new':<38} {_private_mb(pid):6.1f} MB private")
    touched = 0
    for mark in sorted({1, min(100, len(councils)), len(councils)}):
        while touched < mark:
            touch(councils[touched])
            touched += 1
        print(f"{f'connection, after {mark} councils':<38} {_private_mb(pid):6.1f} MB private")
    connection.close()
    touch(councils[0])
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    print(f"{'its replacement, after 1 council':<38} {_private_mb(pid):6.1f} MB private")


if __name__ == "__main__":
    main()
