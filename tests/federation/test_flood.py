"""A flood of unauthenticated federation requests (issue 14, point 3): 10,000 forged lookups
from one address, over real HTTP to gunicorn on 127.0.0.1, at the production limits. The
audit table does not grow by a row or a byte, all but the first few are 429, and the log
gets a line or two, not one per request."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

from tests.browser import committed
from tests.federation.live import free_port, live_env, server_start, server_stop
from tests.federation.test_refusals_and_limits import STAFFS, forged
from tests.ratelimits.fixtures import production_limits

__all__ = ["production_limits"]

REQUESTS = 10_000
CLIENTS = 6
# The claimed council padded to 8 KB, as in the report: before the fix each refusal wrote
# it into a permanent audit row and an 8 KB log line.
PADDING = "x" * 8000


def audit_table(schema: str) -> tuple[int, int]:
    """(rows, bytes including indexes and TOAST) of a council's audit table."""

    def measure() -> tuple[int, int]:
        with connection.cursor() as cursor:
            table = f'"{schema}".core_auditevent'
            # Vacuumed first, so autovacuum has nothing left to add to its size meanwhile.
            cursor.execute(f"VACUUM {table}")
            cursor.execute(f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}")
            rows, size = cursor.fetchone()
            return int(rows), int(size)

    return committed(measure)  # type: ignore[return-value]


def test_ten_thousand_forged_requests_leave_the_audit_table_as_it_was(
    pair, production_limits, tmp_path: Path, caplog
) -> None:
    caplog.set_level("WARNING", logger="httpx")
    schema = pair.staffordshire.schema_name
    body, headers = forged(pair)
    headers = {**headers, "patchwork-council": f"council:{PADDING}"}
    before = audit_table(schema)
    port = free_port()
    log = tmp_path / "gunicorn.log"
    # Production limits; and not 127.0.0.1 as the trusted proxy, so the flood's own
    # X-Forwarded-For (a different address each time) must not be believed.
    env = live_env(port, **settings.RATE_LIMIT_DEFAULTS, TRUSTED_PROXIES="192.0.2.1")
    server = server_start(env, port, workers=2, log=log)
    url = f"http://127.0.0.1:{port}/federation/v1/who-is-involved"

    def flood(client_number: int) -> Counter[int]:
        statuses: Counter[int] = Counter()
        with httpx.Client(headers={"Host": STAFFS}, timeout=30) as client:
            for n in range(REQUESTS // CLIENTS + (client_number < REQUESTS % CLIENTS)):
                spoofed = {"X-Forwarded-For": f"203.0.113.{n % 250}"}
                response = client.post(url, content=body, headers={**headers, **spoofed})
                statuses[response.status_code] += 1
        return statuses

    try:
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = sum(pool.map(flood, range(CLIENTS)), Counter[int]())
        elapsed = time.monotonic() - started
    finally:
        server_stop(server)

    assert audit_table(schema) == before
    assert sum(statuses.values()) == REQUESTS
    assert set(statuses) <= {403, 429}, statuses
    # The address's allowance (20), and at most one more per client racing past the count.
    assert statuses[403] <= 20 + CLIENTS, statuses
    assert statuses[429] >= REQUESTS - 20 - CLIENTS
    logged = log.read_text().splitlines()
    refusals = [line for line in logged if "Refused federation" in line]
    assert 1 <= len(refusals) <= 2, refusals
    assert all(len(line) < 400 for line in logged), max(len(line) for line in logged)
    assert len(logged) < 100, logged[:5]
    print(f"{REQUESTS} requests in {elapsed:.1f}s: {dict(statuses)}")
