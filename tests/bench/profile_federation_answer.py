"""Where one answer to another council goes: lookups signed by the asking council and served
in this process through the deployment's WSGI application (every middleware, DEBUG off),
with the CPU of this process and of its PostgreSQL backend per answer, the statements each
answer sends, or a cProfile listing.

Run after tests/bench/bench_federation.py, on the councils it made (its database is kept):

    .venv/bin/python tests/bench/profile_federation_answer.py \\
        --database patchwork_bench_speed --redis-url redis://127.0.0.1:6379/9 \\
        [--answers 300] [--order rotating|paired] [--statements] [--profile]

`--order rotating` (the default) sends each answer from another council than the one
before, as a server answering 150 councils on a few connections sees them; `paired` sends
two in a row from each council, so only every second answer switches the connection's
council: the difference is what switching councils costs (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:  # noqa: PLR0915 - a script, read top to bottom
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="patchwork_bench_federation")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--order", choices=["rotating", "paired"], default="rotating")
    parser.add_argument("--statements", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--batch", type=int, default=1, help="answers per request (federation/v1/batch)"
    )
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    os.environ.update(
        DATABASE_URL=base.rsplit("/", 1)[0] + f"/{args.database}",
        PATCHWORK_ENV="development",
        DEBUG="false",
        REDIS_URL=args.redis_url,
        DJANGO_SETTINGS_MODULE="deploy.settings",
        PLATFORM_DOMAIN="localhost",
    )
    import logging

    import django

    django.setup()
    logging.disable(logging.WARNING)
    from django.db import connection
    from django_tenants.utils import schema_context

    from core.models import Person
    from deploy.wsgi import application
    from federation import protocol
    from federation.client import LOOKUP_PATH, SignedRequest, signed_request
    from federation.models import Exchange
    from federation.selectors import agreements_in_force, peers_active_with_urls
    from federation.services import agreement_secret, person_identifiers
    from tenants.models import Council

    asker = Council.objects.get(code="E06000001")  # the benchmark's asking council

    def lookups(count: int) -> list[SignedRequest]:
        made: list[SignedRequest] = []
        with schema_context(asker.schema_name):
            identifiers = person_identifiers(Person.objects.order_by("id").first())
            peers = {peer.federation_id: (peer, url) for peer, url in peers_active_with_urls()}
            agreements = agreements_in_force("safeguarding")
            while len(made) < count:
                for agreement in agreements[: count - len(made)]:
                    keys = protocol.match_keys(
                        identifiers,
                        secret=agreement_secret(agreement),
                        demographic=agreement.demographic_matching,
                    )
                    made.append(
                        signed_request(
                            peer=peers[agreement.partner_id][0],
                            base_url=peers[agreement.partner_id][1],
                            path=LOOKUP_PATH,
                            kind=Exchange.Kind.LOOKUP,
                            agreement_id=agreement.agreement_id,
                            purpose="safeguarding",
                            practitioner="0" * 32,
                            payload={"type": "patchwork.lookup", "match_keys": keys},
                        )
                    )
        if args.order == "paired":
            made.sort(key=lambda one: one.url)
        return made

    def envelope(batch: list[SignedRequest]) -> SignedRequest:
        """The batch (federation.batching) carrying `batch`, as one request to serve."""
        body = json.dumps(
            {
                "type": "patchwork.batch",
                "requests": [
                    {"target": one.url, "headers": one.headers, "body": one.body.decode()}
                    for one in batch
                ],
            }
        ).encode()
        url = batch[0].url.replace(LOOKUP_PATH, "/federation/v1/batch")
        return replace(batch[0], url=url, body=body, headers={"Content-Type": "application/json"})

    def serve(requests: list[SignedRequest]) -> None:
        if args.batch > 1:
            requests = [
                envelope(requests[start : start + args.batch])
                for start in range(0, len(requests), args.batch)
            ]
        for one in requests:
            parts = urlsplit(one.url)
            environ: dict[str, Any] = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": parts.path,
                "QUERY_STRING": "",
                "SERVER_NAME": parts.hostname,
                "SERVER_PORT": str(parts.port or 80),
                "SERVER_PROTOCOL": "HTTP/1.1",
                "HTTP_HOST": parts.netloc,
                "REMOTE_ADDR": "127.0.0.1",
                "CONTENT_LENGTH": str(len(one.body)),
                "wsgi.url_scheme": parts.scheme,
                "wsgi.input": io.BytesIO(one.body),
                "wsgi.errors": sys.stderr,
            }
            for name, value in one.headers.items():
                key = name.upper().replace("-", "_")
                environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
            status: list[str] = []
            body = list(application(environ, lambda s, h, e=None, status=status: status.append(s)))
            if not status[0].startswith("200"):
                raise SystemExit(f"{one.url} answered {status[0]}")
            if args.batch > 1:
                answers = json.loads(b"".join(body))["answers"]
                if any(entry["status"] != 200 for entry in answers):
                    raise SystemExit(f"{one.url}: {answers}")

    serve(lookups(args.answers))  # every council seen once by this process first
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid

    def backend_cpu() -> float:
        fields = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    requests = lookups(args.answers)
    statements: Counter[str] = Counter()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        words = sql.split()
        statements[" ".join(words[:4]) if not words[0].startswith("SET") else "SET ..."] += 1
        return execute(sql, params, many, context)

    if args.statements:
        connection.execute_wrappers.append(count)
    # CPU time, not wall time: what other programs on the machine do is left out.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    cpu, pg = time.process_time(), backend_cpu()
    if profiler:
        profiler.enable()
    serve(requests)
    if profiler:
        profiler.disable()
    cpu, pg = time.process_time() - cpu, backend_cpu() - pg
    n = len(requests)
    print(
        f"{n} answers ({args.order}): this process {1000 * cpu / n:.2f} ms of CPU each, "
        f"its PostgreSQL backend {1000 * pg / n:.2f} ms"
    )
    for text, times in statements.most_common():
        print(f"{times / n:6.2f} per answer  {text}")
    # What the connection's prepared statements hold, one per hot statement and council
    # (decision 0025): their count and the memory of their plans.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        prepared = cursor.fetchone()[0]
        cursor.execute(
            "SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts "
            "WHERE name IN ('CachedPlan', 'CachedPlanSource', 'CachedPlanQuery')"
        )
        plans = cursor.fetchone()[0]
        cursor.execute("SELECT sum(total_bytes) FROM pg_backend_memory_contexts")
        total = cursor.fetchone()[0]
        cursor.execute(
            "SELECT left(ident, 50), count(*), sum(total_bytes) FROM pg_backend_memory_contexts "
            "WHERE name IN ('CachedPlan', 'CachedPlanSource', 'CachedPlanQuery') "
            "GROUP BY 1 ORDER BY 3 DESC LIMIT 12"
        )
        for text, count, size in cursor.fetchall():
            print(f"  {size / 2**20:6.1f} MB in {count:5d} plan contexts: {text}")
    print(
        f"this connection: {prepared} prepared statements, their plans {plans / 2**20:.1f} MB, "
        f"the backend's memory contexts {total / 2**20:.1f} MB"
    )
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(60)
        if os.environ.get("PROFILE_CALLERS"):
            stats.print_callers(os.environ["PROFILE_CALLERS"])
        print(out.getvalue())


if __name__ == "__main__":
    main()
