"""Benchmark (issue 19): the person page, the search API and the no-work floor under `wrk`,
with the application's and PostgreSQL's CPU per request read from their own processes.

Run on demand (not part of `make test`), against a database of its own, never the tests':

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_person \\
        .venv/bin/python tests/bench/bench_person_page.py [--seconds 20] \\
        [--connections 1,16] [--children 250000] [--code DIR] [--write-docs]

Set-up (Python, before anything is measured): the database is migrated with this
checkout's code and the council Benchmarkshire (E10000099) is seeded at county scale by
tests/bench/bench_network.py's own `prepare` if it is not there yet (250,000 children,
about 516,000 people, 1.03 million involvements, 20,800 practitioners: about 9 minutes, once;
later runs reuse it; for a quick small run, `--children 3000` with another database, e.g.
DATABASE_URL=.../patchwork_bench_person_small).
Then one practitioner per connection (bench.practitioner, bench.practitioner.2, ...), each
put on the team of 400 children of their own, with a bearer token each.

Measured, for each code under test: gunicorn (deploy/gunicorn_conf.py, 4 sync workers, one
thread, DEBUG off) on 127.0.0.1, each practitioner signed in over HTTP (password + TOTP),
then `wrk` (closed loop, `-t N -c N`: one connection per wrk thread, so each Lua state holds
its own practitioner's cookie and children; tests/bench/person_page.lua), each row bounded
in time (`--seconds`, 20 by default), at 1 and 16 connections:

  GET /healthz        the floor: no work, through the same server and middleware (with the
                      session cookie, as a browser sends it);
  GET /people/<id>/   the person page, each connection cycling over its own 400 children;
  POST /api/v1/search the search API with the practitioner's bearer token (NHS number, or
                      surname + date of birth, alternately), cycling over the same children.

Every answer is checked by the Lua script: a status other than 200, or a body without the
child's name (HTML-escaped, in the page's title or heading) or without the child's API
address in the search results, is counted; a row with any is reported as FAILED.
No Python runs while wrk does: the benchmark process waits for wrk to finish.

Columns: requests completed, requests per second, p50 and p95 latency (wrk's `--latency`
distribution), failures, application CPU per request (utime + stime of gunicorn's workers
from /proc/<pid>/stat, plus what the master reaped from replaced workers, before and after
the row, divided by the requests wrk completed), PostgreSQL CPU per request (the same for the
client backends of this database, from pg_stat_activity, read twice a second so that a
backend Django replaces mid-row still counts), and "others": CPU the rest of the machine used
during the row (all busy CPU in /proc/stat less the workers, the backends and wrk), in cores;
it includes Redis, PostgreSQL's WAL writer and the kernel's loopback work, which the
benchmark itself causes (0.19 of a core in the quietest row of the first run, search at 16
connections, so at most that). SQL statements per page (and per search) and the page size
are counted once per code, in-process, with Django's test client and CaptureQueriesContext,
signed in with the same session as the first connection.

Reading the CPU figures on a shared machine: the machine has 2 cores that other engineers'
tests use too. CPU time per request is what the page costs, and other load disturbs it less
than wall time: req/s and latency fall in proportion to the cores others take, CPU per
request does not. It is not immune, though: two busy virtual cores slow each other (shared
caches, perhaps one physical core), so the same page costs more CPU milliseconds when
others run. The "speed probe" (a fixed Python loop timed in CPU before and after each
server's rows) shows how much: compare CPU per request only between runs whose probes
agree, and two codes only within one run (`--code`, A B B A, so both see the same load).
Read the "others" column and `uptime` (printed in the docs section): run the measurement
that counts at the quietest moment you can, and say what the load was.

Comparing two versions of the code in one run: export the other version, e.g. today's main,

    git -C /work/main archive 9c026a0 | tar -x -C /tmp/pw-base    # (mkdir /tmp/pw-base first)

and give it as `--code /tmp/pw-base`. Its gunicorn then runs with the same virtualenv,
`cwd` and PYTHONPATH set to that directory (and its demo/), and its statements are counted
in a subprocess with the same paths. The codes alternate A, B, B, A (A = --code, B = this
checkout), each with a fresh server, on the same seeded database. Migrations: run the
benchmark from the NEWER checkout and give the older one as --code; the set-up migrates the
database with this checkout's code (`migrate_platform`) before either server starts, and the
older code then runs on that schema (fine while the new migrations only add; if one drops or
renames something the old code reads, compare against a copy of the database instead).

Only 127.0.0.1 is ever contacted. The API and sign-in rate limits are raised for the
benchmark's server (RATE_LIMIT_API, RATE_LIMIT_SIGN_IN_ACCOUNT): one practitioner makes
thousands of searches a minute here; the limit is still checked on every request.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.common import ROOT, benchmark_database, gunicorn_start  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## The person page with wrk (issue 19)"
LUA = Path(__file__).resolve().with_name("person_page.lua")
CHILDREN_EACH = 400
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_ENV = {
    "DEBUG": "false",
    "RATE_LIMIT_API": "1000000/m",
    "RATE_LIMIT_SIGN_IN_ACCOUNT": "1000/m",
}
ROWS = (
    ("healthz", "GET /healthz (floor)"),
    ("page", "GET /people/<id>/"),
    ("search", "POST /api/v1/search"),
)


@dataclass
class Child:
    pid: int
    full_name: str
    family_name: str
    date_of_birth: str
    nhs_number: str


@dataclass
class Practitioner:
    email: str
    password: str
    token: str
    children: list[Child]
    cookies: dict[str, str] = field(default_factory=dict)


@dataclass
class Row:
    code: str
    kind: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    non_200: int = 0
    wrong_body: int = 0
    socket_errors: int = 0
    app_cpu_ms: float = 0.0
    pg_cpu_ms: float = 0.0
    others_cores: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> bool:
        return bool(self.non_200 or self.wrong_body or self.socket_errors) or not self.requests

    def line(self) -> str:
        label = dict(ROWS)[self.kind]
        failures = f"{self.non_200} / {self.wrong_body} / {self.socket_errors}"
        if self.failed:
            failures = f"**FAILED** {failures}"
        return (
            f"| {self.code} | {label} | {self.connections} | {self.requests:,} | "
            f"{self.per_second:.1f} | {ms(self.p50_ms)} | {ms(self.p95_ms)} | {failures} | "
            f"{self.app_cpu_ms:.2f} | {self.pg_cpu_ms:.2f} | {self.others_cores:.2f} |"
        )


HEADER = (
    "| code | request | connections | requests | req/s | p50 ms | p95 ms | "
    "non-200 / wrong body / socket errors | app CPU ms/req | PG CPU ms/req | others (cores) |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


# --- Set-up (Python, before any measurement) ----------------------------------------------


def prepare(council: str, children: int, count: int) -> dict[str, object]:
    """The seeded council (bench_network's own set-up: migrate, onboard, seed once, its
    bench practitioner on 400 children) and `count` practitioners, each on the team of
    400 children of their own, each with a fresh bearer token."""
    from django.db import connection
    from django_tenants.utils import schema_context
    from patchwork_demo.seeding import demo_login_set

    from accounts.models import User
    from core.api.auth import api_token_issue
    from core.models import Involvement, InvolvementRole, Organisation, Person
    from core.models import Practitioner as PractitionerModel
    from core.retention import years_before
    from tests.bench.bench_network import BENCH_EMAIL_LOCAL, date_today
    from tests.bench.bench_network import prepare as council_prepare

    setup = council_prepare(council, children)
    slug = str(setup["host"]).split(".")[0]
    samples: list[list[int]] = [list(setup["sample"])]  # type: ignore[call-overload]
    with schema_context(str(setup["schema"])):
        if count > 1:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT DISTINCT person_id FROM core_involvement i JOIN core_person p "
                    "ON p.id = i.person_id WHERE i.end_date IS NULL AND p.archived_at IS NULL "
                    "AND p.date_of_birth > %s AND p.nhs_number IS NOT NULL",
                    [years_before(date_today(), 18)],
                )
                candidates = sorted(r[0] for r in cursor.fetchall())
        social = Organisation.objects.filter(agency_type="social_care").order_by("pk").first()
        assert social is not None, "the seeded council has no children's social care"
        role = InvolvementRole.objects.get(name="Child protection social worker")
        practitioners: list[Practitioner] = []
        for n in range(count):
            email = f"{BENCH_EMAIL_LOCAL}@{slug}.example"
            if n:
                email = f"{BENCH_EMAIL_LOCAL}.{n + 1}@{slug}.example"
                demo_login_set(
                    email=email,
                    full_name=f"Bench Practitioner {n + 1}",
                    role=User.Role.PRACTITIONER,
                    label="bench",
                )
                sample = random.Random(1000 + n).sample(
                    candidates, min(CHILDREN_EACH, len(candidates))
                )
                samples.append(sample)
            user = User.objects.get(email=email)
            practitioner, _ = PractitionerModel.objects.update_or_create(
                user=user,
                defaults={
                    "organisation": social,
                    "job_title": "Child protection social worker",
                    "child_protection": True,
                },
            )
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
                for pid in samples[n]
                if pid not in already
            )
            people = {p.pk: p for p in Person.objects.filter(pk__in=samples[n])}
            practitioners.append(
                Practitioner(
                    email=email,
                    password=str(setup["password"]),
                    token=str(setup["token"]) if n == 0 else api_token_issue(user=user).token,
                    children=[
                        Child(
                            pid=pid,
                            full_name=people[pid].full_name,
                            family_name=people[pid].family_name,
                            date_of_birth=str(people[pid].date_of_birth),
                            nhs_number=str(people[pid].nhs_number),
                        )
                        for pid in samples[n]
                    ],
                )
            )
    setup["practitioners"] = practitioners
    return setup


def page_markers(child: Child) -> list[str]:
    """What only this child's page has: their name, HTML-escaped (as Django escapes it, or as
    Jinja2/markupsafe does), in the page's title or its heading."""
    from django.utils.html import escape

    names = {str(escape(child.full_name)), html.escape(child.full_name, quote=True)}
    names |= {name.replace("&#x27;", "&#39;") for name in names}
    return sorted({f"<title>{n}" for n in names} | {f"{n}</h1>" for n in names})


def data_file(kind: str, practitioners: list[Practitioner], host: str, directory: Path) -> Path:
    """The Lua script's data: per connection its headers and its requests with markers."""
    lines: list[str] = []
    for n, practitioner in enumerate(practitioners):
        lines.append(f"H\t{n}\tHost\t{host}")
        if kind == "search":
            lines.append(f"H\t{n}\tAuthorization\tBearer {practitioner.token}")
        else:
            cookie = "; ".join(f"{k}={v}" for k, v in practitioner.cookies.items())
            lines.append(f"H\t{n}\tCookie\t{cookie}")
        for i, child in enumerate(practitioner.children):
            if kind == "healthz":
                lines.append(f'R\t{n}\tGET\t/healthz\t\t"ok"')
                break
            if kind == "page":
                markers = "\x1f".join(page_markers(child))
                lines.append(f"R\t{n}\tGET\t/people/{child.pid}/\t\t{markers}")
            else:
                query = (
                    {"nhs_number": child.nhs_number}
                    if i % 2 == 0
                    else {"family_name": child.family_name, "date_of_birth": child.date_of_birth}
                )
                body = json.dumps(query, separators=(",", ":"))
                lines.append(f'R\t{n}\tPOST\t/api/v1/search\t{body}\t/people/{child.pid}"')
    for line in lines:
        assert "\n" not in line and line.count("\t") in (3, 5), line
    path = directory / f"{kind}-{len(practitioners)}.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- CPU read from the processes themselves -----------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of a process in seconds (and, with reaped, of the children it has
    waited for: a gunicorn master's replaced workers)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry.name))
    return sorted(found)


def machine_busy() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, seconds elapsed on its clock)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    # user, nice, system, irq, softirq: not idle, iowait, or steal (another machine's).
    busy = values[0] + values[1] + values[2] + values[5] + values[6]
    return busy / CLK_TCK, time.monotonic()


@dataclass
class CpuSnapshot:
    workers: list[int]
    app: float
    backends: dict[int, float]
    wrk: float
    busy: float
    at: float


def backends_read(monitor: object) -> dict[int, float]:
    """CPU seconds so far of each client backend of this database (not the monitor's own)."""
    rows = monitor.execute(  # type: ignore[attr-defined]
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ).fetchall()
    return {pid: process_cpu(pid) for (pid,) in rows}


def snapshot(master: int, monitor: object) -> CpuSnapshot:
    backends = backends_read(monitor)
    workers = children_of(master)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy, at = machine_busy()
    return CpuSnapshot(
        workers=workers,
        app=process_cpu(master, reaped=True)
        - process_cpu(master)
        + sum(process_cpu(pid) for pid in workers),
        backends=backends,
        wrk=usage.ru_utime + usage.ru_stime,
        busy=busy,
        at=at,
    )


def backends_cpu(before: CpuSnapshot, seen: dict[int, float]) -> float:
    """CPU seconds the database's backends used since `before`, from the last reading of
    each (`seen`): one that started since counts whole; one that ended counts up to its
    last reading."""
    return sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in seen.items())


def speed_probe() -> float:
    """CPU ms of a fixed pure-Python loop in this process: when other programs share the
    cores (or the machine is another kind), CPU per request and this figure move together."""
    started = time.process_time()
    total = 0
    for i in range(3_000_000):
        total += i * i
    return (time.process_time() - started) * 1000


# --- One row: wrk, with CPU before and after ----------------------------------------------

WRK_LINE = re.compile(r"^PWBENCH (.*)$", re.M)


def wrk_row(
    code: str,
    kind: str,
    practitioners: list[Practitioner],
    host: str,
    base: str,
    seconds: float,
    master: int,
    monitor: object,
    directory: Path,
) -> Row:
    connections = len(practitioners)
    data = data_file(kind, practitioners, host, directory)
    command = ["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{seconds:g}s"]
    command += ["--latency", "--timeout", "10s", "-s", str(LUA), base, "--", str(data)]
    before = snapshot(master, monitor)
    # Django reconnects when a connection is DB_CONN_MAX_AGE old (150 to 300 s), so backends end
    # and start during a row: read theirs twice a second (from this process, which does
    # nothing else while wrk runs) to keep what an ended one used.
    seen = dict(before.backends)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        try:
            stdout, stderr = process.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            seen.update(backends_read(monitor))
    done = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    after = snapshot(master, monitor)
    seen.update(after.backends)
    row = Row(code=code, kind=kind, connections=connections)
    found = WRK_LINE.search(done.stdout)
    if done.returncode != 0 or found is None:
        row.notes.append(f"wrk failed ({done.returncode}): {done.stderr.strip()[:300]}")
        print(done.stdout, done.stderr, file=sys.stderr)
        return row
    figures = {k: float(v) for k, v in (p.split("=") for p in found.group(1).split())}
    row.requests = int(figures["requests"])
    row.seconds = figures["duration_us"] / 1e6
    row.p50_ms = figures["p50_us"] / 1000
    row.p95_ms = figures["p95_us"] / 1000
    row.non_200 = int(figures["non_200"])
    row.wrong_body = int(figures["wrong_body"])
    row.socket_errors = int(
        sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    )
    row.notes += re.findall(r"^PWFAILURE (.*)$", done.stdout, re.M)
    if row.requests:
        row.app_cpu_ms = (after.app - before.app) * 1000 / row.requests
        row.pg_cpu_ms = backends_cpu(before, seen) * 1000 / row.requests
    ours = (after.app - before.app) + backends_cpu(before, seen) + (after.wrk - before.wrk)
    row.others_cores = max(0.0, (after.busy - before.busy) - ours) / (after.at - before.at)
    if after.workers != before.workers:
        row.notes.append("a gunicorn worker was replaced during the row (its CPU is counted)")
    ended = sorted(set(before.backends) - set(after.backends))
    if ended:
        row.notes.append(
            f"{len(ended)} of the database's backends ended during the row and "
            f"{len(set(after.backends) - set(before.backends))} started (DB_CONN_MAX_AGE): "
            "an ended one's CPU is counted up to its last reading, half a second at most "
            "before it ended"
        )
    print(f"  {row.line()}", flush=True)
    for note in row.notes:
        print(f"    {note}", flush=True)
    return row


# --- Statements per page, counted in-process (a subprocess when the code is another's) -----


def count_statements(code_dir: Path | None, host: str, practitioner: Practitioner) -> dict:
    """SQL statements per page and per search, and the page's size, from Django's test client
    in a subprocess running the code under test (this checkout's or --code's)."""
    env = dict(os.environ)
    if code_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(code_dir), str(code_dir / "demo"), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
    job = {
        "code_dir": str(code_dir) if code_dir else "",
        "host": host,
        "cookies": practitioner.cookies,
        "token": practitioner.token,
        "children": [c.__dict__ for c in practitioner.children[:40]],
    }
    done = subprocess.run(
        [sys.executable, __file__, "--count-statements"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        cwd=code_dir or ROOT,
        check=False,
    )
    found = re.search(r"^PWCOUNT (.*)$", done.stdout, re.M)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"Counting statements failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(found.group(1))


TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}


def count_statements_here() -> None:
    """The --count-statements subprocess: reads its job on stdin, prints PWCOUNT {json}."""
    job = json.loads(sys.stdin.read())
    if job["code_dir"]:
        # The code under test first on the path; this script's own helpers are imported.
        sys.path[:0] = [job["code_dir"], str(Path(job["code_dir"]) / "demo")]
    os.environ["DEBUG"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    import core

    client = Client(HTTP_HOST=job["host"])
    for name, value in job["cookies"].items():
        client.cookies[name] = value
    children = job["children"]
    for child in children[:5]:
        assert client.get(f"/people/{child['pid']}/").status_code == 200
    pages: list[int] = []
    writes: list[int] = []
    sizes: list[int] = []
    control: list[int] = []
    cpus: list[float] = []
    first: list[str] = []
    for child in children[5:]:
        cpu = time.process_time()
        response = client.get(f"/people/{child['pid']}/")
        cpus.append((time.process_time() - cpu) * 1000)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/people/{child['pid']}/")
        assert response.status_code == 200, response.status_code
        statements = [q["sql"] for q in queries.captured_queries]
        first = first or statements
        pages.append(len(statements))
        writes.append(sum(s.lstrip().upper().startswith(("INSERT", "UPDATE")) for s in statements))
        control.append(sum(s.strip().upper() in TRANSACTION_CONTROL for s in statements))
        sizes.append(len(response.content))
    searches: list[int] = []
    for i, child in enumerate(children[5:]):
        query = (
            {"nhs_number": child["nhs_number"]}
            if i % 2 == 0
            else {"family_name": child["family_name"], "date_of_birth": child["date_of_birth"]}
        )
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                "/api/v1/search",
                data=query,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {job['token']}",
            )
        assert response.status_code == 200, response.status_code
        searches.append(len(queries.captured_queries))
    result = {
        "core": str(Path(core.__file__).resolve().parent),
        "page_statements": statistics.median(pages),
        "page_statements_range": [min(pages), max(pages)],
        "page_writes": statistics.median(writes),
        "page_begin_commit": statistics.median(control),
        "page_kb": statistics.mean(sizes) / 1000,
        "page_cpu_in_process_ms": statistics.median(cpus),
        "search_statements": statistics.median(searches),
        "one_page": [s[:160] for s in first],
    }
    print("PWCOUNT " + json.dumps(result))


# --- A code under test: its server, sign-ins, warm-up, rows -------------------------------


def code_label(code_dir: Path | None) -> str:
    where = code_dir or ROOT
    rev = subprocess.run(
        ["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if code_dir is None:
        return f"this checkout ({rev.stdout.strip() or '?'})"
    return f"{code_dir.name}" + (f" ({rev.stdout.strip()})" if rev.returncode == 0 else "")


def server_env(code_dir: Path | None) -> dict[str, str]:
    env = {**os.environ, **SERVER_ENV}
    if code_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(code_dir), str(code_dir / "demo"), os.environ.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep)
    return env


def code_check(code_dir: Path) -> str:
    """Where the server's modules will come from, checked in a subprocess with its paths."""
    done = subprocess.run(
        [sys.executable, "-c", "import core, deploy, patchwork_demo; print(core.__file__)"],
        env=server_env(code_dir),
        cwd=code_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    where = done.stdout.strip()
    if not where.startswith(str(code_dir.resolve())):
        raise SystemExit(f"--code {code_dir}: core would be imported from {where or done.stderr}")
    return where


def measure_code(
    code_dir: Path | None,
    setup: dict[str, object],
    args: argparse.Namespace,
    monitor: object,
    directory: Path,
) -> tuple[list[Row], dict]:
    from patchwork_demo.federation import free_port, server_stop

    from tests.bench.bench_network import sign_in

    label = code_label(code_dir)
    probe = speed_probe()
    practitioners: list[Practitioner] = setup["practitioners"]  # type: ignore[assignment]
    host = str(setup["host"])
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"bench_person_page_gunicorn_{port}.log"
    print(f"{label}: gunicorn on 127.0.0.1:{port}, {args.workers} workers (log {log})")
    server = gunicorn_start(
        server_env(code_dir), port, workers=args.workers, threads=1, log=log, code=code_dir
    )
    base = f"http://127.0.0.1:{port}"
    rows: list[Row] = []
    try:
        for practitioner in practitioners:
            practitioner.cookies = sign_in(
                base, host, practitioner.email, practitioner.password, str(setup["schema"])
            )
        counts = count_statements(code_dir, host, practitioners[0])
        print(
            f"  statements per page {counts['page_statements']:g} "
            f"({counts['page_writes']:g} writes), per search {counts['search_statements']:g}; "
            f"page {counts['page_kb']:.1f} KB; in-process (test client, no HTTP or gunicorn) "
            f"{counts['page_cpu_in_process_ms']:.1f} ms CPU per page; code from {counts['core']}",
            flush=True,
        )
        if args.show_statements:
            print("\n".join(f"    {sql}" for sql in counts["one_page"]), flush=True)
        # Warm-up, not measured: every worker loads its templates and prepares statements.
        for kind, _ in ROWS:
            wrk_row(
                label, kind, practitioners, host, base, args.warmup, server.pid, monitor, directory
            )
        print("  (the rows above were the warm-up)", flush=True)
        for connections in args.connections:
            for kind, _ in ROWS:
                rows.append(
                    wrk_row(
                        label,
                        kind,
                        practitioners[:connections],
                        host,
                        base,
                        args.seconds,
                        server.pid,
                        monitor,
                        directory,
                    )
                )
    finally:
        server_stop(server)
    counts["code"] = label
    counts["probe_ms"] = [probe, speed_probe()]
    print(f"  speed probe {probe:.0f} ms before, {counts['probe_ms'][1]:.0f} ms after", flush=True)
    return rows, counts


# --- Main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--council", default="E10000099")
    parser.add_argument("--children", type=int, default=250_000)
    parser.add_argument("--seconds", type=float, default=20, help="per row")
    parser.add_argument("--warmup", type=float, default=3, help="seconds per kind, per server")
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 16],
        help="comma-separated, e.g. 1,16",
    )
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--code",
        type=Path,
        help="another checkout to measure beside this one, alternating A, B, B, A",
    )
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--show-statements", action="store_true", help="print one page's SQL (abridged)"
    )
    parser.add_argument("--count-statements", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count_statements:
        count_statements_here()
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    code_dir = args.code.resolve() if args.code else None
    if code_dir is not None:
        print(f"--code {code_dir}: core from {code_check(code_dir)}")

    url = benchmark_database("patchwork_bench_person")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DEBUG"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import django

    django.setup()
    import logging

    for noisy in ("tenants", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import psycopg
    from django.conf import settings
    from django.db import connection

    if settings.PRODUCTION:
        sys.exit("Run the benchmark with PATCHWORK_ENV=development (DEBUG stays off)")
    setup = prepare(args.council, args.children, max(args.connections))
    connection.close()
    print(f"Council: {setup['council']}; {setup['counts']}")
    load_before = os.getloadavg()
    order: list[Path | None] = [code_dir, None, None, code_dir] if code_dir else [None]
    rows: list[Row] = []
    counts: list[dict] = []
    started = time.gmtime()
    with (
        psycopg.connect(url, autocommit=True) as monitor,
        tempfile.TemporaryDirectory(prefix="bench_person_page_") as directory,
    ):
        for code in order:
            code_rows, code_counts = measure_code(code, setup, args, monitor, Path(directory))
            rows += code_rows
            counts.append(code_counts)
    load_after = os.getloadavg()
    failed = [row for row in rows if row.failed]
    summary = summarise(rows, counts)
    print(summary)
    if failed:
        print(f"FAILED: {len(failed)} row(s) had non-200 answers, wrong bodies or socket errors")
    if args.write_docs:
        write_docs(setup, rows, counts, summary, args, started, load_before, load_after)
    if failed:
        sys.exit(1)


def summarise(rows: list[Row], counts: list[dict]) -> str:
    """Per code: the page's figures averaged over its runs, and B against A."""
    lines = []
    codes = list(dict.fromkeys(row.code for row in rows))
    per_code: dict[str, dict[str, float]] = {}
    for code in codes:
        figures: dict[str, float] = {}
        for kind, _ in ROWS:
            for connections in sorted({r.connections for r in rows}):
                mine = [
                    r for r in rows if (r.code, r.kind, r.connections) == (code, kind, connections)
                ]
                figures[f"{kind}@{connections} req/s"] = statistics.mean(r.per_second for r in mine)
                figures[f"{kind}@{connections} app"] = statistics.mean(r.app_cpu_ms for r in mine)
                figures[f"{kind}@{connections} pg"] = statistics.mean(r.pg_cpu_ms for r in mine)
        per_code[code] = figures
        count = next(c for c in counts if c["code"] == code)
        top = max(r.connections for r in rows)
        lines.append(
            f"{code}: person page {figures[f'page@{top} req/s']:.1f} req/s at {top} connections, "
            f"app CPU {figures[f'page@{top} app']:.2f} ms/req (1 connection: "
            f"{figures['page@1 app']:.2f}), PG CPU {figures[f'page@{top} pg']:.2f} ms/req; "
            f"floor /healthz app CPU {figures[f'healthz@{top} app']:.2f} ms/req; "
            f"{count['page_statements']:g} statements per page ({count['page_writes']:g} "
            f"writes, {count['page_begin_commit']:g} BEGIN/COMMIT), {count['page_kb']:.1f} KB; "
            f"search {figures[f'search@{top} req/s']:.1f} "
            f"req/s, app CPU {figures[f'search@{top} app']:.2f} ms/req."
            if "page@1 app" in figures
            else f"{code}: {figures}"
        )
    if len(codes) == 2:
        a, b = per_code[codes[0]], per_code[codes[1]]
        top = max(r.connections for r in rows)
        lines.append(
            f"{codes[1]} against {codes[0]}: person page throughput at {top} connections "
            f"x{b[f'page@{top} req/s'] / a[f'page@{top} req/s']:.2f}, app CPU per page "
            f"x{b[f'page@{top} app'] / a[f'page@{top} app']:.2f}; search throughput "
            f"x{b[f'search@{top} req/s'] / a[f'search@{top} req/s']:.2f}."
        )
    last = per_code[codes[-1]]
    count = next(c for c in counts if c["code"] == codes[-1])
    if "page@1 app" in last:
        lines.append(
            f"Against issue 19's table ({codes[-1]}): application CPU per page "
            f"{last['page@1 app']:.1f} ms at 1 connection against 13.4 ms "
            f"(x{last['page@1 app'] / 13.4:.2f}); "
            f"{count['page_statements'] - count['page_writes'] - count['page_begin_commit']:g} "
            f"statements (+{count['page_writes']:g} write, +{count['page_begin_commit']:g} "
            "BEGIN/COMMIT) against 14 (+1 write); "
            f"{count['page_kb']:.1f} KB against 19.8 KB; {last['page@1 req/s']:.0f} req/s at "
            "1 connection against 52"
            + (f", {last['page@16 req/s']:.0f} at 16 against 103" if "page@16 app" in last else "")
            + "."
        )
    return "\n\n".join(lines)


ISSUE_TABLE = (
    "Issue 19's figures (measured before this benchmark existed, with Python client threads "
    "in the same process as the load): 52 req/s at 1 connection (p50 17 ms, p95 34 ms), "
    "103 req/s at 16 (p95 192 ms), 13.4 ms of application CPU per page, 14 statements "
    "(+1 write), 19.8 KB."
)


def write_docs(
    setup: dict[str, object],
    rows: list[Row],
    counts: list[dict],
    summary: str,
    args: argparse.Namespace,
    started: time.struct_time,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    figures: dict[str, int] = setup["counts"]  # type: ignore[assignment]
    seen: set[str] = set()
    count_lines = []
    for count in counts:
        if count["code"] in seen:
            continue
        seen.add(count["code"])
        low, high = count["page_statements_range"]
        count_lines.append(
            f"| {count['code']} | {count['page_statements']:g} ({low}–{high}) | "
            f"{count['page_writes']:g} | {count['page_begin_commit']:g} | "
            f"{count['page_kb']:.1f} | {count['search_statements']:g} "
            f"| {count['page_cpu_in_process_ms']:.1f} |"
        )
    notes = sorted(
        {
            f"{r.code}, {dict(ROWS)[r.kind]} at {r.connections}: {n}"
            for r in rows
            for n in r.notes
            if "DB_CONN_MAX_AGE" not in n
        }
    )
    replaced = sum(any("DB_CONN_MAX_AGE" in n for n in r.notes) for r in rows)
    if replaced:
        notes.append(
            f"In {replaced} of the {len(rows)} rows Django replaced some of its database "
            "connections (DB_CONN_MAX_AGE: 150 to 300 s); an ended backend's CPU is counted up "
            "to its last reading, at most half a second before it ended."
        )
    rerun = (
        (
            f"# the other code, e.g. main at some commit: mkdir {args.code} && "
            f"git -C /work/main archive COMMIT | tar -x -C {args.code}\n"
            if args.code
            else ""
        )
        + "DATABASE_URL=postgres://postgres@127.0.0.1:5432/patchwork_bench_person "
        "PATCHWORK_ENV=development \\\n"
        f"    .venv/bin/python tests/bench/bench_person_page.py --seconds {args.seconds:g} "
        f"--connections {','.join(map(str, args.connections))}"
        + (f" --code {args.code}" if args.code else "")
        + " --write-docs"
    )
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', started)} with "
        "`tests/bench/bench_person_page.py` on a council seeded at county scale: "
        f"{figures['children']:,} children ({figures['people']:,} people), "
        f"{figures['involvements']:,} involvements, {figures['practitioners']:,} "
        f"practitioners. Server: gunicorn, {args.workers} sync workers, one thread each, DEBUG "
        "off, PostgreSQL 15 on 127.0.0.1. Load: `wrk` (closed loop), one connection per wrk "
        "thread, each connection its own practitioner signed in with password and TOTP, "
        f"cycling over 400 children on their own team; {args.seconds:g} s per row after a "
        f"{args.warmup:g} s warm-up per request kind. Every page view and search writes its "
        "audit event, as in real use. No Python runs while wrk does."
        + (
            f" Codes: A = `{args.code}` ({counts[0]['code']}, its modules from "
            f"{counts[0]['core']}), B = this checkout, run A, B, B, A, each with a fresh server."
            if args.code
            else ""
        ),
        "",
        f"**Machine: 2 CPU cores shared with other engineers' runs. Load average "
        f"{load_before[0]:.2f}, {load_before[1]:.2f}, {load_before[2]:.2f} before the run and "
        f"{load_after[0]:.2f}, {load_after[1]:.2f}, {load_after[2]:.2f} after it (the "
        'benchmark\'s own load included); "others" below is the CPU the rest of the machine '
        "used during each row, in cores (which includes Redis, PostgreSQL's WAL writer and the "
        "kernel's loopback work that the benchmark itself causes). Throughput and latency "
        "fall with others' load; CPU per request is the figure to compare, within one run.**",
        "",
        HEADER,
        *[row.line() for row in rows],
        "",
        "Failures: non-200 answers / 200s with the wrong body (not the child's name in the "
        "title or heading; not the child in the search results) / socket errors and timeouts. "
        "App CPU: utime + stime of gunicorn's workers per completed request; PG CPU: the same "
        "for this database's client backends; the floor, GET /healthz, is the cost of the "
        "stack with no work (session cookie sent, as a browser does).",
        "",
        "| code | SQL statements per page (range) | of them writes | of them BEGIN/COMMIT "
        "| page KB | statements per search | page CPU ms in-process |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *count_lines,
        "",
        "(Counted once per code in-process with Django's test client and "
        "CaptureQueriesContext, signed in with the first connection's session; the last "
        "column is that process's CPU per page, without HTTP and gunicorn.) Speed probe (a "
        "fixed 3-million-step Python loop, CPU ms, before and after each server's rows; it "
        "rises with others' load as CPU per request does): "
        + "; ".join(f"{c['code']} {c['probe_ms'][0]:.0f} / {c['probe_ms'][1]:.0f}" for c in counts)
        + ".",
        "",
        summary,
        "",
        ISSUE_TABLE,
        "",
        *([f"- {note}" for note in notes] + [""] if notes else []),
        "Rerun (`--code DIR` measures another checkout beside this one, A B B A; see the "
        "script's docstring):",
        "",
        "```",
        rerun,
        "```",
        "",
    ]
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start != -1:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + (text[end + 1 :] if end != -1 else "")
    DOCS.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n")
    print(f"Wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
