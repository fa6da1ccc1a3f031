"""Profile: the CPU one person-page view (and one search) costs, in-process, through the
deployment's own WSGI application and its whole middleware.

Run on demand (not part of `make test`), against a database of its own, never the tests':

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pw_pagespeed \\
        .venv/bin/python tests/bench/profile_person_page.py [--children 20000] \\
        [--requests 400] [--profile 40]

It seeds the benchmark council as tests/bench/bench_network.py does (its `prepare`), signs
the bench practitioner in for real (password, then the authenticator's code), then calls
`deploy.wsgi.application` directly with a WSGI environ like gunicorn's, in one thread:
no HTTP client competes for the CPU, so `time.process_time()` around each call is the
application's own CPU for the request (Django, the middleware, the view, the template, and
the database driver's side of the statements; not PostgreSQL's). It reports, per request,
the mean and median CPU milliseconds and the SQL statements of:

  (a) the person page, GET /people/<id>/, cycling over the bench practitioner's children;
  (b) the search API, POST /api/v1/search, with a bearer token;
  (c) the floor, GET /healthz, through the same application.

With --profile N it then runs the person page under cProfile and prints the N functions
with the most cumulative and own time. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.bench.common import benchmark_database  # noqa: E402


def sign_in(host: str, email: str, password: str, schema: str) -> dict[str, str]:
    """The real two-step sign-in through the test client; returns the session's cookies."""
    from django.test import Client
    from django_tenants.utils import schema_context
    from patchwork_demo.seeding import demo_code

    for _attempt in range(3):
        client = Client(HTTP_HOST=host)
        step = client.post("/sign-in/", {"email": email, "password": password})
        assert step.status_code == 302, f"password step answered {step.status_code}"
        with schema_context(schema):
            code = demo_code(email=email)
        done = client.post("/sign-in/code/", {"code": code})
        if done.status_code == 302:
            return {name: morsel.value for name, morsel in client.cookies.items()}
        # A code is accepted once: wait for the authenticator's next 30-second step.
        time.sleep(31 - time.time() % 30)
    raise SystemExit("Could not sign in the bench practitioner")


class Caller:
    """Calls the WSGI application as gunicorn would, counting the SQL statements."""

    def __init__(self, host: str, cookies: dict[str, str]) -> None:
        from django.core.wsgi import get_wsgi_application
        from django.db import connection

        self.application = get_wsgi_application()
        self.host = host
        self.cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.statements = 0
        self.show_sql = False

        def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
            self.statements += 1
            if self.show_sql:
                print(f"    SQL: {' '.join(sql.split())[:300]}")
            return execute(sql, params, many, ctx)

        connection.execute_wrappers.append(count)

    def __call__(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[str, bytes]:
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": self.host,
            "HTTP_COOKIE": self.cookie,
            "HTTP_ACCEPT": "text/html",
            "HTTP_USER_AGENT": "profile_person_page",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in (headers or {}).items():
            key = name.upper().replace("-", "_")
            environ[key if key.startswith("CONTENT_") else f"HTTP_{key}"] = value
        status: list[str] = []

        def start_response(s: str, _headers: Iterable[Any], _exc: Any = None) -> None:
            status.append(s)

        result = self.application(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        return status[0], content


def measure(
    label: str, requests: int, one: Callable[[int], tuple[str, bytes]], caller: Caller
) -> list[float]:
    """CPU milliseconds of each of `requests` calls, after a warm-up; prints a summary."""
    for i in range(20):
        one(i)
    cpu: list[float] = []
    sizes: list[int] = []
    caller.statements = 0
    for i in range(requests):
        t0 = time.process_time()
        status, content = one(i)
        cpu.append((time.process_time() - t0) * 1000)
        assert status.startswith("200"), f"{label}: {status}"
        sizes.append(len(content))
    print(
        f"  {label}: CPU mean {statistics.mean(cpu):.2f} ms, median "
        f"{statistics.median(cpu):.2f} ms, {caller.statements / requests:.1f} statements, "
        f"{statistics.mean(sizes) / 1024:.1f} KiB",
        flush=True,
    )
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--council", default="E10000099")
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=400, help="per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--save-page", type=Path, help="write one person page's HTML here")
    parser.add_argument("--sql", action="store_true", help="print one page view's statements")
    args = parser.parse_args()

    benchmark_database("pw_pagespeed")
    os.environ.setdefault("PATCHWORK_ENV", "development")
    os.environ["DEBUG"] = "false"  # as served: no query log, no debug templates
    # The API's limit still counts every call (its CPU is measured); it just never refuses.
    os.environ.setdefault("RATE_LIMIT_API", "1000000/m")
    # Every run signs in afresh (and a TOTP code is accepted once: a rerun within 30 s waits).
    os.environ.setdefault("RATE_LIMIT_SIGN_IN_ADDRESS", "1000/m")
    os.environ.setdefault("RATE_LIMIT_SIGN_IN_ACCOUNT", "1000/m")
    os.environ["DJANGO_SETTINGS_MODULE"] = "deploy.settings"
    import django

    django.setup()
    import logging

    for noisy in ("tenants", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from django.conf import settings

    from tests.bench.bench_network import prepare

    if settings.PRODUCTION:
        sys.exit("Run the profile with PATCHWORK_ENV=development")
    setup = prepare(args.council, args.children)
    sample: list[int] = setup["sample"]  # type: ignore[assignment]
    searches: list[dict[str, str]] = setup["searches"]  # type: ignore[assignment]
    host = str(setup["host"])
    cookies = sign_in(host, str(setup["email"]), str(setup["password"]), str(setup["schema"]))
    caller = Caller(host, cookies)
    bearer = {
        "Authorization": f"Bearer {setup['token']}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }

    def page(i: int) -> tuple[str, bytes]:
        return caller("GET", f"/people/{sample[i % len(sample)]}/")

    def search(i: int) -> tuple[str, bytes]:
        body = json.dumps(searches[i % len(searches)]).encode()
        return caller("POST", "/api/v1/search", body, bearer)

    def healthz(_i: int) -> tuple[str, bytes]:
        return caller("GET", "/healthz")

    if args.save_page:
        args.save_page.write_bytes(page(0)[1])
    if args.sql:
        caller.show_sql = True
        page(1)
        caller.show_sql = False
    print(f"Council: {setup['council']}; {setup['counts']}")
    for _round in range(args.rounds):
        measure("(a) person page, GET /people/<id>/", args.requests, page, caller)
        measure("(b) search API, POST /api/v1/search", args.requests, search, caller)
        measure("(c) floor, GET /healthz", args.requests, healthz, caller)

    if args.profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for i in range(args.requests):
            page(i)
        profiler.disable()
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.profile)
            print(out.getvalue())


if __name__ == "__main__":
    main()
