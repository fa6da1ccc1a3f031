"""Applying a release's migrations to every council from one small pool of long-lived
processes (decision 0023).

A process per council spent about 1.7 s of CPU starting Python and loading Django and the
migration graph before doing a few milliseconds of DDL. Here each worker loads the graph
once and keeps it, and keeps the model states a plan passes through (the same for every
council at the same point: worked out for the first, replayed for the others), so a
council costs its own DDL and a little bookkeeping. Each worker has its own database
connection; the search path is set per council on it, as django-tenants'
`migrate_schemas` sets it.

Each migration that runs in a transaction waits at most `MIGRATION_LOCK_TIMEOUT` seconds
for a lock: a table lock it cannot get at once (a long read holds the table) would
otherwise queue every read of that table behind it. It rolls back, waits, and is tried
again a few times with a growing pause. Migrations outside a transaction (`atomic =
False`, for `CREATE INDEX CONCURRENTLY`) wait without a lock timeout: their waits block
no reads or writes, and one stopped half way leaves an invalid index behind. Every
statement stops after `MIGRATION_STATEMENT_TIMEOUT` seconds."""

from __future__ import annotations

import logging
import random
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import import_module
from multiprocessing import get_context
from typing import Any

import psycopg
from django.apps import apps
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import connections, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations import operations
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ModelState, ProjectState, StateApps
from django.db.models.signals import post_migrate
from django.utils.module_loading import module_has_submodule
from django_tenants.utils import get_public_schema_name, get_tenant_base_schema, schema_exists

from tenants.db import sql_identifier, tenant_connection

log = logging.getLogger(__name__)

MIGRATED = "migrated"
UP_TO_DATE = "up to date"
FAILED = "failed"


@dataclass(frozen=True)
class MigrationLimits:
    """How long a migration may wait and run, and how often it is tried (settings)."""

    lock_timeout: float
    statement_timeout: float
    lock_tries: int
    retry_seconds: float

    @classmethod
    def from_settings(cls) -> MigrationLimits:
        return cls(
            lock_timeout=settings.MIGRATION_LOCK_TIMEOUT,
            statement_timeout=settings.MIGRATION_STATEMENT_TIMEOUT,
            lock_tries=max(1, settings.MIGRATION_LOCK_TRIES),
            retry_seconds=settings.MIGRATION_RETRY_SECONDS,
        )


@dataclass
class SchemaMigrated:
    """What happened to one schema: for the log line and the run's JSON summary."""

    schema: str
    status: str = UP_TO_DATE
    migrations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tries: int = 0
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def migration_name(migration: Migration) -> str:
    return f"{migration.app_label}.{migration.name}"


def lock_timed_out(error: BaseException) -> bool:
    """True when PostgreSQL gave up waiting for a lock (`lock_timeout`), whatever wraps it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, psycopg.errors.LockNotAvailable):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def error_text(error: BaseException) -> str:
    """The error on one line, named as PostgreSQL names it when it came from there
    (`DuplicateColumn`, not Django's wrapper `ProgrammingError`), without a traceback."""
    named: BaseException = error
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, psycopg.Error):
            named = seen
        seen = seen.__cause__
    words = " ".join(str(error).split()) or "no message"
    return f"{type(named).__name__}: {words}"


class SchemaMigrator:
    """Applies pending migrations to one schema at a time on this process's connection,
    keeping the migration graph and the rendered model states between schemas."""

    def __init__(self, limits: MigrationLimits) -> None:
        self.limits = limits
        # As `migrate` does: apps register their pre/post_migrate handlers in `management`.
        for app_config in apps.get_app_configs():
            if module_has_submodule(app_config.module, "management"):
                import_module(".management", app_config.name)
        self.executor = MigrationExecutor(tenant_connection(), self._progress)
        self.loader = self.executor.loader
        self._states: dict[frozenset[tuple[str, str]], ProjectState] = {}
        self._releases: dict[Any, _Release] = {}
        self._every: list[Migration] | None = None
        self._applied_now: list[str] = []
        self._running: Migration | None = None
        self._in_public = False
        self._tenant_apps = {app.rsplit(".", 1)[-1] for app in settings.TENANT_APPS}

    # --- What would run ----------------------------------------------------------------

    def plans(self, schemas: Sequence[str]) -> dict[str, list[Migration]]:
        """The migrations `migrate` would apply in each schema, in order; changes nothing.
        Every schema's records are read in a few statements (a query per schema took a
        minute at 400 councils on a busy machine)."""
        order = self._order()
        applied: dict[str, set[tuple[str, str]]] = {schema: set() for schema in schemas}
        with tenant_connection().cursor() as cursor:
            cursor.execute(
                "SELECT schemaname FROM pg_catalog.pg_tables "
                "WHERE tablename = 'django_migrations' AND schemaname = ANY(%s)",
                [list(schemas)],
            )
            recorded = sorted(row[0] for row in cursor.fetchall())
            for first in range(0, len(recorded), 200):
                batch = recorded[first : first + 200]
                cursor.execute(
                    " UNION ALL ".join(
                        f"SELECT %s, app, name FROM {sql_identifier(schema, 'django_migrations')}"  # noqa: S608
                        for schema in batch
                    ),
                    batch,
                )
                for schema, app, name in cursor.fetchall():
                    applied[schema].add((app, name))
        return {
            schema: [m for m in order if (m.app_label, m.name) not in applied[schema]]
            for schema in schemas
        }

    def _order(self) -> list[Migration]:
        """Every migration, in the order a new schema would take them (worked out once)."""
        if self._every is None:
            self._every = [
                migration
                for migration, _ in self.executor.migration_plan(
                    self.loader.graph.leaf_nodes(), clean_start=True
                )
            ]
        return self._every

    # --- Applying ------------------------------------------------------------------------

    def migrate(self, schema: str, *, say: Callable[[str], None] = log.warning) -> SchemaMigrated:
        """Apply what is pending in `schema`, trying again (with a growing pause) when a
        migration gave up waiting for a lock. Never raises: a failure is in the result."""
        result = SchemaMigrated(schema=schema)
        started = time.monotonic()
        connection = tenant_connection()
        try:
            for attempt in range(1, self.limits.lock_tries + 1):
                result.tries = attempt
                self._applied_now = []
                try:
                    self._apply(schema)
                    result.migrations += self._applied_now
                    break
                except Exception as error:  # noqa: BLE001 - reported, and the run goes on
                    result.migrations += self._applied_now
                    running = migration_name(self._running) if self._running else "its plan"
                    connection.close()  # the next try, or schema, starts on a clean session
                    if lock_timed_out(error) and attempt < self.limits.lock_tries:
                        pause = self.limits.retry_seconds * 2 ** (attempt - 1)
                        pause *= 1 + random.random() / 4  # noqa: S311 - spreads the retries
                        say(
                            f"{schema}: {running} gave up waiting "
                            f"{self.limits.lock_timeout:g} s for a lock (try {attempt} of "
                            f"{self.limits.lock_tries}); trying again in {pause:.1f} s"
                        )
                        time.sleep(pause)
                        continue
                    result.status = FAILED
                    result.error = f"{running}: {error_text(error)}"
                    if lock_timed_out(error):
                        result.error += f" (gave up after {attempt} tries)"
                    break
            if result.status != FAILED and result.migrations:
                result.status = MIGRATED
        finally:
            result.seconds = round(time.monotonic() - started, 3)
            connection.set_schema_to_public()
        return result

    def _apply(self, schema: str) -> None:
        connection = tenant_connection()
        self._running = None
        self._in_public = schema == get_public_schema_name()
        if not self._in_public and not schema_exists(schema):
            # Only the template is made here; a council's schema comes from onboarding.
            if schema != get_tenant_base_schema():
                raise LookupError(f"the schema {schema} does not exist")
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA {sql_identifier(schema)}")
        self._use_schema(schema)
        recorder = self._recorder_for(schema)
        self.executor.recorder = recorder
        self.loader.applied_migrations = recorder.applied_migrations()  # type: ignore[assignment]
        self.loader.check_consistent_history(connection)
        targets = self.loader.graph.leaf_nodes()
        plan = self.executor.migration_plan(targets)
        if not plan:
            return
        # The pre_migrate handlers add operations to the plan's migrations (contenttypes'
        # renames): each schema gets migration objects of its own.
        for migration, _ in plan:
            key = (migration.app_label, migration.name)
            self.loader.graph.nodes[key] = type(migration)(migration.name, migration.app_label)
        plan = self.executor.migration_plan(targets)
        start = frozenset(k for k in self.loader.applied_migrations if k in self.loader.graph.nodes)
        before = self._state_before(start)
        emit_pre_migrate_signal(0, False, connection.alias, apps=before.apps, plan=plan)
        release = self._release_for(start, before, [migration for migration, _ in plan])
        if release is None:
            after = self.executor.migrate(targets, plan=plan, state=before.clone())
            after_apps = _apps_for_post_migrate(after)
        else:
            for migration, _ in plan:
                migration.apply = partial(  # type: ignore[method-assign]
                    _replay, migration, release.steps[(migration.app_label, migration.name)]
                )
            self.executor.migrate(targets, plan=plan, state=before)
            if release.after_apps is None:
                release.after_apps = _apps_for_post_migrate(release.after.clone())
            after_apps = release.after_apps
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout; RESET statement_timeout")
        if post_migrate_needed([migration for migration, _ in plan]):
            emit_post_migrate_signal(0, False, connection.alias, apps=after_apps, plan=plan)

    def _release_for(
        self, start: frozenset[tuple[str, str]], before: ProjectState, plan: list[Migration]
    ) -> _Release | None:
        """The states this plan passes through from `start`, worked out for the first
        schema that takes it and replayed for the others (None for a long plan, such as a
        new deployment's: it runs once or twice, and the states would fill memory)."""
        key = (start, tuple((m.app_label, m.name) for m in plan))
        if key in self._releases:
            return self._releases[key]
        if sum(len(m.operations) for m in plan) > RELEASE_OPERATIONS_KEPT:
            return None
        state = before.clone()
        steps: dict[tuple[str, str], list[_Step]] = {}
        for migration in plan:
            steps[(migration.app_label, migration.name)] = done = []
            for operation in migration.operations:
                following = state.clone()
                operation.state_forwards(migration.app_label, following)
                done.append((operation, state, following))
                state = following
        self._releases[key] = _Release(steps=steps, after=state)
        return self._releases[key]

    def _use_schema(self, schema: str) -> None:
        connection = tenant_connection()
        if schema == get_public_schema_name():
            connection.set_schema_to_public()
        else:
            connection.set_schema(schema)

    def _recorder_for(self, schema: str) -> MigrationRecorder:
        """The schema's own django_migrations table (made if missing), never public's
        through the search path (django-tenants' `migrate_schemas` looks for it the same
        way)."""
        connection = tenant_connection()
        if schema != get_public_schema_name():
            connection.set_schema(schema, include_public=False)
        recorder = MigrationRecorder(connection)  # a new one: it remembers the table exists
        recorder.ensure_schema()
        self._use_schema(schema)
        return recorder

    def _state_before(self, applied: frozenset[tuple[str, str]]) -> ProjectState:
        """The models as these applied migrations leave them, rendered once per process:
        every council at the same point shares it (each run gets a copy)."""
        known = frozenset(key for key in applied if key in self.loader.graph.nodes)
        if known not in self._states:
            state = self.executor._create_project_state(  # type: ignore[attr-defined]
                with_applied_migrations=True
            )
            state.apps  # noqa: B018 - render the models now, once
            self._states[known] = state
        return self._states[known]

    def _progress(
        self, action: str, migration: Migration | None = None, fake: bool | None = False, /
    ) -> None:
        if action == "apply_start" and migration is not None:
            self._running = migration
            # Only a migration inside a transaction holds its locks until it commits, and
            # queues the table's readers behind it meanwhile.
            lock = self.limits.lock_timeout if migration.atomic else 0
            with tenant_connection().cursor() as cursor:
                cursor.execute(
                    f"SET lock_timeout = {int(lock * 1000)}; "
                    f"SET statement_timeout = {int(self.limits.statement_timeout * 1000)}"
                )
        elif action == "apply_success" and migration is not None:
            # A council's schema records every app's migrations, but only its own apps'
            # change anything there: those are the ones reported.
            if self._in_public or migration.app_label in self._tenant_apps:
                self._applied_now.append(migration_name(migration))
            self._running = None


# Operations that leave every model, its name and its options as they were. Django's own
# post_migrate handlers (the only ones here) make content types and permissions from
# exactly those, so after a plan of these alone they have nothing to do: skipping them
# saves some forty queries per council.
MODELS_UNCHANGED = (
    operations.AddField,
    operations.RemoveField,
    operations.AlterField,
    operations.RenameField,
    operations.AddIndex,
    operations.RemoveIndex,
    operations.RenameIndex,
    operations.AddConstraint,
    operations.RemoveConstraint,
    AddIndexConcurrently,
    RemoveIndexConcurrently,
)
DJANGO_POST_MIGRATE = {
    "django.contrib.contenttypes.management.create_contenttypes",
    "django.contrib.auth.management.create_permissions",
}


def post_migrate_needed(plan: Sequence[Migration]) -> bool:
    """False only when the plan changes no model and no one else listens to post_migrate."""
    if not all(isinstance(op, MODELS_UNCHANGED) for m in plan for op in m.operations):
        return True
    for entry in post_migrate.receivers:
        receiver = entry[1]() if isinstance(entry[1], weakref.ref) else entry[1]
        name = f"{getattr(receiver, '__module__', '')}.{getattr(receiver, '__qualname__', '')}"
        if name not in DJANGO_POST_MIGRATE:
            return True
    return False


# A plan with more operations than this is applied the ordinary way in every schema.
RELEASE_OPERATIONS_KEPT = 200

_Step = tuple[Operation, ProjectState, ProjectState]


@dataclass
class _Release:
    """A plan's operations, each with the model states before and after it: the same for
    every schema that starts from the same migrations."""

    steps: dict[tuple[str, str], list[_Step]]
    after: ProjectState
    after_apps: StateApps | None = None


def _replay(
    migration: Migration,
    steps: list[_Step],
    project_state: ProjectState,
    schema_editor: BaseDatabaseSchemaEditor,
    collect_sql: bool = False,
) -> ProjectState:
    """`Migration.apply` with the states worked out already: only the database work."""
    for operation, before, after in steps:
        # As Migration.apply: an atomic operation in a non-atomic migration gets its own
        # transaction.
        if not schema_editor.atomic_migration and (
            operation.atomic or (migration.atomic and operation.atomic is not False)
        ):
            with transaction.atomic(schema_editor.connection.alias):
                operation.database_forwards(migration.app_label, schema_editor, before, after)
        else:
            operation.database_forwards(migration.app_label, schema_editor, before, after)
    return steps[-1][2] if steps else project_state


def _apps_for_post_migrate(state: ProjectState) -> StateApps:
    """The models post_migrate handlers see, rendered as `migrate` renders them: the apps
    without migrations take their models from the code."""
    state.clear_delayed_apps_cache()
    after_apps = state.apps
    with after_apps.bulk_update():
        real = [(m.app_label, m.name_lower) for m in after_apps.real_models]
        for key in real:
            after_apps.unregister_model(*key)
    after_apps.render_multiple([ModelState.from_model(apps.get_model(*key)) for key in real])
    return after_apps


# --- The pool ------------------------------------------------------------------------------

_worker: SchemaMigrator | None = None


def _worker_migrate(schema: str) -> SchemaMigrated:
    assert _worker is not None, "the pool's processes start from schemas_migrate"
    return _worker.migrate(schema)


def schemas_migrate(
    migrator: SchemaMigrator, schemas: Sequence[str], *, workers: int
) -> Iterator[SchemaMigrated]:
    """Migrate `schemas` in `workers` processes forked from this one (each with its own
    connection, and `migrator`'s graph and states), yielding each schema's result as soon
    as it is known. A worker that dies leaves its schema and those not started failed."""
    global _worker
    _worker = migrator
    # Each worker opens its own connection: none may share this process's socket.
    connections.close_all()
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("fork")) as pool:
        futures = {pool.submit(_worker_migrate, schema): schema for schema in schemas}
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool as error:
                yield SchemaMigrated(
                    schema=futures[future],
                    status=FAILED,
                    error=f"its worker process stopped ({error_text(error)})",
                )
