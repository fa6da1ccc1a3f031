"""django-tenants' PostgreSQL backend, remembering the search path it last set.

django-tenants forgets the search path whenever a schema is chosen, even the one already in
force, so with `TENANT_LIMIT_SET_CALLS` every request still sent two `SET search_path`
statements (public for routing, then the council). Here the connection remembers what the
server has, and choosing that same schema again sends nothing. Routing reads the public
tables by their qualified names without switching (tenants.middleware), so a process that
serves the same council request after request sets its path once.

The remembered path is forgotten whenever the server may have dropped it: the connection
closes, or a transaction or savepoint is rolled back (a `SET` inside it is undone). Code
that sets the search path with its own SQL must call `forget_search_path()` after.

It also gives `prepared_cursor()` (decision 0005): a cursor whose statements with parameters
PostgreSQL parses and plans once per connection, then only runs. Django's own cursors bind
parameters on the client, so the server plans every statement afresh; for the few plain
statements read on every page (the network of a person plans in 2 ms and runs in 0.3)
planning was most of the database's time. PostgreSQL re-plans a prepared statement by
itself when the search path or a table it reads changes, so one council's plan is never
run against another's tables.

Each statement is prepared once per council and connection (decision 0025): the cursor adds
the council's schema to the statement's text as a comment, so psycopg keeps one prepared
statement per schema, each planned under its own search path. Without it, a connection
that answers council after council (federation, at 150 councils on a handful of
connections) had PostgreSQL analyse and plan every statement again at each switch, since
a cached plan is re-planned whenever the search path differs from the one it was made
under: half of the database's work per answer. The comment changes nothing else, and
PostgreSQL's own check still guards correctness if a tag were ever wrong.

It refuses to run behind a connection pooler in transaction mode (pooler.py)."""

from __future__ import annotations

import datetime
import random
import re
import select
import time
from typing import Any, cast

import psycopg
from django.conf import settings
from django.db.backends.postgresql.operations import DatabaseOperations as BaseOperations
from django_tenants.postgresql_backend import base

from tenants.postgresql_backend.pooler import refuse_transaction_pooler

TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid
# psycopg's own loader (its C code where installed), not the Python subclass Django registers.
FAST_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(TIMESTAMPTZ_OID, psycopg.pq.Format.TEXT)

# A schema name as django-tenants allows it: nothing that could end a comment.
SCHEMA_TAG = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PreparedCursor(psycopg.Cursor[Any]):
    """Parameters bound on the server; a statement given parameters is prepared on first
    use and kept by psycopg for this connection (at most `prepared_max`, least recently
    used dropped). A statement without parameters (`SET search_path`) runs unprepared.
    `schema_tag` (the schema the search path named when the cursor was made) is added to
    the text of each prepared statement: one prepared statement per council."""

    schema_tag = ""
    # The connection's one prepared cursor, kept for every statement it runs (see
    # `DatabaseWrapper.prepared_cursor`): closing it only forgets its last result.
    kept = False

    def close(self) -> None:
        if self.kept:
            self._reset()
            return
        super().close()

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Any:
        if prepare is None:
            prepare = params is not None
        self._tag_next = bool(prepare and self.schema_tag)
        return super().execute(query, params, prepare=prepare, binary=binary)

    def _convert_query(self, query: Any, params: Any = None) -> Any:
        # The tag goes on after psycopg has converted the statement, whose conversion it
        # keeps (for 128 statement texts): tagged before, each council's copy would be a
        # text of its own, converted again on every run once there are more than 128.
        converted = super()._convert_query(query, params)
        if getattr(self, "_tag_next", False):
            self._tag_next = False
            converted.query += f"\n/* {self.schema_tag} */".encode()
        return converted


class DatabaseOperations(BaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str:
        # psycopg keeps no text of a statement bound on the server: compose it, as Django
        # does when every cursor binds on the server, for the query log and its counters.
        if isinstance(cursor, PreparedCursor):
            try:
                return str(self.compose_sql(sql, params))
            except psycopg.errors.DataError:
                return sql
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    # `is_usable` trusts a connection checked this recently (seconds) without a round trip.
    TRUSTED_FOR = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.search_path_on_server: list[str] | None = None
        self._prepared_next = False  # the next cursor made is a PreparedCursor
        self._kept_cursor: PreparedCursor | None = None
        self._checked_at = float("-inf")  # when `is_usable` last looked (time.monotonic)
        super().__init__(*args, **kwargs)

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        on_server = getattr(self, "search_path_on_server", None)
        if on_server is not None and on_server == self._get_cursor_search_paths():
            self.search_path_set_schemas = on_server

    def _handle_search_path(self, cursor: Any = None) -> None:
        super()._handle_search_path(cursor)
        self.search_path_on_server = self.search_path_set_schemas

    def connect(self) -> None:
        super().connect()
        # Each connection lives between half and all of DB_CONN_MAX_AGE, drawn at random:
        # connections made together (a worker's start) are not all replaced together, so
        # the statements each council needs are prepared again a connection at a time,
        # never on every connection in the same second.
        max_age = self.settings_dict["CONN_MAX_AGE"]
        if self.close_at is not None and max_age:
            self.close_at -= max_age * random.uniform(0.0, 0.5)  # noqa: S311 - spread, not a secret

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        # One prepared statement per hot statement and council (see the module text).
        connection.prepared_max = settings.DB_PREPARED_STATEMENTS_MAX
        # Behind a transaction pooler the remembered search path above is a lie: refuse
        # at the first connection of each process (pooler.py says how it is told).
        if settings.DATABASE_POOLER_CHECK:
            try:
                refuse_transaction_pooler(connection, conn_params)
            except BaseException:
                connection.close()
                raise
        return connection

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        # Django turns psycopg's statement preparing off (None); its own cursors bind on
        # the client and never prepare anyway. Only PreparedCursor asks for it.
        if params.get("prepare_threshold") is None:
            params["prepare_threshold"] = 5
        return params

    def init_connection_state(self) -> None:
        super().init_connection_state()
        # Only prepared statements have a plan cache, and ours are the fixed hot statements,
        # each reading by key: planned once, not the five custom plans PostgreSQL makes first
        # (a connection lives a few minutes, and meets each council many times in it). Set by a
        # statement, not a startup parameter: PgBouncer refuses `options` at connect.
        mode = settings.DB_PLAN_CACHE_MODE  # one of three words (deploy/settings.py)
        if mode and mode != "auto":
            with self.connection.cursor() as cursor:
                cursor.execute(f"SET plan_cache_mode = {mode}")
            if not self.get_autocommit():
                self.connection.commit()

    def prepared_cursor(self) -> Any:
        """Like `cursor()`, with statements prepared on the server (see the module text).
        Use it for fixed statements run on every request, written for server-side binding:
        placeholders only where PostgreSQL takes a parameter, `= ANY(%s)` not `IN %s`.

        The connection keeps one such cursor and hands it out again (each time in a new
        Django wrapper, so the query log and its counters see every statement): making a
        cursor costs more than running a prepared statement's client side (a page runs ten).
        Closing it only forgets its last result. So fetch what a statement returns before
        the next prepared statement runs, as every caller here does."""
        # Connect first: connecting makes cursors of its own, which must stay Django's.
        self.close_if_health_check_failed()
        self.ensure_connection()
        kept = self._kept_cursor
        if kept is None or kept.connection is not self.connection or kept.closed:
            self._prepared_next = True
            try:
                with self.wrap_database_errors:
                    made = self.create_cursor()
            finally:
                self._prepared_next = False
            kept = cast(PreparedCursor, made)  # `create_cursor` below, with _prepared_next
            kept.kept = True
            self._kept_cursor = kept
        wrapper = self._wrapped(kept)
        # As django-tenants does for each cursor it makes: the search path set for the
        # schema chosen now, if the server does not have it already.
        self._handle_search_path(wrapper)
        schema = self.schema_name or ""
        # Every statement, even one that names the schema of each table it reads (routing's
        # `public.tenants_council`): PostgreSQL plans a prepared statement again whenever
        # the search path differs from the one it was planned under, whatever it reads.
        kept.schema_tag = schema if SCHEMA_TAG.match(schema) else ""
        return wrapper

    def _wrapped(self, cursor: Any) -> Any:
        # Django's own wrapping (`_cursor`): the debug wrapper while queries are logged.
        with self.wrap_database_errors:
            return self._prepare_cursor(cursor)

    def create_cursor(self, name: str | None = None) -> Any:
        if name or not self._prepared_next:
            return super().create_cursor(name)
        self._prepared_next = False
        # Django's own cursor making (time zone and all), with our cursor class.
        factory = self.connection.cursor_factory
        self.connection.cursor_factory = PreparedCursor
        try:
            cursor = super().create_cursor(name)
        finally:
            self.connection.cursor_factory = factory
        # Times read in UTC as psycopg's own C loader reads them: Django's loader (the same
        # values; it only sets the zone) is a Python subclass, which loses that loader's C
        # code (a tenth of the statements' client side on a person page, in its viewings).
        if settings.USE_TZ and self.timezone is datetime.UTC:
            cursor.adapters.register_loader(TIMESTAMPTZ_OID, FAST_TIMESTAMPTZ_LOADER)
        return cursor

    def is_usable(self) -> bool:
        """Django's health check (`CONN_HEALTH_CHECKS`, at the start of each request) sends
        `SELECT 1` and waits for it: a round trip on every request. A server that ends a
        connection (a restart, a fail-over, `pg_terminate_backend`) says why and closes the
        socket, so a connection checked within the last `TRUSTED_FOR` seconds (a busy
        one), idle, not marked broken and with nothing to read, is as we left it. Any other
        is asked `SELECT 1`, as Django would: one idle for longer may have been dropped
        without a word (a NAT or load balancer's idle timeout)."""
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        now = time.monotonic()
        checked, self._checked_at = self._checked_at, now
        if (
            now - checked < self.TRUSTED_FOR
            and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            try:
                waiting = select.poll()
                waiting.register(
                    connection.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP
                )
                if not waiting.poll(0):
                    return True
            except (OSError, ValueError):
                return False
        return bool(super().is_usable())

    def forget_search_path(self) -> None:
        """For code that changed the search path with its own SQL (tenants.cloning): the
        next statement sets it again, whatever schema is chosen."""
        self.search_path_on_server = None
        self.search_path_set_schemas = None

    def close(self) -> None:
        self.search_path_on_server = None
        self._kept_cursor = None
        super().close()

    def rollback(self) -> None:
        self.search_path_on_server = None
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        self.search_path_on_server = None
        super().savepoint_rollback(sid)
