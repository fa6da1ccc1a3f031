"""Benchmark: the person-network page and the search API on a council seeded at county scale.

Run on demand (not part of `make test`), against a database of its own, never the tests':

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_network \\
        .venv/bin/python tests/bench/bench_network.py [--council E10000099] \\
        [--children 250000] [--requests 2000] [--seconds 60] [--write-docs]

It migrates that database, onboards a dedicated benchmark council (Benchmarkshire,
E10000099) and seeds it at county scale if it is not there yet (250,000 children, about
1,000,000 involvements, 20,000 practitioners: several minutes), then starts gunicorn on
127.0.0.1 and measures, at 1 and 16 concurrent clients, a bounded number of requests in a
bounded time:

  (a) the person-network page, GET /people/<id>/, signed in (password + TOTP) as a
      practitioner on the team of each sampled child, through the whole Django stack;
  (b) the search API, POST /api/v1/search (NHS number, or surname + date of birth) with a
      bearer token; both are audited, as in real use;
  (c) the floor: the same network data read by one raw SQL query (psycopg, no ORM);
  (d) for scale, the framework's floor: GET /healthz, which does no work, through the same
      HTTP client, gunicorn and middleware as the page.

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.common import ROOT, benchmark_database, gunicorn_start  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Team around the child: network page and search API"
BENCH_EMAIL_LOCAL = "bench.practitioner"
SAMPLE = 400


@dataclass
class Result:
    label: str
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    def row(self) -> str:
        return (
            f"| {self.label} | {self.clients} | {self.requests} | {self.errors} | "
            f"{self.throughput:.0f} | {ms(self.pct(0.5))} | {ms(self.pct(0.95))} |"
        )


def ms(value: float) -> str:
    """Milliseconds to a tenth, or to a hundredth below 10 (the floor is a fraction of one)."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def run_load(
    label: str,
    clients: int,
    total: int,
    seconds: float,
    one: Callable[[int, int], bool],
    warmup: int = 30,
) -> Result:
    """Call one(client, i) from `clients` threads until `total` calls or `seconds` pass."""
    for i in range(warmup):
        one(0, i)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.perf_counter() + seconds

    def worker(client: int) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            ok = one(client, i)
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = Result(
        label, clients, len(latencies), errors, time.perf_counter() - started, latencies
    )
    print(f"  {result.row()}", flush=True)
    return result


# --- Setup -------------------------------------------------------------------------------


def prepare(code: str, children: int) -> dict[str, object]:
    """Council seeded at scale, a bench practitioner on the sampled children's teams."""
    from django.core.management import call_command
    from django.db import connection
    from django_tenants.utils import schema_context
    from patchwork_demo.seeding import demo_data_seed, demo_login_set

    from accounts.models import User
    from core.models import Involvement, InvolvementRole, Organisation, Person, Practitioner
    from core.retention import years_before
    from tenants.selectors import council_by_code
    from tenants.services import council_onboard

    call_command("migrate_platform", verbosity=0)
    council = council_by_code(code)
    if council is None:
        council = council_onboard(
            name="Benchmarkshire", code=code, admin_email="admin@benchmarkshire.example"
        ).council
        print(f"Onboarded {council}")
    with schema_context(council.schema_name):
        have = Person.objects.filter(date_of_birth__gt=years_before(date_today(), 18)).count()
        if have < children * 0.9:
            print(f"Seeding {council.name} with {children - have:,} more children...")
            t0 = time.perf_counter()
            demo_data_seed(
                council_name=council.name,
                council_code=council.code,
                council_slug=council.slug,
                children=children - have,
                seed=1,
                progress=print,
            )
            print(f"Seeded in {time.perf_counter() - t0:.0f}s")
        counts = {
            "children": Person.objects.filter(
                date_of_birth__gt=years_before(date_today(), 18)
            ).count(),
            "people": Person.objects.count(),
            "involvements": Involvement.objects.count(),
            "practitioners": Practitioner.objects.count(),
        }
        email = f"{BENCH_EMAIL_LOCAL}@{council.slug}.example"
        login = demo_login_set(
            email=email, full_name="Bea Bench", role=User.Role.PRACTITIONER, label="bench"
        )
        user = User.objects.get(email=email)
        social = Organisation.objects.filter(agency_type="social_care").order_by("pk").first()
        assert social is not None, "the seeded council has no children's social care"
        practitioner, _ = Practitioner.objects.update_or_create(
            user=user,
            defaults={
                "organisation": social,
                "job_title": "Child protection social worker",
                "child_protection": True,
            },
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT person_id FROM core_involvement i JOIN core_person p "
                "ON p.id = i.person_id WHERE i.end_date IS NULL AND p.archived_at IS NULL "
                "AND p.date_of_birth > %s AND p.nhs_number IS NOT NULL",
                [years_before(date_today(), 18)],
            )
            candidates = sorted(r[0] for r in cursor.fetchall())
        sample = random.Random(7).sample(candidates, min(SAMPLE, len(candidates)))
        role = InvolvementRole.objects.get(name="Child protection social worker")
        already = set(
            Involvement.objects.filter(
                practitioner=practitioner, end_date__isnull=True
            ).values_list("person_id", flat=True)
        )
        Involvement.objects.bulk_create(
            Involvement(
                person_id=pid,
                practitioner=practitioner,
                organisation=social,
                role=role,
                start_date=date_today(),
                legal_basis="legal_obligation",
            )
            for pid in sample
            if pid not in already
        )
        people = {p.pk: p for p in Person.objects.filter(pk__in=sample)}
        searches = [
            {"nhs_number": people[pid].nhs_number}
            if i % 2 == 0
            else {
                "family_name": people[pid].family_name,
                "date_of_birth": str(people[pid].date_of_birth),
            }
            for i, pid in enumerate(sample)
        ]
        from core.api.auth import api_token_issue

        token = api_token_issue(user=user).token
    return {
        "council": council,
        "schema": council.schema_name,
        "host": f"{council.slug}.localhost",
        "sample": sample,
        "searches": searches,
        "email": email,
        "password": login.password,
        "user_id": user.pk,
        "counts": counts,
        "token": token,
    }


def date_today() -> date:
    from django.utils import timezone

    return timezone.localdate()


def sign_in(base: str, host: str, email: str, password: str, schema: str) -> dict[str, str]:
    """The real two-step sign-in over HTTP; returns the session cookies."""
    import httpx
    from django_tenants.utils import schema_context
    from patchwork_demo.seeding import demo_code

    with httpx.Client(base_url=base, headers={"Host": host}, timeout=60) as client:
        for _attempt in range(3):
            page = client.get("/sign-in/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token, "no sign-in form"
            step = client.post(
                "/sign-in/",
                data={"csrfmiddlewaretoken": token.group(1), "email": email, "password": password},
            )
            assert step.status_code == 302, f"password step answered {step.status_code}"
            page = client.get("/sign-in/code/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            with schema_context(schema):
                code = demo_code(email=email)
            done = client.post(
                "/sign-in/code/",
                data={"csrfmiddlewaretoken": token.group(1) if token else "", "code": code},
            )
            if done.status_code == 302:
                return dict(client.cookies)
            # A code is accepted once: wait for the authenticator's next 30-second step.
            time.sleep(31 - time.time() % 30)
    raise SystemExit("Could not sign in the bench practitioner")


# --- The floor: one raw SQL query for the same network data -------------------------------

NETWORK_SQL = """
WITH subjects AS (
    SELECT %(pid)s::bigint AS person_id, NULL::text AS relation
    UNION ALL
    SELECT CASE WHEN r.person_id = %(pid)s THEN r.relative_id ELSE r.person_id END, r.kind
    FROM core_familyrelationship r
    WHERE (r.person_id = %(pid)s OR r.relative_id = %(pid)s) AND r.end_date IS NULL
)
SELECT s.person_id, s.relation, p.given_name, p.family_name, p.date_of_birth, p.shielded,
       i.id, i.start_date, i.end_date, i.end_reason, i.last_contact_date, i.last_confirmed_at,
       i.sensitive, i.lead_professional, ro.name, ro.child_protection,
       o.id, o.name, o.agency_type, o.phone, pr.job_title, pr.work_phone, pr.secure_email,
       u.full_name, u.email
FROM subjects s
JOIN core_person p ON p.id = s.person_id AND p.archived_at IS NULL
LEFT JOIN core_involvement i
       ON i.person_id = s.person_id AND (s.relation IS NULL OR i.end_date IS NULL)
LEFT JOIN core_involvementrole ro ON ro.id = i.role_id
LEFT JOIN core_organisation o ON o.id = i.organisation_id
LEFT JOIN core_practitioner pr ON pr.id = i.practitioner_id
LEFT JOIN accounts_user u ON u.id = pr.user_id
"""


def floor(
    url: str, schema: str, sample: list[int], clients: int, total: int, seconds: float
) -> tuple[Result, float]:
    import psycopg

    conns = [psycopg.connect(url, autocommit=True) for _ in range(clients)]
    for conn in conns:
        conn.execute(f'SET search_path TO "{schema}", public')
    rows_seen: list[int] = []

    def one(client: int, i: int) -> bool:
        rows = conns[client].execute(NETWORK_SQL, {"pid": sample[i % len(sample)]}).fetchall()
        rows_seen.append(len(rows))
        return bool(rows)

    try:
        result = run_load("(c) floor: one raw SQL query", clients, total, seconds, one)
    finally:
        for conn in conns:
            conn.close()
    return result, statistics.mean(rows_seen)


# --- Main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--council", default="E10000099")
    parser.add_argument("--children", type=int, default=250_000)
    parser.add_argument("--requests", type=int, default=2000, help="per measurement")
    parser.add_argument("--seconds", type=float, default=60, help="per measurement, at most")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    url = benchmark_database("patchwork_bench_network")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DEBUG"] = "false"  # as served: no query log, no debug templates
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import django

    django.setup()
    import logging

    for noisy in ("tenants", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import httpx
    from django.conf import settings
    from django.db import connection

    if settings.PRODUCTION:
        sys.exit("Run the benchmark with PATCHWORK_ENV=development")
    setup = prepare(args.council, args.children)
    connection.close()
    sample: list[int] = setup["sample"]  # type: ignore[assignment]
    searches: list[dict[str, str]] = setup["searches"]  # type: ignore[assignment]
    host = str(setup["host"])
    print(f"Council: {setup['council']}; {setup['counts']}")

    results: list[Result] = []
    floor_rows = 0.0
    for clients in (1, 16):
        result, floor_rows = floor(
            url, str(setup["schema"]), sample, clients, args.requests, args.seconds
        )
        results.append(result)

    from patchwork_demo.federation import free_port, server_stop

    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_network_gunicorn.log"
    server = gunicorn_start(os.environ, port, workers=args.workers, threads=1, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        cookies = sign_in(
            base, host, str(setup["email"]), str(setup["password"]), str(setup["schema"])
        )
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(
                    base_url=base, headers={"Host": host}, cookies=cookies, timeout=30
                )
            return local.client

        def page(_c: int, i: int) -> bool:
            response = client().get(f"/people/{sample[i % len(sample)]}/")
            return response.status_code == 200

        def api(_c: int, i: int) -> bool:
            response = client().post(
                "/api/v1/search",
                json=searches[i % len(searches)],
                headers={"Authorization": f"Bearer {setup['token']}"},
            )
            return response.status_code == 200 and bool(response.json().get("results"))

        for clients in (1, 16):
            results.append(
                run_load(
                    "(a) network page, GET /people/<id>/",
                    clients,
                    args.requests,
                    args.seconds,
                    page,
                )
            )
        for clients in (1, 16):
            results.append(
                run_load(
                    "(b) search API, POST /api/v1/search", clients, args.requests, args.seconds, api
                )
            )

        def empty(_c: int, _i: int) -> bool:
            return client().get("/healthz").status_code == 200

        for clients in (1, 16):
            results.append(
                run_load(
                    "(d) framework floor: GET /healthz (no work)",
                    clients,
                    args.requests,
                    args.seconds,
                    empty,
                )
            )
        results.append(page_cpu(host, cookies, sample, min(args.requests, 300)))
    finally:
        server_stop(server)

    page_1 = next(r for r in results if r.label.startswith("(a)") and r.clients == 1)
    floor_1 = next(r for r in results if r.label.startswith("(c)") and r.clients == 1)
    empty_1 = next(r for r in results if r.label.startswith("(d)") and r.clients == 1)
    ratio = page_1.pct(0.95) / floor_1.pct(0.95)
    verdict = (
        f"Network page p95 at 1 client: {page_1.pct(0.95):.1f} ms (target < 50 ms: "
        f"{'met' if page_1.pct(0.95) < 50 else 'NOT met'}); {ratio:.1f}x the raw-SQL floor's "
        f"p95 of {floor_1.pct(0.95):.2f} ms (target within 5x: "
        f"{'met' if ratio <= 5 else 'NOT met'}). A request that does no work at all through "
        f"the same client, server and middleware (d) has p95 {empty_1.pct(0.95):.1f} ms, "
        f"{empty_1.pct(0.95) / floor_1.pct(0.95):.1f}x the raw-SQL floor on its own; the page "
        f"is {page_1.pct(0.95) / empty_1.pct(0.95):.1f}x that empty request."
    )
    print(verdict)
    if args.write_docs:
        write_docs(setup, results, verdict, floor_rows, args)


def page_cpu(host: str, cookies: dict[str, str], sample: list[int], total: int) -> Result:
    """The page rendered in this process by Django's test client, timed in CPU seconds of
    this process (the database's own work is not included): a figure that other programs
    competing for the cores do not inflate the way they inflate wall-clock latency."""
    from django.test import Client

    client = Client(HTTP_HOST=host)
    for name, value in cookies.items():
        client.cookies[name] = value
    for pid in sample[:20]:
        client.get(f"/people/{pid}/")
    cpu_ms: list[float] = []
    page_bytes: list[int] = []
    errors = 0
    started = time.perf_counter()
    for i in range(total):
        t0 = time.process_time()
        response = client.get(f"/people/{sample[i % len(sample)]}/")
        cpu_ms.append((time.process_time() - t0) * 1000)
        errors += response.status_code != 200
        page_bytes.append(len(response.content))
    result = Result(
        "(a) network page, Python CPU ms per page (in-process)",
        1,
        total,
        errors,
        time.perf_counter() - started,
        cpu_ms,
    )
    print(f"  {result.row()}", flush=True)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get(f"/people/{sample[0]}/")
    statements = [q["sql"] for q in queries.captured_queries]
    QUERY_COUNTS["page"] = len(statements)
    QUERY_COUNTS["kb"] = round(statistics.mean(page_bytes) / 1000)
    QUERY_COUNTS["set_search_path"] = sum(s.startswith("SET search_path") for s in statements)
    # Where a page's wall time goes: its statements (as the database connection timed
    # them) and, of those, the one that reads the network.
    pages = 100
    timed: list[tuple[float, str]] = []

    def timer(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timed.append(((time.perf_counter() - started) * 1000, sql))

    with connection.execute_wrapper(timer):
        for i in range(pages):
            client.get(f"/people/{sample[i % len(sample)]}/")
    DB_MS["all statements"] = sum(ms for ms, _ in timed) / pages
    DB_MS["the network statement"] = (
        sum(ms for ms, sql in timed if "WITH relations AS" in sql) / pages
    )
    print(f"  queries per page: {QUERY_COUNTS}; database ms per page: {DB_MS}", flush=True)
    return result


QUERY_COUNTS: dict[str, int] = {}
DB_MS: dict[str, float] = {}
WHAT_CHANGED = """\
What changed since the first measurement (p95 307 ms, 52 statements per page, on a loaded
machine; 85 ms and 22 statements, then 28.5 ms, at the previous ones): the whole network is
one plain statement instead of five ORM queries; the access check, the viewer's own profile,
"who has viewed" and the audit append are plain statements too; the search path is set once
per council. This round: those statements are prepared on the server once per connection
(decision 0005). Django binds parameters on the client, so PostgreSQL planned the network
statement on every page, 2.3 ms of planning for 0.3 ms of running; prepared, the page's
statements take about a third of the time they did. "Who has viewed" reads backwards along
a new (person, id) audit index and shows the latest 10 on the page, with the rest on a
page of their own, instead of 50 rows joined and sorted on every view; the navigation's
links are worked out once per process.

On the second target: the floor is one read-only query on a kept connection, a fraction of
a millisecond. A request that does no work at all (d), through the same HTTP client,
gunicorn and middleware, costs five floors or more on its own (4.9x to 12.7x across the
runs of 2026-11-26), so a page on this stack would have to do nothing at all to be within
5x of the floor. The page does the floor's read and
also reads the session, the user and their second factor, checks access, appends a
hash-chained audit event and commits it, and renders the HTML (decision 0004)."""


def write_docs(
    setup: dict[str, object],
    results: list[Result],
    verdict: str,
    floor_rows: float,
    args: argparse.Namespace,
) -> None:
    counts: dict[str, int] = setup["counts"]  # type: ignore[assignment]
    sample: list[int] = setup["sample"]  # type: ignore[assignment]
    load = os.getloadavg()
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on a council seeded at "
        f"county scale: {counts['children']:,} children ({counts['people']:,} people), "
        f"{counts['involvements']:,} involvements, {counts['practitioners']:,} practitioners. "
        f"Server: gunicorn, {args.workers} sync workers, DEBUG off, PostgreSQL on 127.0.0.1; "
        f"clients are threads in the benchmark process. Each request is a different child "
        f"(a sample of {len(sample):,}) seen by a practitioner on their team; every "
        f"page view and search writes its audit event, as in real use. At most "
        f"{args.requests:,} requests or {args.seconds:.0f} s per row.",
        "",
        f"**Machine: 2 CPU cores, no other runs (load average {load[0]:.1f}, {load[1]:.1f}, "
        f"{load[2]:.1f} as the run ended, from the benchmark itself); the server, PostgreSQL "
        f"and the load generator share them: read the figures as an upper bound, not a "
        f"capacity plan.**",
        "",
        "| measurement | clients | requests | errors | per second | p50 ms | p95 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[r.row() for r in results],
        "",
        f"The floor query returns {floor_rows:.0f} rows on average per child (their "
        f"involvements with practitioner, role and organisation, plus the current teams of "
        f"their family members).",
        "",
        verdict,
        "",
        "The in-process row is the same page rendered by Django's test client in the "
        "benchmark's own process and timed in that process's CPU time (the database's work "
        "excluded), which competing programs do not inflate as they do wall-clock time."
        + (
            f" One page view runs {QUERY_COUNTS['page']} SQL statements "
            f"({QUERY_COUNTS['set_search_path']} `SET search_path`; one more when the worker's "
            "last request was for another council or the platform)"
            if QUERY_COUNTS
            else ""
        )
        + (
            f"; they take {DB_MS['all statements']:.1f} ms of a page's time, "
            f"{DB_MS['the network statement']:.2f} ms of it the one statement that reads the "
            "network (the same shape as the floor query). The rest is Python: the middleware "
            "(session, user, second factor, lockout, metrics), the access check, the audit "
            f"append and rendering a page of {QUERY_COUNTS['kb']} KB on average with its "
            "picture."
            if DB_MS
            else "."
        ),
        "",
        WHAT_CHANGED,
        "",
        "Rerun:",
        "",
        "```",
        "DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_network \\",
        f"    .venv/bin/python tests/bench/bench_network.py --requests {args.requests} "
        f"--seconds {args.seconds:.0f} --write-docs",
        "```",
        "",
    ]
    replace_section("\n".join(lines))


SEEDING = "### County-scale seeding"


def replace_section(body: str) -> None:
    """Rewrite only this benchmark's section of docs/benchmarks.md, keeping its seeding
    figures (measured once, by hand: see that subsection)."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + len(SECTION))
        old = text[start:end] if end != -1 else text[start:]
        kept = old[old.find(SEEDING) :] if SEEDING in old else ""
        body = body.rstrip("\n") + ("\n\n" + kept.rstrip("\n") if kept else "")
        text = text[:start] + body.rstrip("\n") + "\n" + (text[end:] if end != -1 else "")
    DOCS.write_text(text.rstrip("\n") + "\n")
    print(f"Wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
