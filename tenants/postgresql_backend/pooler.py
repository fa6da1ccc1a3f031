"""Refuse to run behind a connection pooler in transaction mode (decision 0001).

django-tenants sets a council's search path once per session and we remember it
(`search_path_on_server`), so every statement after it trusts that the server connection is
still the one that received the `SET`. A pooler in transaction mode (PgBouncer's
`pool_mode = transaction`, at any version) hands each transaction of a client to whichever
server connection is free: one council's statement could then run with another council's
search path (django-tenants #732). Session pooling keeps one server connection per client
and is safe.

The check, once per process at its first connection:
- Straight to PostgreSQL, the process id the server gave at connection start is the one
  `pg_backend_pid()` answers. A pooler gives the client its own id (it has to: the client's
  cancel requests go to the pooler, which must route them), so only then is it probed.
- The probe: our connection, idle, asks for its backend pid; a second client opens a
  transaction and asks for its own, holding that server connection; then ours asks again.
  Behind a transaction pooler the second client is given the server connection ours just
  released (PgBouncer hands out the most recently freed one), or ours is moved to another:
  either way the pids show it. In session mode ours keeps its server connection, and the
  second client gets a server connection of its own or waits for one (a full pool: ours still
  answers at once, which a transaction pooler could not do).
"""

from __future__ import annotations

import logging
import os
import select
import time
from typing import Any

import psycopg
from django.core.exceptions import ImproperlyConfigured
from psycopg import pq

# How long the second client may wait for a server connection (a full session pool keeps it
# waiting), and how long our own idle connection may take to answer (a session keeps its
# server connection, so only a transaction pooler's queue makes it wait).
HOLDER_WAIT_SECONDS = 1.0
ANSWER_WAIT_SECONDS = 5.0
# Two probes: PgBouncer's round-robin mode can give the first one another idle server
# connection; the second then finds only ours free.
PROBES = 2

_checked_in_process: int | None = None
log = logging.getLogger(__name__)


def refuse_transaction_pooler(connection: psycopg.Connection[Any], params: dict[str, Any]) -> None:
    """Raise ImproperlyConfigured if `connection` (new, idle) reaches PostgreSQL through a
    pooler that moves a client between server connections. `params` open a second client
    the same way. Runs once per process; later calls return at once."""
    global _checked_in_process
    if _checked_in_process == os.getpid():
        return
    first = _backend_pid(connection.pgconn, "SELECT pg_backend_pid()", ANSWER_WAIT_SECONDS)
    if first is None:
        raise psycopg.OperationalError(
            f"PostgreSQL did not answer a new connection within {ANSWER_WAIT_SECONDS:g} s"
        )
    if first != connection.pgconn.backend_pid and not _probe(connection.pgconn, first, params):
        return  # the probe could not run: the next new connection tries again
    _checked_in_process = os.getpid()


def _probe(ours: pq.abc.PGconn, first: int, params: dict[str, Any]) -> bool:
    """True when the probe ran and found a session pooler; raises on a transaction pooler;
    False when the second client could not connect (a pooler at its client limit, say): that
    says nothing of its mode, so the app's own connection is not failed for it."""
    holders: list[psycopg.Connection[Any]] = []
    try:
        for _ in range(PROBES):
            try:
                holder = psycopg.connect(**params)
            except psycopg.Error as exc:
                log.warning("Could not check the connection pooler's mode: %s", exc)
                return False
            holders.append(holder)
            held = _backend_pid(
                holder.pgconn, "BEGIN; SELECT pg_backend_pid()", HOLDER_WAIT_SECONDS
            )
            if held == first:
                raise ImproperlyConfigured(_refusal(f"ours {first}, then a second client's {held}"))
            again = _backend_pid(ours, "SELECT pg_backend_pid()", ANSWER_WAIT_SECONDS)
            if again != first:
                moved = "no answer" if again is None else again
                raise ImproperlyConfigured(_refusal(f"ours {first}, then ours {moved}"))
        return True
    finally:
        for holder in holders:
            holder.close()


def _backend_pid(pgconn: pq.abc.PGconn, sql: str, wait_seconds: float) -> int | None:
    """The backend pid the last statement of `sql` answers, or None if no answer came in
    time (the statement is left waiting: close that connection). Sent on the protocol
    directly, outside psycopg's transaction handling, so each statement of an idle
    connection is a transaction of its own and `BEGIN` stays open."""
    pgconn.send_query(sql.encode())
    deadline = time.monotonic() + wait_seconds
    pid: int | None = None
    while True:
        while pgconn.is_busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([pgconn.socket], [], [], remaining)[0]:
                return None
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            return pid
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.OperationalError((result.error_message or b"").decode(errors="replace"))
        if result.status == pq.ExecStatus.TUPLES_OK:
            value = result.get_value(0, 0)
            pid = int(value) if value is not None else None


def _refusal(seen: str) -> str:
    return (
        "The database answers through a connection pooler in transaction mode (PgBouncer "
        "pool_mode = transaction, or similar): it hands PostgreSQL server connections from "
        f"one client to another between transactions (backend pids: {seen}). Patchwork sets "
        "each council's search path once per session, so in this mode one council's "
        "statements could run with another council's search path (django-tenants #732). Use "
        "session pooling (pool_mode = session) or connect to PostgreSQL directly: see "
        'docs/operations.md, "A connection pooler in front of PostgreSQL".'
    )
